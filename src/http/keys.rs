//! A user's own API keys: `POST /v1/keys` (`name`, `scopes`, optional `expires_at`; 201 with
//! the key itself, shown this once), `GET /v1/keys` (never the secret: prefix, scopes, expiry,
//! `last_used_at`, `revoked_at`) and `DELETE /v1/keys/{id}` (revoked at once on every node:
//! keys are looked up on every request, never cached). These routes need a key with all of
//! `read`, `send` and `sessions`, or `admin`; a key never grants more than the key making it.

use super::audit;
use super::auth::{self, Need};
use super::error::ApiError;
use super::{json_body, json_reply, respond, with_ctx};
use crate::context::AppContext;
use serde::Deserialize;
use serde_json::json;
use sincro_core::store::api_keys::{self, Principal, Scopes};
use std::sync::Arc;
use time::OffsetDateTime;
use uuid::Uuid;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    name: Option<String>,
    scopes: Vec<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
}

pub fn routes(ctx: Arc<AppContext>) -> warp::filters::BoxedFilter<(Response,)> {
    let limit = ctx.config.max_body_bytes;
    let create = warp::path!("v1" / "keys")
        .and(warp::post())
        .and(auth::principal(ctx.clone(), Need::Full))
        .and(json_body::<NewKey>(limit))
        .and(with_ctx(ctx.clone()))
        .then(|p: Principal, body, ctx: Arc<AppContext>| {
            audit::respond(
                ctx.clone(),
                p.clone(),
                "key.create",
                None,
                create(p, body, ctx),
            )
        });
    let list = warp::path!("v1" / "keys")
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::Full))
        .and(with_ctx(ctx.clone()))
        .then(|p, ctx| respond(list(p, ctx)));
    let revoke = warp::path!("v1" / "keys" / Uuid)
        .and(warp::delete())
        .and(auth::principal(ctx.clone(), Need::Full))
        .and(with_ctx(ctx))
        .then(|id: Uuid, p: Principal, ctx: Arc<AppContext>| {
            audit::respond(
                ctx.clone(),
                p.clone(),
                "key.revoke",
                Some(id.to_string()),
                revoke(id, p, ctx),
            )
        });
    create.or(list).unify().or(revoke).unify().boxed()
}

fn parse_scopes(names: &[String]) -> Result<Scopes, ApiError> {
    if names.is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_scopes",
            "give the key at least one scope: admin, read, send, sessions",
        ));
    }
    names.iter().try_fold(Scopes::default(), |acc, n| {
        Scopes::parse_one(n).map(|s| acc.union(s)).ok_or_else(|| {
            ApiError::unprocessable(
                "invalid_scopes",
                format!("unknown scope {n:?}; scopes are admin, read, send, sessions"),
            )
        })
    })
}

async fn create(p: Principal, body: NewKey, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let name = match body.name.as_deref().map(str::trim) {
        None => None,
        Some(n) if n.is_empty() || n.chars().count() > 100 || n.chars().any(char::is_control) => {
            return Err(ApiError::unprocessable(
                "invalid_name",
                "name is 1 to 100 printable characters",
            ));
        }
        Some(n) => Some(n.to_string()),
    };
    let scopes = parse_scopes(&body.scopes)?;
    if !p.scopes.covers(scopes) {
        return Err(ApiError::InsufficientScope(format!(
            "a key cannot grant more than the key making it: this key has {}",
            p.scopes.names().join(", ")
        )));
    }
    if let Some(at) = body.expires_at
        && at <= OffsetDateTime::now_utc()
    {
        return Err(ApiError::unprocessable(
            "invalid_expiry",
            "expires_at must be in the future",
        ));
    }
    let client = ctx.pool.get().await?;
    let key = api_keys::create_scoped(
        &client,
        p.usuario_id,
        name.as_deref(),
        scopes,
        body.expires_at,
    )
    .await?;
    let view = api_keys::get(&client, Some(p.usuario_id), key.id)
        .await?
        .ok_or_else(|| ApiError::internal("new key not found"))?;
    let mut shown = serde_json::to_value(&view).map_err(ApiError::internal)?;
    shown["key"] = json!(key.plaintext.expose());
    Ok(audit::note(
        json_reply(StatusCode::CREATED, &shown),
        key.id,
        json!({"scopes": view.scopes, "expires_at": shown["expires_at"]}),
    ))
}

async fn list(p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let client = ctx.pool.get().await?;
    let keys = api_keys::list(&client, p.usuario_id).await?;
    Ok(json_reply(StatusCode::OK, &json!({"items": keys})))
}

async fn revoke(id: Uuid, p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let client = ctx.pool.get().await?;
    let view = api_keys::revoke(&client, Some(p.usuario_id), id)
        .await?
        .ok_or(ApiError::NotFound("key"))?;
    Ok(json_reply(StatusCode::OK, &view))
}
