//! Reading and steering queued messages for the API: one message with its queue state, the
//! dead-letter listing (failed and uncertain messages), cancel (only before an attempt has
//! started) and re-queue (of a dead letter). Scoped to the user; each change writes its
//! `message.status` event in the same transaction.

use super::CHANNEL;
use crate::seal::Sealer;
use crate::store::StoreError;
use crate::store::events;
use deadpool_postgres::GenericClient;
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

/// A message as `GET /v1/messages/{id}` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub connection_id: Option<Uuid>,
    pub direction: Option<String>,
    pub to: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub tipo: String,
    pub estado: Option<String>,
    pub external_id: Option<String>,
    pub error: Option<String>,
    /// The outbox row's state (pending, sending, sent, failed, cancelled, uncertain).
    pub queue_state: Option<String>,
    pub priority: Option<&'static str>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub send_at: Option<OffsetDateTime>,
    pub attempts: i32,
    pub max_attempts: Option<i32>,
    pub last_error: Option<String>,
    pub last_code: Option<i64>,
    /// The provider may have accepted it but its answer was lost: not resent automatically.
    pub uncertain: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub sent_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
}

const SELECT: &str = "SELECT m.id, m.conversacion_id, m.connection_id, m.direccion, COALESCE(o.recipient, m.remitente) AS to_,
        o.kind, m.tipo, m.estado, m.external_id, m.error, o.state, o.priority, o.due_at, o.attempts,
        o.max_attempts, o.last_error, o.last_code, o.sent_at, m.created_at, GREATEST(m.updated_at, o.updated_at) AS updated";
const FROM: &str = " FROM mensajes_conversacion m LEFT JOIN outbox o ON o.message_id = m.id";

fn view(r: &Row) -> MessageView {
    let state: Option<String> = r.get(10);
    MessageView {
        id: r.get(0),
        conversation_id: r.get(1),
        connection_id: r.get(2),
        direction: r.get(3),
        to: r.get(4),
        kind: r.get(5),
        tipo: r.get(6),
        estado: r.get(7),
        external_id: r.get(8),
        error: r.get(9),
        uncertain: state.as_deref() == Some("uncertain"),
        queue_state: state,
        priority: r.get::<_, Option<i16>>(11).map(super::priority_name),
        send_at: r.get(12),
        attempts: r.get::<_, Option<i32>>(13).unwrap_or(0),
        max_attempts: r.get(14),
        last_error: r.get(15),
        last_code: r.get(16),
        sent_at: r.get(17),
        created_at: r.get(18),
        updated_at: r.get(19),
    }
}

/// One message of the user.
pub async fn get(
    client: &impl GenericClient,
    usuario_id: Uuid,
    id: Uuid,
) -> Result<Option<MessageView>, StoreError> {
    Ok(client
        .query_opt(
            &format!("{SELECT}{FROM} WHERE m.id = $1 AND m.usuario_id = $2"),
            &[&id, &usuario_id],
        )
        .await?
        .as_ref()
        .map(view))
}

/// Messages of the user among `ids` (one statement), by id.
pub async fn get_many(
    client: &impl GenericClient,
    usuario_id: Uuid,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, MessageView>, StoreError> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    Ok(client
        .query(
            &format!("{SELECT}{FROM} WHERE m.id = ANY($1) AND m.usuario_id = $2"),
            &[&ids, &usuario_id],
        )
        .await?
        .iter()
        .map(view)
        .map(|v| (v.id, v))
        .collect())
}

/// Dead letters of the user, most recently failed first: `(updated_at, id)` keyset pages.
pub async fn dead_letters(
    client: &impl GenericClient,
    usuario_id: Uuid,
    connection_id: Option<Uuid>,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> Result<Vec<(MessageView, OffsetDateTime)>, StoreError> {
    let (at, id) = after
        .map(|(a, i)| (Some(a), Some(i)))
        .unwrap_or((None, None));
    let rows = client
        .query(
            &format!(
                "{SELECT}, o.updated_at AS page_at FROM mensajes_conversacion m JOIN outbox o ON o.message_id = m.id
                 WHERE o.usuario_id = $1 AND o.state IN ('failed', 'uncertain')
                   AND ($2::uuid IS NULL OR o.connection_id = $2)
                   AND ($3::timestamptz IS NULL OR (o.updated_at, o.message_id) < ($3, $4))
                 ORDER BY o.updated_at DESC, o.message_id DESC LIMIT $5"
            ),
            &[&usuario_id, &connection_id, &at, &id, &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| (view(r), r.get("page_at"))).collect())
}

/// Why a message cannot be cancelled or re-queued.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChangeError {
    #[error("message not found")]
    NotFound,
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Store(String),
}

impl From<StoreError> for ChangeError {
    fn from(e: StoreError) -> Self {
        ChangeError::Store(e.to_string())
    }
}

