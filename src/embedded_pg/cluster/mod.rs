//! The private PostgreSQL cluster under `DATA_DIR/postgres`: layout, one-time `initdb`, start on
//! a free loopback port, readiness, and the [`EmbeddedPostgres`] guard that stops it.
//!
//! Layout of `DATA_DIR/postgres` (mode 0700, owned by the user PostgreSQL runs as):
//! - `data/`          the cluster (`PGDATA`), created by `initdb` in `data.initdb/` and renamed
//!   when complete, so a killed `initdb` never leaves a half cluster that looks finished;
//! - `run/`           the Unix socket directory (only the owner can connect through it);
//! - `postgres.log`   the server's stderr, appended across runs (rotated once above 10 MiB);
//! - `start.lock`     `flock`ed while a daemon initialises/starts the cluster.
//!
//! Process model: the postmaster is spawned by a dedicated thread that lives exactly as long as
//! the postmaster (it waits for it), so `PR_SET_PDEATHSIG` (which fires when the *thread* that
//! forked dies) means "the daemon died": the postmaster then gets SIGINT, PostgreSQL's fast
//! shutdown, and its own children follow. It runs in its own process group so a terminal's
//! Ctrl-C reaches only the daemon, which can then close its connections before stopping the
//! server. Stopping sends the signals `pg_ctl stop` would (SIGINT fast, then SIGQUIT immediate,
//! then SIGKILL), each wait bounded, without needing `pg_ctl` or running it as another user.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::Config;
use tracing::{debug, info, warn};

use super::binaries::Selected;
use super::{EmbeddedPgError, EmbeddedPgOptions, ensure_database};

mod layout;
mod postmaster;

use layout::{Layout, RunAs, create_private_dir, prepare_for_user};
use postmaster::{
    ExitSlot, is_server_of, postmaster_command, process_alive, shutdown, spawn_postmaster,
    wait_ready,
};

/// The superuser `initdb` creates and the system user the server runs as under root.
const SUPERUSER: &str = "postgres";
const INITDB_TIMEOUT: Duration = Duration::from_secs(180);
/// Includes crash recovery after a killed run, which replays WAL.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const READY_POLL: Duration = Duration::from_millis(100);
const CONNECT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a previous server of this cluster (a daemon still shutting down) is waited for.
const PREVIOUS_SERVER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long another process initialising/starting the same cluster is waited for.
const START_LOCK_TIMEOUT: Duration = Duration::from_secs(300);
const START_ATTEMPTS: u32 = 3;
const FAST_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
const IMMEDIATE_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
const KILL_TIMEOUT: Duration = Duration::from_secs(5);
const LOG_ROTATE_BYTES: u64 = 10 << 20;
/// `sun_path` holds 108 bytes including the NUL; the socket is `<dir>/.s.PGSQL.<port>`.
const MAX_SOCKET_PATH: usize = 107;

/// A running private cluster. Keep it alive while the database is in use; [`Self::stop`] it
/// after the last connection is closed. Dropping it without `stop` stops the server
/// synchronously (blocking the dropping thread for up to ~40 s in the worst case).
pub struct EmbeddedPostgres {
    url: String,
    pid: u32,
    port: u16,
    pgdata: PathBuf,
    initialized: bool,
    exit: Arc<ExitSlot>,
    stopped: bool,
}

impl std::fmt::Debug for EmbeddedPostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedPostgres")
            .field("url", &self.url)
            .field("pid", &self.pid)
            .field("pgdata", &self.pgdata)
            .field("initialized", &self.initialized)
            .finish_non_exhaustive()
    }
}

impl EmbeddedPostgres {
    /// URL of the target database (`postgres://postgres@127.0.0.1:<port>/<database>`, trust
    /// auth, so no password).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Pid of the postmaster.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The loopback TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster directory (`PGDATA`, i.e. `DATA_DIR/postgres/data`).
    pub fn data_dir(&self) -> &Path {
        &self.pgdata
    }

    /// Whether this start ran `initdb` (false when an existing cluster was reused).
    pub fn initialized(&self) -> bool {
        self.initialized
    }

    /// Whether the postmaster has exited (stopped, crashed or killed).
    pub fn has_exited(&self) -> bool {
        self.exit.get().is_some()
    }

