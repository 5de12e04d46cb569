//! One Chromium process tree, started and ended by us.
//!
//! chromiumoxide's own launcher cannot set a process group or a parent-death signal, and it
//! reaps only the main process. So the daemon starts Chromium itself:
//! - in a **new process group** (`setpgid(0, 0)`): stop, logout, recycle and crashes end the
//!   whole tree with one `killpg(SIGKILL)`;
//! - with **`PR_SET_PDEATHSIG = SIGKILL`**: if the daemon dies (even `kill -9`), the kernel kills
//!   the browser, and its children see their parent's channel close and exit; what survives
//!   anyway is killed by the [`reaper`](super::reaper) on the next start (marker: the profile
//!   path under `DATA_DIR/lite` in the command line);
//! - with `XDG_CONFIG_HOME` inside the session's directory: Chromium's crash handler
//!   (crashpad) runs in a session of its own, outside the group, and exits when the browser
//!   does; its `--database` then names our directory, so [`terminate`](Chromium::terminate)
//!   and the reaper find it by the same marker (turning crashpad off with
//!   `disable-crashpad-for-testing` makes this Chromium abort at start);
//! - with DevTools on a pipe (fds 3 and 4), never on a TCP port another local user could
//!   connect to; chromiumoxide attaches through a one-connection bridge
//!   ([`devtools_pipe`](super::devtools_pipe)); stderr is drained so Chromium never blocks on
//!   a full pipe (the lines are dropped: they may quote page content).
//!
//! The main process is reaped with `waitpid`; when the daemon is PID 1 (a container without
//! init) the orphaned children of the group are re-parented to it, so `waitpid(-pgid)` reaps
//! them too. [`Chromium`]'s `Drop` kills and reaps, so a panicking owner still leaves nothing.

use super::devtools_pipe::{Pipes, place_in_child};
use chromiumoxide::Browser;
use chromiumoxide::handler::Handler;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error("cannot start {exe}: {error}")]
    Spawn { exe: String, error: std::io::Error },
    #[error("Chromium exited before it was ready ({0})")]
    Exited(String),
    #[error("Chromium did not print its DevTools address within {0:?}")]
    LaunchTimeout(Duration),
    #[error("cannot attach to Chromium: {0}")]
    Connect(String),
}

/// Flags every session's Chromium gets (no leading dashes). Chosen for memory: no GPU
/// process, no zygote, no preloaded browser-UI renderer, no images or disk cache. With
/// [`SINGLE_PROCESS`] on top (the default, see `LiteSettings::single_process`) the whole browser
/// is one process: about half the PSS per session of WAHA's flag set in `lite_bench`. A crash
/// then takes the whole browser down, which the session handles like any browser death.
pub const BASE_FLAGS: &[&str] = &[
    "headless=new",
    "disable-gpu",
    "in-process-gpu",
    "disable-software-rasterizer",
    "disable-background-networking",
    "disable-component-update",
    "disable-sync",
    "disable-extensions",
    "disable-default-apps",
    "disable-dev-shm-usage",
    "disable-breakpad",
    "no-first-run",
    "no-default-browser-check",
    "no-zygote",
    "disable-quic",
    "mute-audio",
    "disk-cache-size=1",
    "renderer-process-limit=1",
    "disable-site-isolation-trials",
    "disable-features=Translate,OptimizationHints,MediaRouter,IsolateOrigins,site-per-process,BackForwardCache,AutofillServerCommunication,CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions,PaintHolding,WebUIOmniboxPopup,PreloadTopChromeWebUI",
    "blink-settings=imagesEnabled=false",
    "disable-blink-features=AutomationControlled",
    "js-flags=--max-old-space-size=512",
    "window-size=1280,800",
];

/// Renderer, network and storage in the browser process.
pub const SINGLE_PROCESS: &str = "single-process";

