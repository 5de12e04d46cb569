//! The HTTP front (warp): routes, JSON bodies with a size limit, the error shape, access logs,
//! request ids and per-route metrics (`request_id.rs`).
//! One file per group of routes; this one only assembles them. Each file declares its routes as
//! warp filter chains (path, method, the key's principal, query or body, context, handler), so
//! those declarations look alike from file to file: that is warp's shape for a route, not
//! repeated logic, and the handlers behind them each call one core function.

pub mod admin;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod business;
pub mod capped;
pub mod contacts;
pub mod conversations;
pub mod cursor;
pub mod error;
pub mod health;
pub mod hooks;
pub mod inbound;
pub mod keys;
pub mod leads;
pub mod lite;
pub mod me;
pub mod media;
pub mod messages;
pub mod messages_batch;
pub mod openapi;
pub mod phone;
pub mod preauth;
pub mod queue;
pub mod request_id;
pub mod route_table;
pub mod status;
pub mod stream;
pub mod templates;
pub mod users;
pub mod webhook_routes;
pub mod webhooks;

use crate::context::AppContext;
use error::ApiError;
use serde::de::DeserializeOwned;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection};

/// Every route of the daemon, with JSON errors and access logs.
pub fn routes(ctx: Arc<AppContext>) -> BoxedFilter<(Response,)> {
    let api = health::routes(ctx.clone())
        .or(status::routes(ctx.clone()))
        .unify()
        .or(leads::routes(ctx.clone()))
        .unify()
        .or(phone::routes(ctx.clone()))
        .unify()
        .or(conversations::routes(ctx.clone()))
        .unify()
        .or(me::routes(ctx.clone()))
        .unify()
        .or(messages::routes(ctx.clone()))
        .unify()
        .or(messages_batch::routes(ctx.clone()))
        .unify()
        .or(lite::routes(ctx.clone()))
        .unify()
        .or(stream::routes(ctx.clone()))
        .unify()
        .or(business::routes(ctx.clone()))
        .unify()
        .or(webhooks::routes(ctx.clone()))
        .unify()
        .or(templates::routes(ctx.clone()))
        .unify()
        .or(media::routes(ctx.clone()))
        .unify()
        .or(inbound::routes(ctx.clone()))
        .unify()
        .or(keys::routes(ctx.clone()))
        .unify()
        .or(alerts::routes(ctx.clone()))
        .unify()
        .or(hooks::routes(ctx.clone()))
        .unify()
        .or(queue::routes(ctx.clone()))
        .unify()
        .or(admin::routes())
        .unify()
        .or(contacts::routes(ctx.clone()))
        .unify()
        .or(users::routes(ctx.clone()))
        .unify()
        .or(openapi::routes())
        .unify()
        .boxed();
    request_id::request_id()
        .and(api.recover(error::recover).unify())
        .map(request_id::echo)
        .with(warp::log::custom(|info| {
            let route = route_table::template(info.method().as_str(), info.path());
            request_id::observe(&info, route);
            // The route template only: query strings may carry an access token, and paths
            // phone numbers.
            tracing::info!(
                target: "sincro_whatsapp::access",
                method = %info.method(),
                route,
                status = info.status().as_u16(),
                elapsed_ms = info.elapsed().as_secs_f64() * 1000.0,
                "request"
            );
        }))
        .with(warp::trace(request_id::span))
        .map(warp::Reply::into_response)
        .boxed()
}

/// Runs a handler and turns its error into the JSON error response.
pub async fn respond<F>(fut: F) -> Response
where
    F: Future<Output = Result<Response, ApiError>>,
{
    fut.await.unwrap_or_else(ApiError::into_response)
}

/// A JSON body of at most `limit` bytes (streamed, 413 `body_too_large` as soon as it is
/// longer), parsed with a clear 400 on bad JSON.
pub fn json_body<T: DeserializeOwned + Send>(
    limit: u64,
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    capped::bytes(limit).and_then(|bytes: bytes::Bytes| async move {
        serde_json::from_slice::<T>(&bytes).map_err(|e| {
            warp::reject::custom(ApiError::bad_request(
                "invalid_body",
                format!("request body is not valid: {e}"),
            ))
        })
    })
}

/// `reply::json` with a status, as a `Response`.
pub fn json_reply<T: serde::Serialize>(status: warp::http::StatusCode, body: &T) -> Response {
    use warp::Reply;
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

pub fn with_ctx(
    ctx: Arc<AppContext>,
) -> impl Filter<Extract = (Arc<AppContext>,), Error = Infallible> + Clone {
    warp::any().map(move || ctx.clone())
}
