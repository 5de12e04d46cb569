//! The audit log: who did what to which resource, from where, and how it ended; never message
//! content or secrets. Every mutating route answers through [`respond`], which runs the handler
//! and records one row (user, key id, client IP, action, target, outcome: `ok` or the error
//! code) whether the call succeeded or failed, and one `audit` log line carrying the seed's log
//! fields (`user_id`, `action`). A handler names what it made or changed with [`note`]. A
//! failure to write the row is logged, never fails the request that already happened.

use super::error::ApiError;
use crate::context::AppContext;
use serde_json::Value;
use sincro_core::store::api_keys::Principal;
use sincro_core::store::audit;
use std::future::Future;
use std::sync::Arc;
use warp::reply::Response;

/// What a handler tells the audit log about its call: the resource and safe details (ids,
/// types, counts; never content or secrets). Travels in the response's extensions.
#[derive(Debug, Clone)]
struct Note {
    target: Option<String>,
    details: Value,
}

/// Attaches the call's target and details to its response for [`respond`] to record.
pub fn note(mut resp: Response, target: impl ToString, details: Value) -> Response {
    resp.extensions_mut().insert(Note {
        target: Some(target.to_string()),
        details,
    });
    resp
}

/// Runs a mutating handler, records its audit row and answers with its response (or error).
/// `target` is what the route names (a path id); a [`note`] from the handler wins.
pub async fn respond<F>(
    ctx: Arc<AppContext>,
    p: Principal,
    action: &'static str,
    target: Option<String>,
    fut: F,
) -> Response
where
    F: Future<Output = Result<Response, ApiError>>,
{
    let (outcome, mut resp) = match fut.await {
        Ok(resp) if resp.status().is_success() => ("ok".to_string(), resp),
        Ok(resp) => (format!("http_{}", resp.status().as_u16()), resp),
        Err(e) => (e.code().to_string(), e.into_response()),
    };
    let note = resp.extensions_mut().remove::<Note>();
    let (target, details) = match note {
        Some(n) => (n.target.or(target), n.details),
        None => (target, Value::Object(Default::default())),
    };
    write(&ctx, &p, action, target, &outcome, details).await;
    resp
}

/// Records one row for a call that was not answered through [`respond`].
pub async fn record(
    ctx: &AppContext,
    p: &Principal,
    action: &str,
    target: Option<String>,
    details: Value,
) {
    write(ctx, p, action, target, "ok", details).await
}

async fn write(
    ctx: &AppContext,
    p: &Principal,
    action: &str,
    target: Option<String>,
    outcome: &str,
    details: Value,
) {
    tracing::info!(
        user_id = %p.usuario_id,
        action,
        target = target.as_deref().unwrap_or(""),
        outcome,
        "audit"
    );
    let entry = audit::Entry {
        usuario_id: p.usuario_id,
        api_key_id: p.api_key_id,
        ip: p.ip.map(|ip| ip.to_string()),
        action,
        target: target.as_deref(),
        outcome,
        details: &details,
    };
    let write = async { audit::record(&ctx.pool.get().await?, &entry).await };
    if let Err(e) = write.await {
        tracing::error!(error = %e, action, "could not write the audit log");
    }
}
