//! CPU seconds from `/proc`: the daemon's threads (its runtime's threads are named
//! [`DAEMON_THREAD`], so the load generator's own work in the same process is not counted),
//! the load generator's ([`LOAD_THREAD`]) and the PostgreSQL backends serving the run's
//! database.

/// Name of the daemon runtime's threads (workers and blocking pool).
pub const DAEMON_THREAD: &str = "sw-daemon";
/// Name of the harness runtime's threads: the load generator, its samplers and scrapes.
pub const LOAD_THREAD: &str = "sw-load";

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// utime + stime of one `/proc/.../stat` file, with its command name.
fn stat(path: &str) -> Option<(String, f64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_string();
    let fields: Vec<&str> = text[close + 2..].split_whitespace().collect();
    // Fields after the name start at field 3 (state); utime and stime are fields 14 and 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((comm, (utime + stime) / ticks_per_second()))
}

/// CPU seconds used so far by this process's threads whose name starts with `name` (threads
/// that ended are lost, so the daemon runtime keeps its blocking threads alive for the run).
pub fn threads_seconds(name: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| stat(&format!("{}/stat", e.path().display())))
        .filter(|(comm, _)| comm.starts_with(name))
        .map(|(_, s)| s)
        .sum()
}

/// CPU seconds used so far by these processes (PostgreSQL backends).
pub fn processes_seconds(pids: &[i32]) -> f64 {
    pids.iter()
        .filter_map(|p| stat(&format!("/proc/{p}/stat")))
        .map(|(_, s)| s)
        .sum()
}

/// The backends connected to `database` now, but the asking one (the harness's).
pub async fn backends(
    admin: &tokio_postgres::Client,
    database: &str,
) -> Result<Vec<i32>, tokio_postgres::Error> {
    Ok(admin
        .query(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&database],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// The machine's online CPUs, whatever this process's affinity (a run may pin the harness and
/// PostgreSQL to different cores).
pub fn machine_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n > 0 { n as usize } else { 1 }
}

/// The machine's 1-minute load average (others may be building while it runs).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// CPU seconds of one measured phase.
#[derive(Debug, Clone, Copy)]
pub struct Spent {
    /// The daemon's runtime threads.
    pub daemon: f64,
    /// The PostgreSQL backends serving the run's database.
    pub pg: f64,
    /// The load generator's threads.
    pub load: f64,
}

/// CPU seconds of the daemon, of PostgreSQL and of the load generator across one measured
/// phase.
pub struct CpuMeter {
    start: Spent,
    pids: Vec<i32>,
}

impl CpuMeter {
    /// Starts measuring over the backends connected now (the daemon's pool is warm by then;
    /// backends opened later are counted from their start).
    pub async fn start(admin: &tokio_postgres::Client, database: &str) -> CpuMeter {
        let pids = backends(admin, database).await.unwrap_or_default();
        CpuMeter {
            start: Spent {
                daemon: threads_seconds(DAEMON_THREAD),
                pg: processes_seconds(&pids),
                load: threads_seconds(LOAD_THREAD),
            },
            pids,
        }
    }

    /// What each spent since [`CpuMeter::start`].
    pub async fn stop(self, admin: &tokio_postgres::Client, database: &str) -> Spent {
        let now = backends(admin, database).await.unwrap_or_default();
        let old: f64 = processes_seconds(&self.pids);
        let fresh: Vec<i32> = now.into_iter().filter(|p| !self.pids.contains(p)).collect();
        Spent {
            daemon: threads_seconds(DAEMON_THREAD) - self.start.daemon,
            pg: old - self.start.pg + processes_seconds(&fresh),
            load: threads_seconds(LOAD_THREAD) - self.start.load,
        }
    }
}
