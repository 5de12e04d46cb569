//! Lite inbound, durable from the moment the page reports it.
//!
//! Every page event (a message, an ack) becomes [`InboundItem`]s that are written at once to the
//! durable inbox ([`crate::ingest::inbox::store_lite`]); only then is the event confirmed to the
//! page bridge, which keeps reporting it until then. So a browser crash, a failed health check
//! or a store outage at any moment loses nothing: what was not stored is reported again by the
//! live page, or after a restart by the page's own store (asked for everything from a little
//! before the session's durable cursor), and stored messages are deduped by their id.
//!
//! Messages the page reports as sent by the account are the user's own phone writing, unless the
//! daemon sent them itself: a send writes its WhatsApp key id on its row (`metadata.lite_key`)
//! before it leaves, so however the page reports it (before the send's answer, or again after a
//! crash) it is recognised and never becomes a second row.
//!
//! Media is fetched after its message is stored, by a task that links it to the row, so a slow
//! or failed download never delays or loses the message; a message reported again whose media is
//! not linked yet is fetched again.

use super::LiteError;
use super::bridge::{self, PageMessage};
use crate::crm::identity;
use crate::ingest::{Estado, InboundItem, InboundMessage, MessageKind, StatusUpdate, inbox};
use crate::media_store::{self, MAX_MEDIA_BYTES, NewMedia};
use crate::shared::Shared;
use crate::store::StoreError;
use base64::Engine as _;
use chromiumoxide::Page;
use serde_json::json;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use uuid::Uuid;

/// Base64 characters per chunk read from the page.
const CHUNK_B64: usize = 1 << 20;

/// How far before the durable cursor a restarted page is asked to report again: page times
/// are whole seconds and events of one second may be stored out of order.
pub const RESUME_SLACK_SECS: i64 = 120;

/// How long a media task waits for its message's row (the inbox drain stores it).
const ROW_WAIT: Duration = Duration::from_secs(60);

/// The page's `subtype` of a contact's number-change notice.
const CHANGE_NUMBER: &str = "change_number";

/// The new number (digits) of a number-change notice in chat `remote`: the model's `to`, else
/// whichever of its `templateParams` is not the old id; None when it is not a phone number.
fn changed_to(msg: &PageMessage, remote: &str) -> Option<String> {
    let new = msg.to.as_deref().filter(|to| *to != remote).or_else(|| {
        msg.template_params
            .iter()
            .map(String::as_str)
            .find(|p| *p != remote)
    })?;
    let digits = new.strip_suffix("@c.us")?;
    (!digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())).then(|| digits.to_string())
}

/// What a page message becomes: None for what is not a CRM message (groups, status
/// broadcasts, system notices other than a contact's change of number).
pub fn message_item(
    usuario_id: Uuid,
    connection_id: Uuid,
    msg: &PageMessage,
) -> Option<InboundMessage> {
    // A contact is `<digits>@c.us`, or `<id>@lid` when WhatsApp names it by a linked identity
    // (its number hidden): kept as given, so its messages are stored under that id.
    let remote = msg.remote.as_deref()?;
    let from = match (remote.strip_suffix("@c.us"), remote.ends_with("@lid")) {
        (Some(digits), _) => format!("+{digits}"),
        (None, true) => remote.to_string(),
        (None, false) => return None,
    };
    let kind = match msg.kind.as_str() {
        "chat" => MessageKind::Texto,
        "image" => MessageKind::Imagen,
        "video" => MessageKind::Video,
        "audio" | "ptt" => MessageKind::Audio,
        "document" => MessageKind::Documento,
        "sticker" => MessageKind::Sticker,
        "location" => MessageKind::Ubicacion,
        "vcard" | "multi_vcard" => MessageKind::Contacto,
        "notification_template" if msg.subtype.as_deref() == Some(CHANGE_NUMBER) => {
            MessageKind::Sistema
        }
        "revoked" | "gp2" | "e2e_notification" | "notification_template" | "ciphertext" => {
            return None;
        }
        _ => MessageKind::Desconocido,
    };
    let mut payload = json!({});
    let mut details = json!({"source": "lite", "wa_type": msg.kind});
    if let Some(q) = &msg.quoted {
        details["context_id"] = json!(q);
    }
    if let Some(r) = msg.ctwa.as_ref().and_then(crate::crm::source::from_page) {
        details["referral"] = r;
    }
    if kind == MessageKind::Sistema {
        // Filed as the Cloud API files its `user_changed_number`, so the CRM side
        // (`crm::identity`) moves the lead the same way for both kinds of connection.
        details["system_type"] = json!(identity::USER_CHANGED_NUMBER);
        details["new_wa_id"] = json!(changed_to(msg, remote)?);
    }
    if msg.media {
        let mime = msg
            .mimetype
            .clone()
            .unwrap_or_else(|| "application/octet-stream".into());
        details["mime_type"] = json!(mime);
        details["media_pending"] = json!(true);
        payload = json!({"mime_type": mime, "size": msg.size, "filename": msg.filename});
    }
    let text = match kind {
        MessageKind::Texto => msg.body.clone(),
        MessageKind::Ubicacion => msg.loc.clone(),
        _ => msg
            .caption
            .clone()
            .or(msg.body.clone())
            .filter(|s| !s.is_empty()),
    };
    if kind == MessageKind::Ubicacion {
        payload = json!({"latitude": msg.lat, "longitude": msg.lng, "name": msg.loc});
    }
    let timestamp = msg
        .t
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .unwrap_or_else(OffsetDateTime::now_utc);
    Some(InboundMessage {
        usuario_id,
        connection_id,
        external_id: msg.id.clone(),
        from,
        outgoing: msg.from_me,
        // The name on a message the account sent is the account's own.
        profile_name: if msg.from_me {
            None
        } else {
            msg.notify_name.clone()
        },
        profile_picture_url: None,
        kind,
        text,
        payload,
        details,
        timestamp,
    })
}

