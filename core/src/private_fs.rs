//! Files only the daemon's user may read: sealed media and restored browser profiles live
//! under `DATA_DIR`, and a file written with the process's usual umask would be readable by
//! every local user should a directory above it ever be opened up. Written 0600 from the start.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens `path` for writing (created or truncated) with mode 0600.
async fn create(path: &Path) -> std::io::Result<tokio::fs::File> {
    tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .await
}

/// Writes `bytes` to `path` (created or truncated) with mode 0600.
pub async fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut file = create(path).await?;
    file.write_all(bytes).await?;
    file.flush().await
}

/// [`write`], then fsync: the bytes are on disk before a rename makes them visible.
pub async fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut file = create(path).await?;
    file.write_all(bytes).await?;
    file.sync_all().await
}

/// [`write`] for blocking code.
pub fn write_sync(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

/// Creates `path` and its missing parents with mode 0700.
pub fn create_dir_all(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}
