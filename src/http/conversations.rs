//! `GET /v1/conversations` (newest first, `?connection_id=`, `?lead_id=`) and
//! `GET /v1/conversations/{id}/messages` (bodies opened, newest first). Cursor-paginated and
//! scoped to the key's user.

use super::auth::{self, Need};
use super::cursor;
use super::error::ApiError;
use super::{respond, with_ctx};
use crate::context::AppContext;
use serde::Deserialize;
use serde_json::{Value, json};
use sincro_core::store::api_keys::Principal;
use sincro_core::store::conversations::{self, Conversation, Message};
use std::sync::Arc;
use uuid::Uuid;
use warp::Filter;
use warp::reply::Response;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationQuery {
    connection_id: Option<Uuid>,
    lead_id: Option<Uuid>,
    cursor: Option<String>,
    limit: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    cursor: Option<String>,
    limit: Option<u32>,
}

pub fn routes(ctx: Arc<AppContext>) -> warp::filters::BoxedFilter<(Response,)> {
    let list = warp::path!("v1" / "conversations")
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::Read))
        .and(warp::query::<ConversationQuery>())
        .and(with_ctx(ctx.clone()))
        .then(|p, q, ctx| respond(list(p, q, ctx)));
    let messages = warp::path!("v1" / "conversations" / Uuid / "messages")
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::Read))
        .and(warp::query::<PageQuery>())
        .and(with_ctx(ctx))
        .then(|id, p, q, ctx| respond(messages(id, p, q, ctx)));
    list.or(messages).unify().boxed()
}

async fn list(
    p: Principal,
    q: ConversationQuery,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    let (limit, after) = cursor::request(q.limit, q.cursor.as_deref())?;
    let client = ctx.pool.get().await?;
    let rows = conversations::list(
        &client,
        p.usuario_id,
        q.connection_id,
        q.lead_id,
        after,
        limit + 1,
    )
    .await?;
    Ok(cursor::page(
        rows,
        limit,
        |c| (c.created_at, c.id),
        conversation_json,
    ))
}

async fn messages(
    conversation: Uuid,
    p: Principal,
    q: PageQuery,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    let (limit, after) = cursor::request(q.limit, q.cursor.as_deref())?;
    let client = ctx.pool.get().await?;
    let rows = conversations::messages(
        &client,
        &ctx.sealer,
        p.usuario_id,
        conversation,
        after,
        limit + 1,
    )
    .await?;
    Ok(cursor::page(
        rows,
        limit,
        |m| (m.created_at, m.id),
        message_json,
    ))
}

fn conversation_json(c: Conversation) -> Value {
    json!({
        "id": c.id,
        "lead_id": c.lead_id,
        "connection_id": c.connection_id,
        "tipo": c.tipo,
        "remitente": c.remitente,
        "servicio_origen": c.servicio_origen,
        "metadata": c.metadata,
        "last_inbound_at": c.last_inbound_at.map(cursor::rfc3339),
        "last_message_at": c.last_message_at.map(cursor::rfc3339),
        "created_at": cursor::rfc3339(c.created_at),
        "updated_at": cursor::rfc3339(c.updated_at),
    })
}

fn message_json(m: Message) -> Value {
    json!({
        "id": m.id,
        "tipo": m.tipo,
        "contenido": m.contenido,
        "payload": m.payload,
        "remitente": m.remitente,
        "direccion": m.direccion,
        "external_id": m.external_id,
        "estado": m.estado,
        "error": m.error,
        "metadata": m.metadata,
        "created_at": cursor::rfc3339(m.created_at),
        "updated_at": m.updated_at.map(cursor::rfc3339),
    })
}
