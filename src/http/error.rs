//! The one API error type. Every error leaves as `{"error":{"code","message"}}` with a fitting
//! status (the README's HTTP API); internal causes are logged, never sent to the client. warp's
//! own rejections (unknown route, wrong method, oversized body...) get the same shape. Each
//! actor's error enum becomes an `ApiError` here (`From`), so handlers call actors with `?`.

use serde::Serialize;
use sincro_core::business::BusinessError;
use sincro_core::business::connect::ConnectError;
use sincro_core::business::graph::GraphError;
use sincro_core::business::handle::BusinessSupervisorError;
use sincro_core::business::media::UploadError;
use sincro_core::business::templates::TemplateError;
use sincro_core::hub::HubError;
use sincro_core::ingest::IngestError;
use sincro_core::ingest::dead_letter::ReplayError;
use sincro_core::leads::handle::LeadSyncError;
use sincro_core::leads::query::LeadQueryError;
use sincro_core::lite::login::LoginError;
use sincro_core::lite::store::ActivateError;
use sincro_core::lite::{LiteSessionError, LiteSupervisorError};
use sincro_core::media_store::MediaError;
use sincro_core::outbound::handle::DispatcherError;
use sincro_core::outbound::submit::SubmitError;
use sincro_core::rate_limiter::RateLimiterError;
use sincro_core::store::StoreError;
use sincro_core::store::conversations::ConversationError;
use sincro_core::store::users::UserError;
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

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_unique_violation() {
            return ApiError::Conflict {
                code: "conflict",
                message: "a resource with these values already exists".into(),
            };
        }
        if e.is_unavailable() {
            tracing::warn!(error = %e, "database unavailable");
            return ApiError::Unavailable("the database is unavailable; retry later".into());
        }
        ApiError::internal(e)
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::from(e).into()
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::from(e).into()
    }
}

/// A call to an actor got no answer: the client may retry (the message says what to).
fn unanswered(what: impl std::fmt::Display) -> ApiError {
    ApiError::Unavailable(format!("{what}; retry shortly"))
}

impl From<UserError> for ApiError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::InvalidRegion(e) => ApiError::unprocessable("invalid_region", e.to_string()),
            UserError::InvalidPhone(e) => ApiError::unprocessable("invalid_phone", e.to_string()),
            UserError::Store(e) => e.into(),
        }
    }
}

impl From<LeadQueryError> for ApiError {
    fn from(e: LeadQueryError) -> Self {
        match e {
            LeadQueryError::InvalidPhone(e) => {
                ApiError::unprocessable("invalid_phone", e.to_string())
            }
            LeadQueryError::NotFound => ApiError::NotFound("lead"),
            LeadQueryError::Store(e) => e.into(),
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        let code = match e {
            SubmitError::Malformed(i) => return ApiError::bad_request(i.code, i.message),
            SubmitError::NotForConnection(i) => return ApiError::unprocessable(i.code, i.message),
            SubmitError::KeyReused => {
                return ApiError::Conflict {
                    code: "idempotency_key_reused",
                    message: e.to_string(),
                };
            }
            SubmitError::ConnectionNotFound => return ApiError::NotFound("connection"),
            SubmitError::MessageGone => return ApiError::NotFound("message"),
            SubmitError::Media(b) => return b.into(),
            SubmitError::Store(s) => return s.into(),
            SubmitError::Internal(_) => return ApiError::internal(e),
            SubmitError::Link(ref f) => f.code(),
            SubmitError::ConnectionInactive => "connection_inactive",
            SubmitError::ConnectionUnknownKind => "connection_unknown_kind",
            SubmitError::LinkEmpty => "link_unavailable",
            SubmitError::InvalidPhone(_) => "invalid_phone",
            SubmitError::TemplateNotApproved { .. } => "template_not_approved",
            SubmitError::TemplateNotFound { .. } => "template_not_found",
            SubmitError::OutsideWindow => "outside_service_window",
        };
        ApiError::unprocessable(code, e.to_string())
    }
}

/// What Meta said is a 422 naming it; a dead token a 409; a number not running here a 503.
impl From<BusinessError> for ApiError {
    fn from(e: BusinessError) -> Self {
        match e {
            BusinessError::Store(s) => s.into(),
            BusinessError::Graph(GraphError::Api(m)) => ApiError::unprocessable(
                "graph_error",
                format!("Meta refused the request: {}", m.describe()),
            ),
            BusinessError::Graph(other) => {
                ApiError::Unavailable(format!("the Graph API could not be reached: {other}"))
            }
            BusinessError::NeedsCredentials(m) => ApiError::Conflict {
                code: "needs_credentials",
                message: format!(
                    "{m}; replace the access token with PATCH /v1/business/numbers/{{id}}"
                ),
            },
            BusinessError::Invalid(m) => ApiError::unprocessable("invalid_request", m),
            BusinessError::NotFound => ApiError::NotFound("resource"),
            e @ (BusinessError::NotRunning | BusinessError::TimedOut(_)) => unanswered(e),
            other => ApiError::internal(other),
        }
    }
}

/// A media file's store failure reads as a Business one (a file that cannot be opened is an
/// internal error; the database down a 503).
impl From<MediaError> for ApiError {
    fn from(e: MediaError) -> Self {
        BusinessError::from(e).into()
    }
}

impl From<BusinessSupervisorError> for ApiError {
    fn from(e: BusinessSupervisorError) -> Self {
        unanswered(e)
    }
}

impl From<ConnectError> for ApiError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::Invalid(m) => ApiError::unprocessable("invalid_field", m),
            ConnectError::AlreadyConnected(_) => ApiError::Conflict {
                code: "number_already_connected",
                message: e.to_string(),
            },
            ConnectError::Rejected(_) => {
                ApiError::unprocessable("credentials_rejected", e.to_string())
            }
            ConnectError::Unreachable(_) => ApiError::Unavailable(e.to_string()),
            ConnectError::NotFound => ApiError::NotFound("business number"),
            ConnectError::Business(b) => b.into(),
        }
    }
}

