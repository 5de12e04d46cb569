//! What the Graph simulator stores, as plain records: injected faults, media objects, message
//! templates, and webhook options, queued events and delivery attempts. The handlers
//! (faults, media, templates, webhooks) work on these through [`super::state`]; this module
//! depends on none of them, so the state does not either.

use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::config::StatusKind;
use super::errors::ControlError;
use super::ids;

/// The body of `POST /sim/faults`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Only calls for this number; all numbers when absent.
    #[serde(default)]
    pub phone_number_id: Option<String>,
    /// Meta error code to answer with.
    #[serde(default)]
    pub code: Option<i64>,
    /// HTTP status; defaults to the code's status in Meta's table.
    #[serde(default)]
    pub http_status: Option<u16>,
    /// How many calls it hits (default 1, unless `ratio` is given: then unlimited).
    #[serde(default)]
    pub count: Option<u32>,
    /// Share of calls (0 < ratio <= 1) it hits.
    #[serde(default)]
    pub ratio: Option<f64>,
    /// Delay before answering (the call then fails or proceeds).
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// Never answer.
    #[serde(default)]
    pub timeout: bool,
    /// Answer the status with an empty body (implied when `http_status` has no `code`).
    #[serde(default)]
    pub empty_body: bool,
    /// Accept the send, then emit `sent` and `failed` (with `code`) status webhooks.
    #[serde(default, rename = "async")]
    pub asynchronous: bool,
    /// `error_data.details` of the error.
    #[serde(default)]
    pub details: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Fault {
    pub spec: FaultSpec,
    pub remaining: Option<u32>,
}

impl FaultSpec {
    pub fn validate(&self) -> Result<(), ControlError> {
        if self.code.is_none()
            && self.http_status.is_none()
            && self.latency_ms.is_none()
            && !self.timeout
        {
            return Err(ControlError::bad_request(
                "a fault needs at least one of code, http_status, latency_ms or timeout",
            ));
        }
        if let Some(r) = self.ratio
            && !(r > 0.0 && r <= 1.0)
        {
            return Err(ControlError::bad_request("ratio must be in (0, 1]"));
        }
        if let Some(s) = self.http_status
            && !(100..=599).contains(&s)
        {
            return Err(ControlError::bad_request(
                "http_status must be in 100..=599",
            ));
        }
        if self.count == Some(0) {
            return Err(ControlError::bad_request("count must be at least 1"));
        }
        if self.asynchronous && self.code.is_none() {
            return Err(ControlError::bad_request("an async fault needs a code"));
        }
        Ok(())
    }

    pub fn into_fault(self) -> Fault {
        let remaining = match (self.count, self.ratio) {
            (Some(c), _) => Some(c),
            (None, Some(_)) => None,
            (None, None) => Some(1),
        };
        Fault {
            spec: self,
            remaining,
        }
    }
}

/// One stored media object.
#[derive(Debug, Clone)]
pub struct Media {
    pub id: String,
    /// phone_number_id that owns it (uploader, or receiver for inbound media).
    pub owner: String,
    pub mime_type: String,
    pub data: Bytes,
    pub sha256: [u8; 32],
    pub filename: Option<String>,
}

impl Media {
    pub(super) fn new(owner: &str, mime_type: &str, data: Bytes, filename: Option<String>) -> Self {
        let sha256: [u8; 32] = Sha256::digest(&data).into();
        Media {
            id: ids::numeric_id(16),
            owner: owner.to_string(),
            mime_type: mime_type.to_string(),
            data,
            sha256,
            filename,
        }
    }

    /// Its own hex, not the daemon's `sincro_core::digest`: the simulator checks the daemon
    /// independently.
    pub fn sha256_hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Webhooks carry the digest in base64 (as Meta's do: `"sha256":"4654+8g="`).
    pub fn sha256_base64(&self) -> String {
        STANDARD.encode(self.sha256)
    }
}

/// A message template of a WABA, as created and reviewed.
#[derive(Debug, Clone)]
pub struct Template {
    pub id: u64,
    pub waba_id: String,
    pub name: String,
    pub language: String,
    pub category: String,
    pub status: String,
    pub parameter_format: String,
    pub components: Vec<Value>,
    pub rejected_reason: Option<String>,
}

impl Template {
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id.to_string(),
            "name": self.name,
            "language": self.language,
            "status": self.status,
            "category": self.category,
            "parameter_format": self.parameter_format,
            "components": self.components,
        });
        if let Some(r) = &self.rejected_reason {
            v["rejected_reason"] = json!(r);
        }
        v
    }
}

/// How deliveries deviate from plain in-order, once-only delivery (`POST /sim/webhooks`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookOptions {
    /// POST every body twice.
    #[serde(default)]
    pub duplicate: bool,
    /// Deliver the events gathered within `webhook_gather_window` in reverse order.
    #[serde(default)]
    pub reorder: bool,
    /// Hold each event this long before its first delivery attempt.
    #[serde(default)]
    pub delay_ms: u64,
    /// Put up to this many entries (gathered within `webhook_gather_window`) in one POST;
    /// 0 or 1 means one entry per POST.
    #[serde(default)]
    pub batch: u32,
    /// Overrides `GraphSimConfig::statuses` for sends made from now on.
    #[serde(default)]
    pub statuses: Option<Vec<StatusKind>>,
}

/// One entry waiting for delivery.
#[derive(Debug)]
pub struct WebhookEvent {
    pub target: Option<String>,
    pub app_secret: String,
    pub entry: Value,
    pub enqueued: Instant,
}

/// One delivery attempt (or a drop, for accounts without a webhook target).
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRecord {
    pub at: String,
    pub callback_url: Option<String>,
    pub attempt: u32,
    /// HTTP status the callback answered, if it answered.
    pub status: Option<u16>,
    /// `delivered`, `retrying`, `failed` (retries exhausted), `error` or `dropped`.
    pub outcome: &'static str,
    pub error: Option<String>,
    pub body: Value,
}
