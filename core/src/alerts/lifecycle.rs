//! The alert lifecycle in the store: raise a condition (one open row per dedup key: the first
//! raise writes it, appends an `alert` stream event for its user and queues its webhook
//! delivery, all in one transaction; later raises only touch it), resolve it (sets
//! `resolved_at`, same event and delivery), list and acknowledge. Needs only the pool and the
//! sealer, so the daemon's shared state can call it without depending on [`super`].

use crate::seal::Sealer;
use crate::store::Scope;
use crate::store::StoreError;
use crate::store::alerts::Severity;
use crate::store::events;
use deadpool_postgres::{GenericClient, Pool};
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

/// A condition to raise. `key` names the condition: raising it again while it is open adds to
/// the open alert's count instead of making another; [`resolve`] closes it by the same key.
#[derive(Debug, Clone)]
pub struct AlertCondition {
    pub key: String,
    pub usuario_id: Option<Uuid>,
    pub connection_id: Option<Uuid>,
    /// What happened, e.g. `lite_logged_out`, `business_needs_credentials`, `queue_age`.
    pub kind: String,
    pub severity: Severity,
    /// Who noticed it (`dispatcher`, `lite_session/<id>`, `monitor`).
    pub source: String,
    /// For a person; never message content or secrets.
    pub message: String,
    pub details: Value,
}

/// An alert as the API, the stream and the webhook show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub id: Uuid,
    pub kind: String,
    pub severity: String,
    pub source: String,
    pub message: String,
    pub connection_id: Option<Uuid>,
    pub usuario_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub acked_at: Option<OffsetDateTime>,
    pub acked_by: Option<Uuid>,
    pub details: Value,
    /// How many times the condition was raised while this alert was open.
    pub count: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
}

/// Where an alert is in its lifecycle, as the stream's `state` and the webhook's `event` say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Raised,
    Resolved,
}

impl Transition {
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Raised => "raised",
            Transition::Resolved => "resolved",
        }
    }
}

const COLUMNS: &str = "id, kind, severity, source, message, connection_id, usuario_id, created_at, \
     resolved_at, acked_at, acked_by, details, count, last_seen_at";

fn alert_of(r: &tokio_postgres::Row) -> Alert {
    Alert {
        id: r.get(0),
        kind: r.get(1),
        severity: r.get(2),
        source: r.get(3),
        message: r.get(4),
        connection_id: r.get(5),
        usuario_id: r.get(6),
        created_at: r.get(7),
        resolved_at: r.get(8),
        acked_at: r.get(9),
        acked_by: r.get(10),
        details: r.get(11),
        count: r.get(12),
        last_seen_at: r.get(13),
    }
}

/// The `alert` stream event's data: the alert and its `state`.
pub fn event_data(alert: &Alert, state: Transition) -> Value {
    let mut data = serde_json::to_value(alert).unwrap_or_else(|_| json!({}));
    data["state"] = json!(state.as_str());
    data
}

/// Raises `c`: the open alert of its key, and whether this raise opened it.
pub async fn raise(
    pool: &Pool,
    sealer: &Sealer,
    node_id: &str,
    deliver: bool,
    c: &AlertCondition,
) -> Result<(Alert, bool), StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO alerts (id, dedup_key, usuario_id, connection_id, kind, severity, source,
                                     message, details, node_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (dedup_key) WHERE resolved_at IS NULL DO UPDATE
                    SET count = alerts.count + 1, last_seen_at = now(),
                        message = EXCLUDED.message, details = EXCLUDED.details
                 RETURNING {COLUMNS}, (xmax = 0)"
            ),
            &[
                &Uuid::now_v7(),
                &c.key,
                &c.usuario_id,
                &c.connection_id,
                &c.kind,
                &c.severity.as_str(),
                &c.source,
                &c.message,
                &c.details,
                &node_id,
            ],
        )
        .await?;
    let alert = alert_of(&row);
    let opened: bool = row.get(14);
    if opened {
        announce(&tx, sealer, deliver, &alert, Transition::Raised).await?;
    }
    tx.commit().await?;
    if opened {
        metrics::counter!("sincro_alerts_raised_total", "kind" => alert.kind.clone()).increment(1);
        tracing::warn!(alert = %alert.id, kind = %alert.kind, severity = %alert.severity, "alert raised");
    }
    Ok((alert, opened))
}

