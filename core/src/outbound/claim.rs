//! Claiming due rows: one connection's pending rows whose time has come, by priority then age,
//! `FOR UPDATE SKIP LOCKED` so several Dispatchers (nodes) never take the same row, moved to
//! `sending` under this incarnation's lease in the same statement.

use crate::store::StoreError;
use deadpool_postgres::GenericClient;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// One claimed outbox row.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub message_id: Uuid,
    pub usuario_id: Uuid,
    pub connection_id: Uuid,
    pub recipient: String,
    /// Sealed request body.
    pub payload: String,
    pub priority: i16,
    pub due_at: OffsetDateTime,
    /// Attempts already made before this claim.
    pub attempts: i32,
    pub max_attempts: i32,
}

impl Claimed {
    /// Queue order: priority, then age.
    pub fn order_key(&self) -> (i16, OffsetDateTime, Uuid) {
        (self.priority, self.due_at, self.message_id)
    }
}

/// Claims up to `limit` due rows of `connection_id` for `owner`, in queue order; none while
/// `owner`'s lease ([`super::lease::renew`]) is not live.
pub async fn claim(
    client: &impl GenericClient,
    connection_id: Uuid,
    owner: &str,
    limit: usize,
) -> Result<Vec<Claimed>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "UPDATE outbox o SET state = 'sending', lease_owner = $2, updated_at = now()
             FROM (SELECT message_id FROM outbox
                   WHERE connection_id = $1 AND state = 'pending' AND due_at <= now()
                     AND EXISTS (SELECT 1 FROM outbox_owners WHERE owner = $2 AND until > now())
                   ORDER BY priority, due_at, message_id
                   LIMIT $3
                   FOR UPDATE SKIP LOCKED) c
             WHERE o.message_id = c.message_id
             RETURNING o.message_id, o.usuario_id, o.connection_id, o.recipient, o.payload,
                       o.priority, o.due_at, o.attempts, o.max_attempts",
            &[&connection_id, &owner, &(limit as i64)],
        )
        .await?;
    let mut claimed: Vec<Claimed> = rows
        .iter()
        .map(|r| Claimed {
            message_id: r.get(0),
            usuario_id: r.get(1),
            connection_id: r.get(2),
            recipient: r.get(3),
            payload: r.get(4),
            priority: r.get(5),
            due_at: r.get(6),
            attempts: r.get(7),
            max_attempts: r.get(8),
        })
        .collect();
    claimed.sort_by_key(Claimed::order_key);
    Ok(claimed)
}

/// When the next pending row of the connection falls due (scheduled sends, retries), as a
/// wait from now; None when it has none. See [`NEXT_DUE_SQL`].
pub async fn next_due(
    client: &impl GenericClient,
    connection_id: Uuid,
) -> Result<Option<Duration>, StoreError> {
    let next = client.prepare_cached(NEXT_DUE_SQL).await?;
    let row = client.query_one(&next, &[&connection_id]).await?;
    Ok(row
        .get::<_, Option<f64>>(0)
        .map(|secs| Duration::from_secs_f64(secs.max(0.0))))
}

/// The earliest due time of the connection's pending rows, found by probing the claim index
/// (connection, priority, due_at) once per priority the connection has: a skip over its
/// priorities, then the first entry of each. A plain `min(due_at)` over the connection read
/// every pending row's entry, and this runs whenever an idle lane is woken, once per batch
/// queued: 20 ms each behind a scheduled campaign of 40,000, growing with it, against 0.1 ms.
pub const NEXT_DUE_SQL: &str = "WITH RECURSIVE p(priority) AS (
         (SELECT priority FROM outbox WHERE connection_id = $1 AND state = 'pending'
          ORDER BY priority LIMIT 1)
         UNION ALL
         SELECT (SELECT o.priority FROM outbox o
                 WHERE o.connection_id = $1 AND o.state = 'pending' AND o.priority > p.priority
                 ORDER BY o.priority LIMIT 1)
         FROM p WHERE p.priority IS NOT NULL)
     SELECT extract(epoch FROM (min((SELECT min(o.due_at) FROM outbox o
         WHERE o.connection_id = $1 AND o.state = 'pending' AND o.priority = p.priority)) - now()))::float8
     FROM p WHERE p.priority IS NOT NULL";

/// Sends of the connection in the last 24 h (daily caps) and, when there are any, how long
/// until the oldest of them leaves the window.
pub async fn sent_last_day(
    client: &impl GenericClient,
    connection_id: Uuid,
) -> Result<(u32, Option<Duration>), StoreError> {
    let row = client
        .query_one(
            "SELECT count(*), extract(epoch FROM (min(sent_at) + interval '24 hours' - now()))::float8
             FROM outbox WHERE connection_id = $1 AND sent_at > now() - interval '24 hours'",
            &[&connection_id],
        )
        .await?;
    let n: i64 = row.get(0);
    let until: Option<f64> = row.get(1);
    Ok((n as u32, until.map(|s| Duration::from_secs_f64(s.max(0.0)))))
}
