//! Alerts: `GET /v1/alerts?state=open|resolved|all` lists them newest first (a user its own,
//! an admin every one, system alerts included), cursor-paginated like the other listings but
//! under `alerts`; `POST /v1/alerts/{id}/ack` records that a person has seen one (it stays
//! open until its condition clears).

use super::audit;
use super::auth::{self, Need};
use super::cursor;
use super::error::ApiError;
use super::{json_reply, respond, with_ctx};
use crate::context::AppContext;
use serde::Deserialize;
use sincro_core::alerts::{self, StateFilter};
use sincro_core::store::api_keys::Principal;
use std::sync::Arc;
use uuid::Uuid;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `open` (default), `resolved` or `all`.
    state: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

pub fn routes(ctx: Arc<AppContext>) -> warp::filters::BoxedFilter<(Response,)> {
    let list = warp::path!("v1" / "alerts")
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::Read))
        .and(warp::query::<ListQuery>())
        .and(with_ctx(ctx.clone()))
        .then(|p, q, ctx| respond(list(p, q, ctx)));
    let ack = warp::path!("v1" / "alerts" / Uuid / "ack")
        .and(warp::post())
        .and(auth::principal(ctx.clone(), Need::Read))
        .and(with_ctx(ctx))
        .then(|id: Uuid, p: Principal, ctx: Arc<AppContext>| {
            audit::respond(
                ctx.clone(),
                p.clone(),
                "alert.ack",
                Some(id.to_string()),
                ack(id, p, ctx),
            )
        });
    list.or(ack).unify().boxed()
}

async fn list(p: Principal, q: ListQuery, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let state = StateFilter::parse(q.state.as_deref()).ok_or_else(|| {
        ApiError::bad_request("invalid_state", "state must be open, resolved or all")
    })?;
    let (limit, after) = cursor::request(q.limit, q.cursor.as_deref())?;
    let client = ctx.pool.get().await?;
    let rows = alerts::lifecycle::list(&client, p.scope(), state, after, limit + 1).await?;
    Ok(cursor::page_named(
        "alerts",
        rows,
        limit,
        |a| (a.created_at, a.id),
        |a| a,
    ))
}

async fn ack(id: Uuid, p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let client = ctx.pool.get().await?;
    let alert = alerts::ack(&client, p.scope(), id, p.usuario_id).await?;
    Ok(json_reply(StatusCode::OK, &alert))
}
