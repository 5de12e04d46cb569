//! Reading a user's conversations (`conversaciones`) and their messages
//! (`mensajes_conversacion`) for the API: newest first in `(created_at, id)` keyset pages,
//! message bodies and payloads opened. Ingest and the outbound queue write these tables; this
//! file only reads them. Scoped to the user: another user's conversation is not found.

use super::StoreError;
use crate::seal::{Purpose, Sealer};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// A `(created_at, id)` page bound: rows strictly older are read.
pub type After = Option<(OffsetDateTime, Uuid)>;

/// One conversation as the API shows it.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub id: Uuid,
    pub lead_id: Option<Uuid>,
    pub connection_id: Option<Uuid>,
    pub tipo: Option<String>,
    pub remitente: Option<String>,
    pub servicio_origen: String,
    pub metadata: Value,
    pub last_inbound_at: Option<OffsetDateTime>,
    pub last_message_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// One message of a conversation, its body and payload opened.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: Uuid,
    pub tipo: String,
    pub contenido: Option<String>,
    /// The structured payload (location, contacts, interactive...), when the message has one.
    pub payload: Option<Value>,
    pub remitente: Option<String>,
    pub direccion: Option<String>,
    pub external_id: Option<String>,
    pub estado: Option<String>,
    pub error: Option<String>,
    /// As stored, without the sealed payload.
    pub metadata: Value,
    pub created_at: OffsetDateTime,
    pub updated_at: Option<OffsetDateTime>,
}

/// Why a conversation could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    #[error("conversation not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<tokio_postgres::Error> for ConversationError {
    fn from(e: tokio_postgres::Error) -> Self {
        ConversationError::Store(e.into())
    }
}

/// Up to `limit` conversations of the user older than `after`, newest first, optionally only
/// those of one connection or one lead.
pub async fn list(
    client: &impl GenericClient,
    usuario_id: Uuid,
    connection_id: Option<Uuid>,
    lead_id: Option<Uuid>,
    after: After,
    limit: i64,
) -> Result<Vec<Conversation>, StoreError> {
    let (after_at, after_id) = after.unzip();
    let rows = client
        .query(
            "SELECT id, lead_id, connection_id, tipo, remitente, servicio_origen, metadata,
                    last_inbound_at, last_message_at, created_at, updated_at
             FROM conversaciones
             WHERE usuario_id = $1
               AND ($2::uuid IS NULL OR connection_id = $2)
               AND ($3::uuid IS NULL OR lead_id = $3)
               AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5))
             ORDER BY created_at DESC, id DESC
             LIMIT $6",
            &[
                &usuario_id,
                &connection_id,
                &lead_id,
                &after_at,
                &after_id,
                &limit,
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Conversation {
            id: r.get("id"),
            lead_id: r.get("lead_id"),
            connection_id: r.get("connection_id"),
            tipo: r.get("tipo"),
            remitente: r.get("remitente"),
            servicio_origen: r.get("servicio_origen"),
            metadata: r.get("metadata"),
            last_inbound_at: r.get("last_inbound_at"),
            last_message_at: r.get("last_message_at"),
            created_at: r.get("created_at"),
            updated_at: r.get("updated_at"),
        })
        .collect())
}

/// Up to `limit` messages of the user's conversation older than `after`, newest first.
pub async fn messages(
    client: &impl GenericClient,
    sealer: &Sealer,
    usuario_id: Uuid,
    conversation: Uuid,
    after: After,
    limit: i64,
) -> Result<Vec<Message>, ConversationError> {
    client
        .query_opt(
            "SELECT 1 FROM conversaciones WHERE id = $1 AND usuario_id = $2",
            &[&conversation, &usuario_id],
        )
        .await?
        .ok_or(ConversationError::NotFound)?;
    let (after_at, after_id) = after.unzip();
    let rows = client
        .query(
            "SELECT id, tipo, contenido, remitente, direccion, external_id, estado, error, metadata,
                    created_at, updated_at
             FROM mensajes_conversacion
             WHERE conversacion_id = $1
               AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
             ORDER BY created_at DESC, id DESC
             LIMIT $4",
            &[&conversation, &after_at, &after_id, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let sealed: Option<String> = r.get("contenido");
            let mut metadata: Value = r.get("metadata");
            let payload = metadata
                .as_object_mut()
                .and_then(|m| m.remove("payload_sealed"))
                .and_then(|v| v.as_str().map(|s| open_or_mark(sealer, s)))
                .map(|text| serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)));
            Message {
                id: r.get("id"),
                tipo: r.get("tipo"),
                contenido: sealed.map(|s| open_or_mark(sealer, &s)),
                payload,
                remitente: r.get("remitente"),
                direccion: r.get("direccion"),
                external_id: r.get("external_id"),
                estado: r.get("estado"),
                error: r.get("error"),
                metadata,
                created_at: r.get("created_at"),
                updated_at: r.get("updated_at"),
            }
        })
        .collect())
}

/// Opens a sealed body; a value this daemon cannot open (foreign key, CRM plaintext) is
/// returned as stored only when it was never sealed, else marked unreadable.
pub fn open_or_mark(sealer: &Sealer, value: &str) -> String {
    if !Sealer::looks_sealed(value) {
        return value.to_string();
    }
    sealer
        .open_str(Purpose::MessageBody, value)
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "a stored message body does not open");
            "[unreadable]".to_string()
        })
}
