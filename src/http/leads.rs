//! `GET /v1/leads` (newest first, `?phone=` filter, cursor-paginated) and `GET /v1/leads/{id}`.
//! Scoped to the key's user: another user's lead is a 404, never a 403.

use super::audit;
use super::auth::{self, Need};
use super::cursor;
use super::error::ApiError;
use super::{json_reply, respond, with_ctx};
use crate::context::AppContext;
use serde::Deserialize;
use serde_json::{Value, json};
use sincro_core::phone;
use sincro_core::store::api_keys::Principal;
use std::sync::Arc;
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadQuery {
    phone: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

pub fn routes(ctx: Arc<AppContext>) -> warp::filters::BoxedFilter<(Response,)> {
    let list = warp::path!("v1" / "leads")
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::Read))
        .and(warp::query::<LeadQuery>())
        .and(with_ctx(ctx.clone()))
        .then(|p, q, ctx| respond(list(p, q, ctx)));
    let one = warp::path!("v1" / "leads" / Uuid)
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::Read))
        .and(with_ctx(ctx.clone()))
        .then(|id, p, ctx| respond(get(id, p, ctx)));
    let merge = warp::path!("v1" / "leads" / "merge-duplicates")
        .and(warp::post())
        .and(auth::principal(ctx.clone(), Need::Send))
        .and(with_ctx(ctx))
        .then(|p: Principal, ctx: Arc<AppContext>| {
            audit::respond(
                ctx.clone(),
                p.clone(),
                "lead.merge_duplicates",
                None,
                merge(p, ctx),
            )
        });
    list.or(one).unify().or(merge).unify().boxed()
}

const COLUMNS: &str =
    "id, nombre, telefono, email, origen, metadata, merged_into, created_at, updated_at";

fn lead_json(row: &Row) -> Value {
    json!({
        "id": row.get::<_, Uuid>("id"),
        "nombre": row.get::<_, Option<String>>("nombre"),
        "telefono": row.get::<_, Option<String>>("telefono"),
        "email": row.get::<_, Option<String>>("email"),
        "origen": row.get::<_, Option<String>>("origen"),
        "metadata": row.get::<_, Value>("metadata"),
        "merged_into": row.get::<_, Option<Uuid>>("merged_into"),
        "created_at": cursor::rfc3339(row.get("created_at")),
        "updated_at": cursor::rfc3339(row.get("updated_at")),
    })
}

async fn list(p: Principal, q: LeadQuery, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let limit = cursor::limit(q.limit)?;
    let after = q.cursor.as_deref().map(cursor::decode).transpose()?;
    let client = ctx.pool.get().await?;
    let phone = match q.phone.as_deref() {
        None => None,
        Some(raw) => {
            let region = ctx.shared.user_region(&client, p.usuario_id).await?;
            let n = phone::normalize(raw, region.as_deref())
                .map_err(|e| ApiError::unprocessable("invalid_phone", e.to_string()))?;
            // Leads are keyed by the contact key (WhatsApp's spellings folded in).
            Some(phone::contact_key(&n.e164, None).key)
        }
    };
    let (after_at, after_id) = match after {
        Some((at, id)) => (Some(at), Some(id)),
        None => (None, None),
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM leads
         WHERE usuario_id = $1
           AND ($2::text IS NULL OR telefono = $2)
           AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))
         ORDER BY created_at DESC, id DESC
         LIMIT $5"
    );
    let rows = client
        .query(
            &sql,
            &[&p.usuario_id, &phone, &after_at, &after_id, &(limit + 1)],
        )
        .await?;
    let more = rows.len() as i64 > limit;
    let page = &rows[..rows.len().min(limit as usize)];
    let next = more.then(|| {
        let last = page.last().expect("non-empty page");
        cursor::encode(last.get::<_, OffsetDateTime>("created_at"), last.get("id"))
    });
    let items: Vec<Value> = page.iter().map(lead_json).collect();
    Ok(json_reply(
        StatusCode::OK,
        &json!({"items": items, "next_cursor": next}),
    ))
}

async fn get(id: Uuid, p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let client = ctx.pool.get().await?;
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM leads WHERE id = $1 AND usuario_id = $2"),
            &[&id, &p.usuario_id],
        )
        .await?
        .ok_or(ApiError::NotFound("lead"))?;
    Ok(json_reply(StatusCode::OK, &lead_json(&row)))
}

/// Merges the user's leads whose phones are one number (LeadSync).
async fn merge(p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    use sincro_core::leads::sync::LeadSyncMessage;
    let lead_sync = ctx
        .actors
        .children
        .lead_sync
        .get()
        .ok_or_else(|| ApiError::Unavailable("lead sync is restarting; retry".into()))?;
    let asked = lead_sync
        .call(
            |reply| LeadSyncMessage::MergeDuplicates {
                usuario_id: p.usuario_id,
                reply,
            },
            Some(std::time::Duration::from_secs(30)),
        )
        .await
        .map_err(ApiError::internal)?;
    match asked {
        ractor::rpc::CallResult::Success(Ok(merged)) => {
            let mut resp = json_reply(StatusCode::OK, &json!({"merged": merged}));
            resp = audit::note(resp, p.usuario_id, json!({"merged": merged}));
            Ok(resp)
        }
        ractor::rpc::CallResult::Success(Err(e)) => Err(ApiError::internal(e)),
        _ => Err(ApiError::Unavailable(
            "lead sync did not answer in time".into(),
        )),
    }
}