/// Resolves the open alert of `key`, if there is one.
pub async fn resolve(
    pool: &Pool,
    sealer: &Sealer,
    deliver: bool,
    key: &str,
) -> Result<Option<Alert>, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            &format!(
                "UPDATE alerts SET resolved_at = now() WHERE dedup_key = $1 AND resolved_at IS NULL
                 RETURNING {COLUMNS}"
            ),
            &[&key],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let alert = alert_of(&row);
    announce(&tx, sealer, deliver, &alert, Transition::Resolved).await?;
    tx.commit().await?;
    metrics::counter!("sincro_alerts_resolved_total", "kind" => alert.kind.clone()).increment(1);
    tracing::info!(alert = %alert.id, kind = %alert.kind, "alert resolved");
    Ok(Some(alert))
}

/// The keys of open alerts whose key starts with `prefix` (a monitor resolving what cleared).
pub async fn open_keys(
    client: &impl GenericClient,
    prefix: &str,
) -> Result<Vec<String>, StoreError> {
    let rows = client
        .query(
            "SELECT dedup_key FROM alerts WHERE resolved_at IS NULL AND starts_with(dedup_key, $1)",
            &[&prefix],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The stream event for the alert's user and its webhook delivery, in the caller's transaction.
async fn announce(
    tx: &impl GenericClient,
    sealer: &Sealer,
    deliver: bool,
    alert: &Alert,
    state: Transition,
) -> Result<(), StoreError> {
    if let Some(user) = alert.usuario_id {
        events::append(tx, sealer, user, "alert", &event_data(alert, state)).await?;
    }
    if deliver {
        tx.execute(
            "INSERT INTO alert_deliveries (alert_id, state) VALUES ($1, $2)",
            &[&alert.id, &state.as_str()],
        )
        .await?;
    }
    Ok(())
}

/// Which alerts a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    Open,
    Resolved,
    All,
}

impl StateFilter {
    /// `open` (the default), `resolved` or `all`.
    pub fn parse(s: Option<&str>) -> Option<StateFilter> {
        match s {
            None | Some("open") => Some(StateFilter::Open),
            Some("resolved") => Some(StateFilter::Resolved),
            Some("all") => Some(StateFilter::All),
            Some(_) => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            StateFilter::Open => "open",
            StateFilter::Resolved => "resolved",
            StateFilter::All => "all",
        }
    }
}

/// Alerts newest first after the `(created_at, id)` cursor.
pub async fn list(
    client: &impl GenericClient,
    scope: Scope,
    state: StateFilter,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> Result<Vec<Alert>, StoreError> {
    let (at, id) = after
        .map(|(a, i)| (Some(a), Some(i)))
        .unwrap_or((None, None));
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM alerts
                 WHERE ($1::uuid IS NULL OR usuario_id = $1)
                   AND ($2 = 'all' OR ($2 = 'open') = (resolved_at IS NULL))
                   AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))
                 ORDER BY created_at DESC, id DESC LIMIT $5"
            ),
            &[&scope.user(), &state.as_str(), &at, &id, &limit],
        )
        .await?;
    Ok(rows.iter().map(alert_of).collect())
}

/// Acknowledges alert `id` for `by` (a second ack keeps the first); None when the reader may
/// not see it.
pub async fn ack(
    client: &impl GenericClient,
    scope: Scope,
    id: Uuid,
    by: Uuid,
) -> Result<Option<Alert>, StoreError> {
    let row = client
        .query_opt(
            &format!(
                "UPDATE alerts SET acked_at = coalesce(acked_at, now()), acked_by = coalesce(acked_by, $3)
                 WHERE id = $1 AND ($2::uuid IS NULL OR usuario_id = $2)
                 RETURNING {COLUMNS}"
            ),
            &[&id, &scope.user(), &by],
        )
        .await?;
    Ok(row.as_ref().map(alert_of))
}

/// Open alerts per kind and severity (the `sincro_alerts_open` gauge).
pub async fn open_counts(
    client: &impl GenericClient,
) -> Result<Vec<(String, String, i64)>, StoreError> {
    let rows = client
        .query(
            "SELECT kind, severity, count(*) FROM alerts WHERE resolved_at IS NULL GROUP BY 1, 2",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// One alert by id, whoever it belongs to.
pub async fn get(client: &impl GenericClient, id: Uuid) -> Result<Option<Alert>, StoreError> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM alerts WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(alert_of))
}
