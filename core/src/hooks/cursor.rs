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
use std::collections::HashMap;
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

/// One lane's round to write: endpoint `id` as loaded at `version`, and what the round did.
#[derive(Debug, Clone)]
pub struct Advance {
    pub id: Uuid,
    pub version: i32,
    pub progress: Progress,
}

/// Moves the cursors, records the attempts and renews the leases of several endpoints in one
/// statement (one commit), each only if `owner` still holds its lease on the version its
/// lane loaded: the cursor never moves without its record. Returns, for each endpoint
/// written, its `failing_since` after the write; an endpoint missing from the answer was
/// changed or lost its lease (its lane reloads). The rounds must be of distinct endpoints.
pub async fn advance_many(
    client: &impl GenericClient,
    owner: &str,
    lease: Duration,
    rounds: &[Advance],
) -> Result<HashMap<Uuid, Option<OffsetDateTime>>, StoreError> {
    let ids: Vec<Uuid> = rounds.iter().map(|r| r.id).collect();
    let versions: Vec<i32> = rounds.iter().map(|r| r.version).collect();
    let cursors: Vec<i64> = rounds.iter().map(|r| r.progress.cursor).collect();
    let failed: Vec<bool> = rounds.iter().map(|r| r.progress.failed).collect();
    // The failing clock stops only on a round where something succeeded and nothing failed.
    let succeeded: Vec<bool> = rounds
        .iter()
        .map(|r| r.progress.succeeded && !r.progress.failed)
        .collect();
    let attempts = || {
        rounds
            .iter()
            .flat_map(|r| r.progress.attempts.iter().map(move |a| (r.id, a)))
    };
    let endpoints: Vec<Uuid> = attempts().map(|(id, _)| id).collect();
    let delivery_ids: Vec<Uuid> = attempts().map(|(_, a)| a.delivery_id).collect();
    let seqs: Vec<Option<i64>> = attempts().map(|(_, a)| a.seq).collect();
    let types: Vec<&str> = attempts().map(|(_, a)| a.event_type.as_str()).collect();
    let numbers: Vec<i32> = attempts().map(|(_, a)| a.attempt).collect();
    let outcomes: Vec<&str> = attempts().map(|(_, a)| a.outcome).collect();
    let statuses: Vec<Option<i32>> = attempts().map(|(_, a)| a.http_status).collect();
    let errors: Vec<Option<&str>> = attempts().map(|(_, a)| a.error.as_deref()).collect();
    let latencies: Vec<Option<i32>> = attempts().map(|(_, a)| a.latency_ms).collect();
    // Prepared once per pooled connection: every lane round ends in it.
    let advance = client
        .prepare_cached(
            "WITH w AS (
               UPDATE event_webhooks e SET cursor = GREATEST(e.cursor, x.cursor),
                 lease_until = now() + make_interval(secs => $2),
                 failing_since = CASE WHEN x.failed THEN COALESCE(e.failing_since, now())
                                      WHEN x.succeeded THEN NULL ELSE e.failing_since END,
                 last_success_at = CASE WHEN x.succeeded THEN now() ELSE e.last_success_at END
               FROM unnest($3::uuid[], $4::int[], $5::bigint[], $6::bool[], $7::bool[])
                 AS x(id, version, cursor, failed, succeeded)
               WHERE e.id = x.id AND e.lease_owner = $1 AND e.version = x.version
               RETURNING e.id, e.failing_since),
             a AS (
               INSERT INTO event_webhook_attempts (webhook_id, delivery_id, seq, event_type,
                   attempt, outcome, http_status, error, latency_ms)
               SELECT webhook_id, delivery_id, seq, event_type, attempt, outcome,
                   http_status, error, latency_ms
               FROM unnest($8::uuid[], $9::uuid[], $10::bigint[], $11::text[], $12::int[],
                   $13::text[], $14::int[], $15::text[], $16::int[]) WITH ORDINALITY
                 AS y(webhook_id, delivery_id, seq, event_type, attempt, outcome, http_status,
                      error, latency_ms, n)
               WHERE webhook_id IN (SELECT id FROM w)
               ORDER BY n)
             SELECT id, failing_since FROM w",
        )
        .await?;
    let rows = client
        .query(
            &advance,
            &[
                &owner,
                &lease.as_secs_f64(),
                &ids,
                &versions,
                &cursors,
                &failed,
                &succeeded,
                &endpoints,
                &delivery_ids,
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
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
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
