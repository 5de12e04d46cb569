//! The outbound API (the README's HTTP API): `POST /v1/messages` validates and queues a message
//! (202 with its id; `Idempotency-Key` honoured per user), `GET /v1/messages/{id}` shows its
//! state, attempts and last error, `POST /v1/messages/{id}/cancel` cancels one not yet
//! attempted, `GET /v1/messages/dead-letter` lists failed and uncertain ones and
//! `POST /v1/messages/{id}/requeue` sends one of them again. Message content is never logged.

use super::audit;
use super::auth::{self, Need};
use super::cursor;
use super::error::ApiError;
use super::{json_body, json_reply, respond, with_ctx};
use crate::context::AppContext;
use serde::Deserialize;
use serde_json::{Value, json};
use sincro_core::connection::ConnectionKind;
use sincro_core::net_guard::FetchError;
use sincro_core::outbound::enqueue::{self, Enqueued, NewMessage, Prior};
use sincro_core::outbound::query::{self, ChangeError, MessageView};
use sincro_core::outbound::validate::{self, Invalid};
use sincro_core::phone;
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

fn invalid(e: Invalid, status: StatusCode) -> ApiError {
    if status == StatusCode::BAD_REQUEST {
        ApiError::bad_request(e.code, e.message)
    } else {
        ApiError::unprocessable(e.code, e.message)
    }
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
        Some(k) if !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(k))
        }
        Some(_) => Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )),
    }
}

fn key_reused() -> ApiError {
    ApiError::Conflict {
        code: "idempotency_key_reused",
        message: "this Idempotency-Key was already used with a different request body".into(),
    }
}

async fn create(
    p: Principal,
    key: Option<String>,
    body: Value,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    let key = check_key(key)?;
    let req = validate::validate(&body).map_err(|e| invalid(e, StatusCode::BAD_REQUEST))?;
    let hash = enqueue::request_hash(&validate::canonical(&body));
    let mut client = ctx.pool.get().await?;
    // A repeated key answers with its first message, whatever changed since (e.g. the window).
    if let Some(k) = &key {
        match enqueue::prior(&client, p.usuario_id, k, &hash).await? {
            Prior::Same(id) => return replay(&client, &p, id).await,
            Prior::Different => return Err(key_reused()),
            Prior::None => {}
        }
    }
    let conn = enqueue::connection(&client, req.connection_id)
        .await?
        .filter(|c| c.usuario_id == p.usuario_id)
        .ok_or(ApiError::NotFound("connection"))?;
    if !conn.activo {
        return Err(ApiError::unprocessable(
            "connection_inactive",
            "this connection is disabled",
        ));
    }
    let kind = conn.kind.ok_or_else(|| {
        ApiError::unprocessable(
            "connection_unknown_kind",
            "this connection is neither a Lite session nor a Business number",
        )
    })?;
    validate::check_kind(&req, kind).map_err(|e| invalid(e, StatusCode::UNPROCESSABLE_ENTITY))?;
    if let Some(link) = req.body[&req.kind]["link"].as_str() {
        ctx.shared
            .media_fetcher
            .check_static(link)
            .map_err(|e| ApiError::unprocessable(e.code(), e.to_string()))?;
    }
    let region = ctx.shared.user_region(&client, p.usuario_id).await?;
    let phone = phone::normalize(&req.to, region.as_deref()).map_err(|e| {
        ApiError::unprocessable(
            "invalid_phone",
            format!("to is not a valid phone number ({e}); write it in E.164, e.g. +5511987654321"),
        )
    })?;
    if kind == ConnectionKind::Business {
        if let Some((name, language)) = &req.template {
            match enqueue::template_status(&client, conn.id, name, language).await? {
                Some(s) if s == "APPROVED" => {}
                Some(s) => {
                    return Err(ApiError::unprocessable(
                        "template_not_approved",
                        format!(
                            "template {name:?} ({language}) is {s}; only APPROVED templates can be sent"
                        ),
                    ));
                }
                None => {
                    return Err(ApiError::unprocessable(
                        "template_not_found",
                        format!(
                            "this number has no template {name:?} in language {language:?} (POST /v1/templates/sync to refresh)"
                        ),
                    ));
                }
            }
        } else if !enqueue::window_open(&client, p.usuario_id, conn.id, &phone.e164).await? {
            return Err(ApiError::unprocessable(
                "outside_service_window",
                "the contact has not written to this number in the last 24 hours, so WhatsApp only \
                 allows an approved template now: send type \"template\" instead",
            ));
        }
    }
    let req = media_link(&ctx, &client, &p, conn.id, kind, req).await?;
    let outcome = enqueue::enqueue(
        &mut client,
        &ctx.sealer,
        NewMessage {
            usuario_id: p.usuario_id,
            region,
            connection_id: conn.id,
            phone: &phone,
            req: &req,
            idempotency: key.as_deref().map(|k| (k, hash.as_slice())),
            max_attempts: ctx.shared.settings.outbound.max_attempts,
        },
    )
    .await?;
    match outcome {
        Enqueued::Created { message_id, .. } => {
            tracing::info!(
                user_id = %p.usuario_id,
                action = "message.queue",
                message_id = %message_id,
                connection_id = %conn.id,
                kind = %req.kind,
                "message queued"
            );
            let view = query::get(&client, p.usuario_id, message_id)
                .await?
                .ok_or_else(|| ApiError::internal("queued message not found"))?;
            Ok(audit::note(
                accepted(&view, false),
                message_id,
                json!({"connection_id": conn.id, "type": req.kind.to_string()}),
            ))
        }
        Enqueued::Existing(id) => replay(&client, &p, id).await,
        Enqueued::KeyReused => Err(key_reused()),
    }
}

