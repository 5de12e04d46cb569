//! The conditions the connection actors raise, written here so each one's key, kind, severity
//! and wording is in one place next to the code that resolves it.

use super::keys;
use super::lifecycle::AlertCondition;
use crate::store::alerts::Severity;
use serde_json::json;
use uuid::Uuid;

/// A Lite session failed too often and was stopped (connection down); resolved when it is
/// WORKING again.
pub fn lite_failed(session: Uuid, usuario_id: Option<Uuid>, last_error: &str) -> AlertCondition {
    AlertCondition {
        key: keys::lite_down(session),
        usuario_id,
        connection_id: Some(session),
        kind: "lite_session_failed".into(),
        severity: Severity::Critical,
        source: format!("lite_supervisor/{session}"),
        message: "a WhatsApp Lite session failed too often and was stopped".into(),
        details: json!({ "session_id": session, "last_error": last_error, "category": "connection_down" }),
    }
}

/// A Lite session was logged out from the phone (connection down and an authentication
/// error: a new QR scan is needed); resolved when it is WORKING again.
pub fn lite_logged_out(session: Uuid, usuario_id: Uuid) -> AlertCondition {
    AlertCondition {
        key: keys::lite_logged_out(session),
        usuario_id: Some(usuario_id),
        connection_id: Some(session),
        kind: "lite_logged_out".into(),
        severity: Severity::Critical,
        source: format!("lite_session/{session}"),
        message: "a WhatsApp Lite session was logged out from the phone; start it again and scan a new QR code".into(),
        details: json!({ "session_id": session, "category": "auth_error" }),
    }
}

/// A send whose answer was lost: it may or may not have been delivered, and a person decides
/// whether to re-queue it. One open alert per user, counting such messages.
pub fn message_uncertain(usuario_id: Uuid, message_id: Uuid) -> AlertCondition {
    AlertCondition {
        key: format!("uncertain:{usuario_id}"),
        usuario_id: Some(usuario_id),
        connection_id: None,
        kind: "messages_uncertain".into(),
        severity: Severity::Warning,
        source: "dispatcher".into(),
        message: "a message's send answer was lost: it may or may not have been delivered; see GET /v1/messages/dead-letter".into(),
        details: json!({ "last_message_id": message_id, "category": "uncertain_send" }),
    }
}
