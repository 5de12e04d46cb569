//! Outbound media of Lite sessions: a file stored by the daemon (Cloud API `{"id": ...}`,
//! read through [`crate::media_store`], which also stores inbound files) or a link
//! (`{"link": ...}`) fetched through the SSRF guard, [`MAX_MEDIA_BYTES`] at most.

use super::LiteError;
use crate::media_store::{self, MAX_MEDIA_BYTES, MediaError};
use crate::net_guard::MediaFetcher;
use crate::seal::Sealer;
use deadpool_postgres::Pool;
use std::path::Path;
use uuid::Uuid;

impl From<MediaError> for LiteError {
    fn from(e: MediaError) -> Self {
        match e {
            MediaError::Store(s) => LiteError::Store(s),
            other => LiteError::Invalid(other.to_string()),
        }
    }
}

/// A media file of the user, opened: `(bytes, mime type, filename)`.
pub async fn load(
    pool: &Pool,
    sealer: &Sealer,
    data_dir: &Path,
    usuario_id: Uuid,
    media_id: Uuid,
) -> Result<(Vec<u8>, String, Option<String>), LiteError> {
    let client = pool.get().await.map_err(crate::store::StoreError::from)?;
    let row = media_store::get(&client, usuario_id, media_id)
        .await?
        .ok_or_else(|| LiteError::Invalid(format!("media {media_id} not found")))?;
    let bytes = media_store::read(sealer, data_dir, &row)
        .await
        .map_err(|e| LiteError::Invalid(format!("media {media_id} cannot be opened: {e}")))?;
    Ok((bytes, row.mime_type, row.filename))
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
