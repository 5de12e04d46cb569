//! Lite sessions (the README's HTTP API): `POST/GET /v1/lite/sessions`, `GET/DELETE
//! /v1/lite/sessions/{id}` (`?logout=true` unlinks the device and wipes the profile),
//! `GET /v1/lite/sessions/{id}/qr` (the raw string) and `qr.png` / `qr.svg`, and
//! `POST /v1/lite/sessions/{id}/pairing-code`. Another user's session is a 404.
//!
//! The tables are the source of truth for what the API shows (statuses, the QR being shown);
//! the LiteSupervisor is asked only to start, stop or reach a session's actor.

use super::audit;
use super::auth::{self, Need};
use super::error::ApiError;
use super::{json_body, json_reply, respond, with_ctx};
use crate::context::AppContext;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use sincro_core::connection::ConnectionKind;
use sincro_core::lite::store::{self, SessionRow};
use sincro_core::lite::{LiteSupervisorError, LiteSupervisorHandle, login, qr};
use sincro_core::nodes::ownership::Ownership;
use sincro_core::store::api_keys::Principal;
use sincro_core::store::users;
use std::sync::Arc;
use uuid::Uuid;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    /// A label for the session (shown in lists).
    name: Option<String>,
    /// Start an existing STOPPED or FAILED session again instead of creating one.
    id: Option<Uuid>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    logout: Option<bool>,
}

/// Parsed here rather than by warp's query filter, whose rejection would lose to the other
/// routes' 405 and never reach the client as a 400.
fn delete_query(raw: &str) -> Result<DeleteQuery, ApiError> {
    let mut logout = None;
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match (k, v) {
            ("logout", "true" | "1") => logout = Some(true),
            ("logout", "false" | "0") => logout = Some(false),
            ("logout", other) => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("logout must be true or false, not {other:?}"),
                ));
            }
            (other, _) => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("unknown query parameter {other:?}"),
                ));
            }
        }
    }
    Ok(DeleteQuery { logout })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairingRequest {
    phone: String,
}

pub fn routes(ctx: Arc<AppContext>) -> warp::filters::BoxedFilter<(Response,)> {
    let limit = ctx.config.max_body_bytes;
    let create = warp::path!("v1" / "lite" / "sessions")
        .and(warp::post())
        .and(auth::principal(ctx.clone(), Need::Sessions))
        .and(optional_json::<NewSession>(limit))
        .and(with_ctx(ctx.clone()))
        .then(|p: Principal, body, ctx: Arc<AppContext>| {
            audit::respond(
                ctx.clone(),
                p.clone(),
                "lite.session.start",
                None,
                create(p, body, ctx),
            )
        });
    let list = warp::path!("v1" / "lite" / "sessions")
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::ReadOrSessions))
        .and(with_ctx(ctx.clone()))
        .then(|p, ctx| respond(list(p, ctx)));
    let one = warp::path!("v1" / "lite" / "sessions" / Uuid)
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::ReadOrSessions))
        .and(with_ctx(ctx.clone()))
        .then(|id, p, ctx| respond(get(id, p, ctx)));
    let delete = warp::path!("v1" / "lite" / "sessions" / Uuid)
        .and(warp::delete())
        .and(auth::principal(ctx.clone(), Need::Sessions))
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(with_ctx(ctx.clone()))
        .then(|id: Uuid, p: Principal, q: String, ctx: Arc<AppContext>| {
            let action = match delete_query(&q) {
                Ok(DeleteQuery { logout: Some(true) }) => "lite.session.logout",
                _ => "lite.session.stop",
            };
            audit::respond(
                ctx.clone(),
                p.clone(),
                action,
                Some(id.to_string()),
                delete(id, p, q, ctx),
            )
        });
    let qr_raw = warp::path!("v1" / "lite" / "sessions" / Uuid / "qr")
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::Sessions))
        .and(with_ctx(ctx.clone()))
        .then(|id, p, ctx| respond(qr_json(id, p, ctx)));
    let qr_png = warp::path!("v1" / "lite" / "sessions" / Uuid / "qr.png")
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::Sessions))
        .and(with_ctx(ctx.clone()))
        .then(|id, p, ctx| respond(qr_image(id, p, ctx, Format::Png)));
    let qr_svg = warp::path!("v1" / "lite" / "sessions" / Uuid / "qr.svg")
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::Sessions))
        .and(with_ctx(ctx.clone()))
        .then(|id, p, ctx| respond(qr_image(id, p, ctx, Format::Svg)));
    let pairing = warp::path!("v1" / "lite" / "sessions" / Uuid / "pairing-code")
        .and(warp::post())
        .and(auth::principal(ctx.clone(), Need::Sessions))
        .and(json_body::<PairingRequest>(limit))
        .and(with_ctx(ctx))
        .then(|id: Uuid, p: Principal, body, ctx: Arc<AppContext>| {
            audit::respond(
                ctx.clone(),
                p.clone(),
                "lite.session.pairing_code",
                Some(id.to_string()),
                pairing_code(id, p, body, ctx),
            )
        });
    create
        .or(list)
        .unify()
        .or(one)
        .unify()
        .or(delete)
        .unify()
        .or(qr_raw)
        .unify()
        .or(qr_png)
        .unify()
        .or(qr_svg)
        .unify()
        .or(pairing)
        .unify()
        .boxed()
}

