//! Media files at rest: sealed (`Purpose::Media`) under `DATA_DIR/media/`, one `media` row
//! each (owner, type, size, SHA-256 of the plain bytes, Meta's id when it has one). Used for
//! uploads through `POST /v1/media` and for inbound media, which the owning BusinessNumber
//! fetches from Meta (URL first, then the bearer download) after the message is stored.

use super::BusinessError;
use crate::seal::{Purpose, Sealer};
use deadpool_postgres::GenericClient;
use sha2::{Digest, Sha256};
use std::path::Path;
use uuid::Uuid;

/// Largest file the daemon takes or fetches (seed design: 16 MB).
pub const MAX_MEDIA_BYTES: usize = 16 * 1024 * 1024;

/// The message type a MIME type is sent as, and its limit (Meta's Cloud API documentation, capped at
/// 16 MB). None: WhatsApp does not take this type.
pub fn kind_of(mime: &str) -> Option<(&'static str, usize)> {
    const MB: usize = 1024 * 1024;
    let base = mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    Some(match base.as_str() {
        "audio/aac" | "audio/amr" | "audio/mpeg" | "audio/mp4" | "audio/ogg" => ("audio", 16 * MB),
        "text/plain"
        | "application/pdf"
        | "application/msword"
        | "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        | "application/vnd.ms-excel"
        | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        | "application/vnd.ms-powerpoint"
        | "application/vnd.openxmlformats-officedocument.presentationml.presentation" => {
            ("document", 16 * MB)
        }
        "image/jpeg" | "image/png" => ("image", 5 * MB),
        "image/webp" => ("sticker", 500 * 1024),
        "video/mp4" | "video/3gpp" => ("video", 16 * MB),
        _ => return None,
    })
}

pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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

