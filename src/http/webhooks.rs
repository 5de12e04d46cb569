//! Meta's webhook endpoint, without API-key auth (Meta calls it):
//! - `GET /webhooks/whatsapp`: the verification handshake: 200 with `hub.challenge` only for
//!   `hub.mode=subscribe` and a verify token of a connected number (or the environment's).
//! - `POST /webhooks/whatsapp`: the X-Hub-Signature-256 check comes first, over the raw bytes,
//!   against the app secret of each number and business account the payload names (constant
//!   time; 401 `invalid_signature` and nothing stored when none verifies, the same answer for a
//!   number not connected here); then the raw body is stored sealed in `webhook_inbox` with the
//!   users whose secrets verified it (the drain touches only their numbers), and only then
//!   answered 200. Concurrent posts share one commit (`ingest::group_commit`). Bodies over 3 MB (Meta's maximum) are refused; a database that is down gives
//!   503, so Meta retries later.

use super::error::ApiError;
use super::with_ctx;
use crate::context::AppContext;
use bytes::Bytes;
use sincro_core::business::store;
use sincro_core::business::webhook;
use sincro_core::digest::sha256_hex;
use sincro_core::ingest::group_commit::InboxRow;
use sincro_core::ingest::inbox;
use std::collections::HashMap;
use std::sync::Arc;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

/// Meta's largest webhook payload.
pub const MAX_WEBHOOK_BYTES: u64 = 3 * 1024 * 1024;

pub fn routes(ctx: Arc<AppContext>) -> warp::filters::BoxedFilter<(Response,)> {
    let verify = warp::path!("webhooks" / "whatsapp")
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and(with_ctx(ctx.clone()))
        .then(|q, ctx| async move { verify(q, ctx).await.unwrap_or_else(ApiError::into_response) });
    // An IP whose signatures keep failing is refused in memory before its body is read or
    // anything is looked up (Meta's own posts always verify, so they never fill the bucket;
    // the general per-IP API rate does not apply here: Meta posts bursts from few addresses).
    let receive = warp::path!("webhooks" / "whatsapp")
        .and(warp::post())
        .and(warp::addr::remote())
        .and(with_ctx(ctx.clone()))
        .and_then(|remote: Option<std::net::SocketAddr>, ctx: Arc<AppContext>| async move {
            let ip = remote.map(|a| a.ip());
            match ctx.preauth.check(ip) {
                Ok(()) => Ok(ip),
                Err(e) => Err(warp::reject::custom(e)),
            }
        })
        .and(warp::header::optional::<String>("x-hub-signature-256"))
        .and(super::capped::body(MAX_WEBHOOK_BYTES))
        .and(with_ctx(ctx))
        .then(
            |ip: Option<std::net::IpAddr>, sig, body: Option<Bytes>, ctx: Arc<AppContext>| async move {
                match body {
                    None => super::capped::too_large(MAX_WEBHOOK_BYTES),
                    Some(body) => match receive(sig, body, ctx.clone()).await {
                        Ok(resp) => resp,
                        Err(e) => {
                            if let (Some(ip), ApiError::Unauthorized { .. }) = (ip, &e) {
                                ctx.preauth.failed(ip);
                            }
                            e.into_response()
                        }
                    },
                }
            },
        );
    verify.or(receive).unify().boxed()
}

fn text(status: StatusCode, body: String) -> Response {
    use warp::Reply;
    warp::reply::with_status(body, status).into_response()
}

async fn verify(q: HashMap<String, String>, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let refused =
        || ApiError::Forbidden("webhook verification failed: wrong mode or verify token".into());
    if q.get("hub.mode").map(String::as_str) != Some("subscribe") {
        return Err(refused());
    }
    let (Some(token), Some(challenge)) = (q.get("hub.verify_token"), q.get("hub.challenge")) else {
        return Err(ApiError::bad_request(
            "missing_parameter",
            "hub.verify_token and hub.challenge are required",
        ));
    };
    let env_token = ctx
        .config
        .business_from_env
        .as_ref()
        .and_then(|b| b.verify_token.as_ref())
        .map(|t| sha256_hex(t.expose()));
    let known = env_token.is_some_and(|h| h == sha256_hex(token)) || {
        let client = ctx.pool.get().await?;
        store::verify_token_known(&client, token).await?
    };
    if !known {
        return Err(refused());
    }
    Ok(text(StatusCode::OK, challenge.clone()))
}

async fn receive(
    signature: Option<String>,
    body: Bytes,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    let unauthorized = |code, message: &str| ApiError::Unauthorized {
        code,
        message: message.into(),
    };
    let Some(signature) = signature else {
        return Err(unauthorized(
            "missing_signature",
            "X-Hub-Signature-256 is required",
        ));
    };
    let named = webhook::envelope(&body)
        .map_err(|e| ApiError::bad_request("invalid_payload", e.to_string()))?;
    let routes = ctx
        .webhook_routes
        .routes(
            &ctx.pool,
            &ctx.sealer,
            &named.phone_number_ids,
            &named.waba_ids,
        )
        .await?;
    // The users whose numbers' app secrets verify the signature. Unknown numbers and a bad
    // signature answer alike, so the route does not tell who is connected here. The drain
    // applies the body only to those users' numbers.
    let mut signed_by: Vec<uuid::Uuid> = routes
        .iter()
        .filter(|r| {
            r.app_secret
                .as_deref()
                .is_some_and(|s| webhook::verify_signature(s, &body, &signature))
        })
        .map(|r| r.usuario_id)
        .collect();
    signed_by.sort_unstable();
    signed_by.dedup();
    if signed_by.is_empty() {
        tracing::warn!(
            numbers = named.phone_number_ids.len(),
            "webhook with a bad signature or for no number here refused"
        );
        return Err(unauthorized(
            "invalid_signature",
            "X-Hub-Signature-256 does not match",
        ));
    }
    let first = named.phone_number_ids.first().map(String::as_str);
    // Committed with the rows of concurrent posts (one commit for all); answered after it.
    let row = InboxRow::meta(&ctx.sealer, first, &signed_by, &body);
    ctx.inbox_writer.write(row).await?;
    metrics::counter!("sincro_webhooks_received_total").increment(1);
    inbox::wake(&ctx.shared);
    Ok(text(StatusCode::OK, "EVENT_RECEIVED".into()))
}
