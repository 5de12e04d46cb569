//! `Authorization: Bearer <api key>` → the key's [`Principal`], with the scope the route needs,
//! and the API rate limits (429 with Retry-After). Every /v1 route goes through [`principal`]
//! (the WebSocket stream through [`principal_or_query_token`], which also takes the key as a
//! WebSocket subprotocol, see [`key_from_protocols`]).
//!
//! Order matters for floods: the client IP's failed-authentication bucket and its per-IP rate
//! are checked first, in memory, before the key is looked up; every failed authentication takes
//! from that bucket ([`super::preauth`]). Keys are never cached, so a revoked or expired key is
//! refused from the next request on, on every node.

use super::error::ApiError;
use crate::context::AppContext;
use sincro_core::rate_limiter::RateLimiterError;
use sincro_core::store::api_keys::{self, Lookup, Principal, Scopes};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use uuid::Uuid;
use warp::{Filter, Rejection};

/// The scope a route needs. `admin` keys pass everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Reading leads, conversations, messages, media, templates, the stream, the user.
    Read,
    /// Queueing, cancelling and requeueing messages; media uploads; templates; lead merges.
    Send,
    /// Lite sessions and Business numbers: start, stop, pair, connect, change, remove.
    Sessions,
    /// Reading connections: `read` or `sessions`.
    ReadOrSessions,
    /// Managing the user's own keys and settings: a key with all of `read`, `send` and
    /// `sessions` (what keys made before scopes have) or `admin`.
    Full,
    /// Admin routes.
    Admin,
}

impl Need {
    fn allows(self, s: Scopes) -> bool {
        match self {
            Need::Read => s.covers(Scopes::READ),
            Need::Send => s.covers(Scopes::SEND),
            Need::Sessions => s.covers(Scopes::SESSIONS),
            Need::ReadOrSessions => s.any_of(Scopes::READ.union(Scopes::SESSIONS)),
            Need::Full => s.covers(Scopes::USER),
            Need::Admin => s.is_admin(),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Need::Read => "the read scope",
            Need::Send => "the send scope",
            Need::Sessions => "the sessions scope",
            Need::ReadOrSessions => "the read or sessions scope",
            Need::Full => "a key with the read, send and sessions scopes (or admin)",
            Need::Admin => "the admin scope",
        }
    }
}

/// Extracts the authenticated principal holding `need`, or rejects with 401/403/429. Only the
/// `Authorization` header is read: a key in a query string ends up in logs, histories and
/// `Referer` headers.
pub fn principal(
    ctx: Arc<AppContext>,
    need: Need,
) -> impl Filter<Extract = (Principal,), Error = Rejection> + Clone {
    authenticated(ctx, need, false)
}

/// Like [`principal`], and `?access_token=` too: for the WebSocket stream, where a browser
/// cannot set a header.
pub fn principal_or_query_token(
    ctx: Arc<AppContext>,
    need: Need,
) -> impl Filter<Extract = (Principal,), Error = Rejection> + Clone {
    authenticated(ctx, need, true)
}

fn authenticated(
    ctx: Arc<AppContext>,
    need: Need,
    query_token: bool,
) -> impl Filter<Extract = (Principal,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and(warp::header::optional::<String>("sec-websocket-protocol"))
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::addr::remote())
        .and_then(
            move |header: Option<String>,
                  protocols: Option<String>,
                  query: String,
                  remote: Option<SocketAddr>| {
                let ctx = ctx.clone();
                let header = header.or_else(|| {
                    protocols
                        .as_deref()
                        .filter(|_| query_token)
                        .and_then(key_from_protocols)
                        .map(|k| format!("Bearer {k}"))
                });
                async move {
                    authenticate(&ctx, header.as_deref(), &query, remote, need, query_token)
                        .await
                        .map_err(warp::reject::custom)
                }
            },
        )
}

