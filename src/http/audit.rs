//! The audit log: who did what to which resource, from where; never message content. Every
//! mutating route records one row and one `audit` log line carrying the seed's log fields
//! (`user_id`, `action`). A failure to write the row is logged, never fails the request that
//! already happened.

use crate::context::AppContext;
use serde_json::Value;
use sincro_actors::store::api_keys::Principal;

/// Records `action` (e.g. `lead.merge_duplicates`) on `target` (an id or name).
pub async fn record(
    ctx: &AppContext,
    p: &Principal,
    action: &str,
    target: Option<String>,
    details: Value,
) {
    tracing::info!(user_id = %p.usuario_id, action, target = target.as_deref().unwrap_or(""), "audit");
    let write = async {
        let client = ctx.pool.get().await?;
        client
            .execute(
                "INSERT INTO audit_log (usuario_id, api_key_id, action, target, details) VALUES ($1, $2, $3, $4, $5)",
                &[&p.usuario_id, &p.api_key_id, &action, &target, &details],
            )
            .await?;
        Ok::<_, sincro_actors::store::StoreError>(())
    };
    if let Err(e) = write.await {
        tracing::error!(error = %e, action, "could not write the audit log");
    }
}
