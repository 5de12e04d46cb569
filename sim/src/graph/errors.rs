//! Errors of the simulator and how they go on the wire: Graph errors in Meta's exact shape
//! (`{"error":{"message":"(#code) title","type","code","error_data":{...},"fbtrace_id"}}`, HTTP
//! status from Meta's table) and control-route errors in the project's shape
//! (`{"error":{"code":"snake_case","message"}}`).

use serde_json::{Value, json};
use warp::http::StatusCode;
use warp::reply::Response;

use super::ids;

/// Title Meta puts after `(#code)` and the HTTP status it answers with (Meta's Cloud API documentation;
/// statuses Meta does not document are the reference's best guess, and callers may override).
pub fn code_info(code: i64) -> (&'static str, u16) {
    match code {
        0 => ("AuthException", 401),
        1 => ("API Unknown", 400),
        2 => ("API Service", 503),
        3 => ("API Method", 500),
        4 => ("API Too Many Calls", 400),
        10 => ("Permission denied", 403),
        100 => ("Invalid parameter", 400),
        190 => ("Invalid OAuth access token", 401),
        200..=299 => ("API Permission Denied", 403),
        368 => ("Temporarily blocked for policies violations", 403),
        2200 => ("Callback verification failed", 400),
        2500 => ("Unknown path components", 400),
        80007 => ("Rate limit issues", 400),
        130429 => ("Rate limit hit", 400),
        130472 => ("User's number is part of an experiment", 400),
        131000 => ("Something went wrong", 500),
        131005 => ("Access denied", 403),
        131008 => ("Required parameter is missing", 400),
        131009 => ("Parameter value is not valid", 400),
        131016 => ("Service unavailable", 503),
        131021 => ("Recipient cannot be sender", 400),
        131026 => ("Message undeliverable", 400),
        131031 => ("Account has been locked", 403),
        131047 => ("Re-engagement message", 400),
        131048 => ("Spam rate limit hit", 400),
        131049 => (
            "This message was not delivered to maintain healthy ecosystem engagement.",
            400,
        ),
        131050 => ("User stopped marketing messages", 400),
        131051 => ("Unsupported message type", 400),
        131052 => ("Media download error", 400),
        131053 => ("Media upload error", 400),
        131056 => (
            "(Business Account, Consumer Account) pair rate limit hit",
            400,
        ),
        131057 => ("Account in maintenance mode", 500),
        132000 => (
            "Number of parameters does not match the expected number of params",
            400,
        ),
        132001 => ("Template name does not exist in the translation", 404),
        132005 => ("Translated text too long", 400),
        132007 => ("Format character policy violated", 400),
        132012 => (
            "Parameter format does not match format in the created template",
            400,
        ),
        132015 => ("Template is Paused", 400),
        132016 => ("Template is Disabled", 400),
        133004 => ("Server temporarily unavailable", 503),
        133010 => ("Phone number Not Registered", 400),
        _ => ("Unknown error", 400),
    }
}

/// An error answered by a Graph endpoint, shaped like Meta's.
#[derive(Debug, Clone, thiserror::Error)]
#[error("(#{code}) {title}: {details}")]
pub struct GraphError {
    pub code: i64,
    pub title: String,
    pub details: String,
    pub http_status: u16,
    pub subcode: Option<i64>,
    /// `OAuthException` for nearly everything, `GraphMethodException` for unknown objects.
    pub kind: &'static str,
    /// Whether to include `error_data` (Meta omits it on token errors).
    pub with_data: bool,
    /// Answer the status with no body at all (a bare 5xx, as proxies do).
    pub empty_body: bool,
}

impl GraphError {
    pub fn new(code: i64, details: impl Into<String>) -> Self {
        let (title, http_status) = code_info(code);
        GraphError {
            code,
            title: title.to_string(),
            details: details.into(),
            http_status,
            subcode: None,
            kind: "OAuthException",
            with_data: true,
            empty_body: false,
        }
    }

    /// Code 190: missing, malformed or unknown access token.
    pub fn token(details: &str) -> Self {
        let mut e = GraphError::new(190, details);
        e.with_data = false;
        e
    }

    /// Code 100, subcode 33: the object does not exist or this token may not see it.
    pub fn unknown_object(method: &str, id: &str) -> Self {
        let mut e = GraphError::new(
            100,
            format!(
                "Unsupported {method} request. Object with ID '{id}' does not exist, cannot be \
                 loaded due to missing permissions, or does not support this operation."
            ),
        );
        e.kind = "GraphMethodException";
        e.subcode = Some(33);
        e.with_data = false;
        e
    }

    pub fn missing(details: impl Into<String>) -> Self {
        GraphError::new(131008, details)
    }

    pub fn invalid(details: impl Into<String>) -> Self {
        GraphError::new(131009, details)
    }

    pub fn param(details: impl Into<String>) -> Self {
        GraphError::new(100, details)
    }

    pub fn body(&self) -> Value {
        let message = if self.with_data {
            format!("(#{}) {}", self.code, self.title)
        } else {
            // Token and object errors carry their explanation in `message` itself.
            match self.code {
                190 => format!("{} - {}", self.title, self.details),
                _ => self.details.clone(),
            }
        };
        let mut err = json!({
            "message": message,
            "type": self.kind,
            "code": self.code,
            "fbtrace_id": ids::fbtrace_id(),
        });
        if let Some(sub) = self.subcode {
            err["error_subcode"] = json!(sub);
        }
        if self.with_data {
            err["error_data"] = json!({"messaging_product": "whatsapp", "details": self.details});
        }
        json!({ "error": err })
    }

    pub fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.http_status).unwrap_or(StatusCode::BAD_REQUEST);
        if self.empty_body {
            let mut res = Response::new(Vec::new().into());
            *res.status_mut() = status;
            return res;
        }
        let mut res = json_response(status, &self.body());
        if self.code == 190 {
            res.headers_mut().insert(
                "www-authenticate",
                warp::http::HeaderValue::from_static(
                    "OAuth \"Facebook Platform\" \"invalid_token\" \"Invalid OAuth access token\"",
                ),
            );
        }
        res
    }
}

/// An error of a `/sim/*` control route.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ControlError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ControlError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ControlError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ControlError::new(400, "invalid_request", message)
    }

    pub fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        json_response(
            status,
            &json!({"error": {"code": self.code, "message": self.message}}),
        )
    }
}

/// A JSON response with the given status.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut res = Response::new(bytes.into());
    *res.status_mut() = status;
    res.headers_mut().insert(
        "content-type",
        warp::http::HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    res
}
