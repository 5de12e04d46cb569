//! `GET /v1/status`: the live supervision tree (admin keys only).

use super::auth::{self, Need, require_admin};
use super::error::ApiError;
use super::{json_reply, respond, with_ctx};
use crate::context::AppContext;
use serde_json::json;
use sincro_core::store::api_keys::Principal;
use std::sync::Arc;
use std::time::Duration;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

pub fn routes(ctx: Arc<AppContext>) -> warp::filters::BoxedFilter<(Response,)> {
    warp::path!("v1" / "status")
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::Admin))
        .and(with_ctx(ctx))
        .then(|p: Principal, ctx: Arc<AppContext>| respond(status(p, ctx)))
        .boxed()
}

async fn status(p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    require_admin(&p)?;
    let tree = ctx
        .actors
        .status(Duration::from_secs(5))
        .await
        .ok_or_else(|| ApiError::Unavailable("the supervision tree did not answer".into()))?;
    Ok(json_reply(
        StatusCode::OK,
        &json!({
            "node_id": ctx.config.node_id,
            "version": env!("CARGO_PKG_VERSION"),
            "tree": tree,
        }),
    ))
}