/// A desktop Chrome user agent: WhatsApp Web refuses the headless one.
pub const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// How to start one browser.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// The executable; `chromium` on PATH when None.
    pub exe: Option<PathBuf>,
    /// `--user-data-dir`.
    pub user_data_dir: PathBuf,
    /// The session's directory (the profile's parent): every process of the tree names it on
    /// its command line, which is how stragglers and leftovers are recognised.
    pub marker_dir: PathBuf,
    /// Flags without leading dashes; a later flag with the same name replaces an earlier one.
    pub flags: Vec<String>,
    pub timeout: Duration,
}

impl LaunchSpec {
    /// The daemon's flag set plus `extra` (CHROMIUM_ARGS).
    pub fn new(
        exe: Option<PathBuf>,
        user_data_dir: PathBuf,
        extra: &[String],
        timeout: Duration,
    ) -> Self {
        Self::with_mode(exe, user_data_dir, extra, timeout, true)
    }

    /// As [`LaunchSpec::new`], choosing whether Chromium runs as a single process.
    pub fn with_mode(
        exe: Option<PathBuf>,
        user_data_dir: PathBuf,
        extra: &[String],
        timeout: Duration,
        single_process: bool,
    ) -> Self {
        let mut flags: Vec<String> = BASE_FLAGS.iter().map(|s| s.to_string()).collect();
        if single_process {
            flags.push(SINGLE_PROCESS.into());
        }
        flags.push(format!("user-agent={USER_AGENT}"));
        if unsafe { libc::geteuid() } == 0 {
            // Chromium's sandbox cannot run as root.
            flags.push("no-sandbox".into());
        }
        flags.extend(extra.iter().cloned());
        let marker_dir = user_data_dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| user_data_dir.clone());
        LaunchSpec {
            exe,
            marker_dir,
            user_data_dir,
            flags,
            timeout,
        }
    }

    /// The command line arguments, deduplicated by flag name (last one wins).
    pub fn args(&self) -> Vec<String> {
        let mut seen: Vec<(String, String)> = Vec::new();
        for f in &self.flags {
            let f = f.trim().trim_start_matches("--");
            if f.is_empty() {
                continue;
            }
            let name = f.split('=').next().unwrap_or(f).to_string();
            seen.retain(|(n, _)| *n != name);
            seen.push((name, f.to_string()));
        }
        let mut args: Vec<String> = seen.into_iter().map(|(_, f)| format!("--{f}")).collect();
        args.push(format!("--user-data-dir={}", self.user_data_dir.display()));
        // DevTools on fds 3 and 4, never on a TCP port (see `devtools_pipe`).
        args.push(format!("--{}", super::devtools_pipe::FLAG));
        args.push("about:blank".into());
        args
    }
}

/// A running Chromium tree: its main pid (= process group id) and the DevTools address.
#[derive(Debug)]
pub struct Chromium {
    pid: i32,
    marker_dir: PathBuf,
    ws_url: String,
    reaped: bool,
    exit: Option<String>,
}

