//! Leases on claimed rows. A claim sets `lease_owner` (this Dispatcher incarnation:
//! `<node id>/<random>`) and `lease_until`; the holder renews while it holds rows, so a lease
//! only expires when its holder is gone (crash, `kill -9`, partition). Recovery then returns
//! the rows: a row whose attempt never started goes back to `pending`; a row whose attempt was
//! in flight (`inflight_at`) becomes `uncertain`, because the provider may have accepted it and
//! has no idempotency key: it is never resent silently.

use super::record::Marked;
use crate::seal::Sealer;
use crate::store::StoreError;
use crate::store::events::{self, NewEvent};
use deadpool_postgres::GenericClient;
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

/// A fresh lease owner name for one Dispatcher incarnation on `node_id`.
pub fn owner_name(node_id: &str) -> String {
    format!("{node_id}/{}", Uuid::new_v4().simple())
}

/// Extends the lease of rows `owner` holds; returns how many it still holds.
pub async fn renew(
    client: &impl GenericClient,
    owner: &str,
    ids: &[Uuid],
    lease: Duration,
) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(client
        .execute(
            "UPDATE outbox SET lease_until = now() + make_interval(secs => $3)
             WHERE message_id = ANY($1) AND lease_owner = $2 AND state = 'sending'",
            &[&ids, &owner, &lease.as_secs_f64().max(1.0)],
        )
        .await?)
}

/// Rows recovered by [`recover`].
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recovered {
    /// Claimed but never attempted: pending again.
    pub returned: u64,
    /// Attempted, outcome unknown: marked uncertain.
    pub uncertain: Vec<Uuid>,
}

/// Returns rows whose lease expired. Rows held by earlier incarnations of this node
/// (`node_prefix` = `<node id>/`, other than `current_owner`) that were only claimed go back at
/// once, so a restart with the same NODE_ID need not wait for their lease; their in-flight rows
/// wait for the lease like any other (an earlier incarnation in this process may still record
/// their outcome). One transaction; rows made uncertain get an `alert` event for their user.
pub async fn recover(
    client: &mut deadpool_postgres::Client,
    sealer: &Sealer,
    node_prefix: Option<&str>,
    current_owner: &str,
) -> Result<Recovered, StoreError> {
    let tx = client.transaction().await?;
    let like = node_prefix.map(|p| {
        format!(
            "{}%",
            p.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    });
    let returned = tx
        .execute(
            "UPDATE outbox SET state = 'pending', lease_owner = NULL, lease_until = NULL, updated_at = now()
             WHERE state = 'sending' AND inflight_at IS NULL AND lease_owner IS DISTINCT FROM $2
               AND (lease_until < now() OR ($1::text IS NOT NULL AND lease_owner LIKE $1))",
            &[&like, &current_owner],
        )
        .await?;
    // In flight when the daemon died, but the provider's status (callback data) already
    // named it: it was accepted.
    tx.execute(
        "UPDATE outbox o SET state = 'sent', sent_at = now(), lease_owner = NULL, lease_until = NULL,
             inflight_at = NULL, updated_at = now()
         FROM mensajes_conversacion m
         WHERE o.state = 'sending' AND o.inflight_at IS NOT NULL AND o.lease_until < now()
           AND m.id = o.message_id AND m.external_id IS NOT NULL",
        &[],
    )
    .await?;
    let rows = tx
        .query(
            "UPDATE outbox SET state = 'uncertain', lease_owner = NULL, lease_until = NULL,
                 inflight_at = NULL, updated_at = now(),
                 last_error = 'the daemon stopped while sending: the provider may have accepted it'
             WHERE state = 'sending' AND inflight_at IS NOT NULL AND lease_until < now()
             RETURNING message_id, usuario_id, connection_id",
            &[],
        )
        .await?;
    let new_events: Vec<NewEvent> = rows
        .iter()
        .map(|r| NewEvent {
            usuario_id: r.get(1),
            kind: "alert",
            data: json!({
                "kind": "message_uncertain",
                "message_id": r.get::<_, Uuid>(0),
                "connection_id": r.get::<_, Uuid>(2),
                "message": "the daemon stopped while sending this message; it may or may not have been delivered. Re-queue it to send it again.",
            }),
        })
        .collect();
    events::append_many(&tx, sealer, &new_events).await?;
    tx.commit().await?;
    Ok(Recovered {
        returned,
        uncertain: rows.iter().map(|r| r.get(0)).collect(),
    })
}

/// Hands back every row `owner` claimed and never attempted (a Dispatcher stopping).
pub async fn release_owned(client: &impl GenericClient, owner: &str) -> Result<u64, StoreError> {
    Ok(client
        .execute(
            "UPDATE outbox SET state = 'pending', lease_owner = NULL, lease_until = NULL, updated_at = now()
             WHERE lease_owner = $1 AND state = 'sending' AND inflight_at IS NULL",
            &[&owner],
        )
        .await?)
}

/// Marks rows as in flight (their request may leave from now on) and counts the attempt, in
/// one committed statement, before any of them is sent. Only rows `owner` still holds in
/// `sending` come back: a row cancelled meanwhile, or whose lease was lost, is not sent.
pub async fn mark_inflight(
    client: &impl GenericClient,
    owner: &str,
    ids: &[Uuid],
) -> Result<Vec<Marked>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "UPDATE outbox SET inflight_at = now(), attempts = attempts + 1, updated_at = now()
             WHERE message_id = ANY($1) AND lease_owner = $2 AND state = 'sending' AND lease_until > now()
             RETURNING message_id, attempts",
            &[&ids, &owner],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Marked {
            message_id: r.get(0),
            attempt: r.get::<_, i32>(1) as u32,
        })
        .collect())
}
