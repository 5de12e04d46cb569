//! The endpoint rows (`event_webhooks`) as the API sees them: create, list, read, change,
//! delete, rotate the secret, move the cursor for a replay, and the attempts log. Secrets
//! and custom headers are sealed; a view never holds a secret and names headers only.

use super::HookError;
use crate::seal::{Purpose, Sealer};
use crate::store::StoreError;
use deadpool_postgres::GenericClient;
use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

/// One endpoint as the API shows it (never its secret or header values).
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub id: Uuid,
    pub url: String,
    /// The stream's `types` filter; None: every event type.
    pub types: Option<Vec<String>>,
    pub description: Option<String>,
    /// Names of the custom headers sent with every delivery (their values stay sealed).
    pub headers: Vec<String>,
    pub max_in_flight: i32,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub disabled_at: Option<OffsetDateTime>,
    /// The last seq acknowledged.
    pub cursor: i64,
    /// Events of this user after the cursor (of any type: the filter is applied on delivery).
    pub lag_events: i64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub failing_since: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_success_at: Option<OffsetDateTime>,
    /// Until when the secret replaced by the last rotation still signs.
    #[serde(with = "time::serde::rfc3339::option")]
    pub previous_secret_until: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

const COLUMNS: &str = "w.id, w.url, w.types, w.description, w.headers, w.max_in_flight,
    w.enabled, w.disabled_reason, w.disabled_at, w.cursor,
    COALESCE((SELECT c.last_seq FROM event_counters c WHERE c.usuario_id = w.usuario_id), 0),
    w.failing_since, w.last_success_at,
    CASE WHEN w.previous_until > now() THEN w.previous_until END, w.created_at, w.updated_at";

/// Custom headers as stored (sealed JSON pairs).
pub type Headers = Vec<(String, String)>;

pub fn seal_headers(sealer: &Sealer, headers: &Headers) -> Option<String> {
    (!headers.is_empty()).then(|| {
        let json = serde_json::to_string(headers).expect("pairs of strings");
        sealer.seal_str(Purpose::Secret, &json)
    })
}

pub fn open_headers(sealer: &Sealer, sealed: Option<&str>) -> Headers {
    sealed
        .and_then(|s| sealer.open_str(Purpose::Secret, s).ok())
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default()
}

fn split_types(types: Option<String>) -> Option<Vec<String>> {
    types.map(|t| t.split(',').map(str::to_string).collect())
}

fn view(sealer: &Sealer, row: &Row) -> Endpoint {
    let cursor: i64 = row.get(9);
    let newest: i64 = row.get(10);
    Endpoint {
        id: row.get(0),
        url: row.get(1),
        types: split_types(row.get(2)),
        description: row.get(3),
        headers: open_headers(sealer, row.get(4))
            .into_iter()
            .map(|(name, _)| name)
            .collect(),
        max_in_flight: row.get(5),
        enabled: row.get(6),
        disabled_reason: row.get(7),
        disabled_at: row.get(8),
        cursor,
        lag_events: (newest - cursor).max(0),
        failing_since: row.get(11),
        last_success_at: row.get(12),
        previous_secret_until: row.get(13),
        created_at: row.get(14),
        updated_at: row.get(15),
    }
}

/// A new endpoint's row.
#[derive(Debug, Clone)]
pub struct NewRow {
    pub url: String,
    /// Comma-separated, already validated.
    pub types: Option<String>,
    pub description: Option<String>,
    pub headers: Headers,
    pub max_in_flight: i32,
    pub secret: String,
}

/// Stores a new endpoint whose cursor is the user's newest event: it gets what happens from
/// now on (older events: `replay`).
pub async fn insert(
    client: &impl GenericClient,
    sealer: &Sealer,
    usuario_id: Uuid,
    row: &NewRow,
) -> Result<Endpoint, HookError> {
    let id = Uuid::now_v7();
    let sql = format!(
        "WITH w AS (
           INSERT INTO event_webhooks (id, usuario_id, url, types, description, headers,
               max_in_flight, secret, cursor)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
               COALESCE((SELECT last_seq FROM event_counters WHERE usuario_id = $2), 0))
           RETURNING *)
         SELECT {COLUMNS} FROM w"
    );
    let r = client
        .query_one(
            &sql,
            &[
                &id,
                &usuario_id,
                &row.url,
                &row.types,
                &row.description,
                &seal_headers(sealer, &row.headers),
                &row.max_in_flight,
                &sealer.seal_str(Purpose::Secret, &row.secret),
            ],
        )
        .await
        .map_err(StoreError::from)?;
    Ok(view(sealer, &r))
}

