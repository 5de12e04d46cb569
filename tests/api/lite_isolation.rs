//! A session's browser is not an open door for other local users: DevTools runs over a pipe
//! (no process of the browser listens on any TCP port), and the session's profile (the linked
//! login) and the media directory are private to the daemon's user.

use crate::lite::{ACCOUNT, CHROMIUM, lite_app};
use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Socket inodes of TCP sockets in LISTEN state (IPv4 and IPv6) on this machine.
fn listening_inodes() -> HashSet<u64> {
    let mut out = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // Columns: sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
            if cols.len() > 9 && cols[3] == "0A" {
                if let Ok(inode) = cols[9].parse() {
                    out.insert(inode);
                }
            }
        }
    }
    out
}

/// Socket inodes a process holds open.
fn socket_inodes(pid: i32) -> HashSet<u64> {
    let mut out = HashSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let t = target.to_string_lossy().to_string();
            if let Some(inode) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                if let Ok(n) = inode.parse() {
                    out.insert(n);
                }
            }
        }
    }
    out
}

/// Files and directories under `dir` that group or others may read, write or enter.
fn open_to_others(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        if meta.permissions().mode() & 0o077 != 0 {
            out.push(format!(
                "{} {:o}",
                p.display(),
                meta.permissions().mode() & 0o777
            ));
        }
        if meta.is_dir() {
            stack.extend(
                std::fs::read_dir(&p)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path()),
            );
        }
    }
    out
}

#[tokio::test]
async fn lite_browser_has_no_devtools_port_and_its_profile_is_private() {
    let _turn = CHROMIUM.lock().await;
    let Some(lite) = lite_app().await else { return };

    // Arrange + Act: a session logged in, so the browser runs and the profile holds a login.
    let _id = lite.working_session(ACCOUNT).await;
    let browsers = lite.browsers();
    assert!(!browsers.is_empty());

    // Assert: DevTools over a pipe, and no process of the browser listens on TCP.
    let listening = listening_inodes();
    for pid in &browsers {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            !cmdline.contains("--remote-debugging-port"),
            "process {pid}: {cmdline}"
        );
        let held: Vec<u64> = socket_inodes(*pid)
            .intersection(&listening)
            .copied()
            .collect();
        assert!(held.is_empty(), "process {pid} listens on TCP: {held:?}");
    }
    let main = browsers
        .iter()
        .map(|p| {
            String::from_utf8_lossy(
                &std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default(),
            )
            .to_string()
        })
        .any(|c| c.contains("--remote-debugging-pipe"));
    assert!(main, "the browser talks DevTools over its pipe");

    // The session directories and media are the daemon's user's alone.
    let lite_dir = lite.data_dir.join("lite");
    assert_eq!(
        std::fs::metadata(&lite_dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(lite.data_dir.join("media"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    let open = open_to_others(&lite_dir);
    assert!(open.is_empty(), "readable by others: {open:?}");
    lite.finish().await;
}