impl Chromium {
    /// Starts Chromium and waits for its DevTools address.
    pub async fn launch(spec: &LaunchSpec) -> Result<Chromium, BrowserError> {
        let exe = spec
            .exe
            .clone()
            .unwrap_or_else(|| PathBuf::from("chromium"));
        let pipes = Pipes::new().map_err(|error| BrowserError::Spawn {
            exe: "DevTools pipes".into(),
            error,
        })?;
        let (devtools_read, devtools_write) = pipes.child_fds();
        let mut cmd = Command::new(&exe);
        cmd.args(spec.args())
            .env("XDG_CONFIG_HOME", spec.marker_dir.join("config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died between fork and prctl.
                if libc::getppid() == 1 {
                    libc::_exit(1);
                }
                // The profile holds the login: files Chromium writes are the user's alone.
                libc::umask(0o077);
                place_in_child(devtools_read, devtools_write)
            });
        }
        let mut child = cmd.spawn().map_err(|error| BrowserError::Spawn {
            exe: exe.display().to_string(),
            error,
        })?;
        let pid = child.id() as i32;
        let stderr = child.stderr.take().expect("stderr is piped");
        // From here on the Chromium value owns the tree: an early return kills and reaps it.
        let mut chromium = Chromium {
            pid,
            marker_dir: spec.marker_dir.clone(),
            ws_url: String::new(),
            reaped: false,
            exit: None,
        };
        // std's Child would reap on wait(); we reap by pid ourselves, so forget it.
        drop(child);
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<String, String>>();
        std::thread::Builder::new()
            .name(format!("chromium-{pid}-stderr"))
            .spawn(move || drain_stderr(stderr, tx))
            .map_err(|error| BrowserError::Spawn {
                exe: "stderr reader".into(),
                error,
            })?;
        match tokio::time::timeout(spec.timeout, pipes.bridge()).await {
            Ok(Ok(url)) => chromium.ws_url = url,
            Ok(Err(error)) => {
                // The pipe closed before DevTools answered: Chromium is exiting. Its last
                // stderr lines say why.
                let tail = match tokio::time::timeout(Duration::from_secs(2), rx).await {
                    Ok(Ok(Err(tail))) => tail,
                    _ => error.to_string(),
                };
                let exit = chromium
                    .try_wait()
                    .unwrap_or_else(|| "still running".into());
                return Err(BrowserError::Exited(format!("{exit}; {tail}")));
            }
            Err(_) => return Err(BrowserError::LaunchTimeout(spec.timeout)),
        }
        Ok(chromium)
    }

    /// Attaches chromiumoxide to this browser.
    pub async fn connect(&self) -> Result<(Browser, Handler), BrowserError> {
        Browser::connect(self.ws_url.clone())
            .await
            .map_err(|e| BrowserError::Connect(e.to_string()))
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether the main process has exited (reaping it); `Some(description)` once it has.
    pub fn try_wait(&mut self) -> Option<String> {
        if self.reaped {
            return self.exit.clone();
        }
        let mut status = 0;
        // SAFETY: waitpid on our own child.
        let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
        if r == self.pid {
            self.reaped = true;
            self.exit = Some(describe(status));
        } else if r < 0 {
            // ECHILD: already reaped elsewhere; treat as gone.
            self.reaped = true;
            self.exit = Some("gone".into());
        }
        self.exit.clone()
    }

    /// Ends the tree: waits up to `grace` for the main process to exit by itself (after a
    /// CDP `Browser.close`), then SIGKILLs the group, reaps the main process and waits (at most
    /// 5 s) until no process of the group is left.
    pub async fn terminate(&mut self, grace: Duration) {
        let until = Instant::now() + grace;
        while self.try_wait().is_none() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill_group();
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            self.try_wait();
            reap_group(self.pid);
            // Zombies re-parented to init are dead already; init reaps them (in its time).
            if self.reaped && live_group(self.pid).is_empty() {
                break;
            }
            if Instant::now() > until {
                tracing::warn!(
                    pid = self.pid,
                    "Chromium processes still present 5 s after SIGKILL"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Outside the group (the crash handler): it leaves with the browser; make sure.
        let until = Instant::now() + Duration::from_secs(3);
        loop {
            let left = live_under(&self.marker_dir);
            if left.is_empty() {
                break;
            }
            if Instant::now() > until {
                for pid in left {
                    // SAFETY: a process that names this session's directory: ours.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn kill_group(&self) {
        // SAFETY: signalling our own process group.
        unsafe {
            libc::kill(-self.pid, libc::SIGKILL);
        }
    }

    /// PSS of the whole tree, in bytes.
    pub fn pss_bytes(&self) -> u64 {
        group_pids(self.pid).into_iter().map(pss_bytes).sum()
    }

    /// The pids of the tree (its process group).
    pub fn pids(&self) -> Vec<i32> {
        group_pids(self.pid)
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        if self.reaped && live_group(self.pid).is_empty() {
            return;
        }
        self.kill_group();
        if !self.reaped {
            let pid = self.pid;
            // Reaping after SIGKILL takes milliseconds; do it off the async threads.
            let _ = std::thread::Builder::new()
                .name(format!("chromium-{pid}-reap"))
                .spawn(move || {
                    let mut status = 0;
                    // SAFETY: waitpid on our own child.
                    unsafe { libc::waitpid(pid, &mut status, 0) };
                    reap_group(pid);
                });
        }
    }
}

fn tail_of(lines: &VecDeque<String>) -> String {
    lines.iter().cloned().collect::<Vec<_>>().join(" | ")
}

/// Drains stderr to EOF so Chromium never blocks on a full pipe; the last lines before the
/// first page exists (launch errors: no content to leak) are sent when stderr closes, for a
/// launch failure report. Later lines are dropped: they may quote page content.
fn drain_stderr(
    stderr: std::process::ChildStderr,
    tx: tokio::sync::oneshot::Sender<Result<String, String>>,
) {
    let mut reader = BufReader::new(stderr);
    let mut tail: VecDeque<String> = VecDeque::new();
    let mut line = String::new();
    let mut kept = 0;
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if kept >= 20 {
            continue;
        }
        kept += 1;
        if tail.len() == 5 {
            tail.pop_front();
        }
        tail.push_back(line.trim().chars().take(300).collect());
    }
    let _ = tx.send(Err(tail_of(&tail)));
}

fn describe(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exit code {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("status {status}")
    }
}

/// Reaps every already-dead child of process group `pgid` (they are ours when we are PID 1 or
/// a subreaper); never blocks.
fn reap_group(pgid: i32) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid on children of a process group we created.
        let r = unsafe { libc::waitpid(-pgid, &mut status, libc::WNOHANG) };
        if r <= 0 {
            break;
        }
    }
}

/// Fields of `/proc/<pid>/stat` after the command name.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    Some(after.split_whitespace().map(str::to_string).collect())
}

/// Process state letter and process group of `pid`.
pub fn state_and_pgid(pid: i32) -> Option<(char, i32)> {
    let f = stat_fields(pid)?;
    let state = f.first()?.chars().next()?;
    let pgid = f.get(2)?.parse().ok()?;
    Some((state, pgid))
}

/// Every pid on the machine.
pub fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The processes (zombies included) of process group `pgid`.
pub fn group_pids(pgid: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&p| state_and_pgid(p).is_some_and(|(_, g)| g == pgid))
        .collect()
}

