//! Erasure of one contact of a user (`DELETE /v1/contacts/{phone}`), in one transaction: its
//! messages (with their outbox rows, idempotency keys, waiting statuses and dead letters), its
//! conversations, its media rows, its consent history, the stream events that name it, its part
//! of the inbox's webhook bodies ([`super::inbox_scrub`]), and its leads: anonymised (name,
//! number, e-mail and metadata cleared; the row stays for the CRM's references) or deleted
//! (`?lead=delete`). One `contact.erased` event tells the CRM (ids only). The media files go
//! after the commit, except files other messages use too (one upload sent to many contacts):
//! those stay with the other messages, counted in `media_files_kept_shared`. Nothing is left that names the number, so a later message from it starts
//! a new lead and conversation.

use super::PrivacyError;
use super::contact::{self, Footprint};
use super::inbox_scrub::{self, InboxScrub};
use crate::media_store;
use crate::seal::{Purpose, Sealer};
use crate::store::StoreError;
use crate::store::events;
use deadpool_postgres::{GenericClient, Pool};
use serde_json::json;
use std::path::Path;
use uuid::Uuid;

/// What happens to the contact's leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadErasure {
    /// Personal fields cleared, the row kept.
    Anonymise,
    /// The rows deleted.
    Delete,
}

impl LeadErasure {
    /// `?lead=` of the API: `delete`, or `anonymise` (the default).
    pub fn parse(value: Option<&str>) -> Result<LeadErasure, PrivacyError> {
        match value {
            None | Some("anonymise") | Some("anonymize") => Ok(LeadErasure::Anonymise),
            Some("delete") => Ok(LeadErasure::Delete),
            Some(other) => Err(PrivacyError::Invalid(
                "invalid_lead_mode",
                format!("lead={other:?} must be delete or anonymise"),
            )),
        }
    }
}

/// What an erasure removed (counts only: the audit row keeps these).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Erased {
    pub leads: usize,
    pub lead: &'static str,
    pub conversations: u64,
    pub messages: u64,
    pub outbox_rows: u64,
    pub media_files: usize,
    /// Files the contact's messages named that other messages still use, kept.
    pub media_files_kept_shared: usize,
    pub events: u64,
    pub inbox_rows_rewritten: u64,
    pub inbox_rows_deleted: u64,
    pub consent_rows: u64,
    /// The erased leads' ids (the CRM's references to them).
    pub lead_ids: Vec<Uuid>,
}

/// Erases contact `raw` (any spelling of its number) of `usuario_id`.
pub async fn erase_contact(
    pool: &Pool,
    sealer: &Sealer,
    data_dir: &Path,
    usuario_id: Uuid,
    raw: &str,
    fallback_region: Option<&str>,
    mode: LeadErasure,
) -> Result<Erased, PrivacyError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let key = contact::key_of(&tx, usuario_id, raw, fallback_region).await?;
    let found = contact::footprint(&tx, sealer, usuario_id, key, fallback_region).await?;
    if found.is_empty() {
        return Err(PrivacyError::ContactNotFound);
    }
    let markers = found.markers();
    let paths = media_paths(&tx, &found.media).await?;
    let mut out = Erased {
        leads: found.leads.len(),
        lead: match mode {
            LeadErasure::Anonymise => "anonymised",
            LeadErasure::Delete => "deleted",
        },
        lead_ids: found.leads.clone(),
        media_files: paths.len(),
        media_files_kept_shared: found.shared_media.len(),
        ..Erased::default()
    };
    out.events = erase_events(&tx, sealer, usuario_id, &markers).await?;
    erase_rows(&tx, &found, &mut out).await?;
    let InboxScrub { rewritten, deleted } =
        inbox_scrub::scrub_rows(&tx, sealer, usuario_id, &markers).await?;
    (out.inbox_rows_rewritten, out.inbox_rows_deleted) = (rewritten, deleted);
    erase_leads(&tx, &found.leads, mode).await?;
    events::append(
        &tx,
        sealer,
        usuario_id,
        "contact.erased",
        &json!({"lead_ids": found.leads, "lead": out.lead}),
    )
    .await?;
    tx.commit().await?;
    remove_files(data_dir, &paths).await;
    metrics::counter!("sincro_privacy_erasures_total").increment(1);
    Ok(out)
}

