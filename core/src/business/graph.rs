//! The Graph API client of one Business number: every Cloud API call the daemon makes
//! (messages, media, templates, phone number, `debug_token`, `subscribed_apps`), each with its
//! own timeout, and Meta's error object parsed into [`GraphError`]. Only the BusinessNumber
//! actor that owns a client uses it (credential validation builds a short-lived one).
//!
//! Errors keep what the classification of Meta's Cloud API documentation needs: Meta's `code` (never the
//! HTTP status: 190 sometimes comes over 400), `error_data.details`, and whether the request
//! may have reached Meta (a lost answer must not be resent blindly: Meta has no idempotency
//! key).

use crate::secret::Secret;
use bytes::Bytes;
use serde_json::{Value, json};
use std::time::Duration;

/// Timeouts per kind of call: sends must answer fast; media may be large.
const SEND_TIMEOUT: Duration = Duration::from_secs(20);
const MEDIA_TIMEOUT: Duration = Duration::from_secs(90);
const MANAGEMENT_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// At most this many pages of templates per sync (25 per page by default at Meta).
const MAX_TEMPLATE_PAGES: usize = 100;

/// Meta's error object (`{"error":{...}}`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetaError {
    pub http_status: u16,
    pub code: i64,
    pub subcode: Option<i64>,
    /// `message`, e.g. `(#131047) Re-engagement message`.
    pub message: String,
    /// `error_data.details`: what Meta says to show and branch on, with `code`.
    pub details: Option<String>,
    pub fbtrace_id: Option<String>,
    /// `estimated_time_to_regain_access` of `X-Business-Use-Case-Usage`, when Meta sent one.
    pub regain_after: Option<Duration>,
}

impl MetaError {
    /// `(#code) message: details`, for errors stored on messages and shown to users.
    pub fn describe(&self) -> String {
        let msg = if self.message.starts_with("(#") {
            self.message.clone()
        } else {
            format!("(#{}) {}", self.code, self.message)
        };
        match &self.details {
            Some(d) if !d.is_empty() && !msg.contains(d.as_str()) => format!("{msg}: {d}"),
            _ => msg,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphError {
    /// Meta answered with its error object.
    #[error("Meta error {}", .0.describe())]
    Api(MetaError),
    /// A non-2xx answer without Meta's error object (a proxy's bare 5xx, a 404 on a media URL).
    #[error("the Graph API answered HTTP {status} without an error body")]
    Status { status: u16 },
    /// The request never left (connection refused, DNS, connect timeout): safe to retry.
    #[error("could not reach the Graph API: {0}")]
    NotSent(String),
    /// The request may have reached Meta but no answer came back (timeout, reset).
    #[error("no answer from the Graph API: {0}")]
    Lost(String),
    /// A 2xx answer that is not what the endpoint documents.
    #[error("unexpected answer from the Graph API: {0}")]
    Unexpected(String),
    /// A downloaded file is larger than allowed.
    #[error("the file is larger than {0} bytes")]
    TooLarge(usize),
}

impl GraphError {
    /// Meta's code, if Meta answered with one.
    pub fn code(&self) -> Option<i64> {
        match self {
            GraphError::Api(e) => Some(e.code),
            _ => None,
        }
    }

    /// Whether the credentials are the problem (codes 0 and 190).
    pub fn is_auth(&self) -> bool {
        matches!(self.code(), Some(0 | 190))
    }
}

/// Parses a non-2xx (or error-carrying) answer. Pure, for unit tests.
pub fn parse_error(http_status: u16, usage_header: Option<&str>, body: &[u8]) -> GraphError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let Some(err) = parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .filter(|e| e.is_object())
    else {
        return GraphError::Status {
            status: http_status,
        };
    };
    let code = err.get("code").and_then(as_i64).unwrap_or(-1);
    GraphError::Api(MetaError {
        http_status,
        code,
        subcode: err.get("error_subcode").and_then(as_i64),
        message: err
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        details: err
            .pointer("/error_data/details")
            .and_then(Value::as_str)
            .map(String::from),
        fbtrace_id: err
            .get("fbtrace_id")
            .and_then(Value::as_str)
            .map(String::from),
        regain_after: usage_header.and_then(regain_after),
    })
}

fn as_i64(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// The largest `estimated_time_to_regain_access` (minutes) in an `X-Business-Use-Case-Usage`
/// header.
fn regain_after(header: &str) -> Option<Duration> {
    let v: Value = serde_json::from_str(header).ok()?;
    let minutes = v
        .as_object()?
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|u| u.get("estimated_time_to_regain_access").and_then(as_i64))
        .max()?;
    (minutes > 0).then(|| Duration::from_secs(minutes as u64 * 60))
}

fn transport(e: reqwest::Error) -> GraphError {
    if e.is_connect() || e.is_builder() {
        GraphError::NotSent(e.to_string())
    } else {
        GraphError::Lost(e.to_string())
    }
}

/// What `GET /{media_id}` says about a media object.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaInfo {
    pub url: String,
    pub mime_type: Option<String>,
    /// Hex SHA-256 of the file.
    pub sha256: Option<String>,
    pub file_size: Option<u64>,
}

/// One Graph client: base URL, API version and one access token.
/// What Meta answered to an accepted send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The wamid.
    pub id: String,
    /// `contacts[0].wa_id`: the recipient's WhatsApp id, when Meta named it.
    pub wa_id: Option<String>,
}

