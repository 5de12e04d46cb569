//! This daemon's claim on its `DATA_DIR` and its stable node name.
//!
//! A node's leases (on Lite sessions, Business numbers and claimed queue rows) are held under
//! its name, and a node restarted under the same name takes them back at once. A name that
//! changed with every start (the process id) made a daemon restarted after a crash wait for
//! its own old leases to expire before sending again. So, unless `NODE_ID` is set, the name is
//! generated once and kept in `DATA_DIR/node-id`.
//!
//! Keeping the name in `DATA_DIR` is only safe while one daemon uses that directory: two
//! processes with one name would each believe they hold the other's leases (and would share
//! browser profiles). Each daemon therefore holds an exclusive `flock` on `DATA_DIR/daemon.lock`
//! for its whole life; the kernel drops it when the process dies, `kill -9` included, so a
//! crashed daemon never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// File under `DATA_DIR` holding the generated node name.
pub const NODE_ID_FILE: &str = "node-id";
/// File under `DATA_DIR` locked by the daemon using the directory.
pub const LOCK_FILE: &str = "daemon.lock";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "DATA_DIR {dir} is in use by another sincro-whatsapp daemon ({holder}); every daemon needs a DATA_DIR of its own"
    )]
    Locked { dir: String, holder: String },
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error(
        "{path} holds {found:?}, which is not a node name (at most 64 visible ASCII characters); fix or delete the file"
    )]
    BadName { path: String, found: String },
}

/// The lock on `DATA_DIR` and the node name resolved under it. Dropping it releases the lock.
#[derive(Debug)]
pub struct NodeIdentity {
    pub node_id: String,
    /// Whether the name came from `DATA_DIR/node-id` (as opposed to `NODE_ID`).
    pub from_data_dir: bool,
    _lock: File,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |error| IdentityError::Io {
        path: path.display().to_string(),
        error,
    }
}

/// Whether `name` is acceptable as a node name (the rule `NODE_ID` follows).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_graphic())
}

/// Takes the lock on `data_dir` (which must exist) and resolves the node name: `explicit`
/// (`NODE_ID`) when given, else the one kept in `DATA_DIR/node-id`, generated on first use.
pub fn acquire(data_dir: &Path, explicit: Option<&str>) -> Result<NodeIdentity, IdentityError> {
    let lock_path = data_dir.join(LOCK_FILE);
    let mut lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(io_err(&lock_path))?;
    // SAFETY: flock(2) on a descriptor this function owns.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(io_err(&lock_path)(error));
        }
        let mut holder = String::new();
        let _ = lock.read_to_string(&mut holder);
        let holder = holder.trim();
        return Err(IdentityError::Locked {
            dir: data_dir.display().to_string(),
            holder: if holder.is_empty() {
                "it holds DATA_DIR/daemon.lock".into()
            } else {
                holder.to_string()
            },
        });
    }
    let (node_id, from_data_dir) = match explicit {
        Some(name) => (name.to_string(), false),
        None => (stored_or_new(data_dir)?, true),
    };
    // Who holds the lock, for the error a second daemon prints.
    let note = format!("pid {}, node {node_id}", std::process::id());
    let written = lock
        .set_len(0)
        .and_then(|_| lock.seek(SeekFrom::Start(0)))
        .and_then(|_| lock.write_all(note.as_bytes()));
    written.map_err(io_err(&lock_path))?;
    Ok(NodeIdentity {
        node_id,
        from_data_dir,
        _lock: lock,
    })
}

/// The name kept in `DATA_DIR/node-id`, or a new one written there (atomically: a crash while
/// writing never leaves half a name).
fn stored_or_new(data_dir: &Path) -> Result<String, IdentityError> {
    let path = data_dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(found) => {
            let name = found.trim();
            if valid_name(name) {
                Ok(name.to_string())
            } else {
                Err(IdentityError::BadName {
                    path: path.display().to_string(),
                    found: name.chars().take(80).collect(),
                })
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let name = generate();
            let tmp: PathBuf = data_dir.join(format!("{NODE_ID_FILE}.tmp"));
            let write = || -> std::io::Result<()> {
                let mut f = File::create(&tmp)?;
                f.write_all(format!("{name}\n").as_bytes())?;
                f.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                // The rename itself is durable once the directory is synced.
                File::open(data_dir)?.sync_all()
            };
            write().map_err(io_err(&path))?;
            tracing::info!(node = %name, "NODE_ID unset: generated this node's name and kept it in DATA_DIR/node-id");
            Ok(name)
        }
        Err(e) => Err(io_err(&path)(e)),
    }
}

/// `<hostname>-<8 hex digits>`: readable in the `nodes` table, unique across machines and
/// across data directories of one machine.
fn generate() -> String {
    let host: String = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into())
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .take(48)
        .collect();
    let host = if host.is_empty() { "node".into() } else { host };
    format!("{host}-{:08x}", rand::random::<u32>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path(), None).unwrap();
        assert!(first.from_data_dir);
        assert!(valid_name(&first.node_id), "{}", first.node_id);
        let name = first.node_id.clone();
        drop(first);
        let again = acquire(dir.path(), None).unwrap();
        assert_eq!(again.node_id, name);
    }

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path(), Some("n1")).unwrap();
        assert_eq!(first.node_id, "n1");
        let err = acquire(dir.path(), None).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, IdentityError::Locked { .. }), "{text}");
        assert!(text.contains("in use by another"), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        acquire(dir.path(), None).unwrap();
    }

    #[test]
    fn a_damaged_name_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(NODE_ID_FILE), "two words\n").unwrap();
        let err = acquire(dir.path(), None).unwrap_err();
        assert!(matches!(err, IdentityError::BadName { .. }), "{err}");
    }
}
