//! The users and their keys, for administrators (the admin panel's users view):
//! `GET /v1/users` (newest first, cursor-paginated; whether each holds a live admin key, its
//! live keys, when one was last used), `GET /v1/users/{id}/keys` (that user's keys, never a
//! secret), `DELETE /v1/users/{id}/keys/{key_id}` (revoke one of them, at once on every
//! node, audited as `key.revoke`) and `DELETE /v1/users/{id}` (erasure of a whole user with
//! everything it owns, its Lite sessions and Business numbers stopped first:
//! `sincro_core::privacy::erase_user`). Admin keys only; a user's own keys are `/v1/keys`.

use super::audit;
use super::auth::{self, Need, require_admin};
use super::cursor;
use super::error::ApiError;
use super::{json_reply, respond, with_ctx};
use crate::context::AppContext;
use serde::Deserialize;
use serde_json::json;
use sincro_core::privacy::erase_user;
use sincro_core::store::api_keys::{self, Principal};
use sincro_core::store::directory;
use std::sync::Arc;
use uuid::Uuid;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    cursor: Option<String>,
    limit: Option<u32>,
}

pub fn routes(ctx: Arc<AppContext>) -> warp::filters::BoxedFilter<(Response,)> {
    let list = warp::path!("v1" / "users")
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::Admin))
        .and(warp::query::<ListQuery>())
        .and(with_ctx(ctx.clone()))
        .then(|p, q, ctx| respond(list(p, q, ctx)));
    let keys = warp::path!("v1" / "users" / Uuid / "keys")
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::Admin))
        .and(with_ctx(ctx.clone()))
        .then(|id, p, ctx| respond(keys(id, p, ctx)));
    let revoke = warp::path!("v1" / "users" / Uuid / "keys" / Uuid)
        .and(warp::delete())
        .and(auth::principal(ctx.clone(), Need::Admin))
        .and(with_ctx(ctx.clone()))
        .then(
            |user: Uuid, key: Uuid, p: Principal, ctx: Arc<AppContext>| {
                audit::respond(
                    ctx.clone(),
                    p.clone(),
                    "key.revoke",
                    Some(key.to_string()),
                    revoke(user, key, p, ctx),
                )
            },
        );
    let erase = warp::path!("v1" / "users" / Uuid)
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
        });
    list.or(keys)
        .unify()
        .or(revoke)
        .unify()
        .or(erase)
        .unify()
        .boxed()
}

async fn list(p: Principal, q: ListQuery, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    require_admin(&p)?;
    let (limit, after) = cursor::request(q.limit, q.cursor.as_deref())?;
    let client = ctx.pool.get().await?;
    let rows = directory::users(&client, after, limit + 1).await?;
    Ok(cursor::page(rows, limit, |u| (u.created_at, u.id), |u| u))
}

async fn keys(id: Uuid, p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    require_admin(&p)?;
    let client = ctx.pool.get().await?;
    if !directory::exists(&client, id).await? {
        return Err(ApiError::NotFound("user"));
    }
    let keys = api_keys::list(&client, id).await?;
    Ok(json_reply(StatusCode::OK, &json!({"items": keys})))
}

async fn revoke(
    user: Uuid,
    key: Uuid,
    p: Principal,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    require_admin(&p)?;
    let client = ctx.pool.get().await?;
    let view = api_keys::revoke(&client, Some(user), key)
        .await?
        .ok_or(ApiError::NotFound("key"))?;
    Ok(audit::note(
        json_reply(StatusCode::OK, &view),
        key,
        json!({"usuario_id": user}),
    ))
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
