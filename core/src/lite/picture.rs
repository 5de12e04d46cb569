//! Lite contacts' profile pictures. WhatsApp Web gives a contact's picture only as a CDN link
//! that expires, so after an inbound message the session looks the picture up through the
//! page (`window.__sincro.profilePic`), keeps the bytes sealed in the media store like any
//! other media, and points the lead at the stored file (`metadata.profile.picture_url` =
//! `/v1/media/<id>`, `metadata.profile_picture_media_id`), with a `lead.updated` event.
//!
//! At most one lookup per contact a day: the time of the last one is claimed on the lead
//! (`metadata.profile_picture_checked_at`, unix seconds) before the page is asked, so
//! concurrent messages do not look up twice. Nothing is looked up when the connection does not
//! sync contacts (`settings.sync_contacts = false`). It runs in a task after the message is
//! stored, so it never delays ingest; the URL and the number are never logged.

use super::LiteError;
use super::bridge::{self, PageMessage};
use crate::crm::settings::CrmSettings;
use crate::media_store::{self, NewMedia};
use crate::shared::Shared;
use crate::store::StoreError;
use crate::store::events;
use base64::Engine as _;
use chromiumoxide::Page;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long a lookup stays fresh: one per contact a day.
pub const REFRESH_SECS: i64 = 24 * 60 * 60;

/// Lead metadata key: when the picture was last looked up (unix seconds).
pub const CHECKED_AT: &str = "profile_picture_checked_at";

/// Lead metadata key: the stored picture's media id.
pub const MEDIA_ID: &str = "profile_picture_media_id";

/// Lead metadata key: the tag WhatsApp gave the stored picture (unchanged picture, same tag).
const TAG: &str = "profile_picture_tag";

/// The largest picture kept (WhatsApp's are a few hundred KB).
const MAX_PICTURE_BYTES: usize = 2 * 1024 * 1024;

/// How long the page may take to look a picture up and fetch it.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the task waits for the message's row (the inbox drain stores it).
const ROW_WAIT: Duration = Duration::from_secs(60);

/// Starts the lookup after a contact's message was stored; None for messages that do not
/// come from a contact's number (sent by the account, or from a hidden-number `@lid` id).
pub fn spawn(
    shared: Arc<Shared>,
    page: Page,
    connection_id: Uuid,
    msg: &PageMessage,
) -> Option<tokio::task::JoinHandle<()>> {
    if msg.from_me || msg.kind == "notification_template" {
        return None; // the account's own, or a notice (a number change) rather than a message
    }
    let digits = msg.remote.as_deref()?.strip_suffix("@c.us")?.to_string();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let external_id = msg.id.clone();
    Some(tokio::spawn(async move {
        let outcome = match refresh(&shared, &page, connection_id, &external_id, &digits).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::warn!(session = %connection_id, error = quiet(&e),
                    "profile picture not refreshed; the next message tries again");
                "error"
            }
        };
        metrics::counter!("sincro_lite_profile_pictures_total", "outcome" => outcome).increment(1);
    }))
}

/// What a failure says in the log: never the page's own text (it may quote the number).
fn quiet(e: &LiteError) -> &'static str {
    match e {
        LiteError::Timeout(_) => "the page did not answer in time",
        LiteError::Store(_) => "store error",
        LiteError::Invalid(_) => "the picture could not be stored",
        _ => "the page could not look it up",
    }
}

