//! Alerts: what an alert row says (its severity, and the shape callers raise with
//! `Shared::raise_alert`). The lifecycle (dedup, resolve, ack, delivery) is `crate::alerts`.

use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One alert to record; its condition is its kind, source and user.
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub usuario_id: Option<Uuid>,
    pub kind: String,
    pub severity: Severity,
    pub source: String,
    pub message: String,
    pub details: serde_json::Value,
}