/// What an ack becomes: None for acks that change nothing (0: pending on the page).
pub fn ack_item(
    usuario_id: Uuid,
    connection_id: Uuid,
    id: String,
    ack: i64,
) -> Option<InboundItem> {
    let estado = match ack {
        -1 => Estado::Failed,
        1 => Estado::Sent,
        2 => Estado::Delivered,
        3 | 4 => Estado::Read,
        _ => return None,
    };
    Some(InboundItem::Status(StatusUpdate {
        usuario_id,
        connection_id,
        external_id: id,
        estado,
        error: (estado == Estado::Failed).then(|| "WhatsApp reported an error".into()),
        timestamp: OffsetDateTime::now_utc(),
        message_id: None,
    }))
}

/// Whether a message the page reports as sent by the account is one the daemon sent (its id is
/// on one of the connection's rows, as provider id or as the key id given before the send).
pub async fn is_own_send(
    shared: &Shared,
    connection_id: Uuid,
    key_id: &str,
) -> Result<bool, StoreError> {
    let client = shared.pool.get().await?;
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM mensajes_conversacion WHERE connection_id = $1 AND external_id = $2)
                 OR EXISTS (SELECT 1 FROM mensajes_conversacion WHERE connection_id = $1
                                AND metadata ? 'lite_key' AND metadata->>'lite_key' = $2)",
            &[&connection_id, &key_id],
        )
        .await?;
    Ok(row.get(0))
}

/// Records the WhatsApp key id a send will leave with on its row, before it leaves.
pub async fn mark_own_send(
    shared: &Shared,
    message_id: Uuid,
    key_id: &str,
) -> Result<(), StoreError> {
    let client = shared.pool.get().await?;
    client
        .execute(
            "UPDATE mensajes_conversacion SET metadata = coalesce(metadata, '{}'::jsonb) || jsonb_build_object('lite_key', $2::text)
             WHERE id = $1",
            &[&message_id, &key_id],
        )
        .await?;
    Ok(())
}

/// Stores one page event's items durably and moves the session's cursor to the event's page
/// time, in one transaction; then wakes the inbox drain.
pub async fn store(
    shared: &Shared,
    usuario_id: Uuid,
    connection_id: Uuid,
    items: &[InboundItem],
    page_time: Option<i64>,
) -> Result<(), StoreError> {
    let mut client = shared.pool.get().await?;
    let tx = client.transaction().await?;
    inbox::store_lite(&tx, &shared.sealer, usuario_id, connection_id, items).await?;
    if let Some(t) = page_time {
        tx.execute(
            "UPDATE whatsapp_lite_sessions SET inbound_cursor = greatest(coalesce(inbound_cursor, 0), $2)
             WHERE id = $1",
            &[&connection_id, &t],
        )
        .await?;
    }
    tx.commit().await?;
    inbox::wake(shared);
    Ok(())
}

/// From when a restarted page must report again (unix seconds): a little before the newest
/// event stored, or the session's creation when none was.
pub async fn resume_from(shared: &Shared, connection_id: Uuid) -> Result<i64, StoreError> {
    let client = shared.pool.get().await?;
    let row = client
        .query_opt(
            "SELECT coalesce(inbound_cursor, extract(epoch FROM created_at)::bigint)
             FROM whatsapp_lite_sessions WHERE id = $1",
            &[&connection_id],
        )
        .await?;
    Ok(row.map_or(0, |r| r.get::<_, i64>(0)) - RESUME_SLACK_SECS)
}

