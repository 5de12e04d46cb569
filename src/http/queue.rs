//! `GET /v1/queue`: how deep the outbound queue is, per connection and priority (waiting,
//! scheduled, being sent, the oldest waiting message's age). A user sees its own connections;
//! an admin key every user's. Dead letters and uncertain sends are `/v1/messages/dead-letter`.

use super::auth::{self, Need};
use super::error::ApiError;
use super::{json_reply, respond, with_ctx};
use crate::context::AppContext;
use serde_json::json;
use sincro_core::outbound::depth;
use sincro_core::store::api_keys::Principal;
use std::sync::Arc;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

pub fn routes(ctx: Arc<AppContext>) -> warp::filters::BoxedFilter<(Response,)> {
    warp::path!("v1" / "queue")
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::Read))
        .and(with_ctx(ctx))
        .then(|p, ctx| respond(queue(p, ctx)))
        .boxed()
}

async fn queue(p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let scope = (!p.is_admin).then_some(p.usuario_id);
    let client = ctx.pool.get().await?;
    let items = depth::depth(&client, scope).await?;
    Ok(json_reply(StatusCode::OK, &json!({"items": items})))
}
