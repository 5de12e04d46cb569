//! The alerts event webhooks raise: an endpoint disabled after failing too long
//! (`webhook_disabled`), and events that left the log before an endpoint got them
//! (`webhook_events_expired`). One function, so the alert lifecycle (raise once per
//! condition, resolve when it clears) plugs in here alone.

use crate::shared::Shared;
use crate::store::alerts::{NewAlert, Severity};
use std::sync::Arc;
use uuid::Uuid;

/// Raises alert `kind` about endpoint `webhook_id` of `usuario_id` (never its URL, which may
/// carry the receiver's credentials).
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
    shared.raise_alert(NewAlert {
        usuario_id: Some(usuario_id),
        kind: kind.to_string(),
        severity: Severity::Warning,
        source: format!("webhook:{webhook_id}"),
        message,
        details,
    });
}