#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    base: String,
    version: String,
    token: Secret,
}

impl GraphClient {
    pub fn new(base: &str, version: &str, token: &str) -> Result<GraphClient, GraphError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("sincro-whatsapp/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GraphError::NotSent(e.to_string()))?;
        Ok(GraphClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            version: version.to_string(),
            token: Secret::new(token),
        })
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/{}/{}",
            self.base,
            self.version,
            path.trim_start_matches('/')
        )
    }

    /// Sends a request and returns the JSON of a 2xx answer, or the parsed error.
    async fn call(
        &self,
        req: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<Value, GraphError> {
        let started = std::time::Instant::now();
        let resp = req
            .bearer_auth(self.token.expose())
            .timeout(timeout)
            .send()
            .await;
        let outcome = match &resp {
            Ok(r) if r.status().is_success() => "ok",
            Ok(_) => "error",
            Err(_) => "transport",
        };
        metrics::histogram!("sincro_graph_request_seconds", "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        let resp = resp.map_err(transport)?;
        let status = resp.status().as_u16();
        let usage = resp
            .headers()
            .get("x-business-use-case-usage")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let body = resp.bytes().await.map_err(transport)?;
        if !(200..300).contains(&status) {
            return Err(parse_error(status, usage.as_deref(), &body));
        }
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| GraphError::Unexpected(format!("not JSON: {e}")))?;
        if v.get("error").is_some() {
            return Err(parse_error(status, usage.as_deref(), &body));
        }
        Ok(v)
    }

    /// `POST /{phone_number_id}/messages`; returns the wamid (or the read message's id for a
    /// mark-as-read, which answers `{"success":true}`).
    pub async fn send_message(
        &self,
        phone_number_id: &str,
        body: &Value,
    ) -> Result<String, GraphError> {
        Ok(self.send_message_to(phone_number_id, body).await?.id)
    }

    /// [`send_message`](Self::send_message), with the recipient's WhatsApp id Meta answered
    /// (`contacts[0].wa_id`: the account the number was mapped to).
    pub async fn send_message_to(
        &self,
        phone_number_id: &str,
        body: &Value,
    ) -> Result<Accepted, GraphError> {
        let req = self
            .http
            .post(self.url(&format!("{phone_number_id}/messages")))
            .json(body);
        let v = self.call(req, SEND_TIMEOUT).await?;
        let wa_id = v
            .pointer("/contacts/0/wa_id")
            .and_then(Value::as_str)
            .filter(|w| !w.is_empty())
            .map(String::from);
        if let Some(id) = v.pointer("/messages/0/id").and_then(Value::as_str) {
            return Ok(Accepted {
                id: id.to_string(),
                wa_id,
            });
        }
        if v.get("success").and_then(Value::as_bool) == Some(true)
            && let Some(id) = body.get("message_id").and_then(Value::as_str)
        {
            return Ok(Accepted {
                id: id.to_string(),
                wa_id: None,
            });
        }
        Err(GraphError::Unexpected(
            "no messages[0].id in the answer".into(),
        ))
    }

    /// `POST /{phone_number_id}/media` (multipart); returns Meta's media id.
    pub async fn upload_media(
        &self,
        phone_number_id: &str,
        data: Bytes,
        mime: &str,
        filename: Option<&str>,
    ) -> Result<String, GraphError> {
        let boundary = format!("sincro{}", uuid::Uuid::new_v4().simple());
        let body = multipart_body(&boundary, data, mime, filename.unwrap_or("file"));
        let req = self
            .http
            .post(self.url(&format!("{phone_number_id}/media")))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body);
        let v = self.call(req, MEDIA_TIMEOUT).await?;
        v.get("id")
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| GraphError::Unexpected("no id in the upload answer".into()))
    }

    /// `GET /{media_id}?phone_number_id=`: a download URL valid for a few minutes.
    pub async fn media_info(
        &self,
        media_id: &str,
        phone_number_id: &str,
    ) -> Result<MediaInfo, GraphError> {
        let req = self
            .http
            .get(self.url(media_id))
            .query(&[("phone_number_id", phone_number_id)]);
        let v = self.call(req, MANAGEMENT_TIMEOUT).await?;
        let url = v
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| GraphError::Unexpected("no url for this media".into()))?;
        Ok(MediaInfo {
            url: url.to_string(),
            mime_type: v.get("mime_type").and_then(Value::as_str).map(String::from),
            sha256: v.get("sha256").and_then(Value::as_str).map(String::from),
            file_size: v.get("file_size").and_then(as_i64).map(|n| n as u64),
        })
    }

    /// `GET <url>` with the bearer token, at most `max` bytes; returns the bytes and their type.
    pub async fn download(
        &self,
        url: &str,
        max: usize,
    ) -> Result<(Bytes, Option<String>), GraphError> {
        let mut resp = self
            .http
            .get(url)
            .bearer_auth(self.token.expose())
            .timeout(MEDIA_TIMEOUT)
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(GraphError::Status { status });
        }
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(GraphError::TooLarge(max));
        }
        let mime = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let mut out = bytes::BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if out.len() + chunk.len() > max {
                return Err(GraphError::TooLarge(max));
            }
            out.extend_from_slice(&chunk);
        }
        Ok((out.freeze(), mime))
    }

    /// Every template of the WABA, following Meta's cursor paging.
    pub async fn list_templates(&self, waba_id: &str) -> Result<Vec<Value>, GraphError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_TEMPLATE_PAGES {
            let mut q: Vec<(&str, String)> = vec![("limit", "100".into())];
            if let Some(a) = &after {
                q.push(("after", a.clone()));
            }
            let req = self
                .http
                .get(self.url(&format!("{waba_id}/message_templates")))
                .query(&q);
            let v = self.call(req, MANAGEMENT_TIMEOUT).await?;
            if let Some(data) = v.get("data").and_then(Value::as_array) {
                out.extend(data.iter().cloned());
            }
            let next = v.pointer("/paging/next").and_then(Value::as_str).is_some();
            after = v
                .pointer("/paging/cursors/after")
                .and_then(Value::as_str)
                .map(String::from);
            if !next || after.is_none() {
                return Ok(out);
            }
        }
        Ok(out)
    }

    /// `POST /{waba_id}/message_templates`; returns `{id, status, category}`.
    pub async fn create_template(&self, waba_id: &str, body: &Value) -> Result<Value, GraphError> {
        let req = self
            .http
            .post(self.url(&format!("{waba_id}/message_templates")))
            .json(body);
        self.call(req, MANAGEMENT_TIMEOUT).await
    }

    /// `DELETE /{waba_id}/message_templates?name=[&hsm_id=]`.
    pub async fn delete_template(
        &self,
        waba_id: &str,
        name: &str,
        hsm_id: Option<&str>,
    ) -> Result<(), GraphError> {
        let mut q = vec![("name", name)];
        if let Some(h) = hsm_id {
            q.push(("hsm_id", h));
        }
        let req = self
            .http
            .delete(self.url(&format!("{waba_id}/message_templates")))
            .query(&q);
        self.call(req, MANAGEMENT_TIMEOUT).await.map(|_| ())
    }

    /// `GET /{phone_number_id}` with the fields the daemon shows and `throughput` (its level,
    /// which paces the number's sends: 80 messages per second, 1,000 once Meta upgrades it).
    pub async fn phone_number(&self, phone_number_id: &str) -> Result<Value, GraphError> {
        let req = self.http.get(self.url(phone_number_id)).query(&[(
            "fields",
            "id,display_phone_number,verified_name,quality_rating,throughput",
        )]);
        self.call(req, MANAGEMENT_TIMEOUT).await
    }

    /// `GET /{waba_id}/phone_numbers`: the numbers of a WABA (first page; a WABA has few).
    pub async fn waba_phone_numbers(&self, waba_id: &str) -> Result<Vec<Value>, GraphError> {
        let req = self
            .http
            .get(self.url(&format!("{waba_id}/phone_numbers")))
            .query(&[("limit", "100")]);
        let v = self.call(req, MANAGEMENT_TIMEOUT).await?;
        Ok(v.get("data")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// `GET /{waba_id}/subscribed_apps`: the apps receiving the account's webhooks, each with
    /// its `override_callback_uri` when one was given.
    pub async fn subscribed_apps(&self, waba_id: &str) -> Result<Vec<Value>, GraphError> {
        let req = self
            .http
            .get(self.url(&format!("{waba_id}/subscribed_apps")));
        let v = self.call(req, MANAGEMENT_TIMEOUT).await?;
        Ok(v.get("data")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// `GET /debug_token?input_token=<own token>`: validity and scopes of the token.
    pub async fn debug_token(&self) -> Result<Value, GraphError> {
        let req = self
            .http
            .get(self.url("debug_token"))
            .query(&[("input_token", self.token.expose())]);
        self.call(req, MANAGEMENT_TIMEOUT).await
    }

    /// `POST /{waba_id}/subscribed_apps`, optionally overriding the callback (Meta first
    /// performs the verification handshake against it).
    pub async fn subscribe_app(
        &self,
        waba_id: &str,
        override_callback: Option<(&str, &str)>,
    ) -> Result<(), GraphError> {
        let mut req = self
            .http
            .post(self.url(&format!("{waba_id}/subscribed_apps")));
        if let Some((uri, verify_token)) = override_callback {
            req = req.json(&json!({"override_callback_uri": uri, "verify_token": verify_token}));
        }
        self.call(req, MANAGEMENT_TIMEOUT).await.map(|_| ())
    }

    /// `DELETE /{waba_id}/subscribed_apps`: the app stops receiving the account's webhooks.
    pub async fn unsubscribe_app(&self, waba_id: &str) -> Result<(), GraphError> {
        let req = self
            .http
            .delete(self.url(&format!("{waba_id}/subscribed_apps")));
        self.call(req, MANAGEMENT_TIMEOUT).await.map(|_| ())
    }
}

/// A `multipart/form-data` body with `messaging_product`, `type` and `file` (reqwest's
/// multipart feature is not enabled in this workspace, and the form is tiny).
fn multipart_body(boundary: &str, data: Bytes, mime: &str, filename: &str) -> Vec<u8> {
    let safe_name: String = filename
        .chars()
        .map(|c| {
            if c == '"' || c == '\r' || c == '\n' {
                '_'
            } else {
                c
            }
        })
        .collect();
    let mut out = Vec::with_capacity(data.len() + 512);
    for (name, value) in [("messaging_product", "whatsapp"), ("type", mime)] {
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{safe_name}\"\r\nContent-Type: {mime}\r\n\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(&data);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_meta_error() {
        let body = br#"{"error":{"message":"(#131047) Re-engagement message","type":"OAuthException","code":131047,"error_subcode":2494010,"error_data":{"messaging_product":"whatsapp","details":"24 hours passed"},"fbtrace_id":"Ab"}}"#;
        let usage =
            r#"{"123":[{"type":"whatsapp","call_count":100,"estimated_time_to_regain_access":3}]}"#;
        let GraphError::Api(e) = parse_error(400, Some(usage), body) else {
            panic!("api error")
        };
        assert_eq!(e.code, 131047);
        assert_eq!(e.subcode, Some(2494010));
        assert_eq!(e.details.as_deref(), Some("24 hours passed"));
        assert_eq!(e.regain_after, Some(Duration::from_secs(180)));
        assert_eq!(
            e.describe(),
            "(#131047) Re-engagement message: 24 hours passed"
        );
    }

    #[test]
    fn bare_status_without_error_object() {
        assert_eq!(
            parse_error(503, None, b""),
            GraphError::Status { status: 503 }
        );
        assert_eq!(
            parse_error(502, None, b"<html>bad gateway</html>"),
            GraphError::Status { status: 502 }
        );
    }

    #[test]
    fn token_error_over_400_is_auth() {
        let body = br#"{"error":{"message":"Invalid OAuth access token","code":190,"type":"OAuthException"}}"#;
        assert!(parse_error(400, None, body).is_auth());
    }

    #[test]
    fn multipart_has_the_three_fields() {
        let body = multipart_body("b", Bytes::from_static(b"abc"), "image/png", "x\".png");
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("name=\"messaging_product\"\r\n\r\nwhatsapp\r\n"));
        assert!(text.contains("name=\"type\"\r\n\r\nimage/png\r\n"));
        assert!(
            text.contains("filename=\"x_.png\"\r\nContent-Type: image/png\r\n\r\nabc\r\n--b--")
        );
    }
}
