//! The per-user event log behind the WebSocket stream (docs/ARCHITECTURE.md §4, Stream). `seq` is gapless
//! per user: a counter row per user is bumped in the same transaction that writes the event,
//! so events commit in seq order per user and a rolled-back transaction leaves no hole. The
//! payload is sealed (it may quote message content). Each append also `pg_notify`s
//! [`CHANNEL`] inside the transaction, so every node's Hub hears of it exactly at commit.

use super::StoreError;
use crate::seal::{Purpose, Sealer};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// The LISTEN/NOTIFY channel; the payload is `<usuario_id>:<seq>`.
pub const CHANNEL: &str = "sincro_events";

/// One event as the stream sends it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub seq: i64,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub data: Value,
    #[serde(skip)]
    pub usuario_id: Uuid,
    /// Its connection had notifications off (`settings.notifications_enabled = false`): only
    /// admin keys receive it on the stream.
    #[serde(skip)]
    pub muted: bool,
}

/// Whether an event about `connection` is muted, as SQL over a `uuid` parameter or column.
fn muted_sql(connection: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM configuracion_mensajeria_usuario k WHERE k.id = {connection}
             AND k.configuracion->'settings'->'notifications_enabled' = 'false'::jsonb)"
    )
}

/// The connection an event is about (`data.connection_id`), if any.
fn connection_of(data: &Value) -> Option<Uuid> {
    data.get("connection_id")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

/// Appends one event for `usuario_id` inside the caller's transaction.
pub async fn append(
    tx: &impl GenericClient,
    sealer: &Sealer,
    usuario_id: Uuid,
    kind: &str,
    data: &Value,
) -> Result<i64, StoreError> {
    let seq: i64 = tx
        .query_one(
            "INSERT INTO event_counters (usuario_id, last_seq) VALUES ($1, 1)
             ON CONFLICT (usuario_id) DO UPDATE SET last_seq = event_counters.last_seq + 1
             RETURNING last_seq",
            &[&usuario_id],
        )
        .await?
        .get(0);
    let payload = sealer.seal(Purpose::Event, data.to_string().as_bytes());
    tx.execute(
        &format!(
            "INSERT INTO events (usuario_id, seq, type, payload, muted)
             VALUES ($1, $2, $3, $4, {})",
            muted_sql("$5")
        ),
        &[&usuario_id, &seq, &kind, &payload, &connection_of(data)],
    )
    .await?;
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&CHANNEL, &format!("{usuario_id}:{seq}")],
    )
    .await?;
    Ok(seq)
}

/// Parses a NOTIFY payload back into `(usuario_id, seq)`.
pub fn parse_notification(payload: &str) -> Option<(Uuid, i64)> {
    let (user, seq) = payload.split_once(':')?;
    Some((user.parse().ok()?, seq.parse().ok()?))
}

/// Events of `usuario_id` with `seq > after`, oldest first, at most `limit`.
pub async fn read_after(
    client: &impl GenericClient,
    sealer: &Sealer,
    usuario_id: Uuid,
    after: i64,
    limit: i64,
) -> Result<Vec<Event>, StoreError> {
    // Prepared once per pooled connection: every stream client's catch-up and every webhook
    // lane's round runs it.
    let read = client
        .prepare_cached(
            "SELECT seq, type, created_at, payload, muted FROM events
             WHERE usuario_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .await?;
    let rows = client.query(&read, &[&usuario_id, &after, &limit]).await?;
    rows.iter()
        .map(|row| {
            let sealed: String = row.get(3);
            let data = sealer
                .open(Purpose::Event, &sealed)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .unwrap_or_else(|| serde_json::json!({"unreadable": true}));
            Ok(Event {
                seq: row.get(0),
                kind: row.get(1),
                at: row.get(2),
                data,
                usuario_id,
                muted: row.get(4),
            })
        })
        .collect()
}

/// The newest seq of `usuario_id` (0 when it has none).
pub async fn last_seq(client: &impl GenericClient, usuario_id: Uuid) -> Result<i64, StoreError> {
    Ok(client
        .query_opt(
            "SELECT last_seq FROM event_counters WHERE usuario_id = $1",
            &[&usuario_id],
        )
        .await?
        .map(|r| r.get(0))
        .unwrap_or(0))
}

/// The oldest seq still stored for `usuario_id`, if any (a `since` below it lost events to
/// retention).
pub async fn first_seq(
    client: &impl GenericClient,
    usuario_id: Uuid,
) -> Result<Option<i64>, StoreError> {
    Ok(client
        .query_one(
            "SELECT min(seq) FROM events WHERE usuario_id = $1",
            &[&usuario_id],
        )
        .await?
        .get(0))
}

/// The oldest seq still stored for `usuario_id`, or the next one to come when none is: where
/// a replay can start. Both reads share one snapshot: read apart, an append between them
/// would look like a purged history.
pub async fn first_available(
    client: &mut deadpool_postgres::Client,
    usuario_id: Uuid,
) -> Result<i64, StoreError> {
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let first = first_seq(&tx, usuario_id).await?;
    let next = last_seq(&tx, usuario_id).await? + 1;
    tx.commit().await?;
    Ok(first.unwrap_or(next))
}

/// Deletes events older than `hours`; returns how many.
pub async fn purge_older_than(client: &impl GenericClient, hours: u32) -> Result<u64, StoreError> {
    Ok(client
        .execute(
            "DELETE FROM events WHERE created_at < now() - make_interval(hours => $1)",
            &[&(hours as i32)],
        )
        .await?)
}

/// One event to append with [`append_many`].
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub usuario_id: Uuid,
    pub kind: &'static str,
    pub data: Value,
}

