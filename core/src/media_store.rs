//! Media files at rest, for both Lite sessions and Business numbers: one layout, one size
//! limit, one `media` row per file (owner, type, size, SHA-256 of the plain bytes, the
//! provider's id when it has one).
//!
//! Layout: `DATA_DIR/media/<media id>`, sealed (`Purpose::Media`). A file is written to
//! `<media id>.tmp`, fsynced, renamed into place and the directory fsynced, so a crash leaves
//! either the whole file or no file under its name; a failed write removes its temporary file,
//! and a row that cannot be inserted removes the file it would have named. A temporary file a
//! crash left half-written is removed at the next start ([`sweep_temporary`]).
//!
//! Older layout: earlier releases stored Lite files as `media/<usuario>/<media id>`. Nothing is
//! migrated: every read goes through the row's recorded `storage_path`, so files of both
//! layouts stay readable where they are.

use crate::private_fs;
use crate::seal::{Purpose, SealError, Sealer};
use crate::store::StoreError;
use deadpool_postgres::GenericClient;
use std::path::{Component, Path, PathBuf};
use uuid::Uuid;

/// The largest file the daemon takes, fetches or stores: WhatsApp's limit for media
/// (docs/ARCHITECTURE.md §7), the same for Lite and Business.
pub const MAX_MEDIA_BYTES: usize = 16 * 1024 * 1024;

/// The directory under `DATA_DIR` all media lives in.
const MEDIA_DIR: &str = "media";

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("media file cannot be opened: {0}")]
    Seal(#[from] SealError),
    /// The file system refused, or a file is not what its row says.
    #[error("{0}")]
    Io(String),
}

impl From<tokio_postgres::Error> for MediaError {
    fn from(e: tokio_postgres::Error) -> Self {
        MediaError::Store(e.into())
    }
}

/// A media row.
#[derive(Debug, Clone)]
pub struct MediaRow {
    pub id: Uuid,
    pub usuario_id: Uuid,
    pub connection_id: Option<Uuid>,
    pub direction: String,
    pub mime_type: String,
    pub filename: Option<String>,
    pub size_bytes: i64,
    pub sha256: String,
    /// Relative to `DATA_DIR`, in whichever layout the file was written.
    pub storage_path: String,
    pub provider_id: Option<String>,
    pub message_id: Option<Uuid>,
    pub created_at: time::OffsetDateTime,
}

/// A file to store.
pub struct NewMedia<'a> {
    pub usuario_id: Uuid,
    pub connection_id: Option<Uuid>,
    pub direction: &'a str,
    pub mime_type: &'a str,
    pub filename: Option<&'a str>,
    pub provider_id: Option<&'a str>,
    pub message_id: Option<Uuid>,
}

/// Where a new file `id` goes, relative to `DATA_DIR` (the one layout new files use).
fn relative_path(id: Uuid) -> String {
    format!("{MEDIA_DIR}/{id}")
}

/// `storage_path` under `data_dir`, refused unless it stays inside `DATA_DIR/media` (a row is
/// never trusted to name any other file).
fn resolve(data_dir: &Path, storage_path: &str) -> Result<PathBuf, MediaError> {
    let rel = Path::new(storage_path);
    let inside = rel.starts_with(MEDIA_DIR)
        && rel.components().count() > 1
        && rel.components().all(|c| matches!(c, Component::Normal(_)));
    if !inside {
        return Err(MediaError::Io(format!(
            "media path {storage_path:?} is outside the media directory"
        )));
    }
    Ok(data_dir.join(rel))
}

/// Writes `bytes` to `path` through a temporary file: fsynced, renamed, directory fsynced.
/// On failure the temporary file is removed and `path` is untouched.
pub(crate) async fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written = async {
        private_fs::write_synced(&tmp, bytes).await?;
        tokio::fs::rename(&tmp, path).await?;
        if let Some(dir) = path.parent() {
            tokio::fs::File::open(dir).await?.sync_all().await?;
        }
        Ok(())
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    written
}

