//! The postmaster process: the command line, the thread that spawns and waits for it
//! ([`ExitSlot`]), readiness polling, telling whether a pid is our server, and the escalating
//! shutdown.

use super::layout::{Layout, RunAs};
use super::{
    CONNECT_ATTEMPT_TIMEOUT, FAST_SHUTDOWN_TIMEOUT, IMMEDIATE_SHUTDOWN_TIMEOUT, KILL_TIMEOUT,
    READY_POLL, STARTUP_TIMEOUT,
};
use crate::embedded_pg::binaries::Selected;
use crate::embedded_pg::{EmbeddedPgError, connect};
use std::fs::{self, File};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::Config;
use tracing::{error, info, warn};

/// Stops the postmaster `pid` unless it already exited, escalating with bounded waits.
pub(super) fn shutdown(pid: u32, exit: &ExitSlot) {
    if exit.get().is_some() {
        return;
    }
    let steps = [
        (libc::SIGINT, FAST_SHUTDOWN_TIMEOUT, "fast shutdown"),
        (
            libc::SIGQUIT,
            IMMEDIATE_SHUTDOWN_TIMEOUT,
            "immediate shutdown",
        ),
        (libc::SIGKILL, KILL_TIMEOUT, "SIGKILL"),
    ];
    for (signal, limit, what) in steps {
        // The pid cannot have been reused: our thread has not reaped it (no exit recorded).
        unsafe { libc::kill(pid as libc::pid_t, signal) };
        if let Some(status) = exit.wait(limit) {
            info!(pid, %status, how = what, "embedded PostgreSQL stopped");
            return;
        }
        warn!(
            pid,
            how = what,
            secs = limit.as_secs(),
            "embedded PostgreSQL did not stop in time"
        );
    }
    error!(pid, "embedded PostgreSQL could not be stopped");
}

/// The postmaster's exit status, set by the thread that waits for it.
#[derive(Default)]
pub(super) struct ExitSlot {
    pub(super) status: Mutex<Option<String>>,
    pub(super) changed: Condvar,
}

impl ExitSlot {
    pub(super) fn set(&self, status: String) {
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
        self.changed.notify_all();
    }

    pub(super) fn get(&self) -> Option<String> {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(super) fn wait(&self, limit: Duration) -> Option<String> {
        let guard = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, limit, |s| s.is_none())
            .unwrap_or_else(|e| e.into_inner());
        guard.clone()
    }
}

pub(super) fn process_alive(pid: i32) -> bool {
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    alive || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Whether `pid` is a PostgreSQL process working in `pgdata`; when that cannot be told (no
/// access to its `/proc` entries) a live PostgreSQL is assumed to be ours, the safe side.
pub(super) fn is_server_of(pid: i32, pgdata: &Path) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return process_alive(pid);
    };
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    let argv0 = String::from_utf8_lossy(argv0);
    if !(argv0.contains("postgres") || argv0.contains("postmaster")) {
        return false;
    }
    match fs::read_link(format!("/proc/{pid}/cwd")) {
        Ok(cwd) => cwd == pgdata,
        Err(_) => true,
    }
}

pub(super) fn postmaster_command(
    selected: &Selected,
    layout: &Layout,
    run_as: Option<&RunAs>,
    port: u16,
    log: File,
) -> Result<std::process::Command, EmbeddedPgError> {
    let stdout = log
        .try_clone()
        .map_err(|e| EmbeddedPgError::io("duplicating the log file handle", e))?;
    let sockets = match layout.socket_dir() {
        // Quoted: the setting is a comma-separated list.
        Some(dir) => format!("\"{}\"", dir.display().to_string().replace('"', "\"\"")),
        None => {
            info!(dir = %layout.run.display(), "socket path too long; listening on TCP only");
            String::new()
        }
    };
    let mut cmd = std::process::Command::new(&selected.bins.postgres);
    cmd.arg("-D")
        .arg(&layout.pgdata)
        .arg("-p")
        .arg(port.to_string())
        .arg("-c")
        .arg("listen_addresses=127.0.0.1")
        .arg("-c")
        .arg(format!("unix_socket_directories={sockets}"))
        .current_dir(&layout.cluster)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(log)
        .process_group(0);
    if let Some(user) = run_as {
        cmd.uid(user.uid).gid(user.gid);
    }
    Ok(cmd)
}

/// Spawns the postmaster from a dedicated thread that then waits for it and records its exit;
/// see the module header for why. Returns its pid.
pub(super) async fn spawn_postmaster(
    mut cmd: std::process::Command,
) -> io::Result<(u32, Arc<ExitSlot>)> {
    let exit = Arc::new(ExitSlot::default());
    let thread_exit = exit.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("embedded-postgres".to_owned())
        .spawn(move || {
            let parent = std::process::id() as libc::pid_t;
            // SAFETY: only async-signal-safe calls (prctl, getppid), no allocation. The closure
            // runs after std's setuid, which would otherwise clear the death signal.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::prctl(
                        libc::PR_SET_PDEATHSIG,
                        libc::SIGINT as libc::c_ulong,
                        0,
                        0,
                        0,
                    ) == -1
                    {
                        return Err(io::Error::last_os_error());
                    }
                    if libc::getppid() != parent {
                        // The daemon died between fork and prctl.
                        return Err(io::Error::from_raw_os_error(libc::ESRCH));
                    }
                    Ok(())
                });
            }
            match cmd.spawn() {
                Ok(mut child) => {
                    let pid = child.id();
                    if tx.send(Ok(pid)).is_err() {
                        // The starter was cancelled before it could build the guard.
                        unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) };
                    }
                    let status = match child.wait() {
                        Ok(status) => status.to_string(),
                        Err(e) => format!("wait failed: {e}"),
                    };
                    thread_exit.set(status);
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        })?;
    let pid = rx
        .await
        .map_err(|_| io::Error::other("the postgres spawning thread ended"))??;
    Ok((pid, exit))
}

/// Polls until the server accepts a connection. `Err(Some(status))`: it exited;
/// `Err(None)`: [`STARTUP_TIMEOUT`] passed.
pub(super) async fn wait_ready(
    config: &Config,
    exit: &ExitSlot,
) -> Result<tokio_postgres::Client, Option<String>> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Some(status) = exit.get() {
            return Err(Some(status));
        }
        if let Ok(client) = connect(config, CONNECT_ATTEMPT_TIMEOUT).await {
            return Ok(client);
        }
        if Instant::now() >= deadline {
            return Err(exit.get());
        }
        tokio::time::sleep(READY_POLL).await;
    }
}