/// Inbound media being fetched by this session (message ids), so a message reported again
/// while its media downloads does not start a second download.
#[derive(Clone, Default)]
pub struct MediaFetches(Arc<Mutex<HashSet<String>>>);

impl MediaFetches {
    fn take(&self, id: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string())
    }

    fn done(&self, id: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    /// Fetches a stored message's media from the page and links it, in a task; None when this
    /// message's media is already being fetched.
    pub fn spawn(
        &self,
        shared: Arc<Shared>,
        page: Page,
        usuario_id: Uuid,
        connection_id: Uuid,
        msg: PageMessage,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if !self.take(&msg.id) {
            return None;
        }
        let fetches = self.clone();
        Some(tokio::spawn(async move {
            if let Err(e) = fetch_and_link(&shared, &page, usuario_id, connection_id, &msg).await {
                tracing::warn!(session = %connection_id, message = %msg.id, error = %e,
                    "inbound media not fetched; it is fetched again when the page reports the message again");
            }
            fetches.done(&msg.id);
        }))
    }
}

async fn fetch_and_link(
    shared: &Shared,
    page: &Page,
    usuario_id: Uuid,
    connection_id: Uuid,
    msg: &PageMessage,
) -> Result<(), LiteError> {
    // The message first: the drain stores it shortly.
    let until = Instant::now() + ROW_WAIT;
    let (message_id, linked) = loop {
        let client = shared.pool.get().await.map_err(StoreError::from)?;
        let row = client
            .query_opt(
                "SELECT id, coalesce(metadata ? 'media_id', false) FROM mensajes_conversacion
                 WHERE connection_id = $1 AND external_id = $2",
                &[&connection_id, &msg.id],
            )
            .await
            .map_err(StoreError::from)?;
        if let Some(r) = row {
            break (r.get::<_, Uuid>(0), r.get::<_, bool>(1));
        }
        if Instant::now() > until {
            return Err(LiteError::Page("the message was not stored in time".into()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if linked {
        return Ok(());
    }
    let client = shared.pool.get().await.map_err(StoreError::from)?;
    let existing = media_store::for_message(&client, message_id)
        .await
        .map_err(|e| LiteError::Invalid(e.to_string()))?;
    let media_id = match existing {
        Some(m) => m.id,
        None => {
            let Some(bytes) = download(page, msg).await? else {
                set_media_error(&client, message_id, "larger than 16 MB").await?;
                return Ok(());
            };
            let mime = msg
                .mimetype
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into());
            media_store::store(
                &client,
                &shared.sealer,
                &shared.settings.data_dir,
                NewMedia {
                    usuario_id,
                    connection_id: Some(connection_id),
                    direction: "inbound",
                    mime_type: &mime,
                    filename: msg.filename.as_deref(),
                    provider_id: Some(&msg.id),
                    message_id: Some(message_id),
                },
                &bytes,
            )
            .await
            .map_err(|e| LiteError::Invalid(e.to_string()))?
            .id
        }
    };
    client
        .execute(
            "UPDATE mensajes_conversacion SET metadata = metadata || jsonb_build_object('media_id', $2::uuid),
                 updated_at = now() WHERE id = $1",
            &[&message_id, &media_id],
        )
        .await
        .map_err(StoreError::from)?;
    Ok(())
}

async fn set_media_error(
    client: &deadpool_postgres::Client,
    message_id: Uuid,
    error: &str,
) -> Result<(), LiteError> {
    client
        .execute(
            "UPDATE mensajes_conversacion SET metadata = metadata || jsonb_build_object('media_error', $2::text)
             WHERE id = $1",
            &[&message_id, &error],
        )
        .await
        .map_err(StoreError::from)?;
    Ok(())
}

/// Downloads a message's media through the page, in chunks. None when larger than 16 MB.
pub async fn download(page: &Page, msg: &PageMessage) -> Result<Option<Vec<u8>>, LiteError> {
    if msg.size.is_some_and(|s| s as usize > MAX_MEDIA_BYTES) {
        return Ok(None);
    }
    let key = json!(msg.serialized);
    let size = bridge::call(
        page,
        "download",
        std::slice::from_ref(&key),
        Duration::from_secs(60),
    )
    .await?
    .as_u64()
    .unwrap_or(0) as usize;
    let result = async {
        if size > MAX_MEDIA_BYTES {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(size);
        let raw_chunk = CHUNK_B64 / 4 * 3;
        while out.len() < size {
            let b64 = bridge::call(
                page,
                "chunk",
                &[key.clone(), json!(out.len()), json!(raw_chunk)],
                Duration::from_secs(20),
            )
            .await?;
            let part = base64::engine::general_purpose::STANDARD
                .decode(b64.as_str().unwrap_or(""))
                .map_err(|e| LiteError::Page(format!("media chunk: {e}")))?;
            if part.is_empty() {
                break;
            }
            out.extend_from_slice(&part);
        }
        Ok(Some(out))
    }
    .await;
    let _ = bridge::call(page, "release", &[key], Duration::from_secs(10)).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_msg(json: &str) -> PageMessage {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_number_change_notice_names_the_new_number() {
        // As WhatsApp Web files it: in the old chat, `to` the new id, both in templateParams.
        let m = page_msg(
            r#"{"id":"N1","serialized":"false_5511@c.us_N1","remote":"5511@c.us","type":"notification_template","subtype":"change_number","to":"5522@c.us","templateParams":["5511@c.us","5522@c.us"]}"#,
        );
        let item = message_item(Uuid::nil(), Uuid::nil(), &m).unwrap();
        assert_eq!(item.kind, MessageKind::Sistema);
        assert_eq!(item.from, "+5511");
        assert_eq!(item.details["system_type"], "user_changed_number");
        assert_eq!(item.details["new_wa_id"], "5522");
        assert_eq!(
            crate::crm::identity::new_number(&item).as_deref(),
            Some("5522")
        );
        // Only the parameters: the one that is not the old id.
        let m = page_msg(
            r#"{"id":"N2","serialized":"x","remote":"5511@c.us","type":"notification_template","subtype":"change_number","templateParams":["5511@c.us","5533@c.us"]}"#,
        );
        let item = message_item(Uuid::nil(), Uuid::nil(), &m).unwrap();
        assert_eq!(item.details["new_wa_id"], "5533");
        // A new id that is not a number, and other notices: not CRM messages.
        for other in [
            r#"{"id":"N3","serialized":"x","remote":"5511@c.us","type":"notification_template","subtype":"change_number","to":"99@lid"}"#,
            r#"{"id":"N4","serialized":"x","remote":"5511@c.us","type":"notification_template","subtype":"biz_intro"}"#,
        ] {
            assert!(message_item(Uuid::nil(), Uuid::nil(), &page_msg(other)).is_none());
        }
    }

    #[test]
    fn phone_sent_messages_are_outgoing_to_the_contact() {
        let m = page_msg(
            r#"{"id":"3A1","serialized":"true_5511@c.us_3A1","remote":"5511@c.us","type":"chat","body":"oi","fromMe":true,"notifyName":"Me"}"#,
        );
        let item = message_item(Uuid::nil(), Uuid::nil(), &m).unwrap();
        assert!(item.outgoing);
        assert_eq!(item.from, "+5511");
        assert_eq!(item.profile_name, None);
        let m = page_msg(
            r#"{"id":"3A2","serialized":"false_5511@c.us_3A2","remote":"5511@c.us","type":"image","caption":"c","media":true,"mimetype":"image/jpeg","notifyName":"Ana"}"#,
        );
        let item = message_item(Uuid::nil(), Uuid::nil(), &m).unwrap();
        assert!(!item.outgoing);
        assert_eq!(item.kind, MessageKind::Imagen);
        assert_eq!(item.details["media_pending"], true);
        assert_eq!(item.text.as_deref(), Some("c"));
        let group = page_msg(r#"{"id":"3","serialized":"x","remote":"1@g.us","type":"chat"}"#);
        assert!(message_item(Uuid::nil(), Uuid::nil(), &group).is_none());
        let lid = page_msg(
            r#"{"id":"4","serialized":"false_2037@lid_4","remote":"2037@lid","type":"chat","body":"oi"}"#,
        );
        assert_eq!(
            message_item(Uuid::nil(), Uuid::nil(), &lid).unwrap().from,
            "2037@lid"
        );
    }

    #[test]
    fn acks_map_to_statuses() {
        let s = |ack| ack_item(Uuid::nil(), Uuid::nil(), "x".into(), ack);
        assert!(s(0).is_none());
        assert!(matches!(s(3), Some(InboundItem::Status(u)) if u.estado == Estado::Read));
        assert!(matches!(s(-1), Some(InboundItem::Status(u)) if u.estado == Estado::Failed));
    }
}
