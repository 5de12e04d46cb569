//! Alerts: rows in `alerts` that operators (and the CRM, through the stream) must see, e.g. an
//! actor that keeps failing and is no longer restarted.

use super::StoreError;
use deadpool_postgres::Pool;
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

/// One alert to record.
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub usuario_id: Option<Uuid>,
    pub kind: String,
    pub severity: Severity,
    pub source: String,
    pub message: String,
    pub details: serde_json::Value,
}

pub async fn insert(pool: &Pool, node_id: &str, alert: &NewAlert) -> Result<Uuid, StoreError> {
    let client = pool.get().await?;
    let id = Uuid::now_v7();
    client
        .execute(
            "INSERT INTO alerts (id, usuario_id, kind, severity, source, message, details, node_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &id,
                &alert.usuario_id,
                &alert.kind,
                &alert.severity.as_str(),
                &alert.source,
                &alert.message,
                &alert.details,
                &node_id,
            ],
        )
        .await?;
    Ok(id)
}
