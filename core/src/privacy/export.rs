//! The export of one contact of a user (`GET /v1/contacts/{phone}/export`, a data subject's
//! access request): a zip with `contact.json` (its leads, every lead merged into them, its
//! conversations with their messages, bodies and requests opened, each message's status, its
//! consent history, its media's rows) and `media/<id>`, each file opened from the sealed media
//! store. [`prepare`] reads the rows (and answers "not found" before anything is sent);
//! [`stream`] writes the archive through a bounded channel, one media file in memory at a time.

use super::PrivacyError;
use super::contact::{self, Footprint};
use super::zip::ZipStream;
use crate::media_store::{self, MediaRow};
use crate::seal::{Purpose, Sealer};
use crate::store::conversations::open_or_mark;
use bytes::Bytes;
use deadpool_postgres::{GenericClient, Pool};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Chunks buffered between the archive's writer and the HTTP body: the writer waits for a
/// slow client instead of reading ahead.
const CHANNEL_CHUNKS: usize = 4;

/// An export ready to stream.
pub struct Export {
    pub document: Value,
    pub media: Vec<MediaRow>,
}

fn at(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Reads everything of contact `raw` (any spelling of its number) of `usuario_id`.
pub async fn prepare(
    pool: &Pool,
    sealer: &Sealer,
    usuario_id: Uuid,
    raw: &str,
    fallback_region: Option<&str>,
) -> Result<Export, PrivacyError> {
    let client = pool.get().await?;
    let key = contact::key_of(&client, usuario_id, raw, fallback_region).await?;
    let found = contact::footprint(&client, sealer, usuario_id, key, fallback_region).await?;
    if found.is_empty() {
        return Err(PrivacyError::ContactNotFound);
    }
    let mut media = Vec::new();
    for id in found.media.iter().chain(&found.shared_media) {
        if let Some(row) = media_store::get(&client, usuario_id, *id)
            .await
            .map_err(|e| PrivacyError::Files(e.to_string()))?
        {
            media.push(row);
        }
    }
    let document = json!({
        "format": "sincro-whatsapp contact export 1",
        "exported_at": at(OffsetDateTime::now_utc()),
        "contact": found.key.key,
        "leads": leads(&client, &found).await?,
        "conversations": conversations(&client, sealer, &found).await?,
        "consent": super::consent::history(&client, usuario_id, &found.key.key).await?,
        "media": media.iter().map(|m| json!({
            "id": m.id,
            "message_id": m.message_id,
            "direction": m.direction,
            "mime_type": m.mime_type,
            "filename": m.filename,
            "size_bytes": m.size_bytes,
            "sha256": m.sha256,
            "created_at": at(m.created_at),
            "file": format!("media/{}", m.id),
        })).collect::<Vec<_>>(),
    });
    Ok(Export { document, media })
}

async fn leads(client: &impl GenericClient, found: &Footprint) -> Result<Vec<Value>, PrivacyError> {
    let rows = client
        .query(
            "SELECT id, nombre, telefono, email, origen, metadata, merged_into, created_at, updated_at
             FROM leads WHERE id = ANY($1) ORDER BY created_at, id",
            &[&found.leads],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            json!({
                "id": r.get::<_, Uuid>(0),
                "nombre": r.get::<_, Option<String>>(1),
                "telefono": r.get::<_, Option<String>>(2),
                "email": r.get::<_, Option<String>>(3),
                "origen": r.get::<_, Option<String>>(4),
                "metadata": r.get::<_, Value>(5),
                "merged_into": r.get::<_, Option<Uuid>>(6),
                "created_at": at(r.get(7)),
                "updated_at": at(r.get(8)),
            })
        })
        .collect())
}

async fn conversations(
    client: &impl GenericClient,
    sealer: &Sealer,
    found: &Footprint,
) -> Result<Vec<Value>, PrivacyError> {
    let convs = client
        .query(
            "SELECT id, connection_id, lead_id, tipo, remitente, created_at, last_message_at, last_inbound_at
             FROM conversaciones WHERE id = ANY($1) ORDER BY created_at, id",
            &[&found.conversations],
        )
        .await?;
    let msgs = client
        .query(
            "SELECT id, conversacion_id, direccion, tipo, estado, error, external_id, contenido,
                    metadata, created_at, updated_at
             FROM mensajes_conversacion WHERE conversacion_id = ANY($1) ORDER BY created_at, id",
            &[&found.conversations],
        )
        .await?;
    let message = |r: &tokio_postgres::Row| {
        let meta: Value = r.get(8);
        let payload = meta
            .get("payload_sealed")
            .and_then(Value::as_str)
            .and_then(|s| sealer.open(Purpose::MessageBody, s).ok())
            .and_then(|p| serde_json::from_slice::<Value>(&p).ok());
        json!({
            "id": r.get::<_, Uuid>(0),
            "direction": r.get::<_, Option<String>>(2),
            "type": r.get::<_, String>(3),
            "status": r.get::<_, Option<String>>(4),
            "error": r.get::<_, Option<String>>(5),
            "external_id": r.get::<_, Option<String>>(6),
            "text": r.get::<_, Option<String>>(7).map(|c| open_or_mark(sealer, &c)),
            "payload": payload,
            "details": meta.get("details"),
            "media_id": meta.get("media_id"),
            "created_at": at(r.get(9)),
            "updated_at": r.get::<_, Option<OffsetDateTime>>(10).map(at),
        })
    };
    Ok(convs
        .iter()
        .map(|c| {
            let id: Uuid = c.get(0);
            json!({
                "id": id,
                "connection_id": c.get::<_, Option<Uuid>>(1),
                "lead_id": c.get::<_, Option<Uuid>>(2),
                "type": c.get::<_, Option<String>>(3),
                "contact": c.get::<_, Option<String>>(4),
                "created_at": at(c.get(5)),
                "last_message_at": c.get::<_, Option<OffsetDateTime>>(6).map(at),
                "last_inbound_at": c.get::<_, Option<OffsetDateTime>>(7).map(at),
                "messages": msgs
                    .iter()
                    .filter(|m| m.get::<_, Uuid>(1) == id)
                    .map(message)
                    .collect::<Vec<_>>(),
            })
        })
        .collect())
}

/// Writes `export` as a zip into a channel and returns its receiving end; the archive's
/// chunks arrive as the client takes them. A media file that cannot be opened ends the stream
/// early (logged): the client sees a truncated archive, never a file's ciphertext.
pub fn stream(sealer: Arc<Sealer>, data_dir: PathBuf, export: Export) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    tokio::spawn(async move {
        let mut zip = ZipStream::new(tx);
        let written = async {
            let doc = serde_json::to_vec_pretty(&export.document).expect("JSON serializes");
            zip.add("contact.json", doc)
                .await
                .map_err(|e| e.to_string())?;
            for row in &export.media {
                let data = media_store::read(&sealer, &data_dir, row)
                    .await
                    .map_err(|e| format!("media {}: {e}", row.id))?;
                zip.add(&format!("media/{}", row.id), data)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            zip.finish().await.map_err(|e| e.to_string())
        }
        .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "a contact export ended early");
        }
    });
    rx
}
