//! `GET /v1/leads` (newest first, `?phone=` and `?source=` filters, cursor-paginated) and `GET /v1/leads/{id}`.
//! Scoped to the key's user: another user's lead is a 404, never a 403.

use super::audit;
use super::auth::{self, Need};
use super::cursor;
use super::error::ApiError;
use super::{json_reply, respond, with_ctx};
use crate::context::AppContext;
use serde::Deserialize;
use serde_json::{Value, json};
use sincro_core::leads::query::{self, Lead};
use sincro_core::store::api_keys::Principal;
use std::sync::Arc;
use uuid::Uuid;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadQuery {
    phone: Option<String>,
    /// Leads whose first touch was this source (`click_to_whatsapp`, `wa_me`, `direct`).
    source: Option<String>,
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

fn lead_json(lead: &Lead) -> Value {
    json!({
        "id": lead.id,
        "nombre": lead.nombre,
        "telefono": lead.telefono,
        "email": lead.email,
        "origen": lead.origen,
        "metadata": lead.metadata,
        "merged_into": lead.merged_into,
        "created_at": cursor::rfc3339(lead.created_at),
        "updated_at": cursor::rfc3339(lead.updated_at),
    })
}

async fn list(p: Principal, q: LeadQuery, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let (limit, after) = cursor::request(q.limit, q.cursor.as_deref())?;
    let client = ctx.pool.get().await?;
    let rows = query::list(
        &client,
        p.usuario_id,
        q.phone.as_deref(),
        q.source.as_deref(),
        ctx.shared.settings.default_region.as_deref(),
        after,
        limit + 1,
    )
    .await?;
    Ok(cursor::page(
        rows,
        limit,
        |l| (l.created_at, l.id),
        |l| lead_json(&l),
    ))
}

async fn get(id: Uuid, p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let lead = query::get(&ctx.pool.get().await?, p.usuario_id, id).await?;
    Ok(json_reply(StatusCode::OK, &lead_json(&lead)))
}

/// Merges the user's leads whose phones are one number (LeadSync).
async fn merge(p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let merged = ctx
        .actors
        .children
        .lead_sync_handle()
        .merge_duplicates(p.usuario_id)
        .await?;
    let resp = json_reply(StatusCode::OK, &json!({"merged": merged}));
    Ok(audit::note(resp, p.usuario_id, json!({"merged": merged})))
}
