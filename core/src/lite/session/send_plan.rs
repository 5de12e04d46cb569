//! The decisions of a Lite send, without I/O: whether the session can send now, the page
//! request a Cloud-API-shaped message translates to, and what each failure or page answer means
//! for the Dispatcher ([`SendOutcome`]). [`super::send`] does the I/O between them.

use crate::connection::SendOutcome;
use crate::lite::{LiteError, Status};
use crate::media_store::MAX_MEDIA_BYTES;
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

/// Where a media message's bytes come from.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum MediaSource {
    /// Uploaded earlier through the media endpoint (the `id` the API gave back).
    Stored(Uuid),
    /// Fetched from a public link at send time.
    Link(String),
}

/// A media message's attachment, before its bytes are loaded.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct MediaPlan {
    pub source: MediaSource,
    pub filename: Option<String>,
    pub caption: Option<String>,
    /// Sent as a document (a file to download) rather than shown inline.
    pub as_document: bool,
}

/// The page request a message translates to; a media message's attachment is loaded and put
/// on the page before the request leaves.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Plan {
    pub request: Value,
    pub media: Option<MediaPlan>,
}

fn fail(error: String) -> SendOutcome {
    SendOutcome::Failed { code: None, error }
}

/// A failure worth another attempt soon (the Dispatcher's backoff).
pub(super) fn retry(error: String) -> SendOutcome {
    SendOutcome::Retry {
        code: None,
        error,
        after: None,
    }
}

/// Only a WORKING, connected session with its browser up sends.
pub(super) fn readiness(status: Status, connected: bool, running: bool) -> Result<(), SendOutcome> {
    if status != Status::Working || !connected {
        return Err(SendOutcome::Unavailable {
            reason: format!("Lite session is {}", status.as_str()),
        });
    }
    if !running {
        return Err(SendOutcome::Unavailable {
            reason: "browser not running".into(),
        });
    }
    Ok(())
}

