//! `Authorization: Bearer <api key>` → the key's [`Principal`], then the per-user and per-IP
//! API rate limits (429 with Retry-After). Every /v1 route goes through [`principal`].

use super::error::ApiError;
use crate::context::AppContext;
use sincro_actors::rate_limiter::RateLimiterMessage;
use sincro_actors::store::api_keys::{self, Principal};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use warp::{Filter, Rejection};

/// Extracts the authenticated principal or rejects with 401/429.
pub fn principal(
    ctx: Arc<AppContext>,
) -> impl Filter<Extract = (Principal,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::addr::remote())
        .and_then(
            move |header: Option<String>, query: String, remote: Option<SocketAddr>| {
                let ctx = ctx.clone();
                async move {
                    authenticate(&ctx, header.as_deref(), &query, remote)
                        .await
                        .map_err(warp::reject::custom)
                }
            },
        )
}

/// The key from the header, or from `?access_token=` (browsers cannot set headers on WebSocket).
fn presented_key<'a>(header: Option<&'a str>, query: &'a str) -> Option<&'a str> {
    if let Some(h) = header {
        return h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
            .map(str::trim);
    }
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("access_token="))
}

async fn authenticate(
    ctx: &AppContext,
    header: Option<&str>,
    query: &str,
    remote: Option<SocketAddr>,
) -> Result<Principal, ApiError> {
    let Some(key) = presented_key(header, query) else {
        return Err(ApiError::Unauthorized {
            code: "missing_api_key",
            message: "send Authorization: Bearer <api key>".into(),
        });
    };
    let client = ctx.pool.get().await?;
    let principal = api_keys::authenticate(&client, key)
        .await?
        .ok_or(ApiError::Unauthorized {
            code: "invalid_api_key",
            message: "the API key is not valid".into(),
        })?;
    check_rate(ctx, &principal, remote).await?;
    tracing::debug!(user_id = %principal.usuario_id, "authenticated");
    Ok(principal)
}

async fn check_rate(
    ctx: &AppContext,
    principal: &Principal,
    remote: Option<SocketAddr>,
) -> Result<(), ApiError> {
    let Some(limiter) = ctx.actors.children.rate_limiter.get() else {
        return Ok(()); // restarting: fail open rather than refuse every request
    };
    let asked = limiter
        .call(
            |reply| RateLimiterMessage::CheckApi {
                user: Some(principal.usuario_id),
                ip: remote.map(|a| a.ip()),
                reply,
            },
            Some(Duration::from_secs(2)),
        )
        .await;
    match asked {
        Ok(ractor::rpc::CallResult::Success(Err(retry_after))) => {
            Err(ApiError::RateLimited { retry_after })
        }
        _ => Ok(()),
    }
}

/// Rejects principals without the admin flag.
pub fn require_admin(p: &Principal) -> Result<(), ApiError> {
    if p.is_admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "this route needs an admin API key (user create --admin)".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::presented_key;

    #[test]
    fn key_sources() {
        assert_eq!(presented_key(Some("Bearer abc"), ""), Some("abc"));
        assert_eq!(presented_key(Some("Basic abc"), "access_token=x"), None);
        assert_eq!(presented_key(None, "since=1&access_token=xyz"), Some("xyz"));
        assert_eq!(presented_key(None, "since=1"), None);
    }
}
