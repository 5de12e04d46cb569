//! Every core error as an [`ApiError`]: one `From` impl per error enum of the core (store,
//! actors' handles, the send request, templates, media, leads, Lite login), so handlers call
//! the core with `?` and the status each cause gets is decided here, in one place.

use super::ApiError;
use sincro_core::alerts::AlertError;
use sincro_core::business::BusinessError;
use sincro_core::business::connect::ConnectError;
use sincro_core::business::error::BusinessSupervisorError;
use sincro_core::business::graph::GraphError;
use sincro_core::business::media::UploadError;
use sincro_core::business::templates::TemplateError;
use sincro_core::hooks::HookError;
use sincro_core::hub::HubError;
use sincro_core::ingest::IngestError;
use sincro_core::ingest::dead_letter::ReplayError;
use sincro_core::ingest::group_commit::InboxWriteError;
use sincro_core::leads::error::LeadSyncError;
use sincro_core::leads::query::LeadQueryError;
use sincro_core::lite::login::LoginError;
use sincro_core::lite::store::ActivateError;
use sincro_core::lite::{LiteSessionError, LiteSupervisorError};
use sincro_core::media_store::MediaError;
use sincro_core::outbound::batch::BatchError;
use sincro_core::outbound::error::DispatcherError;
use sincro_core::outbound::submit::SubmitError;
use sincro_core::privacy::PrivacyError;
use sincro_core::rate_limiter::RateLimiterError;
use sincro_core::store::StoreError;
use sincro_core::store::conversations::ConversationError;
use sincro_core::store::users::UserError;

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

impl From<InboxWriteError> for ApiError {
    fn from(e: InboxWriteError) -> Self {
        match e {
            InboxWriteError::Unavailable(why) => {
                tracing::warn!(error = %why, "database unavailable");
                ApiError::Unavailable("the database is unavailable; retry later".into())
            }
            InboxWriteError::Failed(why) => ApiError::internal(why),
        }
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
            LeadQueryError::InvalidSource => ApiError::bad_request("invalid_source", e.to_string()),
            LeadQueryError::NotFound => ApiError::NotFound("lead"),
            LeadQueryError::Store(e) => e.into(),
        }
    }
}

impl From<PrivacyError> for ApiError {
    fn from(e: PrivacyError) -> Self {
        match e {
            PrivacyError::InvalidContact(_) => {
                ApiError::bad_request("invalid_phone", e.to_string())
            }
            PrivacyError::Invalid(code, message) => ApiError::bad_request(code, message),
            PrivacyError::ContactNotFound => ApiError::NotFound("contact"),
            PrivacyError::UserNotFound => ApiError::NotFound("user"),
            PrivacyError::LeadNotFound => ApiError::NotFound("lead"),
            PrivacyError::Files(_) => ApiError::internal(e),
            PrivacyError::Store(s) => s.into(),
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
            SubmitError::InvalidKey => {
                return ApiError::bad_request("invalid_idempotency_key", e.to_string());
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
            SubmitError::ContactOptedOut(_) => "contact_opted_out",
        };
        ApiError::unprocessable(code, e.to_string())
    }
}

/// A body that is not a batch, or one over the limit, is a 400 saying which.
impl From<BatchError> for ApiError {
    fn from(e: BatchError) -> Self {
        match e {
            BatchError::Malformed(_) => ApiError::bad_request("invalid_batch", e.to_string()),
            BatchError::TooMany(_) => ApiError::bad_request("too_many_messages", e.to_string()),
            BatchError::Store(s) => s.into(),
        }
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

impl From<AlertError> for ApiError {
    fn from(e: AlertError) -> Self {
        match e {
            AlertError::NotFound => ApiError::NotFound("alert not found"),
            AlertError::Store(e) => e.into(),
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

impl From<HookError> for ApiError {
    fn from(e: HookError) -> Self {
        let message = e.to_string();
        match e {
            HookError::NotFound => ApiError::NotFound("webhook"),
            HookError::InvalidUrl(_) => ApiError::unprocessable("invalid_url", message),
            HookError::UrlNotAllowed(_) => ApiError::unprocessable("url_not_allowed", message),
            HookError::InvalidTypes(_) => ApiError::unprocessable("invalid_types", message),
            HookError::InvalidHeader(_) => ApiError::unprocessable("invalid_header", message),
            HookError::Invalid(code, _) => ApiError::unprocessable(code, message),
            HookError::SinceNotRetained { .. } => {
                ApiError::unprocessable("since_not_retained", message)
            }
            HookError::SinceAhead { .. } => ApiError::bad_request("invalid_since", message),
            HookError::Store(e) => e.into(),
        }
    }
}
