//! Alerts that reach people: raised once per condition, resolved when it clears, listed and
//! acknowledged through the API, announced on the stream (`alert` events with `state`
//! `raised`/`resolved`) and posted, signed, to `ALERT_WEBHOOK_URL`.
//!
//! Any actor raises a condition with [`raise`] and clears it with [`resolve`], by the
//! condition's key; neither blocks the caller (the write runs on its own task, a failure is
//! logged). [`raise_now`]/[`resolve_now`] wait for the store, for callers that must know.
//! The lifecycle's SQL is in [`lifecycle`], delivery in [`notifier`], the performance
//! thresholds' checks in [`monitor`].

pub mod conditions;
pub mod error;
pub mod lifecycle;
pub mod monitor;
pub mod notifier;
pub mod settings;

pub use error::AlertError;
pub use lifecycle::{Alert, AlertCondition, StateFilter};
pub use settings::AlertSettings;

use crate::shared::Shared;
use crate::store::{Scope, StoreError};
use std::sync::Arc;

/// Raises `condition` without waiting (see [`raise_now`]).
pub fn raise(shared: &Arc<Shared>, condition: AlertCondition) {
    let shared = shared.clone();
    tokio::spawn(async move {
        if let Err(e) = raise_now(&shared, &condition).await {
            tracing::error!(error = %e, kind = %condition.kind, "could not record alert");
        }
    });
}

/// Resolves the open alert of `key`, if any, without waiting (see [`resolve_now`]).
pub fn resolve(shared: &Arc<Shared>, key: impl Into<String>) {
    let shared = shared.clone();
    let key = key.into();
    tokio::spawn(async move {
        if let Err(e) = resolve_now(&shared, &key).await {
            tracing::error!(error = %e, "could not resolve alert");
        }
    });
}

/// Raises `condition` and answers with its open alert and whether this raise opened it.
pub async fn raise_now(
    shared: &Shared,
    condition: &AlertCondition,
) -> Result<(Alert, bool), StoreError> {
    lifecycle::raise(
        &shared.pool,
        &shared.sealer,
        &shared.node_id,
        shared.settings.alerts.webhook.is_some(),
        condition,
    )
    .await
}

/// Resolves the open alert of `key`; None when none was open.
pub async fn resolve_now(shared: &Shared, key: &str) -> Result<Option<Alert>, StoreError> {
    lifecycle::resolve(
        &shared.pool,
        &shared.sealer,
        shared.settings.alerts.webhook.is_some(),
        key,
    )
    .await
}

/// Acknowledges alert `id` for user `by` (a person has seen it; it stays open until its
/// condition clears). The first acknowledgement is kept.
pub async fn ack(
    client: &impl deadpool_postgres::GenericClient,
    scope: Scope,
    id: uuid::Uuid,
    by: uuid::Uuid,
) -> Result<Alert, AlertError> {
    lifecycle::ack(client, scope, id, by)
        .await?
        .ok_or(AlertError::NotFound)
}

/// Condition keys, written in one place so the code that raises and the code that resolves a
/// condition name it alike.
pub mod keys {
    use uuid::Uuid;

    /// A Lite session FAILED (too many crashes) or logged out from the phone.
    pub fn lite_down(session: Uuid) -> String {
        format!("lite:{session}:down")
    }
    /// A Lite session's login was revoked on the phone.
    pub fn lite_logged_out(session: Uuid) -> String {
        format!("lite:{session}:logged_out")
    }
    /// A Business number Meta refused the token of, or restricted (`status` says which).
    pub fn business_status(connection: Uuid, status: &str) -> String {
        format!("business:{connection}:{status}")
    }
    /// A performance threshold passed (`queue_age:high`, `inbox_lag`, `stream_latency`).
    pub fn performance(what: &str) -> String {
        format!("performance:{what}")
    }
}
