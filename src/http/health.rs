//! `/healthz` (the process is up), `/readyz` (PostgreSQL reachable and migrated, the tree
//! answering) and `/metrics` (Prometheus text).

use super::{json_reply, respond, with_ctx};
use crate::context::AppContext;
use serde_json::json;
use sincro_core::store::migrate;
use std::sync::Arc;
use std::time::Duration;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

pub fn routes(ctx: Arc<AppContext>) -> warp::filters::BoxedFilter<(Response,)> {
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| json_reply(StatusCode::OK, &json!({"status": "ok"})));
    let readyz = warp::path!("readyz")
        .and(warp::get())
        .and(with_ctx(ctx.clone()))
        .then(|ctx: Arc<AppContext>| respond(async move { Ok(readiness(&ctx).await) }));
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_ctx(ctx))
        .map(|ctx: Arc<AppContext>| {
            let body = ctx.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
            warp::reply::with_header(body, "content-type", "text/plain; version=0.0.4")
                .into_response()
        });
    healthz.or(readyz).unify().or(metrics).unify().boxed()
}

async fn readiness(ctx: &AppContext) -> Response {
    let db = async {
        let client = ctx.pool.get().await.map_err(|e| e.to_string())?;
        migrate::is_current(&client)
            .await
            .map_err(|e| e.to_string())
    };
    let db = tokio::time::timeout(Duration::from_secs(3), db)
        .await
        .unwrap_or_else(|_| Err("timed out".into()));
    let tree = ctx.actors.status(Duration::from_secs(2)).await.is_some();
    let (status, checks) = match db {
        Ok(true) if tree => (
            StatusCode::OK,
            json!({"database": "ok", "migrations": "current", "actors": "ok"}),
        ),
        Ok(true) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"database": "ok", "migrations": "current", "actors": "not answering"}),
        ),
        Ok(false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"database": "ok", "migrations": "pending"}),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"database": "unreachable"}),
            )
        }
    };
    let ready = status == StatusCode::OK;
    json_reply(status, &json!({"ready": ready, "checks": checks}))
}