impl NewEvent {
    /// `message.status` from a message row returned as `id, usuario_id, conversacion_id,
    /// connection_id, external_id, estado, error`.
    pub fn message_status(row: &tokio_postgres::Row) -> NewEvent {
        NewEvent {
            usuario_id: row.get(1),
            kind: "message.status",
            data: serde_json::json!({
                "message_id": row.get::<_, Uuid>(0),
                "conversation_id": row.get::<_, Uuid>(2),
                "connection_id": row.get::<_, Option<Uuid>>(3),
                "external_id": row.get::<_, Option<String>>(4),
                "status": row.get::<_, String>(5),
                "error": row.get::<_, Option<String>>(6),
            }),
        }
    }
}

/// Appends many events in the caller's transaction with three statements, whatever their
/// number: one counter bump per user (by that user's count), one multi-row insert, one
/// notification per user carrying its newest seq. Returns the seq of each event, in order.
pub async fn append_many(
    tx: &impl GenericClient,
    sealer: &Sealer,
    events: &[NewEvent],
) -> Result<Vec<i64>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let mut counts: Vec<(Uuid, i64)> = Vec::new();
    for e in events {
        match counts.iter_mut().find(|(u, _)| *u == e.usuario_id) {
            Some((_, n)) => *n += 1,
            None => counts.push((e.usuario_id, 1)),
        }
    }
    // Sealed before the counter rows are taken: from that statement on, every other
    // transaction appending for these users waits for this one's commit.
    let payloads: Vec<String> = events
        .iter()
        .map(|e| sealer.seal(Purpose::Event, e.data.to_string().as_bytes()))
        .collect();
    let connections: Vec<Option<Uuid>> = events.iter().map(|e| connection_of(&e.data)).collect();
    // Lock counter rows in a stable order so concurrent batches cannot deadlock.
    counts.sort_by_key(|(u, _)| *u);
    let users: Vec<Uuid> = counts.iter().map(|c| c.0).collect();
    let ns: Vec<i64> = counts.iter().map(|c| c.1).collect();
    let count = tx
        .prepare_cached(
            "INSERT INTO event_counters (usuario_id, last_seq)
             SELECT u, n FROM unnest($1::uuid[], $2::bigint[]) AS x(u, n) ORDER BY u
             ON CONFLICT (usuario_id) DO UPDATE SET last_seq = event_counters.last_seq + EXCLUDED.last_seq
             RETURNING usuario_id, last_seq",
        )
        .await?;
    let rows = tx.query(&count, &[&users, &ns]).await?;
    let mut next: std::collections::HashMap<Uuid, i64> = std::collections::HashMap::new();
    for row in &rows {
        let (u, last): (Uuid, i64) = (row.get(0), row.get(1));
        let n = counts.iter().find(|c| c.0 == u).map(|c| c.1).unwrap_or(0);
        next.insert(u, last - n + 1);
    }
    let mut seqs = Vec::with_capacity(events.len());
    let mut eu = Vec::with_capacity(events.len());
    let mut kinds = Vec::with_capacity(events.len());
    for e in events {
        let slot = next.get_mut(&e.usuario_id).expect("counted user");
        seqs.push(*slot);
        *slot += 1;
        eu.push(e.usuario_id);
        kinds.push(e.kind);
    }
    tx.execute(
        &tx.prepare_cached(&format!(
            "INSERT INTO events (usuario_id, seq, type, payload, muted)
             SELECT u, s, t, p, {} FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[],
                 $5::uuid[]) AS x(u, s, t, p, c)",
            muted_sql("x.c")
        ))
        .await?,
        &[&eu, &seqs, &kinds, &payloads, &connections],
    )
    .await?;
    let notes: Vec<String> = next
        .iter()
        .map(|(u, after_last)| format!("{u}:{}", after_last - 1))
        .collect();
    tx.execute(
        &tx.prepare_cached("SELECT pg_notify($1, n) FROM unnest($2::text[]) AS n")
            .await?,
        &[&CHANNEL, &notes],
    )
    .await?;
    Ok(seqs)
}