    /// Fast shutdown (bounded), then immediate shutdown, then SIGKILL. Close the pool first:
    /// fast shutdown disconnects clients, which would otherwise see errors.
    pub async fn stop(mut self) {
        let pid = self.pid;
        let exit = self.exit.clone();
        // Blocking waits on a condvar: keep them off the async workers. If the runtime refuses
        // (shutting down), Drop does the same work.
        if tokio::task::spawn_blocking(move || shutdown(pid, &exit))
            .await
            .is_ok()
        {
            self.stopped = true;
        }
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if !self.stopped {
            shutdown(self.pid, &self.exit);
        }
    }
}
/// Serialises initialisation and start between processes sharing a DATA_DIR (bounded wait).
async fn lock_cluster(layout: &Layout) -> Result<File, EmbeddedPgError> {
    let path = layout.cluster.join("start.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| EmbeddedPgError::io(format!("opening {}", path.display()), e))?;
    let deadline = Instant::now() + START_LOCK_TIMEOUT;
    loop {
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(file);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::WouldBlock {
            return Err(EmbeddedPgError::io(
                format!("locking {}", path.display()),
                err,
            ));
        }
        if Instant::now() >= deadline {
            return Err(EmbeddedPgError::io(
                format!("another process keeps {} locked", path.display()),
                io::ErrorKind::TimedOut.into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts (initialising once) the private cluster under `opts.data_dir/postgres` and creates
/// `opts.database` in it. Does not look at the default server; [`super::resolve`] does.
pub async fn start_private(opts: &EmbeddedPgOptions) -> Result<EmbeddedPostgres, EmbeddedPgError> {
    let layout = Layout::prepare(&opts.data_dir)?;
    let _lock = lock_cluster(&layout).await?;
    let run_as = RunAs::needed()?;
    let cluster_version = layout.cluster_version();
    let selected = opts
        .binaries
        .select(cluster_version.as_deref(), &layout.pgdata)
        .await?;
    match &run_as {
        Some(user) => prepare_for_user(&layout, user)?,
        None => create_private_dir(&layout.run)?,
    }
    let initialized = cluster_version.is_none();
    if initialized {
        initdb(&selected, &layout, run_as.as_ref()).await?;
    }
    clear_stale_lock(&layout.pgdata).await?;
    rotate_log(&layout.log);

    let mut attempt = 1;
    loop {
        let port = free_port()?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&layout.log)
            .map_err(|e| EmbeddedPgError::io(format!("opening {}", layout.log.display()), e))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let cmd = postmaster_command(&selected, &layout, run_as.as_ref(), port, log)?;
        let (pid, exit) = spawn_postmaster(cmd)
            .await
            .map_err(|e| EmbeddedPgError::io("starting postgres", e))?;
        let guard = EmbeddedPostgres {
            url: format!(
                "postgres://{SUPERUSER}@127.0.0.1:{port}/{}",
                super::percent_encode(&opts.database)
            ),
            pid,
            port,
            pgdata: layout.pgdata.clone(),
            initialized,
            exit,
            stopped: false,
        };
        let mut config = Config::new();
        config
            .host("127.0.0.1")
            .port(port)
            .user(SUPERUSER)
            .dbname("postgres");
        match wait_ready(&config, &guard.exit).await {
            Ok(client) => {
                if let Err(e) = ensure_database(&client, &opts.database).await {
                    drop(client);
                    guard.stop().await;
                    return Err(e);
                }
                info!(pid, port, data_dir = %layout.pgdata.display(), version = %selected.version,
                    initialized, "embedded PostgreSQL started");
                return Ok(guard);
            }
            Err(Some(status)) => {
                let log_tail = read_log_tail(&layout.log, log_start);
                let transient = ["could not bind", "Address already in use", "still in use"]
                    .iter()
                    .any(|s| log_tail.contains(s));
                if transient && attempt < START_ATTEMPTS {
                    warn!(port, %status, attempt, "embedded PostgreSQL failed to start; retrying");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                    continue;
                }
                return Err(EmbeddedPgError::StartFailed {
                    data_dir: layout.pgdata.clone(),
                    status,
                    log_tail,
                });
            }
            Err(None) => {
                guard.stop().await;
                return Err(EmbeddedPgError::StartTimeout {
                    data_dir: layout.pgdata.clone(),
                    secs: STARTUP_TIMEOUT.as_secs(),
                    log_tail: read_log_tail(&layout.log, log_start),
                });
            }
        }
    }
}

/// Runs `initdb` into `data.initdb/` and renames it to `data/` once complete. `C.UTF-8` keeps
/// byte-order collation (stable across glibc upgrades) with Unicode-aware character classes;
/// systems without that locale fall back to `C`.
async fn initdb(
    selected: &Selected,
    layout: &Layout,
    run_as: Option<&RunAs>,
) -> Result<(), EmbeddedPgError> {
    info!(data_dir = %layout.pgdata.display(), version = %selected.version,
        "initialising the embedded PostgreSQL cluster");
    let mut failure = None;
    for locale in ["C.UTF-8", "C"] {
        if layout.initdb_tmp.exists() {
            fs::remove_dir_all(&layout.initdb_tmp).map_err(|e| {
                EmbeddedPgError::io(format!("removing {}", layout.initdb_tmp.display()), e)
            })?;
        }
        let mut cmd = tokio::process::Command::new(&selected.bins.initdb);
        cmd.arg("-D")
            .arg(&layout.initdb_tmp)
            .args(["-U", SUPERUSER, "-E", "UTF8", "--auth=trust"])
            .arg(format!("--locale={locale}"))
            .current_dir(&layout.cluster)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(user) = run_as {
            cmd.uid(user.uid).gid(user.gid);
        }
        let output = tokio::time::timeout(INITDB_TIMEOUT, cmd.output())
            .await
            .map_err(|_| EmbeddedPgError::io("running initdb", io::ErrorKind::TimedOut.into()))?
            .map_err(|e| EmbeddedPgError::io("running initdb", e))?;
        if output.status.success() {
            fs::rename(&layout.initdb_tmp, &layout.pgdata).map_err(|e| {
                EmbeddedPgError::io(
                    format!("renaming the new cluster to {}", layout.pgdata.display()),
                    e,
                )
            })?;
            debug!(locale, "initdb done");
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stdout));
        let locale_problem = text.contains("locale");
        failure = Some((output.status.to_string(), tail(&text, 4000)));
        if !locale_problem {
            break;
        }
        debug!(locale, "initdb rejected the locale; trying the next one");
    }
    let (status, output) = failure.unwrap_or_default();
    Err(EmbeddedPgError::Initdb { status, output })
}

/// A `postmaster.pid` left by a killed run: PostgreSQL itself ignores one naming a dead pid, but
/// refuses to start when the pid was reused by a live process. So: a pid that is no PostgreSQL
/// of this cluster has its lock file removed; a previous server of this cluster that is still
/// shutting down (daemon restarted quickly) is waited for, bounded.
async fn clear_stale_lock(pgdata: &Path) -> Result<(), EmbeddedPgError> {
    let pid_file = pgdata.join("postmaster.pid");
    let Ok(text) = fs::read_to_string(&pid_file) else {
        return Ok(());
    };
    let pid = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok())
        .filter(|p| *p > 0);
    let remove = |why: &str| {
        warn!(file = %pid_file.display(), why, "removing a stale postmaster.pid");
        fs::remove_file(&pid_file)
            .or_else(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .map_err(|e| EmbeddedPgError::io(format!("removing {}", pid_file.display()), e))
    };
    let Some(pid) = pid else {
        return remove("it holds no pid");
    };
    if !process_alive(pid) {
        debug!(
            pid,
            "postmaster.pid names a dead process; PostgreSQL removes it"
        );
        return Ok(());
    }
    if !is_server_of(pid, pgdata) {
        return remove("its pid now belongs to another process");
    }
    info!(
        pid,
        "a previous embedded PostgreSQL is still running; waiting for it to exit"
    );
    let deadline = Instant::now() + PREVIOUS_SERVER_TIMEOUT;
    while process_alive(pid) && is_server_of(pid, pgdata) {
        if Instant::now() >= deadline {
            return Err(EmbeddedPgError::ClusterBusy {
                pid,
                data_dir: pgdata.to_owned(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

fn free_port() -> Result<u16, EmbeddedPgError> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| EmbeddedPgError::io("finding a free loopback port", e))
}

fn rotate_log(log: &Path) {
    if fs::metadata(log).is_ok_and(|m| m.len() > LOG_ROTATE_BYTES) {
        let _ = fs::rename(log, log.with_extension("log.1"));
    }
}
/// The end of what the server logged since `start` (for error messages).
fn read_log_tail(log: &Path, start: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(log) {
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let from = start.max(len.saturating_sub(8192));
        if file.seek(SeekFrom::Start(from)).is_ok() {
            let mut bytes = Vec::new();
            let _ = file.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    tail(&text, 4000)
}

fn tail(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = text.len() - max;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    format!("…{}", &text[cut..])
}