/// A JSON body that may be absent or empty (then `T::default()`): a bare `POST` creates a
/// session. Read through the streaming cap: 413 `body_too_large` as soon as it passes `limit`,
/// declared or chunked.
fn optional_json<T: serde::de::DeserializeOwned + Default + Send>(
    limit: u64,
) -> impl Filter<Extract = (T,), Error = warp::Rejection> + Clone {
    super::capped::bytes(limit).and_then(|bytes: Bytes| async move {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(T::default());
        }
        serde_json::from_slice::<T>(&bytes).map_err(|e| {
            warp::reject::custom(ApiError::bad_request(
                "invalid_body",
                format!("request body is not valid: {e}"),
            ))
        })
    })
}

fn supervisor(ctx: &AppContext) -> Result<LiteSupervisorHandle, ApiError> {
    let handle = ctx.actors.children.lite_handle();
    // Checked before anything is stored, so a restarting supervisor leaves no row behind.
    if !handle.is_running() {
        return Err(LiteSupervisorError::NotRunning.into());
    }
    Ok(handle)
}

async fn find(ctx: &AppContext, p: &Principal, id: Uuid) -> Result<SessionRow, ApiError> {
    let client = ctx.pool.get().await?;
    store::get(&client, p.usuario_id, id)
        .await?
        .ok_or(ApiError::NotFound("session"))
}