pub async fn list(
    client: &impl GenericClient,
    sealer: &Sealer,
    usuario_id: Uuid,
) -> Result<Vec<Endpoint>, HookError> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM event_webhooks w WHERE w.usuario_id = $1 ORDER BY w.created_at"
            ),
            &[&usuario_id],
        )
        .await?;
    Ok(rows.iter().map(|r| view(sealer, r)).collect())
}

pub async fn get(
    client: &impl GenericClient,
    sealer: &Sealer,
    usuario_id: Uuid,
    id: Uuid,
) -> Result<Endpoint, HookError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM event_webhooks w WHERE w.id = $1 AND w.usuario_id = $2"
            ),
            &[&id, &usuario_id],
        )
        .await?
        .ok_or(HookError::NotFound)?;
    Ok(view(sealer, &row))
}

/// What a PATCH changes (None: unchanged; `Some(None)`: cleared).
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub url: Option<String>,
    pub types: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub headers: Option<Headers>,
    pub max_in_flight: Option<i32>,
    /// true: enable again (the failing clock restarts); false: disable.
    pub enabled: Option<bool>,
}

/// The LISTEN/NOTIFY channel of endpoint changes; the payload is the endpoint's id.
pub const CHANGED_CHANNEL: &str = "sincro_webhook_changed";

/// Tells the endpoint's lane, on whichever node runs it, to reload the endpoint before its
/// next delivery (sent once the change is committed). Without it an idle lane would learn of
/// a change only when it next writes its cursor, after delivering one more event as before.
async fn announce(client: &impl GenericClient, id: Uuid) -> Result<(), HookError> {
    client
        .execute(
            "SELECT pg_notify($1, $2)",
            &[&CHANGED_CHANNEL, &id.to_string()],
        )
        .await?;
    Ok(())
}

/// Applies `changes` and bumps the version, so the endpoint's lane reloads it.
pub async fn update(
    client: &impl GenericClient,
    sealer: &Sealer,
    usuario_id: Uuid,
    id: Uuid,
    changes: &Changes,
) -> Result<Endpoint, HookError> {
    let sql = format!(
        "WITH w AS (
           UPDATE event_webhooks SET
             url = COALESCE($3, url),
             types = CASE WHEN $4 THEN $5 ELSE types END,
             description = CASE WHEN $6 THEN $7 ELSE description END,
             headers = CASE WHEN $8 THEN $9 ELSE headers END,
             max_in_flight = COALESCE($10, max_in_flight),
             enabled = COALESCE($11, enabled),
             disabled_reason = CASE WHEN $11 IS NULL THEN disabled_reason
                                    WHEN $11 THEN NULL ELSE 'disabled through the API' END,
             disabled_at = CASE WHEN $11 IS NULL THEN disabled_at WHEN $11 THEN NULL ELSE now() END,
             failing_since = CASE WHEN $11 THEN NULL ELSE failing_since END,
             version = version + 1, updated_at = now()
           WHERE id = $1 AND usuario_id = $2
           RETURNING *)
         SELECT {COLUMNS} FROM w"
    );
    let headers = changes.headers.as_ref().map(|h| seal_headers(sealer, h));
    let row = client
        .query_opt(
            &sql,
            &[
                &id,
                &usuario_id,
                &changes.url,
                &changes.types.is_some(),
                &changes.types.clone().flatten(),
                &changes.description.is_some(),
                &changes.description.clone().flatten(),
                &headers.is_some(),
                &headers.flatten(),
                &changes.max_in_flight,
                &changes.enabled,
            ],
        )
        .await?
        .ok_or(HookError::NotFound)?;
    announce(client, id).await?;
    Ok(view(sealer, &row))
}

