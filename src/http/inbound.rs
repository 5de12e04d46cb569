//! Inbound dead letters: `GET /v1/inbound/dead-letter` lists the inbound items that could not
//! be stored, with their reason (a user sees its own; an admin every one, including items that
//! name no connection here, such as a change signed for another tenant's number);
//! `?state=all` includes replayed ones. `POST /v1/inbound/{id}/replay` drains the item's inbox
//! row again once the cause is fixed (202); an item that fails again leaves a new letter.

use super::audit;
use super::auth::{self, Need};
use super::cursor;
use super::error::ApiError;
use super::{json_reply, respond, with_ctx};
use crate::context::AppContext;
use serde::Deserialize;
use serde_json::json;
use sincro_core::ingest::dead_letter;
use sincro_core::ingest::inbox;
use sincro_core::store::api_keys::Principal;
use std::sync::Arc;
use uuid::Uuid;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `open` (default) or `all`.
    state: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

pub fn routes(ctx: Arc<AppContext>) -> warp::filters::BoxedFilter<(Response,)> {
    let list = warp::path!("v1" / "inbound" / "dead-letter")
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::Read))
        .and(warp::query::<ListQuery>())
        .and(with_ctx(ctx.clone()))
        .then(|p, q, ctx| respond(list(p, q, ctx)));
    let replay = warp::path!("v1" / "inbound" / Uuid / "replay")
        .and(warp::post())
        .and(auth::principal(ctx.clone(), Need::Send))
        .and(with_ctx(ctx))
        .then(|id: Uuid, p: Principal, ctx: Arc<AppContext>| {
            audit::respond(
                ctx.clone(),
                p.clone(),
                "inbound.replay",
                Some(id.to_string()),
                replay(id, p, ctx),
            )
        });
    list.or(replay).unify().boxed()
}

async fn list(p: Principal, q: ListQuery, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let include_replayed = match q.state.as_deref() {
        None | Some("open") => false,
        Some("all") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_state",
                "state must be open or all",
            ));
        }
    };
    let (limit, after) = cursor::request(q.limit, q.cursor.as_deref())?;
    let client = ctx.pool.get().await?;
    let rows = dead_letter::list(&client, p.scope(), include_replayed, after, limit + 1).await?;
    Ok(cursor::page(rows, limit, |r| (r.created_at, r.id), |r| r))
}

async fn replay(id: Uuid, p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let mut client = ctx.pool.get().await?;
    let inbox_id = dead_letter::replay(&mut client, p.scope(), id).await?;
    inbox::wake(&ctx.shared);
    Ok(json_reply(
        StatusCode::ACCEPTED,
        &json!({"id": id, "state": "replaying", "inbox_id": inbox_id}),
    ))
}