impl From<LiteSupervisorError> for ApiError {
    fn from(e: LiteSupervisorError) -> Self {
        match e {
            LiteSupervisorError::Store(s) => s.into(),
            LiteSupervisorError::Spawn(_) => unanswered("the session could not be started"),
            other => unanswered(other),
        }
    }
}

/// A session that is not in the state the request needs is a 409; a page that failed a 502,
/// one that did not answer a 504.
impl From<LiteSessionError> for ApiError {
    fn from(e: LiteSessionError) -> Self {
        match e {
            LiteSessionError::NotRunning | LiteSessionError::TimedOut(_) => unanswered(e),
            LiteSessionError::Stopping => ApiError::Conflict {
                code: "session_stopping",
                message: e.to_string(),
            },
            LiteSessionError::AlreadyLinked
            | LiteSessionError::BrowserStarting
            | LiteSessionError::NotWaitingForQr => ApiError::Conflict {
                code: "pairing_not_available",
                message: e.to_string(),
            },
            LiteSessionError::PhoneInvalid(_) => {
                ApiError::unprocessable("invalid_phone", e.to_string())
            }
            LiteSessionError::PageTimedOut(_) => ApiError::GatewayTimeout(e.to_string()),
            LiteSessionError::PageFailed(_) => ApiError::BadGateway {
                code: "page_failed",
                message: e.to_string(),
            },
        }
    }
}

impl From<LeadSyncError> for ApiError {
    fn from(e: LeadSyncError) -> Self {
        match e {
            LeadSyncError::Store(s) => s.into(),
            LeadSyncError::Phone(p) => ApiError::unprocessable("invalid_phone", p.to_string()),
            other => unanswered(other),
        }
    }
}

impl From<RateLimiterError> for ApiError {
    fn from(e: RateLimiterError) -> Self {
        match e {
            RateLimiterError::Limited { retry_after } => ApiError::RateLimited { retry_after },
            other => unanswered(other),
        }
    }
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        match e {
            HubError::Store(s) => s.into(),
            e @ (HubError::NotRunning | HubError::TimedOut(_)) => unanswered(e),
            other => ApiError::internal(other),
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Refused(_) => ApiError::internal(e),
            other => unanswered(other),
        }
    }
}

impl From<DispatcherError> for ApiError {
    fn from(e: DispatcherError) -> Self {
        match e {
            DispatcherError::Store(s) => s.into(),
            other => unanswered(other),
        }
    }
}

impl From<ActivateError> for ApiError {
    fn from(e: ActivateError) -> Self {
        match e {
            ActivateError::TooMany(_) => ApiError::Conflict {
                code: "too_many_sessions",
                message: e.to_string(),
            },
            ActivateError::NotFound => ApiError::NotFound("session"),
            ActivateError::Store(e) => e.into(),
        }
    }
}

impl From<ConversationError> for ApiError {
    fn from(e: ConversationError) -> Self {
        match e {
            ConversationError::NotFound => ApiError::NotFound("conversation"),
            ConversationError::Store(e) => e.into(),
        }
    }
}

impl From<ReplayError> for ApiError {
    fn from(e: ReplayError) -> Self {
        match e {
            ReplayError::NotFound => ApiError::NotFound("dead letter not found"),
            ReplayError::AlreadyReplayed => ApiError::Conflict {
                code: "already_replayed",
                message: e.to_string(),
            },
            ReplayError::Store(e) => ApiError::internal(e),
        }
    }
}

impl From<TemplateError> for ApiError {
    fn from(e: TemplateError) -> Self {
        let code = match e {
            TemplateError::InvalidName => "invalid_template_name",
            TemplateError::InvalidLanguage => "invalid_language",
            TemplateError::InvalidCategory => "invalid_category",
            TemplateError::NoComponents => "invalid_components",
        };
        ApiError::unprocessable(code, e.to_string())
    }
}

impl From<LoginError> for ApiError {
    fn from(e: LoginError) -> Self {
        let code = match e {
            LoginError::NoQr(_) => "qr_not_available",
            LoginError::NoPairing(_) => "pairing_not_available",
        };
        ApiError::Conflict {
            code,
            message: e.to_string(),
        }
    }
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        let code = match e {
            UploadError::UnsupportedType(_) => "unsupported_media_type",
            UploadError::Empty => "empty_file",
            UploadError::TooLarge { .. } => "file_too_large",
            UploadError::InvalidFilename => "invalid_filename",
        };
        ApiError::unprocessable(code, e.to_string())
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
