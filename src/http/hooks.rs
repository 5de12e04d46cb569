//! Event webhooks (`/v1/webhooks`): an endpoint gets every stream event of its types as a
//! signed POST. `POST` creates one (201 with its `secret`, shown this once), `GET` lists and
//! reads, `PATCH` changes (URL, types, headers, description, `max_in_flight`, `enabled`),
//! `DELETE` removes; `POST /{id}/rotate-secret` gives a new secret while the old one keeps
//! signing for `overlap_secs`; `POST /{id}/test` sends a `webhook.test` frame now;
//! `GET /{id}/deliveries` lists attempts; `POST /{id}/replay?since=N` delivers again every
//! event after N. Reads need the `read` scope; changes a key with `read`, `send` and
//! `sessions` (or `admin`), like keys: an endpoint is a standing copy of the user's events.
//! Each handler calls one function of `sincro_core::hooks::manage` or `store`.

use super::audit;
use super::auth::{self, Need};
use super::error::ApiError;
use super::{json_body, json_reply, respond, with_ctx};
use crate::context::AppContext;
use serde::{Deserialize, Deserializer};
use serde_json::json;
use sincro_core::hooks::manage::{self, NewEndpoint, Patch};
use sincro_core::hooks::store;
use sincro_core::store::api_keys::Principal;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    url: String,
    types: Option<Vec<String>>,
    headers: Option<BTreeMap<String, String>>,
    description: Option<String>,
    max_in_flight: Option<i32>,
}

/// `Some(None)` for an explicit null, None for a missing field.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    url: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    types: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    headers: Option<Option<BTreeMap<String, String>>>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    max_in_flight: Option<i32>,
    enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    overlap_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct ReplayQuery {
    since: i64,
}

#[derive(Debug, Deserialize)]
pub struct AttemptsQuery {
    before: Option<i64>,
    limit: Option<i64>,
}

fn pairs(headers: BTreeMap<String, String>) -> Vec<(String, String)> {
    headers.into_iter().collect()
}

pub fn routes(ctx: Arc<AppContext>) -> warp::filters::BoxedFilter<(Response,)> {
    let limit = ctx.config.max_body_bytes;
    let create = warp::path!("v1" / "webhooks")
        .and(warp::post())
        .and(auth::principal(ctx.clone(), Need::Full))
        .and(json_body::<CreateBody>(limit))
        .and(with_ctx(ctx.clone()))
        .then(|p: Principal, body, ctx: Arc<AppContext>| {
            audit::respond(
                ctx.clone(),
                p.clone(),
                "webhook.create",
                None,
                create(p, body, ctx),
            )
        });
    let list = warp::path!("v1" / "webhooks")
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::Read))
        .and(with_ctx(ctx.clone()))
        .then(|p, ctx| respond(list(p, ctx)));
    let get = warp::path!("v1" / "webhooks" / Uuid)
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::Read))
        .and(with_ctx(ctx.clone()))
        .then(|id, p, ctx| respond(get(id, p, ctx)));
    let patch = warp::path!("v1" / "webhooks" / Uuid)
        .and(warp::patch())
        .and(auth::principal(ctx.clone(), Need::Full))
        .and(json_body::<PatchBody>(limit))
        .and(with_ctx(ctx.clone()))
        .then(|id: Uuid, p: Principal, body, ctx: Arc<AppContext>| {
            audit::respond(
                ctx.clone(),
                p.clone(),
                "webhook.update",
                Some(id.to_string()),
                update(id, p, body, ctx),
            )
        });
    let delete = warp::path!("v1" / "webhooks" / Uuid)
        .and(warp::delete())
        .and(auth::principal(ctx.clone(), Need::Full))
        .and(with_ctx(ctx.clone()))
        .then(|id: Uuid, p: Principal, ctx: Arc<AppContext>| {
            audit::respond(
                ctx.clone(),
                p.clone(),
                "webhook.delete",
                Some(id.to_string()),
                delete(id, p, ctx),
            )
        });
    let rotate = warp::path!("v1" / "webhooks" / Uuid / "rotate-secret")
        .and(warp::post())
        .and(auth::principal(ctx.clone(), Need::Full))
        .and(optional_body::<RotateBody>(limit))
        .and(with_ctx(ctx.clone()))
        .then(|id: Uuid, p: Principal, body, ctx: Arc<AppContext>| {
            audit::respond(
                ctx.clone(),
                p.clone(),
                "webhook.rotate_secret",
                Some(id.to_string()),
                rotate(id, p, body, ctx),
            )
        });
    let test = warp::path!("v1" / "webhooks" / Uuid / "test")
        .and(warp::post())
        .and(auth::principal(ctx.clone(), Need::Full))
        .and(with_ctx(ctx.clone()))
        .then(|id: Uuid, p: Principal, ctx: Arc<AppContext>| {
            audit::respond(
                ctx.clone(),
                p.clone(),
                "webhook.test",
                Some(id.to_string()),
                test(id, p, ctx),
            )
        });
    let replay = warp::path!("v1" / "webhooks" / Uuid / "replay")
        .and(warp::post())
        .and(auth::principal(ctx.clone(), Need::Full))
        .and(warp::query::<ReplayQuery>())
        .and(with_ctx(ctx.clone()))
        .then(|id: Uuid, p: Principal, q, ctx: Arc<AppContext>| {
            audit::respond(
                ctx.clone(),
                p.clone(),
                "webhook.replay",
                Some(id.to_string()),
                replay(id, p, q, ctx),
            )
        });
    let attempts = warp::path!("v1" / "webhooks" / Uuid / "deliveries")
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::Read))
        .and(warp::query::<AttemptsQuery>())
        .and(with_ctx(ctx))
        .then(|id, p, q, ctx| respond(attempts(id, p, q, ctx)));
    create
        .or(list)
        .unify()
        .or(get)
        .unify()
        .or(patch)
        .unify()
        .or(delete)
        .unify()
        .or(rotate)
        .unify()
        .or(test)
        .unify()
        .or(replay)
        .unify()
        .or(attempts)
        .unify()
        .boxed()
}

