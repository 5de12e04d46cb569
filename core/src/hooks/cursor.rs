//! The statements an endpoint's lane runs: take (or renew) the lease on its endpoint and load
//! what it needs, move the cursor while recording the attempts (one statement, so the cursor
//! never moves without its record), disable the endpoint, hand leases back.
//!
//! The lease is the endpoint row's `lease_owner`/`lease_until`: one owner name per
//! Dispatcher incarnation (`<node id>/<random>`). A lane writes only while it holds the lease
//! and its row's `version` is the one it loaded: a change through the API (new URL, filter,
//! secret, a replay's cursor) bumps the version, the lane's next write finds nothing, and the
//! lane reloads instead of overwriting.

use super::store::{Headers, open_headers};
use crate::hub::TypeFilter;
use crate::seal::{Purpose, Sealer};
use crate::store::StoreError;
use deadpool_postgres::GenericClient;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// An endpoint as its lane needs it.
#[derive(Debug, Clone)]
pub struct Target {
    pub id: Uuid,
    pub usuario_id: Uuid,
    pub url: String,
    pub filter: Option<TypeFilter>,
    pub headers: Headers,
    /// The current secret, then the previous one while it still signs.
    pub secrets: Vec<String>,
    pub max_in_flight: usize,
    pub cursor: i64,
    pub generation: i32,
    pub version: i32,
    pub failing_since: Option<OffsetDateTime>,
}