/// The lead of the stored message `external_id`, once the drain has stored it.
async fn lead_of(
    shared: &Shared,
    connection_id: Uuid,
    external_id: &str,
) -> Result<Uuid, LiteError> {
    let until = Instant::now() + ROW_WAIT;
    loop {
        let client = shared.pool.get().await.map_err(StoreError::from)?;
        let row = client
            .query_opt(
                "SELECT c.lead_id FROM mensajes_conversacion m
                 JOIN conversaciones c ON c.id = m.conversacion_id
                 WHERE m.connection_id = $1 AND m.external_id = $2",
                &[&connection_id, &external_id],
            )
            .await
            .map_err(StoreError::from)?;
        if let Some(lead) = row.and_then(|r| r.get::<_, Option<Uuid>>(0)) {
            return Ok(lead);
        }
        if Instant::now() > until {
            return Err(LiteError::Invalid(
                "the message was not stored in time".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Looks the picture up unless it is fresh or contacts are not synced; the outcome as the
/// metric's label: `sync_off`, `fresh`, `none` (no picture, or hidden), `unchanged`, `stored`.
async fn refresh(
    shared: &Shared,
    page: &Page,
    connection_id: Uuid,
    external_id: &str,
    digits: &str,
) -> Result<&'static str, LiteError> {
    let lead = lead_of(shared, connection_id, external_id).await?;
    let client = shared.pool.get().await.map_err(StoreError::from)?;
    let conf: Option<Value> = client
        .query_opt(
            "SELECT configuracion FROM configuracion_mensajeria_usuario WHERE id = $1",
            &[&connection_id],
        )
        .await
        .map_err(StoreError::from)?
        .map(|r| r.get(0));
    if !CrmSettings::from_configuracion(&conf.unwrap_or(Value::Null)).sync_contacts {
        return Ok("sync_off");
    }
    // The claim: only the lookup that moves the time on goes ahead.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claimed = client
        .query_opt(
            "UPDATE leads SET metadata = metadata || jsonb_build_object($2::text, $3::bigint)
             WHERE id = $1 AND merged_into IS NULL
               AND COALESCE((metadata->>$2)::bigint, 0) <= $3::bigint - $4::bigint
             RETURNING usuario_id, metadata->>$5",
            &[&lead, &CHECKED_AT, &now, &REFRESH_SECS, &TAG],
        )
        .await
        .map_err(StoreError::from)?;
    let Some(claimed) = claimed else {
        return Ok("fresh");
    };
    let (usuario_id, old_tag): (Uuid, Option<String>) = (claimed.get(0), claimed.get(1));
    let found = bridge::call(
        page,
        "profilePic",
        &[json!(digits), json!(MAX_PICTURE_BYTES)],
        LOOKUP_TIMEOUT,
    )
    .await;
    let found = match found {
        Ok(v) => v,
        Err(e) => {
            // Given back, so the next message looks again.
            client
                .execute(
                    "UPDATE leads SET metadata = metadata - $2::text
                     WHERE id = $1 AND (metadata->>$2)::bigint = $3",
                    &[&lead, &CHECKED_AT, &now],
                )
                .await
                .map_err(StoreError::from)?;
            return Err(e);
        }
    };
    if found.is_null() {
        return Ok("none"); // no picture, or hidden from this account
    }
    let tag = found.get("tag").and_then(Value::as_str).map(String::from);
    if tag.is_some() && tag == old_tag {
        return Ok("unchanged"); // the picture we keep is the current one
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(found.get("b64").and_then(Value::as_str).unwrap_or(""))
        .map_err(|_| LiteError::Invalid("picture bytes".into()))?;
    let mime = found
        .get("mimetype")
        .and_then(Value::as_str)
        .filter(|m| m.starts_with("image/"))
        .unwrap_or("image/jpeg");
    let media = media_store::store(
        &client,
        &shared.sealer,
        &shared.settings.data_dir,
        NewMedia {
            usuario_id,
            connection_id: Some(connection_id),
            direction: "inbound",
            mime_type: mime,
            filename: None,
            provider_id: None,
            message_id: None,
        },
        &bytes,
    )
    .await
    .map_err(|e| LiteError::Invalid(e.to_string()))?;
    set_picture(shared, usuario_id, lead, media.id, tag.as_deref()).await?;
    Ok("stored")
}

/// Points the lead at the stored picture and says so with a `lead.updated` event.
async fn set_picture(
    shared: &Shared,
    usuario_id: Uuid,
    lead: Uuid,
    media_id: Uuid,
    tag: Option<&str>,
) -> Result<(), LiteError> {
    let url = format!("/v1/media/{media_id}");
    let mut client = shared.pool.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    let profile: Value = tx
        .query_one(
            "UPDATE leads SET metadata = jsonb_set(metadata, '{profile}',
                     COALESCE(metadata->'profile', '{}'::jsonb) || jsonb_build_object('picture_url', $2::text))
                 || jsonb_build_object($3::text, $4::uuid, $5::text, $6::text),
                 updated_at = now()
             WHERE id = $1 RETURNING metadata->'profile'",
            &[&lead, &url, &MEDIA_ID, &media_id, &TAG, &tag],
        )
        .await
        .map_err(StoreError::from)?
        .get(0);
    let data = json!({
        "lead_id": lead,
        "reason": "profile_picture",
        "changes": {"profile": profile, MEDIA_ID: media_id},
    });
    events::append(&tx, &shared.sealer, usuario_id, "lead.updated", &data).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}
