//! `GET /v1/me` and `PATCH /v1/me`: the key's user and its settings (the default region used
//! to read phone numbers written without a country code).

use super::audit;
use super::auth::{self, Need};
use super::error::ApiError;
use super::{json_body, json_reply, respond, with_ctx};
use crate::context::AppContext;
use serde::Deserialize;
use serde_json::json;
use sincro_core::phone;
use sincro_core::store::api_keys::Principal;
use std::sync::Arc;
use uuid::Uuid;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MePatch {
    default_region: Option<String>,
}

pub fn routes(ctx: Arc<AppContext>) -> warp::filters::BoxedFilter<(Response,)> {
    let limit = ctx.config.max_body_bytes;
    let get = warp::path!("v1" / "me")
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::Read))
        .and(with_ctx(ctx.clone()))
        .then(|p, ctx| respond(me(p, ctx)));
    let patch = warp::path!("v1" / "me")
        .and(warp::patch())
        .and(auth::principal(ctx.clone(), Need::Full))
        .and(json_body::<MePatch>(limit))
        .and(with_ctx(ctx))
        .then(|p: Principal, body, ctx: Arc<AppContext>| {
            audit::respond(
                ctx.clone(),
                p.clone(),
                "user.update",
                Some(p.usuario_id.to_string()),
                update(p, body, ctx),
            )
        });
    get.or(patch).unify().boxed()
}

async fn me(p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let row = ctx
        .pool
        .get()
        .await?
        .query_one(
            "SELECT id, email, nombre, default_region FROM usuarios WHERE id = $1",
            &[&p.usuario_id],
        )
        .await?;
    Ok(json_reply(
        StatusCode::OK,
        &json!({
            "id": row.get::<_, Uuid>(0),
            "email": row.get::<_, Option<String>>(1),
            "nombre": row.get::<_, Option<String>>(2),
            "default_region": row.get::<_, Option<String>>(3),
            "admin": p.is_admin,
        }),
    ))
}

async fn update(p: Principal, body: MePatch, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    if let Some(region) = &body.default_region {
        phone::parse_region(region)
            .map_err(|e| ApiError::unprocessable("invalid_region", e.to_string()))?;
    }
    let region = body.default_region.map(|r| r.trim().to_ascii_uppercase());
    ctx.pool
        .get()
        .await?
        .execute(
            "UPDATE usuarios SET default_region = $2 WHERE id = $1",
            &[&p.usuario_id, &region],
        )
        .await?;
    let id = p.usuario_id;
    Ok(audit::note(
        me(p, ctx).await?,
        id,
        json!({"default_region": region}),
    ))
}