/// The live (non-zombie) processes of process group `pgid`.
pub fn live_group(pgid: i32) -> Vec<i32> {
    group_pids(pgid)
        .into_iter()
        .filter(|&p| state_and_pgid(p).is_some_and(|(s, _)| s != 'Z'))
        .collect()
}

/// `/proc/<pid>/cmdline` as arguments.
pub fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// PSS of one process from `/proc/<pid>/smaps_rollup`, in bytes (0 if unreadable).
pub fn pss_bytes(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Pss:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
        })
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

/// Processes whose command line names a path under `dir` (`--user-data-dir`, the crash
/// handler's `--database`): Chromium of ours. Zombies have no command line: never listed.
pub fn processes_under(dir: &Path) -> Vec<i32> {
    let dir = format!("{}/", dir.display().to_string().trim_end_matches('/'));
    let me = std::process::id() as i32;
    all_pids()
        .into_iter()
        .filter(|&p| p != me && cmdline(p).iter().skip(1).any(|a| a.contains(&dir)))
        .collect()
}

/// [`processes_under`] that are alive (not zombies).
pub fn live_under(dir: &Path) -> Vec<i32> {
    processes_under(dir)
        .into_iter()
        .filter(|&p| state_and_pgid(p).is_some_and(|(s, _)| s != 'Z'))
        .collect()
}
