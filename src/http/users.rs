//! `DELETE /v1/users/{id}` (admin): erasure of a whole user with everything it owns, its Lite
//! sessions and Business numbers stopped first (sincro_core::privacy::erase_user).

use super::audit;
use super::auth::{self, Need};
use super::error::ApiError;
use super::{json_reply, with_ctx};
use crate::context::AppContext;
use serde_json::json;
use sincro_core::privacy::erase_user;
use sincro_core::store::api_keys::Principal;
use std::sync::Arc;
use uuid::Uuid;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

pub fn routes(ctx: Arc<AppContext>) -> warp::filters::BoxedFilter<(Response,)> {
    warp::path!("v1" / "users" / Uuid)
        .and(warp::delete())
        .and(auth::principal(ctx.clone(), Need::Admin))
        .and(with_ctx(ctx))
        .then(|id: Uuid, p: Principal, ctx: Arc<AppContext>| {
            audit::respond(
                ctx.clone(),
                p,
                "user.erase",
                Some(id.to_string()),
                erase(id, ctx),
            )
        })
        .boxed()
}

async fn erase(id: Uuid, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let children = &ctx.actors.children;
    let erased = erase_user::erase_user(
        &ctx.shared,
        &children.lite_handle(),
        &children.business_handle(),
        id,
    )
    .await?;
    let details = json!(erased);
    Ok(audit::note(
        json_reply(StatusCode::OK, &details),
        id,
        details,
    ))
}
