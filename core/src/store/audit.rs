//! The audit log's rows (`audit_log`): who did what to which resource, from where, and how it
//! ended. The API writes one per mutating call; never message content or secrets.

use super::StoreError;
use deadpool_postgres::GenericClient;
use serde_json::Value;
use uuid::Uuid;

/// One audit row as the API records it.
#[derive(Debug)]
pub struct Entry<'a> {
    pub usuario_id: Uuid,
    pub api_key_id: Uuid,
    /// The client's IP address as text.
    pub ip: Option<String>,
    pub action: &'a str,
    pub target: Option<&'a str>,
    /// `ok`, or the error code the call answered with.
    pub outcome: &'a str,
    /// Safe details: ids, types, counts.
    pub details: &'a Value,
}

/// Appends one row.
pub async fn record(client: &impl GenericClient, e: &Entry<'_>) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO audit_log (usuario_id, api_key_id, ip, action, target, outcome, details)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &e.usuario_id,
                &e.api_key_id,
                &e.ip,
                &e.action,
                &e.target,
                &e.outcome,
                e.details,
            ],
        )
        .await?;
    Ok(())
}
