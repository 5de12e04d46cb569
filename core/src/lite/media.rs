//! Media of Lite sessions at rest: inbound files are sealed (`Purpose::Media`) under
//! `DATA_DIR/media/<usuario>/<media id>` and recorded in `media`; outbound media is read back
//! from there (Cloud API `{"id": ...}`) or fetched from a link (`{"link": ...}`), 16 MB at most.

use super::LiteError;
use crate::net_guard::MediaFetcher;
use crate::seal::{Purpose, Sealer};
use deadpool_postgres::Pool;
use sha2::{Digest, Sha256};
use std::path::Path;
use uuid::Uuid;

/// The largest file WhatsApp (and the seed design) accepts.
pub const MAX_MEDIA_BYTES: usize = 16 * 1024 * 1024;

/// A stored media row.
#[derive(Debug, Clone)]
pub struct StoredMedia {
    pub id: Uuid,
    pub sha256: String,
    pub size: usize,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Seals `bytes` to disk and records them; returns the media id.
#[allow(clippy::too_many_arguments)]
pub async fn store_inbound(
    pool: &Pool,
    sealer: &Sealer,
    data_dir: &Path,
    usuario_id: Uuid,
    connection_id: Uuid,
    bytes: &[u8],
    mime_type: &str,
    filename: Option<&str>,
    provider_id: Option<&str>,
) -> Result<StoredMedia, LiteError> {
    let id = Uuid::now_v7();
    let rel = format!("media/{usuario_id}/{id}");
    let path = data_dir.join(&rel);
    if let Some(parent) = path.parent() {
        crate::private_fs::create_dir_all(parent)?;
    }
    let sealed = sealer.seal(Purpose::Media, bytes);
    let tmp = path.with_extension("part");
    crate::private_fs::write(&tmp, sealed.as_bytes()).await?;
    tokio::fs::rename(&tmp, &path).await?;
    let sha256 = hex(&Sha256::digest(bytes));
    let size = bytes.len();
    pool.get()
        .await
        .map_err(crate::store::StoreError::from)?
        .execute(
            "INSERT INTO media (id, usuario_id, connection_id, direction, mime_type, filename,
                                size_bytes, sha256, storage_path, provider_id)
             VALUES ($1, $2, $3, 'inbound', $4, $5, $6, $7, $8, $9)",
            &[
                &id,
                &usuario_id,
                &connection_id,
                &mime_type,
                &filename,
                &(size as i64),
                &sha256,
                &rel,
                &provider_id,
            ],
        )
        .await
        .map_err(crate::store::StoreError::from)?;
    Ok(StoredMedia { id, sha256, size })
}

/// A media file of the user, opened: `(bytes, mime type, filename)`.
pub async fn load(
    pool: &Pool,
    sealer: &Sealer,
    data_dir: &Path,
    usuario_id: Uuid,
    media_id: Uuid,
) -> Result<(Vec<u8>, String, Option<String>), LiteError> {
    let row = pool
        .get()
        .await
        .map_err(crate::store::StoreError::from)?
        .query_opt(
            "SELECT storage_path, mime_type, filename FROM media WHERE id = $1 AND usuario_id = $2",
            &[&media_id, &usuario_id],
        )
        .await
        .map_err(crate::store::StoreError::from)?
        .ok_or_else(|| LiteError::Invalid(format!("media {media_id} not found")))?;
    let rel: String = row.get(0);
    let sealed = tokio::fs::read_to_string(data_dir.join(&rel)).await?;
    let bytes = sealer
        .open(Purpose::Media, sealed.trim())
        .map_err(|e| LiteError::Invalid(format!("media {media_id} cannot be opened: {e}")))?;
    Ok((bytes, row.get(1), row.get(2)))
}

/// Downloads a media link with no exceptions to the public-address rule. Prefer
/// [`fetch_link_with`] and the node's configured fetcher (`Shared::media_fetcher`), which
/// honours `MEDIA_FETCH_ALLOW`.
pub async fn fetch_link(url: &str) -> Result<(Vec<u8>, Option<String>), LiteError> {
    fetch_link_with(MediaFetcher::strict(), url).await
}

/// Downloads a media link through the SSRF guard ([`crate::net_guard`]): public addresses
/// only (checked after resolution and on every redirect), at most [`MAX_MEDIA_BYTES`], within
/// 30 s. A refused, invalid, oversized or client-error link is a permanent failure
/// ([`LiteError::Invalid`]); a network failure may be retried.
pub async fn fetch_link_with(
    fetcher: &MediaFetcher,
    url: &str,
) -> Result<(Vec<u8>, Option<String>), LiteError> {
    match fetcher.fetch(url).await {
        Ok(f) if f.bytes.len() > MAX_MEDIA_BYTES => {
            Err(LiteError::Invalid("media is larger than 16 MB".into()))
        }
        Ok(f) => Ok((f.bytes, f.mime_type)),
        Err(e) if e.is_permanent() => Err(LiteError::Invalid(e.to_string())),
        Err(e) => Err(LiteError::Page(e.to_string())),
    }
}