/// The WebSocket subprotocol the stream answers with when a browser offers it.
pub const STREAM_PROTOCOL: &str = "sincro.stream";
/// Prefix of the subprotocol that carries the key: `bearer.<api key>` (API keys are made of
/// characters a subprotocol name may hold).
pub const KEY_PROTOCOL_PREFIX: &str = "bearer.";

/// The key a browser offered as a WebSocket subprotocol (`Sec-WebSocket-Protocol:
/// sincro.stream, bearer.<api key>`): browsers cannot set `Authorization` on a WebSocket, and
/// a header keeps the key out of URLs, logs and histories, where `?access_token=` would put it.
pub fn key_from_protocols(protocols: &str) -> Option<&str> {
    protocols
        .split(',')
        .map(str::trim)
        .find_map(|p| p.strip_prefix(KEY_PROTOCOL_PREFIX))
        .filter(|k| !k.is_empty())
}

/// Whether the client offered [`STREAM_PROTOCOL`] (the answer must then name it).
pub fn offers_stream_protocol(protocols: Option<&str>) -> bool {
    protocols.is_some_and(|p| p.split(',').any(|p| p.trim() == STREAM_PROTOCOL))
}

/// The key from the header, or from `?access_token=` when `query_token`.
fn presented_key<'a>(header: Option<&'a str>, query: &'a str, query_token: bool) -> Presented<'a> {
    if let Some(h) = header {
        return match h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
            .map(str::trim)
        {
            Some(k) => Presented::Key(k),
            None => Presented::Missing,
        };
    }
    match query
        .split('&')
        .find_map(|kv| kv.strip_prefix("access_token="))
    {
        Some(k) if query_token => Presented::Key(k),
        Some(_) => Presented::QueryRefused,
        None => Presented::Missing,
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Presented<'a> {
    Key(&'a str),
    Missing,
    QueryRefused,
}

async fn authenticate(
    ctx: &AppContext,
    header: Option<&str>,
    query: &str,
    remote: Option<SocketAddr>,
    need: Need,
    query_token: bool,
) -> Result<Principal, ApiError> {
    let ip = remote.map(|a| a.ip());
    ctx.preauth.check(ip)?;
    check_ip_rate(ctx, ip).await?;
    let failed = |e: ApiError| {
        if let Some(ip) = ip {
            ctx.preauth.failed(ip);
        }
        e
    };
    let key = match presented_key(header, query, query_token) {
        Presented::Key(k) => k,
        Presented::Missing => {
            return Err(failed(ApiError::Unauthorized {
                code: "missing_api_key",
                message: "send Authorization: Bearer <api key>".into(),
            }));
        }
        Presented::QueryRefused => {
            return Err(failed(ApiError::Unauthorized {
                code: "query_token_not_allowed",
                message: "API keys in the query string are only accepted on /v1/stream; send \
                          Authorization: Bearer <api key> (for a media link usable without a \
                          key, GET /v1/media/{id}/url)"
                    .into(),
            }));
        }
    };
    let lookup = if api_keys::prefix_of(key).is_none() {
        Lookup::Unknown
    } else {
        ctx.key_lookups.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("sincro_api_key_lookups_total").increment(1);
        let client = ctx.pool.get().await?;
        api_keys::lookup(&client, key).await?
    };
    let mut principal = match lookup {
        Lookup::Valid(p) => p,
        Lookup::Unknown => {
            return Err(failed(ApiError::Unauthorized {
                code: "invalid_api_key",
                message: "the API key is not valid".into(),
            }));
        }
        Lookup::Expired => {
            return Err(failed(ApiError::Unauthorized {
                code: "expired_api_key",
                message: "the API key has expired; make a new one (POST /v1/keys)".into(),
            }));
        }
    };
    principal.ip = ip;
    if !need.allows(principal.scopes) {
        return Err(ApiError::InsufficientScope(format!(
            "this route needs {}; this key has: {}",
            need.describe(),
            match principal.scopes.names() {
                names if names.is_empty() => "no scopes".to_string(),
                names => names.join(", "),
            }
        )));
    }
    check_user_rate(ctx, principal.usuario_id).await?;
    tracing::debug!(user_id = %principal.usuario_id, "authenticated");
    Ok(principal)
}

async fn ask_limiter(
    ctx: &AppContext,
    user: Option<Uuid>,
    ip: Option<IpAddr>,
) -> Result<(), ApiError> {
    match ctx
        .actors
        .children
        .rate_limiter_handle()
        .check_api(user, ip)
        .await
    {
        Err(e @ RateLimiterError::Limited { .. }) => Err(e.into()),
        // Restarting or stuck: fail open rather than refuse every request.
        Err(RateLimiterError::NotRunning | RateLimiterError::TimedOut(_)) | Ok(()) => Ok(()),
    }
}

/// The per-IP request rate (`API_RATE_PER_IP_PER_MINUTE`), checked before authentication.
pub async fn check_ip_rate(ctx: &AppContext, ip: Option<IpAddr>) -> Result<(), ApiError> {
    if ip.is_none() {
        return Ok(());
    }
    ask_limiter(ctx, None, ip).await
}

async fn check_user_rate(ctx: &AppContext, user: Uuid) -> Result<(), ApiError> {
    ask_limiter(ctx, Some(user), None).await
}

/// The pre-authentication check as a filter: 429 with `Retry-After` when the client's IP used
/// up its failed-authentication bucket or its per-IP request rate. Put it before the body.
pub fn preauth_guard(ctx: Arc<AppContext>) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::addr::remote()
        .and_then(move |remote: Option<SocketAddr>| {
            let ctx = ctx.clone();
            async move {
                let ip = remote.map(|a| a.ip());
                ctx.preauth.check(ip).map_err(warp::reject::custom)?;
                check_ip_rate(&ctx, ip).await.map_err(warp::reject::custom)
            }
        })
        .untuple_one()
}

/// Rejects principals without the admin scope.
pub fn require_admin(p: &Principal) -> Result<(), ApiError> {
    if p.is_admin {
        Ok(())
    } else {
        Err(ApiError::InsufficientScope(
            "this route needs an admin API key (user create --admin, or a key with the admin scope)"
                .into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_offered_as_a_subprotocol() {
        assert_eq!(
            key_from_protocols("sincro.stream, bearer.swk_abc_def"),
            Some("swk_abc_def")
        );
        assert_eq!(key_from_protocols("sincro.stream"), None);
        assert_eq!(key_from_protocols("bearer."), None);
        assert!(offers_stream_protocol(Some("bearer.x,sincro.stream")));
        assert!(!offers_stream_protocol(Some("bearer.x")));
        assert!(!offers_stream_protocol(None));
    }

    #[test]
    fn key_sources() {
        assert_eq!(
            presented_key(Some("Bearer abc"), "", false),
            Presented::Key("abc")
        );
        assert_eq!(
            presented_key(Some("Basic abc"), "access_token=x", true),
            Presented::Missing
        );
        assert_eq!(
            presented_key(None, "since=1&access_token=xyz", true),
            Presented::Key("xyz")
        );
        assert_eq!(
            presented_key(None, "since=1&access_token=xyz", false),
            Presented::QueryRefused
        );
        assert_eq!(presented_key(None, "since=1", true), Presented::Missing);
    }

    #[test]
    fn needs() {
        assert!(Need::Read.allows(Scopes::READ));
        assert!(!Need::Send.allows(Scopes::READ));
        assert!(Need::Send.allows(Scopes::ADMIN));
        assert!(Need::ReadOrSessions.allows(Scopes::SESSIONS));
        assert!(!Need::Full.allows(Scopes::READ.union(Scopes::SEND)));
        assert!(Need::Full.allows(Scopes::USER));
        assert!(!Need::Admin.allows(Scopes::USER));
    }
}