/// A JSON body that may be left out (an empty body is the default).
fn optional_body<T: serde::de::DeserializeOwned + Default + Send>(
    limit: u64,
) -> impl Filter<Extract = (T,), Error = warp::Rejection> + Clone {
    super::capped::bytes(limit).and_then(|bytes: bytes::Bytes| async move {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(T::default());
        }
        serde_json::from_slice::<T>(&bytes).map_err(|e| {
            warp::reject::custom(ApiError::bad_request(
                "invalid_body",
                format!("request body is not valid: {e}"),
            ))
        })
    })
}

async fn create(p: Principal, b: CreateBody, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let new = NewEndpoint {
        url: b.url,
        types: b.types,
        headers: b.headers.map(pairs),
        description: b.description,
        max_in_flight: b.max_in_flight,
    };
    let made = manage::create(&ctx.shared, p.usuario_id, new).await?;
    let details =
        json!({"types": made.endpoint.types, "max_in_flight": made.endpoint.max_in_flight});
    let id = made.endpoint.id;
    Ok(audit::note(
        json_reply(StatusCode::CREATED, &made),
        id,
        details,
    ))
}

async fn list(p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let client = ctx.pool.get().await?;
    let items = store::list(&client, &ctx.sealer, p.usuario_id).await?;
    Ok(json_reply(StatusCode::OK, &json!({"items": items})))
}

async fn get(id: Uuid, p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let client = ctx.pool.get().await?;
    let endpoint = store::get(&client, &ctx.sealer, p.usuario_id, id).await?;
    Ok(json_reply(StatusCode::OK, &endpoint))
}

async fn update(
    id: Uuid,
    p: Principal,
    b: PatchBody,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    let fields: Vec<&str> = [
        ("url", b.url.is_some()),
        ("types", b.types.is_some()),
        ("headers", b.headers.is_some()),
        ("description", b.description.is_some()),
        ("max_in_flight", b.max_in_flight.is_some()),
        ("enabled", b.enabled.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, given)| given.then_some(name))
    .collect();
    let patch = Patch {
        url: b.url,
        types: b.types,
        headers: b.headers.map(|h| h.map(pairs)),
        description: b.description,
        max_in_flight: b.max_in_flight,
        enabled: b.enabled,
    };
    let endpoint = manage::update(&ctx.shared, p.usuario_id, id, patch).await?;
    Ok(audit::note(
        json_reply(StatusCode::OK, &endpoint),
        id,
        json!({"fields": fields, "enabled": endpoint.enabled}),
    ))
}

async fn delete(id: Uuid, p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let client = ctx.pool.get().await?;
    store::delete(&client, p.usuario_id, id).await?;
    Ok(json_reply(
        StatusCode::OK,
        &json!({"id": id, "deleted": true}),
    ))
}

async fn rotate(
    id: Uuid,
    p: Principal,
    b: RotateBody,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    let overlap = b.overlap_secs.map(Duration::from_secs);
    let made = manage::rotate(&ctx.shared, p.usuario_id, id, overlap).await?;
    let until = made.endpoint.previous_secret_until;
    Ok(audit::note(
        json_reply(StatusCode::OK, &made),
        id,
        json!({"previous_secret_until": until.map(|t| t.unix_timestamp())}),
    ))
}

async fn test(id: Uuid, p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let result = manage::test(&ctx.shared, p.usuario_id, id).await?;
    let details = json!({"delivered": result.delivered, "status": result.status});
    Ok(audit::note(
        json_reply(StatusCode::OK, &result),
        id,
        details,
    ))
}

async fn replay(
    id: Uuid,
    p: Principal,
    q: ReplayQuery,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    let endpoint = manage::replay(&ctx.shared, p.usuario_id, id, q.since).await?;
    Ok(audit::note(
        json_reply(StatusCode::ACCEPTED, &endpoint),
        id,
        json!({"since": q.since}),
    ))
}

async fn attempts(
    id: Uuid,
    p: Principal,
    q: AttemptsQuery,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("invalid_limit", "limit is 1 to 500"));
    }
    let client = ctx.pool.get().await?;
    let items = store::attempts(&client, p.usuario_id, id, q.before, limit).await?;
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(|a| a.id))
        .flatten();
    Ok(json_reply(
        StatusCode::OK,
        &json!({"items": items, "next_before": next}),
    ))
}
