//! On daemon start: kill Chromium trees that a killed daemon left behind.
//!
//! The parent-death signal normally takes them down with the daemon, but a browser can still
//! outlive it (killed between fork and `prctl`, a wrapper that dropped the signal, processes
//! that left the group). They are recognised by the marker every one of our browsers carries:
//! a `--user-data-dir` under `DATA_DIR/lite`. Only processes of this daemon's DATA_DIR are
//! touched, and this runs before any session of this daemon starts.

use super::browser;
use std::path::Path;
use std::time::{Duration, Instant};

/// Kills every process whose command line names a profile under `lite_dir`, with its process
/// group, and waits (at most 5 s) until they are gone. Returns how many were found.
pub async fn reap(lite_dir: &Path) -> usize {
    let found = browser::processes_under(lite_dir);
    if found.is_empty() {
        return 0;
    }
    let me = std::process::id() as i32;
    let my_group = unsafe { libc::getpgrp() };
    for &pid in &found {
        if pid == me {
            continue;
        }
        // SAFETY: signalling processes we identified as our own leftovers.
        unsafe {
            if let Some((_, pgid)) = browser::state_and_pgid(pid)
                && pgid > 1
                && pgid != my_group
            {
                libc::kill(-pgid, libc::SIGKILL);
            }
            libc::kill(pid, libc::SIGKILL);
        }
    }
    tracing::warn!(
        count = found.len(),
        "killed Chromium processes left by an earlier daemon"
    );
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        // Zombies keep their command line empty, so they no longer match.
        let left: Vec<i32> = browser::processes_under(lite_dir)
            .into_iter()
            .filter(|&p| browser::state_and_pgid(p).is_some_and(|(s, _)| s != 'Z'))
            .collect();
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    found.len()
}