/// Seals `data` into `DATA_DIR/media/<id>` (written to a temporary name, then renamed) and
/// records it. Returns the row.
pub async fn store(
    client: &impl GenericClient,
    sealer: &Sealer,
    data_dir: &Path,
    new: NewMedia<'_>,
    data: &[u8],
) -> Result<MediaRow, BusinessError> {
    let id = Uuid::now_v7();
    let relative = format!("media/{id}");
    let dir = data_dir.join("media");
    crate::private_fs::create_dir_all(&dir)
        .map_err(|e| BusinessError::Io(format!("media directory: {e}")))?;
    let sealed = sealer.seal(Purpose::Media, data);
    let tmp = dir.join(format!("{id}.tmp"));
    crate::private_fs::write(&tmp, sealed.as_bytes())
        .await
        .map_err(|e| BusinessError::Io(format!("write media file: {e}")))?;
    tokio::fs::rename(&tmp, data_dir.join(&relative))
        .await
        .map_err(|e| BusinessError::Io(format!("rename media file: {e}")))?;
    let sha = sha256_hex(data);
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
            let _ = tokio::fs::remove_file(data_dir.join(&relative)).await;
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

/// The media `id` of `usuario_id` (None: absent or another user's).
pub async fn get(
    client: &impl GenericClient,
    usuario_id: Uuid,
    id: Uuid,
) -> Result<Option<MediaRow>, BusinessError> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM media WHERE id = $1 AND usuario_id = $2"),
            &[&id, &usuario_id],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// A media row by id alone, whoever owns it (a signed link names it).
pub async fn get_by_id(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<MediaRow>, BusinessError> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM media WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// The media already stored for an inbound message, if any (fetching is idempotent).
pub async fn for_message(
    client: &impl GenericClient,
    message_id: Uuid,
) -> Result<Option<MediaRow>, BusinessError> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM media WHERE message_id = $1 LIMIT 1"),
            &[&message_id],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// Reads and opens a stored file, checking it against its recorded SHA-256.
pub async fn read(
    sealer: &Sealer,
    data_dir: &Path,
    row: &MediaRow,
) -> Result<Vec<u8>, BusinessError> {
    let raw = tokio::fs::read(data_dir.join(&row.storage_path))
        .await
        .map_err(|e| BusinessError::Io(format!("read media file: {e}")))?;
    let text =
        String::from_utf8(raw).map_err(|_| BusinessError::Io("media file is corrupt".into()))?;
    let data = sealer.open(Purpose::Media, &text)?;
    if sha256_hex(&data) != row.sha256 {
        return Err(BusinessError::Io(
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
) -> Result<(), BusinessError> {
    client
        .execute("DELETE FROM media WHERE id = $1", &[&row.id])
        .await?;
    let _ = tokio::fs::remove_file(data_dir.join(&row.storage_path)).await;
    Ok(())
}

/// Records Meta's id for a stored file (after an upload for a number).
pub async fn set_provider_id(
    client: &impl GenericClient,
    id: Uuid,
    connection_id: Uuid,
    provider_id: &str,
) -> Result<(), BusinessError> {
    client
        .execute(
            "UPDATE media SET provider_id = $2, connection_id = $3 WHERE id = $1",
            &[&id, &provider_id, &connection_id],
        )
        .await?;
    Ok(())
}

/// Whether a downloaded file matches a digest Meta gave: hex (media URL lookup) or base64
/// (webhooks). Digests that are neither 32-byte form are not checkable and pass.
pub fn digest_matches(data: &[u8], expected: &str) -> bool {
    use base64::Engine;
    let actual: [u8; 32] = Sha256::digest(data).into();
    let e = expected.trim();
    if e.len() == 64 && e.chars().all(|c| c.is_ascii_hexdigit()) {
        return sha256_hex(data).eq_ignore_ascii_case(e);
    }
    for engine in [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
    ] {
        if let Ok(raw) = engine.decode(e)
            && raw.len() == 32
        {
            return raw == actual;
        }
    }
    true
}

/// Why an uploaded file was refused before anything was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    #[error(
        "{0} cannot be sent on WhatsApp (images: JPEG/PNG; audio, video, documents, WebP stickers)"
    )]
    UnsupportedType(String),
    #[error("the file is empty")]
    Empty,
    #[error("a {kind} ({mime}) may be at most {max} bytes; this one has {size}")]
    TooLarge {
        kind: &'static str,
        mime: String,
        max: usize,
        size: usize,
    },
    #[error("filename is a plain file name of at most 255 characters")]
    InvalidFilename,
}

/// Checks an upload as WhatsApp will: a type it takes, within that type's limit, not empty,
/// and a plain file name.
pub fn check_upload(mime: &str, size: usize, filename: Option<&str>) -> Result<(), UploadError> {
    let (kind, max) = kind_of(mime).ok_or_else(|| UploadError::UnsupportedType(mime.into()))?;
    if size == 0 {
        return Err(UploadError::Empty);
    }
    if size > max {
        return Err(UploadError::TooLarge {
            kind,
            mime: mime.into(),
            max,
            size,
        });
    }
    if let Some(f) = filename
        && (f.is_empty()
            || f.len() > 255
            || f.chars().any(|c| c.is_control() || c == '/' || c == '\\'))
    {
        return Err(UploadError::InvalidFilename);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_in_both_forms() {
        use base64::Engine;
        let data = b"hello";
        let hex = sha256_hex(data);
        let raw: [u8; 32] = Sha256::digest(data).into();
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        assert!(digest_matches(data, &hex));
        assert!(digest_matches(data, &b64));
        assert!(!digest_matches(b"other", &hex));
        assert!(!digest_matches(b"other", &b64));
        assert!(
            digest_matches(data, "4654+8g="),
            "not a full digest: not checkable"
        );
    }

    #[test]
    fn kinds() {
        assert_eq!(kind_of("image/jpeg").map(|k| k.0), Some("image"));
        assert_eq!(
            kind_of("audio/ogg; codecs=opus").map(|k| k.0),
            Some("audio")
        );
        assert!(kind_of("application/x-msdownload").is_none());
    }

    #[test]
    fn uploads_are_checked_as_whatsapp_checks_them() {
        assert_eq!(check_upload("image/png", 10, Some("a.png")), Ok(()));
        let refused = [
            (
                "image/gif",
                10,
                None,
                "image/gif cannot be sent on WhatsApp",
            ),
            ("image/png", 0, None, "the file is empty"),
            (
                "image/png",
                5 * 1024 * 1024 + 1,
                None,
                "a image (image/png) may be at most",
            ),
            (
                "image/png",
                10,
                Some("a/b.png"),
                "filename is a plain file name",
            ),
            ("image/png", 10, Some(""), "filename is a plain file name"),
        ];
        for (mime, size, name, start) in refused {
            let e = check_upload(mime, size, name).expect_err(mime);
            assert!(e.to_string().starts_with(start), "{e}");
        }
    }
}