/// A media `link` goes through the SSRF guard ([`sincro_core::net_guard`]), refused with
/// 422 `link_not_allowed` when it points at a non-public address. Lite sessions send files
/// themselves, so for them the link is fetched now, through the guard (resolved, every
/// address and every redirect checked, 16 MB, 30 s), and stored sealed like an upload: the
/// queued message names the stored file, and no link is fetched later at send time. Business
/// numbers pass the link to Meta, which fetches it: only the URL itself is checked.
async fn media_link(
    ctx: &AppContext,
    client: &deadpool_postgres::Client,
    p: &Principal,
    connection_id: Uuid,
    kind: ConnectionKind,
    mut req: validate::SendRequest,
) -> Result<validate::SendRequest, ApiError> {
    let media_kind = req.kind.clone();
    let Some(link) = req.body[&media_kind]["link"].as_str().map(String::from) else {
        return Ok(req);
    };
    let refused = |e: FetchError| ApiError::unprocessable(e.code(), e.to_string());
    let fetcher = &ctx.shared.media_fetcher;
    if kind != ConnectionKind::Lite {
        // Checked with the request already (see `create`).
        return Ok(req);
    }
    let fetched = fetcher.fetch(&link).await.map_err(refused)?;
    if fetched.bytes.is_empty() {
        return Err(ApiError::unprocessable(
            "link_unavailable",
            "the media link answered an empty file",
        ));
    }
    let mime = fetched
        .mime_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".into());
    let filename = req.body[&media_kind]["filename"].as_str().map(String::from);
    let row = sincro_core::media_store::store(
        client,
        &ctx.sealer,
        &ctx.config.data_dir,
        sincro_core::media_store::NewMedia {
            usuario_id: p.usuario_id,
            connection_id: Some(connection_id),
            direction: "outbound",
            mime_type: &mime,
            filename: filename.as_deref(),
            provider_id: None,
            message_id: None,
        },
        &fetched.bytes,
    )
    .await
    .map_err(super::business::business_error)?;
    let obj = req.body[&media_kind]
        .as_object_mut()
        .ok_or_else(|| ApiError::internal("validated media is not an object"))?;
    obj.remove("link");
    obj.insert("id".into(), json!(row.id));
    Ok(req)
}

async fn replay(
    client: &deadpool_postgres::Client,
    p: &Principal,
    id: Uuid,
) -> Result<Response, ApiError> {
    let view = query::get(client, p.usuario_id, id)
        .await?
        .ok_or(ApiError::NotFound("message"))?;
    Ok(audit::note(
        accepted(&view, true),
        id,
        json!({"idempotent_replay": true}),
    ))
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
    let limit = cursor::limit(q.limit)?;
    let after = q.cursor.as_deref().map(cursor::decode).transpose()?;
    let client = ctx.pool.get().await?;
    let rows =
        query::dead_letters(&client, p.usuario_id, q.connection_id, after, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    let page = &rows[..rows.len().min(limit as usize)];
    let next = more.then(|| {
        let (view, at) = page.last().expect("non-empty");
        cursor::encode(*at, view.id)
    });
    let items: Vec<&MessageView> = page.iter().map(|(v, _)| v).collect();
    Ok(json_reply(
        StatusCode::OK,
        &json!({"items": items, "next_cursor": next}),
    ))
}
