//! `GET /v1/conversations` (newest first, `?connection_id=`, `?lead_id=`) and
//! `GET /v1/conversations/{id}/messages` (bodies opened, newest first). Cursor-paginated and
//! scoped to the key's user.

use super::auth::{self, Need};
use super::cursor;
use super::error::ApiError;
use super::{json_reply, respond, with_ctx};
use crate::context::AppContext;
use serde::Deserialize;
use serde_json::{Value, json};
use sincro_core::seal::Purpose;
use sincro_core::store::api_keys::Principal;
use std::sync::Arc;
use time::OffsetDateTime;
use uuid::Uuid;
use warp::Filter;
use warp::http::StatusCode;
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

fn page_bounds(cursor: Option<&str>) -> Result<(Option<OffsetDateTime>, Option<Uuid>), ApiError> {
    Ok(match cursor.map(cursor::decode).transpose()? {
        Some((at, id)) => (Some(at), Some(id)),
        None => (None, None),
    })
}

async fn list(
    p: Principal,
    q: ConversationQuery,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    let limit = cursor::limit(q.limit)?;
    let (after_at, after_id) = page_bounds(q.cursor.as_deref())?;
    let client = ctx.pool.get().await?;
    let rows = client
        .query(
            "SELECT id, lead_id, connection_id, tipo, remitente, servicio_origen, metadata,
                    last_inbound_at, last_message_at, created_at, updated_at
             FROM conversaciones
             WHERE usuario_id = $1
               AND ($2::uuid IS NULL OR connection_id = $2)
               AND ($3::uuid IS NULL OR lead_id = $3)
               AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5))
             ORDER BY created_at DESC, id DESC
             LIMIT $6",
            &[
                &p.usuario_id,
                &q.connection_id,
                &q.lead_id,
                &after_at,
                &after_id,
                &(limit + 1),
            ],
        )
        .await?;
    let more = rows.len() as i64 > limit;
    let page = &rows[..rows.len().min(limit as usize)];
    let items: Vec<Value> = page
        .iter()
        .map(|r| {
            json!({
                "id": r.get::<_, Uuid>("id"),
                "lead_id": r.get::<_, Option<Uuid>>("lead_id"),
                "connection_id": r.get::<_, Option<Uuid>>("connection_id"),
                "tipo": r.get::<_, Option<String>>("tipo"),
                "remitente": r.get::<_, Option<String>>("remitente"),
                "servicio_origen": r.get::<_, String>("servicio_origen"),
                "metadata": r.get::<_, Value>("metadata"),
                "last_inbound_at": r.get::<_, Option<OffsetDateTime>>("last_inbound_at").map(cursor::rfc3339),
                "last_message_at": r.get::<_, Option<OffsetDateTime>>("last_message_at").map(cursor::rfc3339),
                "created_at": cursor::rfc3339(r.get("created_at")),
                "updated_at": cursor::rfc3339(r.get("updated_at")),
            })
        })
        .collect();
    let next = more.then(|| {
        let last = page.last().expect("non-empty");
        cursor::encode(last.get("created_at"), last.get("id"))
    });
    Ok(json_reply(
        StatusCode::OK,
        &json!({"items": items, "next_cursor": next}),
    ))
}

async fn messages(
    conversation: Uuid,
    p: Principal,
    q: PageQuery,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    let limit = cursor::limit(q.limit)?;
    let (after_at, after_id) = page_bounds(q.cursor.as_deref())?;
    let client = ctx.pool.get().await?;
    client
        .query_opt(
            "SELECT 1 FROM conversaciones WHERE id = $1 AND usuario_id = $2",
            &[&conversation, &p.usuario_id],
        )
        .await?
        .ok_or(ApiError::NotFound("conversation"))?;
    let rows = client
        .query(
            "SELECT id, tipo, contenido, remitente, direccion, external_id, estado, error, metadata,
                    created_at, updated_at
             FROM mensajes_conversacion
             WHERE conversacion_id = $1
               AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
             ORDER BY created_at DESC, id DESC
             LIMIT $4",
            &[&conversation, &after_at, &after_id, &(limit + 1)],
        )
        .await?;
    let more = rows.len() as i64 > limit;
    let page = &rows[..rows.len().min(limit as usize)];
    let mut items = Vec::with_capacity(page.len());
    for r in page {
        let sealed: Option<String> = r.get("contenido");
        let contenido = sealed.map(|s| open_or_mark(&ctx, &s));
        let mut metadata: Value = r.get("metadata");
        let payload = metadata
            .as_object_mut()
            .and_then(|m| m.remove("payload_sealed"))
            .and_then(|v| v.as_str().map(|s| open_or_mark(&ctx, s)))
            .map(|text| serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)));
        items.push(json!({
            "id": r.get::<_, Uuid>("id"),
            "tipo": r.get::<_, String>("tipo"),
            "contenido": contenido,
            "payload": payload,
            "remitente": r.get::<_, Option<String>>("remitente"),
            "direccion": r.get::<_, Option<String>>("direccion"),
            "external_id": r.get::<_, Option<String>>("external_id"),
            "estado": r.get::<_, Option<String>>("estado"),
            "error": r.get::<_, Option<String>>("error"),
            "metadata": metadata,
            "created_at": cursor::rfc3339(r.get("created_at")),
            "updated_at": r.get::<_, Option<OffsetDateTime>>("updated_at").map(cursor::rfc3339),
        }));
    }
    let next = more.then(|| {
        let last = page.last().expect("non-empty");
        cursor::encode(last.get("created_at"), last.get("id"))
    });
    Ok(json_reply(
        StatusCode::OK,
        &json!({"items": items, "next_cursor": next}),
    ))
}

/// Opens a sealed body; a value this daemon cannot open (foreign key, CRM plaintext) is
/// returned as stored only when it was never sealed, else marked unreadable.
fn open_or_mark(ctx: &AppContext, value: &str) -> String {
    if !sincro_core::seal::Sealer::looks_sealed(value) {
        return value.to_string();
    }
    ctx.sealer
        .open_str(Purpose::MessageBody, value)
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "a stored message body does not open");
            "[unreadable]".to_string()
        })
}