/// `lease_owner` patterns this owner may take over at once: earlier incarnations of the same
/// node (`<node id>/%`), which a restart under the same NODE_ID left behind.
pub fn node_pattern(node_id: &str) -> String {
    format!(
        "{}/%",
        node_id
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

/// The condition "this owner may take the lease", for `event_webhooks`.
const TAKEABLE: &str = "(lease_owner IS NULL OR lease_owner = $2 OR lease_until < now()
     OR lease_owner LIKE $3)";

/// Endpoints this owner could run: enabled, and their lease free, its own, expired, or an
/// earlier incarnation's of this node.
pub async fn candidates(
    client: &impl GenericClient,
    owner: &str,
    node_pattern: &str,
) -> Result<Vec<(Uuid, Uuid)>, StoreError> {
    let rows = client
        .query(
            &format!(
                // $1 is a placeholder so [`TAKEABLE`] reads its own $2 and $3.
                "SELECT id, usuario_id FROM event_webhooks
                 WHERE enabled AND $1::int IS NULL AND {TAKEABLE}"
            ),
            &[&None::<i32>, &owner, &node_pattern],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Takes or renews the lease on endpoint `id` for `lease` and loads it; None when it is gone,
/// disabled, or another live owner holds it.
pub async fn take_lease(
    client: &impl GenericClient,
    sealer: &Sealer,
    id: Uuid,
    owner: &str,
    node_pattern: &str,
    lease: Duration,
) -> Result<Option<Target>, StoreError> {
    let row = client
        .query_opt(
            &format!(
                "UPDATE event_webhooks SET lease_owner = $2,
                   lease_until = now() + make_interval(secs => $4)
                 WHERE id = $1 AND enabled AND {TAKEABLE}
                 RETURNING {TARGET}"
            ),
            &[&id, &owner, &node_pattern, &lease.as_secs_f64()],
        )
        .await?;
    Ok(row.map(|r| target(sealer, &r)))
}

/// Loads endpoint `id` as a lane would, without its lease (a test delivery).
pub async fn load(
    client: &impl GenericClient,
    sealer: &Sealer,
    id: Uuid,
) -> Result<Option<Target>, StoreError> {
    let row = client
        .query_opt(
            &format!("SELECT {TARGET} FROM event_webhooks WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(row.map(|r| target(sealer, &r)))
}

const TARGET: &str = "id, usuario_id, url, types, headers, secret,
    CASE WHEN previous_until > now() THEN previous_secret END,
    max_in_flight, cursor, generation, version, failing_since";

fn target(sealer: &Sealer, r: &tokio_postgres::Row) -> Target {
    let mut secrets = Vec::new();
    for sealed in [r.get::<_, Option<String>>(5), r.get(6)]
        .into_iter()
        .flatten()
    {
        // A secret that cannot be opened (a key removed) signs nothing: receivers will refuse
        // the deliveries, and they are retried once the key is back.
        if let Ok(secret) = sealer.open_str(Purpose::Secret, &sealed) {
            secrets.push(secret);
        }
    }
    let types: Option<String> = r.get(3);
    Target {
        id: r.get(0),
        usuario_id: r.get(1),
        url: r.get(2),
        filter: types.and_then(|t| TypeFilter::parse(&t).ok()),
        headers: open_headers(sealer, r.get(4)),
        secrets,
        max_in_flight: r.get::<_, i32>(7).clamp(1, 16) as usize,
        cursor: r.get(8),
        generation: r.get(9),
        version: r.get(10),
        failing_since: r.get(11),
    }
}

/// One attempt to record.
#[derive(Debug, Clone)]
pub struct AttemptRow {
    pub delivery_id: Uuid,
    pub seq: Option<i64>,
    pub event_type: String,
    pub attempt: i32,
    pub outcome: &'static str,
    pub http_status: Option<i32>,
    pub error: Option<String>,
    pub latency_ms: Option<i32>,
}

/// What one round of a lane did.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// The new cursor (never moved back).
    pub cursor: i64,
    /// Some delivery failed (retry or permanent): the failing clock runs.
    pub failed: bool,
    /// Some delivery succeeded and none failed: the failing clock stops.
    pub succeeded: bool,
    pub attempts: Vec<AttemptRow>,
}

/// Moves the cursor, records the attempts and renews the lease in one statement, if `owner`
/// still holds the lease on version `version`. Returns the endpoint's `failing_since` after
/// it (outer None: the write found nothing, reload).
pub async fn advance(
    client: &impl GenericClient,
    id: Uuid,
    owner: &str,
    version: i32,
    lease: Duration,
    p: &Progress,
) -> Result<Option<Option<OffsetDateTime>>, StoreError> {
    let col = |f: fn(&AttemptRow) -> Option<i32>| p.attempts.iter().map(f).collect::<Vec<_>>();
    let ids: Vec<Uuid> = p.attempts.iter().map(|a| a.delivery_id).collect();
    let seqs: Vec<Option<i64>> = p.attempts.iter().map(|a| a.seq).collect();
    let types: Vec<&str> = p.attempts.iter().map(|a| a.event_type.as_str()).collect();
    let numbers = col(|a| Some(a.attempt));
    let outcomes: Vec<&str> = p.attempts.iter().map(|a| a.outcome).collect();
    let statuses = col(|a| a.http_status);
    let errors: Vec<Option<&str>> = p.attempts.iter().map(|a| a.error.as_deref()).collect();
    let latencies = col(|a| a.latency_ms);
    let row = client
        .query_opt(
            "WITH w AS (
               UPDATE event_webhooks SET cursor = GREATEST(cursor, $4),
                 lease_until = now() + make_interval(secs => $5),
                 failing_since = CASE WHEN $6 THEN COALESCE(failing_since, now())
                                      WHEN $7 THEN NULL ELSE failing_since END,
                 last_success_at = CASE WHEN $7 THEN now() ELSE last_success_at END
               WHERE id = $1 AND lease_owner = $2 AND version = $3
               RETURNING id, failing_since),
             a AS (
               INSERT INTO event_webhook_attempts (webhook_id, delivery_id, seq, event_type,
                   attempt, outcome, http_status, error, latency_ms)
               SELECT w.id, x.* FROM w, unnest($8::uuid[], $9::bigint[], $10::text[],
                   $11::int[], $12::text[], $13::int[], $14::text[], $15::int[])
                 AS x(delivery_id, seq, event_type, attempt, outcome, http_status, error,
                      latency_ms))
             SELECT failing_since FROM w",
            &[
                &id,
                &owner,
                &version,
                &p.cursor,
                &lease.as_secs_f64(),
                &p.failed,
                &(p.succeeded && !p.failed),
                &ids,
                &seqs,
                &types,
                &numbers,
                &outcomes,
                &statuses,
                &errors,
                &latencies,
            ],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Disables endpoint `id` (its lane's owner only); returns its user when it did.
pub async fn disable(
    client: &impl GenericClient,
    id: Uuid,
    owner: &str,
    reason: &str,
) -> Result<Option<Uuid>, StoreError> {
    let row = client
        .query_opt(
            "UPDATE event_webhooks SET enabled = false, disabled_reason = $3,
               disabled_at = now(), lease_owner = NULL, lease_until = NULL,
               version = version + 1, updated_at = now()
             WHERE id = $1 AND lease_owner = $2 AND enabled
             RETURNING usuario_id",
            &[&id, &owner, &reason],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Hands back every lease `owner` holds (a Dispatcher stopping), so another node takes the
/// endpoints at once.
pub async fn release(client: &impl GenericClient, owner: &str) -> Result<u64, StoreError> {
    Ok(client
        .execute(
            "UPDATE event_webhooks SET lease_owner = NULL, lease_until = NULL
             WHERE lease_owner = $1",
            &[&owner],
        )
        .await?)
}

/// Deletes attempt records older than `hours` (they follow the event log's retention).
pub async fn prune_attempts(client: &impl GenericClient, hours: u32) -> Result<u64, StoreError> {
    Ok(client
        .execute(
            "DELETE FROM event_webhook_attempts
             WHERE created_at < now() - make_interval(hours => $1)",
            &[&(hours as i32)],
        )
        .await?)
}
