//! `GET /v1/me` and `PATCH /v1/me`: the key's user and its settings (the default region used
//! to read phone numbers written without a country code; how many days its messages and media
//! are kept, `retention_days`). A PATCH changes the fields it names; `null` clears one.

use super::audit;
use super::auth::{self, Need};
use super::error::ApiError;
use super::{json_body, json_reply, respond, with_ctx};
use crate::context::AppContext;
use serde::Deserialize;
use serde_json::json;
use sincro_core::privacy::retention;
use sincro_core::store::api_keys::Principal;
use sincro_core::store::users;
use std::sync::Arc;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MePatch {
    #[serde(default, deserialize_with = "present")]
    default_region: Option<Option<String>>,
    /// Days messages and media are kept; `null`: the daemon's `RETENTION_DAYS`.
    #[serde(default, deserialize_with = "present")]
    retention_days: Option<Option<u32>>,
}

/// A field that is present (`Some`, its value possibly `null`) or absent (`None`, by default).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
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
    let client = ctx.pool.get().await?;
    let user = users::profile(&client, p.usuario_id).await?;
    let retention_days = retention::user_days(&client, p.usuario_id).await?;
    Ok(json_reply(
        StatusCode::OK,
        &json!({
            "id": user.id,
            "email": user.email,
            "nombre": user.nombre,
            "default_region": user.default_region,
            "retention_days": retention_days,
            "retention_default_days": ctx.shared.settings.privacy.retention_days,
            "admin": p.is_admin,
        }),
    ))
}

async fn update(p: Principal, body: MePatch, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    // One transaction: a refused field leaves the other unchanged too.
    let mut client = ctx.pool.get().await?;
    let tx = client.transaction().await?;
    let mut details = json!({});
    if let Some(days) = body.retention_days {
        retention::set_user_days(&tx, p.usuario_id, days).await?;
        details["retention_days"] = json!(days);
    }
    if let Some(region) = body.default_region {
        let region = users::set_default_region(&tx, p.usuario_id, region.as_deref()).await?;
        details["default_region"] = json!(region);
    }
    tx.commit().await?;
    drop(client);
    let id = p.usuario_id;
    Ok(audit::note(me(p, ctx).await?, id, details))
}
