//! The one API error type. Every error leaves as `{"error":{"code","message"}}` with a fitting
//! status (the README's HTTP API); internal causes are logged, never sent to the client. warp's
//! own rejections (unknown route, wrong method, oversized body...) get the same shape. Each
//! actor's error enum becomes an `ApiError` here (`From`), so handlers call actors with `?`.

mod from_core;

use serde::Serialize;
use std::convert::Infallible;
use std::time::Duration;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Rejection, Reply};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    #[error("{0}")]
    Forbidden(String),
    /// The key is valid but lacks the scope the route needs.
    #[error("{0}")]
    InsufficientScope(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("too many requests")]
    RateLimited { retry_after: Duration },
    /// The request body passed the route's cap (refused as soon as it did).
    #[error("request body is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("{0}")]
    Unavailable(String),
    /// Something this daemon drives (a Lite session's page) answered with an error.
    #[error("{message}")]
    BadGateway { code: &'static str, message: String },
    /// Something this daemon drives (a Lite session's page) did not answer in time.
    #[error("{0}")]
    GatewayTimeout(String),
    /// Logged with its cause; the client only learns that something failed.
    #[error("internal error")]
    Internal(String),
}

impl warp::reject::Reject for ApiError {}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Unprocessable {
            code,
            message: message.into(),
        }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError::Internal(cause.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::InsufficientScope(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            ApiError::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Unauthorized { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Unprocessable { code, .. }
            | ApiError::BadGateway { code, .. } => code,
            ApiError::Forbidden(_) => "forbidden",
            ApiError::InsufficientScope(_) => "insufficient_scope",
            ApiError::TooLarge { .. } => "body_too_large",
            ApiError::NotFound(_) => "not_found",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::GatewayTimeout(_) => "timeout",
            ApiError::Internal(_) => "internal_error",
        }
    }

    pub fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(cause = %cause, "internal error answering a request");
        }
        let status = self.status();
        let message = self.to_string();
        let mut response = warp::reply::with_status(
            warp::reply::json(&Body {
                error: Inner {
                    code: self.code(),
                    message: &message,
                },
            }),
            status,
        )
        .into_response();
        if let ApiError::RateLimited { retry_after } = self {
            let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            response
                .headers_mut()
                .insert("retry-after", secs.to_string().parse().expect("digits"));
        }
        response
    }
}
/// Turns any rejection into the JSON error shape. A too-large body is checked before a wrong
/// method: warp reports both when another route shares the path, and 413 is the true one.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    use warp::reject;
    let error = if let Some(e) = rejection.find::<ApiError>() {
        clone_error(e)
    } else if rejection.is_not_found() {
        ApiError::NotFound("route")
    } else if rejection.find::<reject::PayloadTooLarge>().is_some() {
        return Ok(plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "request body is too large",
        ));
    } else if rejection.find::<reject::MethodNotAllowed>().is_some() {
        return Ok(plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this route",
        ));
    } else if rejection.find::<reject::LengthRequired>().is_some() {
        return Ok(plain(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "a Content-Length header is required",
        ));
    } else if rejection.find::<reject::UnsupportedMediaType>().is_some() {
        return Ok(plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send application/json",
        ));
    } else if let Some(e) = rejection.find::<reject::InvalidQuery>() {
        ApiError::bad_request("invalid_query", e.to_string())
    } else if let Some(e) = rejection.find::<reject::MissingHeader>() {
        ApiError::bad_request("missing_header", format!("missing header {}", e.name()))
    } else if let Some(e) = rejection.find::<reject::InvalidHeader>() {
        ApiError::bad_request("invalid_header", format!("invalid header {}", e.name()))
    } else if let Some(e) = rejection.find::<warp::filters::body::BodyDeserializeError>() {
        ApiError::bad_request("invalid_json", e.to_string())
    } else {
        ApiError::internal(format!("unhandled rejection: {rejection:?}"))
    };
    Ok(error.into_response())
}

fn plain(status: StatusCode, code: &str, message: &str) -> Response {
    warp::reply::with_status(
        warp::reply::json(&Body {
            error: Inner { code, message },
        }),
        status,
    )
    .into_response()
}