/// The storage paths of media rows `ids`.
pub(crate) async fn media_paths(
    client: &impl GenericClient,
    ids: &[Uuid],
) -> Result<Vec<String>, StoreError> {
    Ok(client
        .query("SELECT storage_path FROM media WHERE id = ANY($1)", &[&ids])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Removes media files whose rows a committed transaction deleted; a file that cannot be
/// removed is logged (its row is gone, so nothing opens it through the daemon).
pub(crate) async fn remove_files(data_dir: &Path, paths: &[String]) {
    for path in paths {
        if let Err(e) = media_store::remove_file(data_dir, path).await {
            tracing::error!(error = %e, "could not remove an erased media file");
        }
    }
}

/// Deletes the user's stream events that name the contact (opened one page at a time).
async fn erase_events(
    tx: &impl GenericClient,
    sealer: &Sealer,
    usuario_id: Uuid,
    markers: &[String],
) -> Result<u64, StoreError> {
    const PAGE: i64 = 1000;
    let mut after = 0i64;
    let mut doomed: Vec<i64> = Vec::new();
    loop {
        let rows = tx
            .query(
                "SELECT seq, payload FROM events WHERE usuario_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                &[&usuario_id, &after, &PAGE],
            )
            .await?;
        for row in &rows {
            let (seq, sealed): (i64, String) = (row.get(0), row.get(1));
            after = seq;
            let names = match sealer.open(Purpose::Event, &sealed) {
                Ok(plain) => {
                    let text = String::from_utf8_lossy(&plain);
                    markers.iter().any(|m| text.contains(m.as_str()))
                }
                Err(_) => false,
            };
            if names {
                doomed.push(seq);
            }
        }
        if (rows.len() as i64) < PAGE {
            break;
        }
    }
    Ok(tx
        .execute(
            "DELETE FROM events WHERE usuario_id = $1 AND seq = ANY($2)",
            &[&usuario_id, &doomed],
        )
        .await?)
}

/// Deletes the contact's messages and what hangs off them, its conversations, media rows and
/// consent history.
async fn erase_rows(
    tx: &impl GenericClient,
    found: &Footprint,
    out: &mut Erased,
) -> Result<(), StoreError> {
    let u = &found.usuario_id;
    let msgs = &found.messages;
    tx.execute(
        "DELETE FROM pending_statuses p USING mensajes_conversacion m
         WHERE m.id = ANY($1) AND p.connection_id = m.connection_id AND p.external_id = m.external_id",
        &[msgs],
    )
    .await?;
    tx.execute(
        "DELETE FROM inbound_dead_letters WHERE usuario_id = $1 AND external_id = ANY($2)",
        &[u, &found.external_ids],
    )
    .await?;
    out.outbox_rows = tx
        .execute("DELETE FROM outbox WHERE message_id = ANY($1)", &[msgs])
        .await?;
    tx.execute(
        "DELETE FROM media WHERE usuario_id = $1 AND id = ANY($2)",
        &[u, &found.media],
    )
    .await?;
    out.messages = tx
        .execute(
            "DELETE FROM mensajes_conversacion WHERE id = ANY($1)",
            &[msgs],
        )
        .await?;
    out.conversations = tx
        .execute(
            "DELETE FROM conversaciones WHERE usuario_id = $1 AND id = ANY($2)",
            &[u, &found.conversations],
        )
        .await?;
    out.consent_rows = tx
        .execute(
            "DELETE FROM contact_consent WHERE usuario_id = $1 AND contact = $2",
            &[u, &found.key.key],
        )
        .await?;
    Ok(())
}

async fn erase_leads(
    tx: &impl GenericClient,
    leads: &[Uuid],
    mode: LeadErasure,
) -> Result<(), StoreError> {
    let sql = match mode {
        LeadErasure::Delete => "DELETE FROM leads WHERE id = ANY($1)",
        LeadErasure::Anonymise => {
            "UPDATE leads SET nombre = NULL, telefono = NULL, email = NULL,
                 metadata = jsonb_build_object('erased_at', now()), updated_at = now()
             WHERE id = ANY($1)"
        }
    };
    tx.execute(sql, &[&leads]).await?;
    Ok(())
}
