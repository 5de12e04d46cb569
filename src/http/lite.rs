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
use sincro_core::lite::store::{self, ActivateError, SessionRow};
use sincro_core::lite::supervisor::LiteSupervisorMessage;
use sincro_core::lite::{LiteSessionMessage, Status, qr};
use sincro_core::nodes::ownership::Ownership;
use sincro_core::phone;
use sincro_core::store::api_keys::Principal;
use std::sync::Arc;
use std::time::Duration;
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

fn supervisor(ctx: &AppContext) -> Result<ractor::ActorRef<LiteSupervisorMessage>, ApiError> {
    ctx.actors
        .children
        .lite
        .get()
        .ok_or_else(|| ApiError::Unavailable("Lite sessions are restarting; retry shortly".into()))
}

async fn find(ctx: &AppContext, p: &Principal, id: Uuid) -> Result<SessionRow, ApiError> {
    let client = ctx.pool.get().await?;
    store::get(&client, p.usuario_id, id)
        .await?
        .ok_or(ApiError::NotFound("session"))
}

fn activate_error(e: ActivateError) -> ApiError {
    match e {
        ActivateError::TooMany(max) => ApiError::Conflict {
            code: "too_many_sessions",
            message: format!("at most {max} Lite sessions per user can be active; stop one first"),
        },
        ActivateError::NotFound => ApiError::NotFound("session"),
        ActivateError::Store(e) => e.into(),
    }
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
            let (row, started) = store::reactivate(&ctx.pool, &ctx.sealer, p.usuario_id, id, max)
                .await
                .map_err(activate_error)?;
            (row, false, started)
        }
        None => {
            let row = store::create(&ctx.pool, &ctx.sealer, p.usuario_id, name.as_deref(), max)
                .await
                .map_err(activate_error)?;
            (row, true, true)
        }
    };
    if started || body.id.is_some() {
        let asked = sup
            .call(
                |reply| LiteSupervisorMessage::Start {
                    id: row.id,
                    usuario_id: p.usuario_id,
                    reply,
                },
                Some(Duration::from_secs(10)),
            )
            .await;
        match asked {
            Ok(ractor::rpc::CallResult::Success(Ok(()))) => {}
            other => {
                tracing::error!(session = %row.id, outcome = ?other.map(|r| format!("{r:?}")), "could not start a Lite session");
                return Err(ApiError::Unavailable(
                    "the session could not be started; retry shortly".into(),
                ));
            }
        }
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

async fn list(p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let client = ctx.pool.get().await?;
    let rows = store::list(&client, p.usuario_id).await?;
    let items: Vec<_> = rows.iter().map(SessionRow::to_json).collect();
    Ok(json_reply(
        StatusCode::OK,
        &json!({"items": items, "next_cursor": null}),
    ))
}

async fn get(id: Uuid, p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let row = find(&ctx, &p, id).await?;
    Ok(json_reply(StatusCode::OK, &row.to_json()))
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
        let sup = supervisor(&ctx)?;
        let asked = sup
            .call(
                |reply| LiteSupervisorMessage::Stop { id, logout, reply },
                Some(Duration::from_secs(40)),
            )
            .await;
        if !matches!(asked, Ok(ractor::rpc::CallResult::Success(()))) {
            return Err(ApiError::Unavailable(
                "the session did not stop in time; retry".into(),
            ));
        }
    }
    let row = find(&ctx, &p, id).await?;
    Ok(json_reply(StatusCode::OK, &row.to_json()))
}

/// The QR shown now, or a 409 saying why there is none.
async fn current_qr(ctx: &AppContext, p: &Principal, id: Uuid) -> Result<SessionRow, ApiError> {
    let row = find(ctx, p, id).await?;
    if row.status != Status::ScanQrCode || row.qr.is_none() {
        let why = match row.status {
            Status::Working => "the session is already linked".to_string(),
            Status::Starting => "the session is starting; the QR comes shortly".to_string(),
            s => format!("the session is {}", s.as_str()),
        };
        return Err(ApiError::Conflict {
            code: "qr_not_available",
            message: format!("no QR to scan: {why}"),
        });
    }
    Ok(row)
}

async fn qr_json(id: Uuid, p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let row = current_qr(&ctx, &p, id).await?;
    let updated = row.qr_updated_at.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    });
    Ok(json_reply(
        StatusCode::OK,
        &json!({"qr": row.qr, "status": row.status.as_str(), "updated_at": updated}),
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
    let row = current_qr(&ctx, &p, id).await?;
    let data = row.qr.unwrap_or_default();
    let no_store = |r: Response| {
        let mut r = r;
        r.headers_mut()
            .insert("cache-control", "no-store".parse().expect("ascii"));
        r
    };
    Ok(match format {
        Format::Png => {
            let png = qr::png(&data).map_err(ApiError::internal)?;
            no_store(warp::reply::with_header(png, "content-type", "image/png").into_response())
        }
        Format::Svg => {
            let svg = qr::svg(&data).map_err(ApiError::internal)?;
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
    let client = ctx.pool.get().await?;
    let region = ctx.shared.user_region(&client, p.usuario_id).await?;
    let n = phone::normalize(&body.phone, region.as_deref())
        .map_err(|e| ApiError::unprocessable("invalid_phone", e.to_string()))?;
    if row.status != Status::ScanQrCode {
        return Err(ApiError::Conflict {
            code: "pairing_not_available",
            message: format!(
                "a pairing code needs a session waiting for login (SCAN_QR_CODE); it is {}",
                row.status.as_str()
            ),
        });
    }
    let sup = supervisor(&ctx)?;
    let session = match sup
        .call(
            |reply| LiteSupervisorMessage::Session { id, reply },
            Some(Duration::from_secs(5)),
        )
        .await
    {
        Ok(ractor::rpc::CallResult::Success(Some(s))) => s,
        _ => {
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
    let asked = session
        .call(
            |reply| LiteSessionMessage::PairingCode {
                phone: digits,
                reply,
            },
            Some(Duration::from_secs(30)),
        )
        .await;
    match asked {
        Ok(ractor::rpc::CallResult::Success(Ok(code))) => Ok(json_reply(
            StatusCode::OK,
            &json!({"code": code, "phone": n.e164}),
        )),
        Ok(ractor::rpc::CallResult::Success(Err(why))) => Err(ApiError::Conflict {
            code: "pairing_not_available",
            message: why,
        }),
        _ => Err(ApiError::Unavailable(
            "the session did not answer in time; retry".into(),
        )),
    }
}