async fn create(
    p: Principal,
    body: NewSession,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    if let Some(why) = &ctx.chromium_missing {
        return Err(ApiError::Conflict {
            code: "chromium_missing",
            message: format!("Lite sessions need Chromium on this machine: {why}"),
        });
    }
    let name = match body.name.as_deref().map(str::trim) {
        None => None,
        Some("") => {
            return Err(ApiError::bad_request(
                "invalid_name",
                "name must not be empty",
            ));
        }
        Some(n) if n.chars().count() > 100 => {
            return Err(ApiError::bad_request(
                "invalid_name",
                "name must be at most 100 characters",
            ));
        }
        Some(n) => Some(n.to_string()),
    };
    let sup = supervisor(&ctx)?;
    let max = ctx.shared.settings.lite.max_sessions_per_user;
    let (row, created, started) = match body.id {
        Some(id) => {
            let (row, started) =
                store::reactivate(&ctx.pool, &ctx.sealer, p.usuario_id, id, max).await?;
            (row, false, started)
        }
        None => {
            let row =
                store::create(&ctx.pool, &ctx.sealer, p.usuario_id, name.as_deref(), max).await?;
            (row, true, true)
        }
    };
    if started || body.id.is_some() {
        sup.start(row.id, p.usuario_id).await.inspect_err(|e| {
            tracing::error!(session = %row.id, error = %e, "could not start a Lite session");
        })?;
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(audit::note(
        json_reply(status, &row.to_json()),
        row.id,
        json!({"created": created}),
    ))
}

/// The session as the API shows it, with the last memory reading of its browser when it runs
/// on this node (`memory_bytes`, `memory_measured_at`; null elsewhere or before the first).
fn view(ctx: &AppContext, row: &SessionRow) -> serde_json::Value {
    let mut v = row.to_json();
    let reading = ctx.shared.lite_memory.get(row.id);
    v["memory_bytes"] = json!(reading.map(|r| r.pss_bytes));
    v["memory_measured_at"] = json!(reading.map(|r| super::cursor::rfc3339(r.at)));
    v
}

async fn list(p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let client = ctx.pool.get().await?;
    let rows = store::list(&client, p.usuario_id).await?;
    let items: Vec<_> = rows.iter().map(|r| view(&ctx, r)).collect();
    Ok(json_reply(
        StatusCode::OK,
        &json!({"items": items, "next_cursor": null}),
    ))
}

async fn get(id: Uuid, p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let row = find(&ctx, &p, id).await?;
    Ok(json_reply(StatusCode::OK, &view(&ctx, &row)))
}

async fn delete(
    id: Uuid,
    p: Principal,
    raw_query: String,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    let q = delete_query(&raw_query)?;
    let row = find(&ctx, &p, id).await?;
    let logout = q.logout.unwrap_or(false);
    if row.status.is_active() || logout {
        supervisor(&ctx)?.stop(id, logout).await?;
    }
    let row = find(&ctx, &p, id).await?;
    Ok(json_reply(StatusCode::OK, &row.to_json()))
}

async fn qr_json(id: Uuid, p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let row = find(&ctx, &p, id).await?;
    let qr = login::current_qr(&row)?;
    let updated = row.qr_updated_at.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    });
    Ok(json_reply(
        StatusCode::OK,
        &json!({"qr": qr, "status": row.status.as_str(), "updated_at": updated}),
    ))
}

enum Format {
    Png,
    Svg,
}

async fn qr_image(
    id: Uuid,
    p: Principal,
    ctx: Arc<AppContext>,
    format: Format,
) -> Result<Response, ApiError> {
    use warp::Reply;
    let row = find(&ctx, &p, id).await?;
    let data = login::current_qr(&row)?;
    let no_store = |r: Response| {
        let mut r = r;
        r.headers_mut()
            .insert("cache-control", "no-store".parse().expect("ascii"));
        r
    };
    Ok(match format {
        Format::Png => {
            let png = qr::png(data).map_err(ApiError::internal)?;
            no_store(warp::reply::with_header(png, "content-type", "image/png").into_response())
        }
        Format::Svg => {
            let svg = qr::svg(data).map_err(ApiError::internal)?;
            no_store(warp::reply::with_header(svg, "content-type", "image/svg+xml").into_response())
        }
    })
}

async fn pairing_code(
    id: Uuid,
    p: Principal,
    body: PairingRequest,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    let row = find(&ctx, &p, id).await?;
    let n = users::read_phone(
        &ctx.pool.get().await?,
        p.usuario_id,
        &body.phone,
        None,
        ctx.shared.settings.default_region.as_deref(),
    )
    .await?;
    login::check_pairing(&row)?;
    let session = match supervisor(&ctx)?.session(id).await {
        Ok(s) => s,
        Err(_) => {
            let client = ctx.pool.get().await?;
            let owner = Ownership::owner(&client, ConnectionKind::Lite, id)
                .await
                .ok()
                .flatten()
                .filter(|node| *node != ctx.shared.node_id);
            return Err(match owner {
                Some(node) => ApiError::Conflict {
                    code: "runs_on_another_node",
                    message: format!(
                        "the session's browser runs on node {node}; ask that node for the pairing code"
                    ),
                },
                None => ApiError::Unavailable(
                    "the session is not running on this node; retry shortly".into(),
                ),
            });
        }
    };
    let digits: String = n.e164.chars().filter(char::is_ascii_digit).collect();
    let code = session.pairing_code(digits).await?;
    Ok(json_reply(
        StatusCode::OK,
        &json!({"code": code, "phone": n.e164}),
    ))
}
