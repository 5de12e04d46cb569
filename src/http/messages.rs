//! The outbound API (the README's HTTP API): `POST /v1/messages` validates and queues a message
//! (202 with its id; `Idempotency-Key` honoured per user), `GET /v1/messages/{id}` shows its
//! state, attempts and last error, `POST /v1/messages/{id}/cancel` cancels one not yet
//! attempted, `GET /v1/messages/dead-letter` lists failed and uncertain ones and
//! `POST /v1/messages/{id}/requeue` sends one of them again (`POST /v1/messages/batch`, the
//! same path for many messages, is `messages_batch.rs`). Message content is never logged.

use super::audit;
use super::auth::{self, Need};
use super::cursor;
use super::error::ApiError;
use super::{json_body, json_reply, respond, with_ctx};
use crate::context::AppContext;
use serde::Deserialize;
use serde_json::{Value, json};
use sincro_core::outbound::batch;
use sincro_core::outbound::query::{self, ChangeError, MessageView};
use sincro_core::outbound::submit::{self, Request, Submit, Submitted};
use sincro_core::store::api_keys::Principal;
use std::sync::Arc;
use uuid::Uuid;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQuery {
    connection_id: Option<Uuid>,
    cursor: Option<String>,
    limit: Option<u32>,
}

pub fn routes(ctx: Arc<AppContext>) -> warp::filters::BoxedFilter<(Response,)> {
    let limit = ctx.config.max_body_bytes;
    let create = warp::path!("v1" / "messages")
        .and(warp::post())
        .and(auth::principal(ctx.clone(), Need::Send))
        .and(warp::header::optional::<String>("idempotency-key"))
        .and(json_body::<Value>(limit))
        .and(with_ctx(ctx.clone()))
        .then(|p: Principal, key, body, ctx: Arc<AppContext>| {
            audit::respond(
                ctx.clone(),
                p.clone(),
                "message.queue",
                None,
                create(p, key, body, ctx),
            )
        });
    let dead = warp::path!("v1" / "messages" / "dead-letter")
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::Read))
        .and(warp::query::<DeadLetterQuery>())
        .and(with_ctx(ctx.clone()))
        .then(|p, q, ctx| respond(dead_letters(p, q, ctx)));
    let one = warp::path!("v1" / "messages" / Uuid)
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::Read))
        .and(with_ctx(ctx.clone()))
        .then(|id, p, ctx| respond(get(id, p, ctx)));
    let cancel = warp::path!("v1" / "messages" / Uuid / "cancel")
        .and(warp::post())
        .and(auth::principal(ctx.clone(), Need::Send))
        .and(with_ctx(ctx.clone()))
        .then(|id: Uuid, p: Principal, ctx: Arc<AppContext>| {
            audit::respond(
                ctx.clone(),
                p.clone(),
                "message.cancel",
                Some(id.to_string()),
                change(id, p, ctx, Change::Cancel),
            )
        });
    let requeue = warp::path!("v1" / "messages" / Uuid / "requeue")
        .and(warp::post())
        .and(auth::principal(ctx.clone(), Need::Send))
        .and(with_ctx(ctx))
        .then(|id: Uuid, p: Principal, ctx: Arc<AppContext>| {
            audit::respond(
                ctx.clone(),
                p.clone(),
                "message.requeue",
                Some(id.to_string()),
                change(id, p, ctx, Change::Requeue),
            )
        });
    create
        .or(dead)
        .unify()
        .or(one)
        .unify()
        .or(cancel)
        .unify()
        .or(requeue)
        .unify()
        .boxed()
}

fn accepted(view: &MessageView, replayed: bool) -> Response {
    let mut response = json_reply(StatusCode::ACCEPTED, view);
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", "true".parse().expect("ascii"));
    }
    response
}

/// An `Idempotency-Key`: 1 to 255 visible ASCII characters.
fn check_key(key: Option<String>) -> Result<Option<String>, ApiError> {
    match key {
        None => Ok(None),
        Some(k) if batch::key_ok(&k) => Ok(Some(k)),
        Some(_) => Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )),
    }
}

/// What submitting a message needs from the daemon (single or batch).
pub(super) fn submit_context(ctx: &AppContext) -> Submit<'_> {
    Submit {
        sealer: &ctx.sealer,
        fetcher: &ctx.shared.media_fetcher,
        data_dir: &ctx.config.data_dir,
        default_region: ctx.config.default_region.as_deref(),
        max_attempts: ctx.shared.settings.outbound.max_attempts,
    }
}

async fn create(
    p: Principal,
    key: Option<String>,
    body: Value,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    let key = check_key(key)?;
    let daemon = submit_context(&ctx);
    let request = Request {
        usuario_id: p.usuario_id,
        body: &body,
        idempotency_key: key.as_deref(),
    };
    match submit::submit(&ctx.pool, &daemon, request).await? {
        Submitted::Queued {
            view,
            connection_id,
            kind,
        } => {
            tracing::info!(
                user_id = %p.usuario_id,
                action = "message.queue",
                message_id = %view.id,
                connection_id = %connection_id,
                kind = %kind,
                "message queued"
            );
            Ok(audit::note(
                accepted(&view, false),
                view.id,
                json!({"connection_id": connection_id, "type": kind}),
            ))
        }
        Submitted::Replayed(view) => Ok(audit::note(
            accepted(&view, true),
            view.id,
            json!({"idempotent_replay": true}),
        )),
    }
}

async fn get(id: Uuid, p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let client = ctx.pool.get().await?;
    let view = query::get(&client, p.usuario_id, id)
        .await?
        .ok_or(ApiError::NotFound("message"))?;
    Ok(json_reply(StatusCode::OK, &view))
}

enum Change {
    Cancel,
    Requeue,
}

async fn change(
    id: Uuid,
    p: Principal,
    ctx: Arc<AppContext>,
    what: Change,
) -> Result<Response, ApiError> {
    let mut client = ctx.pool.get().await?;
    let result = match what {
        Change::Cancel => query::cancel(&mut client, &ctx.sealer, p.usuario_id, id).await,
        Change::Requeue => query::requeue(&mut client, &ctx.sealer, p.usuario_id, id).await,
    };
    match result {
        Ok(view) => {
            tracing::info!(user_id = %p.usuario_id, message_id = %id, action = match what {
                Change::Cancel => "message.cancel",
                Change::Requeue => "message.requeue",
            }, "message changed");
            Ok(json_reply(StatusCode::OK, &view))
        }
        Err(ChangeError::NotFound) => Err(ApiError::NotFound("message")),
        Err(ChangeError::Refused(message)) => Err(ApiError::Conflict {
            code: match what {
                Change::Cancel => "not_cancellable",
                Change::Requeue => "not_requeueable",
            },
            message,
        }),
        Err(ChangeError::Store(e)) => Err(ApiError::internal(e)),
    }
}

async fn dead_letters(
    p: Principal,
    q: DeadLetterQuery,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    let (limit, after) = cursor::request(q.limit, q.cursor.as_deref())?;
    let client = ctx.pool.get().await?;
    let rows =
        query::dead_letters(&client, p.usuario_id, q.connection_id, after, limit + 1).await?;
    Ok(cursor::page(rows, limit, |(v, at)| (*at, v.id), |(v, _)| v))
}