pub async fn delete(
    client: &impl GenericClient,
    usuario_id: Uuid,
    id: Uuid,
) -> Result<(), HookError> {
    let n = client
        .execute(
            "DELETE FROM event_webhooks WHERE id = $1 AND usuario_id = $2",
            &[&id, &usuario_id],
        )
        .await?;
    if n == 0 {
        return Err(HookError::NotFound);
    }
    announce(client, id).await
}

/// Replaces the secret; the previous one keeps signing for `overlap`.
pub async fn rotate(
    client: &impl GenericClient,
    sealer: &Sealer,
    usuario_id: Uuid,
    id: Uuid,
    secret: &str,
    overlap: std::time::Duration,
) -> Result<Endpoint, HookError> {
    let sql = format!(
        "WITH w AS (
           UPDATE event_webhooks SET previous_secret = secret,
             previous_until = now() + make_interval(secs => $4),
             secret = $3, version = version + 1, updated_at = now()
           WHERE id = $1 AND usuario_id = $2
           RETURNING *)
         SELECT {COLUMNS} FROM w"
    );
    let row = client
        .query_opt(
            &sql,
            &[
                &id,
                &usuario_id,
                &sealer.seal_str(Purpose::Secret, secret),
                &overlap.as_secs_f64(),
            ],
        )
        .await?
        .ok_or(HookError::NotFound)?;
    announce(client, id).await?;
    Ok(view(sealer, &row))
}

/// Moves the cursor back to `since` under a new generation (new delivery ids), and clears
/// the failing clock.
pub async fn rewind(
    client: &impl GenericClient,
    sealer: &Sealer,
    usuario_id: Uuid,
    id: Uuid,
    since: i64,
) -> Result<Endpoint, HookError> {
    let sql = format!(
        "WITH w AS (
           UPDATE event_webhooks SET cursor = $3, generation = generation + 1,
             failing_since = NULL, version = version + 1, updated_at = now()
           WHERE id = $1 AND usuario_id = $2
           RETURNING *)
         SELECT {COLUMNS} FROM w"
    );
    let row = client
        .query_opt(&sql, &[&id, &usuario_id, &since])
        .await?
        .ok_or(HookError::NotFound)?;
    announce(client, id).await?;
    Ok(view(sealer, &row))
}

/// One attempt as `GET /v1/webhooks/{id}/deliveries` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptView {
    pub id: i64,
    pub delivery_id: Uuid,
    pub seq: Option<i64>,
    #[serde(rename = "type")]
    pub event_type: String,
    pub attempt: i32,
    /// `delivered`, `retry`, `failed` (a permanent failure), `expired` (events purged before
    /// they could be delivered; `seq` is the last of them).
    pub outcome: String,
    pub http_status: Option<i32>,
    pub error: Option<String>,
    pub latency_ms: Option<i32>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Attempts of one endpoint, newest first, below the id `before`.
pub async fn attempts(
    client: &impl GenericClient,
    usuario_id: Uuid,
    id: Uuid,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<AttemptView>, HookError> {
    let owned = client
        .query_opt(
            "SELECT 1 FROM event_webhooks WHERE id = $1 AND usuario_id = $2",
            &[&id, &usuario_id],
        )
        .await?;
    if owned.is_none() {
        return Err(HookError::NotFound);
    }
    let rows = client
        .query(
            "SELECT id, delivery_id, seq, event_type, attempt, outcome, http_status, error,
                    latency_ms, created_at
             FROM event_webhook_attempts
             WHERE webhook_id = $1 AND ($2::bigint IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3",
            &[&id, &before, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| AttemptView {
            id: r.get(0),
            delivery_id: r.get(1),
            seq: r.get(2),
            event_type: r.get(3),
            attempt: r.get(4),
            outcome: r.get(5),
            http_status: r.get(6),
            error: r.get(7),
            latency_ms: r.get(8),
            at: r.get(9),
        })
        .collect())
}