/// Removes the temporary files of writes a crash cut short (`media/*.tmp`): no row names them
/// and no write resumes them. Called at start, before anything writes media (the lock on
/// `DATA_DIR` keeps every other daemon out of it). Returns how many were removed.
pub fn sweep_temporary(data_dir: &Path) -> std::io::Result<usize> {
    let dir = data_dir.join(MEDIA_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let is_temp = entry.path().extension().is_some_and(|x| x == "tmp");
        if is_temp && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Seals `data` into `DATA_DIR/media/<id>` and records it; returns the row. Nothing is left
/// behind when either step fails.
pub async fn store(
    client: &impl GenericClient,
    sealer: &Sealer,
    data_dir: &Path,
    new: NewMedia<'_>,
    data: &[u8],
) -> Result<MediaRow, MediaError> {
    let id = Uuid::now_v7();
    let relative = relative_path(id);
    let path = data_dir.join(&relative);
    private_fs::create_dir_all(&data_dir.join(MEDIA_DIR))
        .map_err(|e| MediaError::Io(format!("media directory: {e}")))?;
    let sealed = sealer.seal(Purpose::Media, data);
    write_atomically(&path, sealed.as_bytes())
        .await
        .map_err(|e| MediaError::Io(format!("write media file: {e}")))?;
    let sha = crate::digest::sha256_hex(data);
    let size = data.len() as i64;
    // A contact names its files (and declares their type): stored in clear, made storable.
    let mime_type = crate::store::clean::text(new.mime_type);
    let filename = new.filename.map(crate::store::clean::text);
    let row = client
        .query_one(
            "INSERT INTO media (id, usuario_id, connection_id, direction, mime_type, filename,
                 size_bytes, sha256, storage_path, provider_id, message_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING created_at",
            &[
                &id,
                &new.usuario_id,
                &new.connection_id,
                &new.direction,
                &mime_type,
                &filename,
                &size,
                &sha,
                &relative,
                &new.provider_id,
                &new.message_id,
            ],
        )
        .await;
    let row = match row {
        Ok(r) => r,
        Err(e) => {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e.into());
        }
    };
    Ok(MediaRow {
        id,
        usuario_id: new.usuario_id,
        connection_id: new.connection_id,
        direction: new.direction.to_string(),
        mime_type: new.mime_type.to_string(),
        filename: new.filename.map(String::from),
        size_bytes: size,
        sha256: sha,
        storage_path: relative,
        provider_id: new.provider_id.map(String::from),
        message_id: new.message_id,
        created_at: row.get(0),
    })
}

const COLUMNS: &str = "id, usuario_id, connection_id, direction, mime_type, filename, size_bytes,
     sha256, storage_path, provider_id, message_id, created_at";

fn from_row(r: &tokio_postgres::Row) -> MediaRow {
    MediaRow {
        id: r.get(0),
        usuario_id: r.get(1),
        connection_id: r.get(2),
        direction: r.get(3),
        mime_type: r.get(4),
        filename: r.get(5),
        size_bytes: r.get(6),
        sha256: r.get(7),
        storage_path: r.get(8),
        provider_id: r.get(9),
        message_id: r.get(10),
        created_at: r.get(11),
    }
}

async fn one(
    client: &impl GenericClient,
    filter: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Option<MediaRow>, MediaError> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM media WHERE {filter}"),
            params,
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// The media `id` of `usuario_id` (None: absent or another user's).
pub async fn get(
    client: &impl GenericClient,
    usuario_id: Uuid,
    id: Uuid,
) -> Result<Option<MediaRow>, MediaError> {
    one(client, "id = $1 AND usuario_id = $2", &[&id, &usuario_id]).await
}

/// A media row by id alone, whoever owns it (a signed link names it).
pub async fn get_by_id(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<MediaRow>, MediaError> {
    one(client, "id = $1", &[&id]).await
}

/// The media already stored for an inbound message, if any (fetching is idempotent).
pub async fn for_message(
    client: &impl GenericClient,
    message_id: Uuid,
) -> Result<Option<MediaRow>, MediaError> {
    one(client, "message_id = $1 LIMIT 1", &[&message_id]).await
}

/// Reads and opens a stored file (either layout), checking it against its recorded SHA-256.
pub async fn read(sealer: &Sealer, data_dir: &Path, row: &MediaRow) -> Result<Vec<u8>, MediaError> {
    let raw = tokio::fs::read(resolve(data_dir, &row.storage_path)?)
        .await
        .map_err(|e| MediaError::Io(format!("read media file: {e}")))?;
    let text =
        String::from_utf8(raw).map_err(|_| MediaError::Io("media file is corrupt".into()))?;
    let data = sealer.open(Purpose::Media, text.trim())?;
    if crate::digest::sha256_hex(&data) != row.sha256 {
        return Err(MediaError::Io(
            "media file does not match its digest".into(),
        ));
    }
    Ok(data)
}

/// Removes a stored file and its row (an upload that Meta then refused).
pub async fn remove(
    client: &impl GenericClient,
    data_dir: &Path,
    row: &MediaRow,
) -> Result<(), MediaError> {
    client
        .execute("DELETE FROM media WHERE id = $1", &[&row.id])
        .await?;
    if let Ok(path) = resolve(data_dir, &row.storage_path) {
        let _ = tokio::fs::remove_file(path).await;
    }
    Ok(())
}

/// Removes a stored file whose row is already deleted (an erasure or a retention purge, after
/// their transaction committed). A file already gone is not an error.
pub async fn remove_file(data_dir: &Path, storage_path: &str) -> Result<(), MediaError> {
    match tokio::fs::remove_file(resolve(data_dir, storage_path)?).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(MediaError::Io(format!("remove media file: {e}"))),
    }
}

/// Records the provider's id for a stored file (after an upload for a number).
pub async fn set_provider_id(
    client: &impl GenericClient,
    id: Uuid,
    connection_id: Uuid,
    provider_id: &str,
) -> Result<(), MediaError> {
    client
        .execute(
            "UPDATE media SET provider_id = $2, connection_id = $3 WHERE id = $1",
            &[&id, &provider_id, &connection_id],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::from_env_value(&Sealer::generate_env_value("k1")).unwrap()
    }

    fn row(storage_path: &str, data: &[u8]) -> MediaRow {
        MediaRow {
            id: Uuid::now_v7(),
            usuario_id: Uuid::now_v7(),
            connection_id: None,
            direction: "inbound".into(),
            mime_type: "application/pdf".into(),
            filename: None,
            size_bytes: data.len() as i64,
            sha256: crate::digest::sha256_hex(data),
            storage_path: storage_path.into(),
            provider_id: None,
            message_id: None,
            created_at: time::OffsetDateTime::now_utc(),
        }
    }

    #[tokio::test]
    async fn files_of_both_layouts_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = sealer();
        let data = b"%PDF-1.4 both layouts";
        let user = Uuid::now_v7();
        for rel in [
            relative_path(Uuid::now_v7()),
            format!("media/{user}/{}", Uuid::now_v7()),
        ] {
            let path = dir.path().join(&rel);
            private_fs::create_dir_all(path.parent().unwrap()).unwrap();
            write_atomically(&path, sealer.seal(Purpose::Media, data).as_bytes())
                .await
                .unwrap();
            let got = read(&sealer, dir.path(), &row(&rel, data)).await.unwrap();
            assert_eq!(got, data, "{rel}");
        }
    }

    #[test]
    fn temporary_files_left_by_a_crash_are_swept_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            sweep_temporary(dir.path()).unwrap(),
            0,
            "no media directory yet"
        );
        let media = dir.path().join(MEDIA_DIR);
        std::fs::create_dir_all(media.join("older-layout-user")).unwrap();
        let kept = Uuid::now_v7().to_string();
        let cut_short = format!("{}.tmp", Uuid::now_v7());
        std::fs::write(media.join(&kept), b"sealed").unwrap();
        std::fs::write(media.join(&cut_short), b"half").unwrap();
        std::fs::write(media.join("older-layout-user").join(&kept), b"sealed").unwrap();

        assert_eq!(sweep_temporary(dir.path()).unwrap(), 1);

        assert!(media.join(&kept).exists());
        assert!(!media.join(&cut_short).exists());
        assert!(media.join("older-layout-user").join(&kept).exists());
    }

    #[tokio::test]
    async fn an_atomic_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomically(&path, b"one").await.unwrap();
        write_atomically(&path, b"two").await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "only the file itself: {names:?}");
        // A failed write (no such directory) leaves nothing either.
        let missing = dir.path().join("absent").join("f");
        assert!(write_atomically(&missing, b"x").await.is_err());
        assert!(!dir.path().join("absent").exists());
    }

    #[tokio::test]
    async fn a_file_that_does_not_match_its_digest_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = sealer();
        let rel = relative_path(Uuid::now_v7());
        private_fs::create_dir_all(&dir.path().join(MEDIA_DIR)).unwrap();
        write_atomically(
            &dir.path().join(&rel),
            sealer.seal(Purpose::Media, b"other").as_bytes(),
        )
        .await
        .unwrap();
        assert!(
            read(&sealer, dir.path(), &row(&rel, b"mine"))
                .await
                .is_err()
        );
    }

    #[test]
    fn rows_never_name_files_outside_the_media_directory() {
        let data_dir = Path::new("/data");
        assert!(resolve(data_dir, "media/abc").is_ok());
        assert!(resolve(data_dir, "media/u/abc").is_ok());
        for bad in [
            "media",
            "media/../etc/passwd",
            "/etc/passwd",
            "lite/x",
            "./media/x",
        ] {
            assert!(resolve(data_dir, bad).is_err(), "{bad}");
        }
    }
}
