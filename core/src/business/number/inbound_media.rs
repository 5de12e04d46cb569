//! Fetching an inbound message's media from Meta: download, digest check and storing it in
//! the media store linked to the message.

use super::Inner;
use crate::business::BusinessError;
use crate::business::media::digest_matches;
use crate::media_store::{self, MAX_MEDIA_BYTES, NewMedia};
use serde_json::Value;
use uuid::Uuid;

impl Inner {
    pub(super) async fn fetch_media(
        &self,
        external_id: &str,
        details: &Value,
    ) -> Result<(), BusinessError> {
        let r = &self.record;
        let Some(media_id) = details.get("media_id").and_then(Value::as_str) else {
            return Ok(());
        };
        let client = self.shared.pool.get().await?;
        let Some(row) = client
            .query_opt(
                "SELECT id FROM mensajes_conversacion WHERE connection_id = $1 AND external_id = $2",
                &[&r.connection_id, &external_id],
            )
            .await?
        else {
            return Ok(());
        };
        let message_id: Uuid = row.get(0);
        if media_store::for_message(&client, message_id)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let info = match self.client.media_info(media_id, &r.phone_number_id).await {
            Ok(i) => i,
            Err(e) => return Err(self.on_error(e).await),
        };
        if info.file_size.is_some_and(|n| n > MAX_MEDIA_BYTES as u64) {
            return Err(BusinessError::Invalid(format!(
                "media {media_id} is larger than 16 MB"
            )));
        }
        let (data, content_type) = self.client.download(&info.url, MAX_MEDIA_BYTES).await?;
        let expected = [
            info.sha256.as_deref(),
            details.get("media_sha256").and_then(Value::as_str),
        ];
        if expected.iter().flatten().any(|d| !digest_matches(&data, d)) {
            return Err(BusinessError::Invalid(format!(
                "media {media_id} does not match its SHA-256"
            )));
        }
        let mime = info
            .mime_type
            .or_else(|| {
                details
                    .get("media_mime_type")
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .or(content_type)
            .unwrap_or_else(|| "application/octet-stream".into());
        let stored = media_store::store(
            &client,
            &self.shared.sealer,
            &self.shared.settings.data_dir,
            NewMedia {
                usuario_id: r.usuario_id,
                connection_id: Some(r.connection_id),
                direction: "inbound",
                mime_type: &mime,
                filename: details.get("media_filename").and_then(Value::as_str),
                provider_id: Some(media_id),
                message_id: Some(message_id),
            },
            &data,
        )
        .await?;
        client
            .execute(
                "UPDATE mensajes_conversacion SET metadata = metadata || jsonb_build_object('media_id', $2::uuid),
                     updated_at = now() WHERE id = $1",
                &[&message_id, &stored.id],
            )
            .await?;
        Ok(())
    }
}
