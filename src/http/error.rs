//! The one API error type. Every error leaves as `{"error":{"code","message"}}` with a fitting
//! status (the README's HTTP API); internal causes are logged, never sent to the client. warp's
//! own rejections (unknown route, wrong method, oversized body...) get the same shape.

use serde::Serialize;
use sincro_core::business::connect::ConnectError;
use sincro_core::business::media::UploadError;
use sincro_core::business::templates::TemplateError;
use sincro_core::business::{BusinessError, graph::GraphError};
use sincro_core::ingest::dead_letter::ReplayError;
use sincro_core::leads::query::LeadQueryError;
use sincro_core::lite::login::LoginError;
use sincro_core::lite::store::ActivateError;
use sincro_core::outbound::submit::SubmitError;
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
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Unauthorized { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Unprocessable { code, .. } => code,
            ApiError::Forbidden(_) => "forbidden",
            ApiError::InsufficientScope(_) => "insufficient_scope",
            ApiError::TooLarge { .. } => "body_too_large",
            ApiError::NotFound(_) => "not_found",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unavailable(_) => "unavailable",
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

/// What Meta said is a 422 naming it; a dead token a 409.
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
            other => ApiError::internal(other),
        }
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
        ApiError::Internal(m) => ApiError::Internal(m.clone()),
    }
}