async fn refusal(
    client: &impl GenericClient,
    usuario_id: Uuid,
    id: Uuid,
    what: &str,
) -> Result<ChangeError, StoreError> {
    let row = client
        .query_opt(
            "SELECT o.state, o.inflight_at IS NOT NULL FROM mensajes_conversacion m
             LEFT JOIN outbox o ON o.message_id = m.id WHERE m.id = $1 AND m.usuario_id = $2",
            &[&id, &usuario_id],
        )
        .await?;
    Ok(match row {
        None => ChangeError::NotFound,
        Some(r) => {
            let state: Option<String> = r.get(0);
            let inflight: Option<bool> = r.get(1);
            let why = match (state.as_deref(), inflight) {
                (None, _) => "it is not an outbound message".to_string(),
                (Some("sending"), Some(true)) => "it is being sent right now".to_string(),
                (Some(s), _) => format!("it is {s}"),
            };
            ChangeError::Refused(format!("the message cannot be {what}: {why}"))
        }
    })
}

/// Cancels a message not yet attempted (pending, scheduled, claimed but not in flight) or a
/// dead letter. A message in flight or sent is refused.
pub async fn cancel(
    client: &mut deadpool_postgres::Client,
    sealer: &Sealer,
    usuario_id: Uuid,
    id: Uuid,
) -> Result<MessageView, ChangeError> {
    let tx = client.transaction().await.map_err(StoreError::from)?;
    change_outbox(
        &tx,
        usuario_id,
        id,
        "UPDATE outbox SET state = 'cancelled', lease_owner = NULL, updated_at = now()
             WHERE message_id = $1 AND usuario_id = $2
               AND (state IN ('pending', 'failed', 'uncertain') OR (state = 'sending' AND inflight_at IS NULL))
             RETURNING connection_id",
        "cancelled",
    )
    .await?;
    let m = tx
        .query_one(
            "UPDATE mensajes_conversacion SET estado = 'cancelled', updated_at = now() WHERE id = $1
             RETURNING conversacion_id, connection_id",
            &[&id],
        )
        .await
        .map_err(StoreError::from)?;
    status_changed(
        tx,
        sealer,
        usuario_id,
        id,
        json!({"message_id": id, "conversation_id": m.get::<_, Uuid>(0), "connection_id": m.get::<_, Option<Uuid>>(1), "status": "cancelled"}),
    )
    .await
}

/// Puts a dead letter (failed or uncertain) back in the queue with fresh attempts. For an
/// uncertain message this is the person's decision to risk a duplicate.
pub async fn requeue(
    client: &mut deadpool_postgres::Client,
    sealer: &Sealer,
    usuario_id: Uuid,
    id: Uuid,
) -> Result<MessageView, ChangeError> {
    let tx = client.transaction().await.map_err(StoreError::from)?;
    let row = change_outbox(
        &tx,
        usuario_id,
        id,
        "UPDATE outbox SET state = 'pending', attempts = 0, due_at = now(), inflight_at = NULL,
                 lease_owner = NULL, updated_at = now()
             WHERE message_id = $1 AND usuario_id = $2 AND state IN ('failed', 'uncertain')
             RETURNING connection_id",
        "re-queued",
    )
    .await?;
    let connection_id: Uuid = row.get(0);
    let m = tx
        .query_one(
            "UPDATE mensajes_conversacion SET estado = 'queued', error = NULL, updated_at = now() WHERE id = $1
             RETURNING conversacion_id",
            &[&id],
        )
        .await
        .map_err(StoreError::from)?;
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&CHANNEL, &connection_id.to_string()],
    )
    .await
    .map_err(StoreError::from)?;
    status_changed(
        tx,
        sealer,
        usuario_id,
        id,
        json!({"message_id": id, "conversation_id": m.get::<_, Uuid>(0), "connection_id": connection_id, "status": "queued", "requeued": true}),
    )
    .await
}

/// Runs `sql`, an `UPDATE outbox ... WHERE message_id = $1 AND usuario_id = $2 RETURNING ...`
/// of a manual change; when it matched no row, the refusal says why the message cannot be
/// `what`.
async fn change_outbox(
    tx: &deadpool_postgres::Transaction<'_>,
    usuario_id: Uuid,
    id: Uuid,
    sql: &str,
    what: &str,
) -> Result<Row, ChangeError> {
    let row = tx
        .query_opt(sql, &[&id, &usuario_id])
        .await
        .map_err(StoreError::from)?;
    match row {
        Some(row) => Ok(row),
        None => Err(refusal(tx, usuario_id, id, what).await?),
    }
}

/// Ends a manual change: the `message.status` event, then the message as it now is, committed
/// together.
async fn status_changed(
    tx: deadpool_postgres::Transaction<'_>,
    sealer: &Sealer,
    usuario_id: Uuid,
    id: Uuid,
    event: serde_json::Value,
) -> Result<MessageView, ChangeError> {
    events::append(&tx, sealer, usuario_id, "message.status", &event).await?;
    let v = get(&tx, usuario_id, id)
        .await?
        .ok_or(ChangeError::NotFound)?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(v)
}
