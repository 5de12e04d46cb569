//! The alerts event webhooks raise: an endpoint disabled after failing too long
//! (`webhook_disabled`), and events that left the log before an endpoint got them
//! (`webhook_events_expired`), each one open alert per endpoint until it clears; enabling a
//! disabled endpoint again resolves its `webhook_disabled` alert.

use crate::alerts::AlertCondition;
use crate::shared::Shared;
use crate::store::alerts::Severity;
use std::sync::Arc;
use uuid::Uuid;

/// The condition's key: one open alert of a kind per endpoint.
fn key(kind: &str, webhook_id: Uuid) -> String {
    format!("{kind}:webhook:{webhook_id}")
}

/// Raises alert `kind` about endpoint `webhook_id` of `usuario_id` (never its URL, which may
/// carry the receiver's credentials); raised again while open, it only counts.
pub fn raise(
    shared: &Arc<Shared>,
    usuario_id: Uuid,
    webhook_id: Uuid,
    kind: &'static str,
    message: String,
    details: serde_json::Value,
) {
    let mut details = details;
    details["webhook_id"] = serde_json::json!(webhook_id);
    tracing::warn!(%webhook_id, user_id = %usuario_id, kind, "webhook alert");
    crate::alerts::raise(
        shared,
        AlertCondition {
            key: key(kind, webhook_id),
            usuario_id: Some(usuario_id),
            connection_id: None,
            kind: kind.to_string(),
            severity: Severity::Warning,
            source: format!("webhook:{webhook_id}"),
            message,
            details,
        },
    );
}

/// The endpoint was enabled again: its `webhook_disabled` alert clears.
pub async fn resolve_disabled(shared: &Shared, webhook_id: Uuid) {
    let key = key("webhook_disabled", webhook_id);
    if let Err(e) = crate::alerts::resolve_now(shared, &key).await {
        tracing::warn!(%webhook_id, error = %e, "could not resolve the webhook's alert");
    }
}