/// The page request for `kind`/`body` to `to` (E.164, digits kept), or why it cannot be sent
/// through a Lite connection.
pub(super) fn translate(to: &str, kind: &str, body: &Value) -> Result<Plan, SendOutcome> {
    let to: String = to.chars().filter(char::is_ascii_digit).collect();
    let mut request = json!({"to": to, "timeout_ms": 20_000});
    let mut media = None;
    match kind {
        "text" => match body["text"]["body"].as_str() {
            Some(text) if !text.is_empty() => request["text"] = json!(text),
            _ => return Err(fail("text.body is missing".into())),
        },
        "image" | "video" | "audio" | "document" | "sticker" => {
            let obj = &body[kind];
            let source = if let Some(id) = obj["id"].as_str() {
                match id.parse::<Uuid>() {
                    Ok(media_id) => MediaSource::Stored(media_id),
                    Err(_) => return Err(fail(format!("media id {id:?} is not ours"))),
                }
            } else if let Some(link) = obj["link"].as_str() {
                MediaSource::Link(link.to_string())
            } else {
                return Err(fail(format!("{kind}.id or {kind}.link is required")));
            };
            media = Some(MediaPlan {
                source,
                filename: obj["filename"].as_str().map(str::to_string),
                caption: obj["caption"].as_str().map(str::to_string),
                as_document: kind == "document",
            });
        }
        "location" => {
            let l = &body["location"];
            let (Some(lat), Some(lng)) = (l["latitude"].as_f64(), l["longitude"].as_f64()) else {
                return Err(fail(
                    "location.latitude and location.longitude are required".into(),
                ));
            };
            let loc = [l["name"].as_str(), l["address"].as_str()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("\n");
            request["location"] = json!({"lat": lat, "lng": lng, "loc": loc});
        }
        other => {
            return Err(fail(format!(
                "messages of type {other} cannot be sent through a Lite connection"
            )));
        }
    }
    Ok(Plan { request, media })
}

/// A media load that failed: the message's own fault fails it, anything else is retried.
pub(super) fn load_failure(e: LiteError) -> SendOutcome {
    match e {
        LiteError::Invalid(e) => fail(e),
        e => retry(e.to_string()),
    }
}

/// WhatsApp takes media up to 16 MB.
pub(super) fn check_size(len: usize) -> Result<(), SendOutcome> {
    if len > MAX_MEDIA_BYTES {
        return Err(fail("media is larger than 16 MB".into()));
    }
    Ok(())
}

/// The request's `media` part once the bytes are on the page under `key`: the caller's file
/// name wins over the stored one.
pub(super) fn media_request(
    key: &str,
    mime: Option<String>,
    plan: &MediaPlan,
    stored_name: Option<String>,
) -> Value {
    json!({
        "key": key,
        "mimetype": mime.unwrap_or_else(|| "application/octet-stream".into()),
        "filename": plan.filename.clone().or(stored_name),
        "caption": plan.caption,
        "asDocument": plan.as_document,
    })
}

/// The WhatsApp id the page made for the message, or a retry when it gave none.
pub(super) fn page_id(answer: Result<Value, LiteError>) -> Result<String, SendOutcome> {
    match answer {
        Ok(Value::String(id)) if !id.is_empty() => Ok(id),
        other => Err(retry(format!("the page gave no message id: {other:?}"))),
    }
}

/// What the page's answer to `send` means. Once the request left, a page that failed or did
/// not answer leaves the send uncertain (it may have left); WhatsApp's own refusals fail it,
/// except a connection not ready yet, which is retried shortly.
pub(super) fn classify_answer(answer: Result<Value, LiteError>) -> SendOutcome {
    let v = match answer {
        Err(LiteError::Timeout(t)) => {
            return SendOutcome::Uncertain {
                error: format!("the page did not confirm the send within {t:?}"),
            };
        }
        Err(e) => {
            return SendOutcome::Uncertain {
                error: format!("the page failed while sending: {e}"),
            };
        }
        Ok(v) => v,
    };
    match v["status"].as_str() {
        Some("not_logged_in") => SendOutcome::Unavailable {
            reason: "the page is not logged in".into(),
        },
        Some("done") => {
            let id = v["id"].as_str().unwrap_or_default().to_string();
            let result = &v["result"];
            if result["timeout"] == json!(true) {
                SendOutcome::Uncertain {
                    error: format!("WhatsApp did not acknowledge message {id} in time"),
                }
            } else if result["messageSendResult"] == "OK" {
                SendOutcome::Sent { external_id: id }
            } else {
                let error = result["error"]
                    .as_str()
                    .unwrap_or("send failed")
                    .to_string();
                match error.as_str() {
                    "not_connected" | "not_linked" => SendOutcome::Retry {
                        code: None,
                        error,
                        after: Some(Duration::from_secs(5)),
                    },
                    _ => SendOutcome::Failed { code: None, error },
                }
            }
        }
        _ => SendOutcome::Uncertain {
            error: format!("unexpected answer from the page: {v}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unavailable(reason: &str) -> SendOutcome {
        SendOutcome::Unavailable {
            reason: reason.into(),
        }
    }

    #[test]
    fn readiness_table() {
        let cases = [
            (Status::Working, true, true, Ok(())),
            (
                Status::Working,
                false,
                true,
                Err(unavailable("Lite session is WORKING")),
            ),
            (
                Status::ScanQrCode,
                true,
                true,
                Err(unavailable("Lite session is SCAN_QR_CODE")),
            ),
            (
                Status::Working,
                true,
                false,
                Err(unavailable("browser not running")),
            ),
        ];
        for (status, connected, running, want) in cases {
            assert_eq!(
                readiness(status, connected, running),
                want,
                "{status:?} connected={connected} running={running}"
            );
        }
    }

    #[test]
    fn translate_plain_messages() {
        let cases = [
            (
                "text",
                json!({"text": {"body": "hi"}}),
                json!({"to": "5511987654321", "timeout_ms": 20_000, "text": "hi"}),
            ),
            (
                "location",
                json!({"location": {"latitude": 1.5, "longitude": -2.0, "name": "Here", "address": "Street 1"}}),
                json!({"to": "5511987654321", "timeout_ms": 20_000,
                       "location": {"lat": 1.5, "lng": -2.0, "loc": "Here\nStreet 1"}}),
            ),
            (
                "location",
                json!({"location": {"latitude": 0.0, "longitude": 0.0}}),
                json!({"to": "5511987654321", "timeout_ms": 20_000,
                       "location": {"lat": 0.0, "lng": 0.0, "loc": ""}}),
            ),
        ];
        for (kind, body, want) in cases {
            let plan = translate("+55 11 98765-4321", kind, &body).expect(kind);
            assert_eq!(plan.request, want, "{kind}");
            assert_eq!(plan.media, None, "{kind}");
        }
    }

    #[test]
    fn translate_media_messages() {
        let id = Uuid::new_v4();
        let cases = [
            (
                "image",
                json!({"image": {"id": id.to_string(), "caption": "look"}}),
                MediaPlan {
                    source: MediaSource::Stored(id),
                    filename: None,
                    caption: Some("look".into()),
                    as_document: false,
                },
            ),
            (
                "document",
                json!({"document": {"link": "https://example.test/a.pdf", "filename": "a.pdf"}}),
                MediaPlan {
                    source: MediaSource::Link("https://example.test/a.pdf".into()),
                    filename: Some("a.pdf".into()),
                    caption: None,
                    as_document: true,
                },
            ),
        ];
        for (kind, body, want) in cases {
            let plan = translate("+1 555", kind, &body).expect(kind);
            assert_eq!(plan.request, json!({"to": "1555", "timeout_ms": 20_000}));
            assert_eq!(plan.media, Some(want), "{kind}");
        }
    }

    #[test]
    fn translate_refusals() {
        let cases = [
            (
                "text",
                json!({"text": {"body": ""}}),
                "text.body is missing",
            ),
            ("text", json!({}), "text.body is missing"),
            (
                "image",
                json!({"image": {"id": "not-a-uuid"}}),
                "media id \"not-a-uuid\" is not ours",
            ),
            (
                "audio",
                json!({"audio": {}}),
                "audio.id or audio.link is required",
            ),
            (
                "location",
                json!({"location": {"latitude": 1.0}}),
                "location.latitude and location.longitude are required",
            ),
            (
                "template",
                json!({"template": {}}),
                "messages of type template cannot be sent through a Lite connection",
            ),
        ];
        for (kind, body, error) in cases {
            assert_eq!(
                translate("+1", kind, &body),
                Err(fail(error.into())),
                "{kind} {body}"
            );
        }
    }

    #[test]
    fn media_steps() {
        assert_eq!(
            load_failure(LiteError::Invalid("bad".into())),
            fail("bad".into())
        );
        assert!(matches!(
            load_failure(LiteError::Page("down".into())),
            SendOutcome::Retry { after: None, .. }
        ));
        assert_eq!(check_size(MAX_MEDIA_BYTES), Ok(()));
        assert_eq!(
            check_size(MAX_MEDIA_BYTES + 1),
            Err(fail("media is larger than 16 MB".into()))
        );
        let plan = MediaPlan {
            source: MediaSource::Link("x".into()),
            filename: None,
            caption: None,
            as_document: false,
        };
        assert_eq!(
            media_request("k", None, &plan, Some("stored.jpg".into())),
            json!({"key": "k", "mimetype": "application/octet-stream", "filename": "stored.jpg",
                   "caption": null, "asDocument": false})
        );
        let named = MediaPlan {
            filename: Some("mine.jpg".into()),
            ..plan
        };
        assert_eq!(
            media_request(
                "k",
                Some("image/jpeg".into()),
                &named,
                Some("stored.jpg".into())
            )["filename"],
            json!("mine.jpg")
        );
    }

    #[test]
    fn page_id_table() {
        assert_eq!(page_id(Ok(json!("3EB0ABC"))), Ok("3EB0ABC".into()));
        for answer in [
            Ok(json!("")),
            Ok(json!(null)),
            Ok(json!(42)),
            Err(LiteError::Page("gone".into())),
        ] {
            assert!(matches!(page_id(answer), Err(SendOutcome::Retry { .. })));
        }
    }

    #[test]
    fn classify_answer_table() {
        let uncertain = |v: &SendOutcome| matches!(v, SendOutcome::Uncertain { .. });
        let cases: Vec<(Result<Value, LiteError>, fn(&SendOutcome) -> bool)> = vec![
            (Err(LiteError::Timeout(Duration::from_secs(30))), |o| {
                matches!(o, SendOutcome::Uncertain { .. })
            }),
            (Err(LiteError::Page("crashed".into())), |o| {
                matches!(o, SendOutcome::Uncertain { .. })
            }),
            (Ok(json!({"status": "not_logged_in"})), |o| {
                matches!(o, SendOutcome::Unavailable { .. })
            }),
            (
                Ok(json!({"status": "done", "id": "X1", "result": {"messageSendResult": "OK"}})),
                |o| {
                    *o == SendOutcome::Sent {
                        external_id: "X1".into(),
                    }
                },
            ),
            (
                Ok(json!({"status": "done", "id": "X1", "result": {"timeout": true}})),
                |o| matches!(o, SendOutcome::Uncertain { .. }),
            ),
            (
                Ok(json!({"status": "done", "result": {"error": "not_connected"}})),
                |o| matches!(o, SendOutcome::Retry { after: Some(a), .. } if *a == Duration::from_secs(5)),
            ),
            (
                Ok(json!({"status": "done", "result": {"error": "not_linked"}})),
                |o| matches!(o, SendOutcome::Retry { after: Some(_), .. }),
            ),
            (
                Ok(json!({"status": "done", "result": {"error": "invalid_wid"}})),
                |o| *o == fail("invalid_wid".into()),
            ),
            (Ok(json!({"status": "done", "result": {}})), |o| {
                *o == fail("send failed".into())
            }),
            (Ok(json!({"status": "weird"})), |o| {
                matches!(o, SendOutcome::Uncertain { .. })
            }),
        ];
        assert!(uncertain(&classify_answer(Ok(json!(null)))));
        for (answer, want) in cases {
            let shown = format!("{answer:?}");
            let got = classify_answer(answer);
            assert!(want(&got), "{shown} -> {got:?}");
        }
    }
}