fn clone_error(e: &ApiError) -> ApiError {
    match e {
        ApiError::BadRequest { code, message } => ApiError::BadRequest {
            code,
            message: message.clone(),
        },
        ApiError::Unauthorized { code, message } => ApiError::Unauthorized {
            code,
            message: message.clone(),
        },
        ApiError::Forbidden(m) => ApiError::Forbidden(m.clone()),
        ApiError::InsufficientScope(m) => ApiError::InsufficientScope(m.clone()),
        ApiError::TooLarge { limit } => ApiError::TooLarge { limit: *limit },
        ApiError::NotFound(what) => ApiError::NotFound(what),
        ApiError::Conflict { code, message } => ApiError::Conflict {
            code,
            message: message.clone(),
        },
        ApiError::Unprocessable { code, message } => ApiError::Unprocessable {
            code,
            message: message.clone(),
        },
        ApiError::RateLimited { retry_after } => ApiError::RateLimited {
            retry_after: *retry_after,
        },
        ApiError::Unavailable(m) => ApiError::Unavailable(m.clone()),
        ApiError::BadGateway { code, message } => ApiError::BadGateway {
            code,
            message: message.clone(),
        },
        ApiError::GatewayTimeout(m) => ApiError::GatewayTimeout(m.clone()),
        ApiError::Internal(m) => ApiError::Internal(m.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sincro_core::business::BusinessError;
    use sincro_core::business::connect::ConnectError;
    use sincro_core::business::error::BusinessSupervisorError;
    use sincro_core::hub::HubError;
    use sincro_core::ingest::IngestError;
    use sincro_core::leads::error::LeadSyncError;
    use sincro_core::lite::{LiteSessionError, LiteSupervisorError};
    use sincro_core::outbound::error::DispatcherError;
    use sincro_core::rate_limiter::RateLimiterError;
    use sincro_core::store::StoreError;

    /// (what went wrong, the status and code the client gets)
    fn cases() -> Vec<(ApiError, u16, &'static str)> {
        let t = Duration::from_secs(5);
        vec![
            (LiteSessionError::NotRunning.into(), 503, "unavailable"),
            (LiteSessionError::TimedOut(t).into(), 503, "unavailable"),
            (LiteSessionError::Stopping.into(), 409, "session_stopping"),
            (
                LiteSessionError::AlreadyLinked.into(),
                409,
                "pairing_not_available",
            ),
            (
                LiteSessionError::BrowserStarting.into(),
                409,
                "pairing_not_available",
            ),
            (
                LiteSessionError::NotWaitingForQr.into(),
                409,
                "pairing_not_available",
            ),
            (
                LiteSessionError::PhoneInvalid("x".into()).into(),
                422,
                "invalid_phone",
            ),
            (LiteSessionError::PageTimedOut(t).into(), 504, "timeout"),
            (
                LiteSessionError::PageFailed("x".into()).into(),
                502,
                "page_failed",
            ),
            (LiteSupervisorError::NotRunning.into(), 503, "unavailable"),
            (LiteSupervisorError::TimedOut(t).into(), 503, "unavailable"),
            (
                LiteSupervisorError::SessionNotRunning.into(),
                503,
                "unavailable",
            ),
            (
                LiteSupervisorError::Spawn("x".into()).into(),
                503,
                "unavailable",
            ),
            (
                LiteSupervisorError::Store(StoreError::NotFound).into(),
                500,
                "internal_error",
            ),
            (BusinessError::NotRunning.into(), 503, "unavailable"),
            (BusinessError::TimedOut(t).into(), 503, "unavailable"),
            (
                BusinessError::NeedsCredentials("x".into()).into(),
                409,
                "needs_credentials",
            ),
            (
                BusinessError::Invalid("x".into()).into(),
                422,
                "invalid_request",
            ),
            (BusinessError::NotFound.into(), 404, "not_found"),
            (BusinessError::Io("x".into()).into(), 500, "internal_error"),
            (
                BusinessSupervisorError::NumberNotRunning.into(),
                503,
                "unavailable",
            ),
            (
                BusinessSupervisorError::NotRunning.into(),
                503,
                "unavailable",
            ),
            (
                ConnectError::Invalid("x".into()).into(),
                422,
                "invalid_field",
            ),
            (ConnectError::NotFound.into(), 404, "not_found"),
            (
                ConnectError::Business(BusinessError::NotFound).into(),
                404,
                "not_found",
            ),
            (LeadSyncError::NotRunning.into(), 503, "unavailable"),
            (LeadSyncError::TimedOut(t).into(), 503, "unavailable"),
            (
                RateLimiterError::Limited { retry_after: t }.into(),
                429,
                "rate_limited",
            ),
            (RateLimiterError::NotRunning.into(), 503, "unavailable"),
            (HubError::NotRunning.into(), 503, "unavailable"),
            (
                HubError::ListenLost("x".into()).into(),
                500,
                "internal_error",
            ),
            (IngestError::TimedOut(t).into(), 503, "unavailable"),
            (
                IngestError::Unavailable("x".into()).into(),
                503,
                "unavailable",
            ),
            (
                IngestError::Refused("x".into()).into(),
                500,
                "internal_error",
            ),
            (DispatcherError::NotRunning.into(), 503, "unavailable"),
        ]
    }

    #[test]
    fn actor_errors_map_to_their_status_and_code() {
        for (i, (error, status, code)) in cases().into_iter().enumerate() {
            assert_eq!(
                (error.status().as_u16(), error.code()),
                (status, code),
                "case {i}: {error:?}"
            );
        }
    }

    #[test]
    fn gateway_errors_keep_their_shape_through_a_rejection() {
        for e in [
            ApiError::GatewayTimeout("slow".into()),
            ApiError::BadGateway {
                code: "page_failed",
                message: "boom".into(),
            },
        ] {
            let copy = clone_error(&e);
            assert_eq!(
                (copy.status(), copy.code(), copy.to_string()),
                (e.status(), e.code(), e.to_string())
            );
        }
    }
}
