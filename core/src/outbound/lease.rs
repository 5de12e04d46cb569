//! Leases on claimed rows. A claim sets `lease_owner` (this Dispatcher incarnation:
//! `<node id>/<random>`); the incarnation's one row in `outbox_owners` says until when its
//! claims hold, and it renews that row (one row, however many it holds), so a lease only
//! expires when its holder is gone (crash, `kill -9`, partition). Renewing every held row
//! instead locked thousands of rows against the statements marking and recording them: the
//! whole send pipeline stalled at each renewal, and deadlocked with the recorder at times.
//! Recovery returns the rows of expired owners: a row whose attempt never started goes back to
//! `pending`; a row whose attempt was in flight (`inflight_at`) becomes `uncertain`, because
//! the provider may have accepted it and has no idempotency key: it is never resent silently.

use super::record::{Marked, uncertain_alert};
use crate::seal::Sealer;
use crate::store::StoreError;
use crate::store::events::{self, NewEvent};
use deadpool_postgres::GenericClient;
use std::time::Duration;
use uuid::Uuid;

/// A fresh lease owner name for one Dispatcher incarnation on `node_id`.
pub fn owner_name(node_id: &str) -> String {
    format!("{node_id}/{}", Uuid::new_v4().simple())
}

/// Takes or extends `owner`'s lease on everything it claims: until `lease` from now.
pub async fn renew(
    client: &impl GenericClient,
    owner: &str,
    node_id: &str,
    lease: Duration,
) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO outbox_owners (owner, node_id, until)
             VALUES ($1, $2, now() + make_interval(secs => $3))
             ON CONFLICT (owner) DO UPDATE SET until = EXCLUDED.until, renewed_at = now()",
            &[&owner, &node_id, &lease.as_secs_f64().max(1.0)],
        )
        .await?;
    Ok(())
}

/// The condition "the row's owner holds a live lease", for `outbox o`.
const OWNER_ALIVE: &str =
    "EXISTS (SELECT 1 FROM outbox_owners w WHERE w.owner = o.lease_owner AND w.until > now())";

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
            &format!(
                "UPDATE outbox o SET state = 'pending', lease_owner = NULL, updated_at = now()
                 WHERE o.state = 'sending' AND o.inflight_at IS NULL
                   AND o.lease_owner IS DISTINCT FROM $2
                   AND (NOT {OWNER_ALIVE} OR ($1::text IS NOT NULL AND o.lease_owner LIKE $1))"
            ),
            &[&like, &current_owner],
        )
        .await?;
    // In flight when the daemon died, but the provider's status (callback data) already
    // named it: it was accepted.
    tx.execute(
        &format!(
            "UPDATE outbox o SET state = 'sent', sent_at = now(), lease_owner = NULL,
                 inflight_at = NULL, updated_at = now()
             FROM mensajes_conversacion m
             WHERE o.state = 'sending' AND o.inflight_at IS NOT NULL AND NOT {OWNER_ALIVE}
               AND m.id = o.message_id AND m.external_id IS NOT NULL"
        ),
        &[],
    )
    .await?;
    let rows = tx
        .query(
            &format!(
                "UPDATE outbox o SET state = 'uncertain', lease_owner = NULL,
                     inflight_at = NULL, updated_at = now(),
                     last_error = 'the daemon stopped while sending: the provider may have accepted it'
                 WHERE o.state = 'sending' AND o.inflight_at IS NOT NULL AND NOT {OWNER_ALIVE}
                 RETURNING o.message_id, o.usuario_id, o.connection_id"
            ),
            &[],
        )
        .await?;
    // Owners whose lease ran out hold nothing any more (their rows came back above).
    tx.execute("DELETE FROM outbox_owners WHERE until < now()", &[])
        .await?;
    let new_events: Vec<NewEvent> = rows
        .iter()
        .map(|r| {
            uncertain_alert(
                r,
                "the daemon stopped while sending this message; it may or may not have been delivered. Re-queue it to send it again.",
            )
        })
        .collect();
    events::append_many(&tx, sealer, &new_events).await?;
    tx.commit().await?;
    Ok(Recovered {
        returned,
        uncertain: rows.iter().map(|r| r.get(0)).collect(),
    })
}

/// Hands back every row `owner` claimed and never attempted (a Dispatcher stopping), and ends
/// its lease when it holds nothing else (rows still in flight keep it until it expires).
pub async fn release_owned(client: &impl GenericClient, owner: &str) -> Result<u64, StoreError> {
    let released = client
        .execute(
            "UPDATE outbox SET state = 'pending', lease_owner = NULL, updated_at = now()
             WHERE lease_owner = $1 AND state = 'sending' AND inflight_at IS NULL",
            &[&owner],
        )
        .await?;
    client
        .execute(
            "DELETE FROM outbox_owners WHERE owner = $1
               AND NOT EXISTS (SELECT 1 FROM outbox WHERE lease_owner = $1 AND state = 'sending')",
            &[&owner],
        )
        .await?;
    Ok(released)
}

/// Marks rows as in flight (their request may leave from now on) and counts the attempt, in
/// one committed statement, before any of them is sent. Only rows `owner` still holds in
/// `sending` under a live lease come back: a row cancelled meanwhile, or whose lease was
/// lost, is not sent.
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
            &format!(
                "UPDATE outbox o SET inflight_at = now(), attempts = attempts + 1, updated_at = now()
                 WHERE o.message_id = ANY($1) AND o.lease_owner = $2 AND o.state = 'sending'
                   AND {OWNER_ALIVE}
                 RETURNING o.message_id, o.attempts"
            ),
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
