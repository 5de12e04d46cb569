//! `POST /v1/messages/batch` (the README's HTTP API): up to 1,000 messages queued in one
//! transaction, answered with one result per message in the request's order, each carrying
//! the status and body `POST /v1/messages` would have answered for it alone. Valid messages
//! are queued even when others are refused; a body that is not a batch queues nothing.
//! Message content is never logged.

use super::audit;
use super::auth::{self, Need};
use super::error::ApiError;
use super::messages::submit_context;
use super::{json_body, json_reply, with_ctx};
use crate::context::AppContext;
use serde_json::{Value, json};
use sincro_core::outbound::batch;
use sincro_core::outbound::submit::{SubmitError, Submitted};
use sincro_core::store::api_keys::Principal;
use std::sync::Arc;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

pub fn routes(ctx: Arc<AppContext>) -> warp::filters::BoxedFilter<(Response,)> {
    let limit = ctx.config.max_body_bytes;
    warp::path!("v1" / "messages" / "batch")
        .and(warp::post())
        .and(auth::principal(ctx.clone(), Need::Send))
        .and(json_body::<Value>(limit))
        .and(with_ctx(ctx))
        .then(|p: Principal, body, ctx: Arc<AppContext>| {
            audit::respond(
                ctx.clone(),
                p.clone(),
                "message.queue_batch",
                None,
                create(p, body, ctx),
            )
        })
        .boxed()
}

async fn create(p: Principal, body: Value, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let daemon = submit_context(&ctx);
    let done = batch::submit_batch(&ctx.pool, &daemon, p.usuario_id, body).await?;
    let (mut queued, mut replayed, mut refused) = (0usize, 0usize, 0usize);
    let results: Vec<Value> = done
        .into_iter()
        .enumerate()
        .map(|(index, r)| match r {
            Ok(Submitted::Queued { view, .. }) => {
                queued += 1;
                json!({"index": index, "status": 202, "message": view})
            }
            Ok(Submitted::Replayed(view)) => {
                replayed += 1;
                json!({"index": index, "status": 202, "replayed": true, "message": view})
            }
            Err(e) => {
                refused += 1;
                refusal(index, e)
            }
        })
        .collect();
    tracing::info!(
        user_id = %p.usuario_id,
        action = "message.queue_batch",
        queued,
        replayed,
        refused,
        "message batch queued"
    );
    Ok(audit::note(
        json_reply(StatusCode::OK, &json!({ "results": results })),
        "batch",
        json!({"queued": queued, "replayed": replayed, "refused": refused}),
    ))
}

/// One refused message: the status and error `POST /v1/messages` would have answered.
fn refusal(index: usize, e: SubmitError) -> Value {
    let e = ApiError::from(e);
    if let ApiError::Internal(cause) = &e {
        tracing::error!(cause = %cause, index, "internal error on a batch item");
    }
    json!({
        "index": index,
        "status": e.status().as_u16(),
        "error": {"code": e.code(), "message": e.to_string()},
    })
}
