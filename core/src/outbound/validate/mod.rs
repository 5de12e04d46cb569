//! Validation of `POST /v1/messages` bodies (the README's HTTP API): the message object shaped
//! like Meta's Cloud API request (Meta's Cloud API message reference) with its documented
//! sizes, plus our `connection_id`, `priority` and `send_at`. Pure: the checks that need the
//! database (connection owner, 24 h window, template approval) are in [`super::enqueue`].
//! Unknown fields are refused, as Meta refuses them (code 100), so a typo never sends something
//! other than what was meant.

use super::{PRIORITY_BULK, PRIORITY_HIGH, PRIORITY_NORMAL};
use crate::connection::ConnectionKind;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

mod fields;
mod interactive;
mod kinds;
mod template;

use interactive::interactive;
use kinds::{contacts, location, media, reaction, text};
use template::template;

/// A request that failed validation: an API error code and a message naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
}

fn bad(message: impl Into<String>) -> Invalid {
    Invalid {
        code: "invalid_message",
        message: message.into(),
    }
}

/// Every message type the API accepts.
pub const TYPES: &[&str] = &[
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "template",
    "reaction",
];

/// The types a Lite session (WhatsApp Web) can send: no templates, no interactive messages.
pub const LITE_TYPES: &[&str] = &[
    "text", "image", "audio", "video", "document", "sticker", "location", "contacts", "reaction",
];

/// A validated send request.
#[derive(Debug, Clone, PartialEq)]
pub struct SendRequest {
    pub connection_id: Uuid,
    /// As given; normalised to E.164 with the user's region by the caller.
    pub to: String,
    /// The Cloud API type.
    pub kind: String,
    /// What the connection actor receives: `{"type": kind, kind: {...}, "context"?: {...}}`.
    pub body: Value,
    pub priority: i16,
    pub send_at: Option<OffsetDateTime>,
    /// `(name, language code)` of a template message.
    pub template: Option<(String, String)>,
}

impl SendRequest {
    /// The CRM's `tipo` of the message (`mensajes_conversacion.tipo`).
    pub fn tipo(&self) -> &'static str {
        match self.kind.as_str() {
            "text" => "texto",
            "image" => "imagen",
            "audio" => "audio",
            "video" => "video",
            "document" => "documento",
            "sticker" => "sticker",
            "location" => "ubicacion",
            "contacts" => "contacto",
            "interactive" => "interactivo",
            "template" => "plantilla",
            "reaction" => "reaccion",
            _ => "desconocido",
        }
    }

    /// Readable text of the message for `contenido` (sealed at rest): the body, caption,
    /// emoji or place; None when the type has none.
    pub fn preview(&self) -> Option<String> {
        let obj = self.body.get(&self.kind)?;
        let s = |p: &str| obj.pointer(p).and_then(Value::as_str).map(str::to_string);
        match self.kind.as_str() {
            "text" => s("/body"),
            "image" | "video" | "document" => s("/caption"),
            "interactive" => s("/body/text"),
            "reaction" => s("/emoji"),
            "location" => s("/name").or_else(|| s("/address")),
            "template" => s("/name").map(|n| format!("[template {n}]")),
            _ => None,
        }
    }

    /// Whether Meta counts it as free-form (allowed only inside the 24 h window).
    pub fn is_free_form(&self) -> bool {
        self.kind != "template"
    }
}

/// Validates the whole request body.
pub fn validate(body: &Value) -> Result<SendRequest, Invalid> {
    let obj = body
        .as_object()
        .ok_or_else(|| bad("the request body must be a JSON object"))?;
    let connection_id = match obj.get("connection_id") {
        Some(Value::String(s)) => s.parse::<Uuid>().map_err(|_| Invalid {
            code: "invalid_connection_id",
            message: "connection_id must be a UUID".into(),
        })?,
        _ => {
            return Err(Invalid {
                code: "missing_connection_id",
                message: "connection_id is required (a Lite session or Business number id)".into(),
            });
        }
    };
    let to = match obj.get("to") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 32 => s.trim().to_string(),
        _ => {
            return Err(Invalid {
                code: "invalid_phone",
                message: "to must be the recipient's phone number in E.164, e.g. +5511987654321"
                    .into(),
            });
        }
    };
    let kind = match obj.get("type") {
        Some(Value::String(t)) if TYPES.contains(&t.as_str()) => t.clone(),
        Some(Value::String(t)) => {
            return Err(bad(format!(
                "type {t:?} is not one of {}",
                TYPES.join(", ")
            )));
        }
        None if obj.contains_key("text") => "text".to_string(),
        _ => {
            return Err(bad(format!(
                "type is required: one of {}",
                TYPES.join(", ")
            )));
        }
    };
    for key in obj.keys() {
        let known = matches!(
            key.as_str(),
            "connection_id"
                | "to"
                | "type"
                | "context"
                | "priority"
                | "send_at"
                | "messaging_product"
                | "recipient_type"
        ) || *key == kind;
        if !known {
            return Err(bad(format!(
                "unknown field {key:?} (a {kind} message carries its content in {kind:?})"
            )));
        }
    }
    if let Some(p) = obj.get("messaging_product")
        && p != "whatsapp"
    {
        return Err(bad("messaging_product must be \"whatsapp\""));
    }
    if let Some(r) = obj.get("recipient_type")
        && r != "individual"
    {
        return Err(bad("recipient_type must be \"individual\""));
    }
    let content = obj
        .get(&kind)
        .ok_or_else(|| bad(format!("a {kind} message needs its {kind:?} object")))?;
    let template = match kind.as_str() {
        "text" => {
            text(content)?;
            None
        }
        "image" | "audio" | "video" | "document" | "sticker" => {
            media(&kind, content)?;
            None
        }
        "location" => {
            location(content)?;
            None
        }
        "contacts" => {
            contacts(content)?;
            None
        }
        "interactive" => {
            interactive(content)?;
            None
        }
        "reaction" => {
            reaction(content)?;
            None
        }
        "template" => Some(template(content)?),
        _ => unreachable!("type checked above"),
    };
    let mut out = Map::new();
    out.insert("type".into(), json!(kind));
    out.insert(kind.clone(), content.clone());
    if let Some(ctx) = obj.get("context") {
        let id = ctx
            .as_object()
            .filter(|c| c.len() == 1)
            .and_then(|c| c.get("message_id"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 512);
        if id.is_none() {
            return Err(bad(
                "context must be {\"message_id\": \"<id of the message replied to>\"}",
            ));
        }
        out.insert("context".into(), ctx.clone());
    }
    let priority = match obj.get("priority") {
        None | Some(Value::Null) => PRIORITY_NORMAL,
        Some(Value::String(p)) if p == "high" => PRIORITY_HIGH,
        Some(Value::String(p)) if p == "normal" => PRIORITY_NORMAL,
        Some(Value::String(p)) if p == "bulk" => PRIORITY_BULK,
        Some(_) => {
            return Err(Invalid {
                code: "invalid_priority",
                message: "priority must be high, normal or bulk".into(),
            });
        }
    };
    let send_at = match obj.get("send_at") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            let at = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|_| Invalid {
                    code: "invalid_send_at",
                    message: "send_at must be an RFC 3339 time, e.g. 2026-05-01T12:00:00Z".into(),
                })?;
            if at > OffsetDateTime::now_utc() + time::Duration::days(366) {
                return Err(Invalid {
                    code: "invalid_send_at",
                    message: "send_at must be within a year".into(),
                });
            }
            Some(at)
        }
        Some(_) => {
            return Err(Invalid {
                code: "invalid_send_at",
                message: "send_at must be an RFC 3339 string".into(),
            });
        }
    };
    Ok(SendRequest {
        connection_id,
        to,
        kind,
        body: Value::Object(out),
        priority,
        send_at,
        template,
    })
}

/// Refuses types the connection's kind cannot send.
pub fn check_kind(req: &SendRequest, kind: ConnectionKind) -> Result<(), Invalid> {
    if kind == ConnectionKind::Lite && !LITE_TYPES.contains(&req.kind.as_str()) {
        return Err(Invalid {
            code: "unsupported_for_lite",
            message: format!(
                "a Lite session (WhatsApp Web) cannot send {} messages; it sends {}",
                req.kind,
                LITE_TYPES.join(", ")
            ),
        });
    }
    Ok(())
}

/// The request as a canonical JSON string (object keys sorted at every level), hashed for
/// `Idempotency-Key`: the same body with its keys in another order is the same request.
pub fn canonical(v: &Value) -> String {
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for k in keys {
                    out.insert(k.clone(), sort(&m[k]));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    // serde_json keeps insertion order when `preserve_order` is on somewhere in the build;
    // writing keys in sorted order makes the output canonical either way.
    sort(v).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(kind: &str, content: Value) -> Value {
        json!({"connection_id": Uuid::nil(), "to": "+5511987654321", "type": kind, kind: content})
    }

    #[test]
    fn text_and_sizes() {
        let r = validate(&base("text", json!({"body": "hi"}))).unwrap();
        assert_eq!(r.body, json!({"type": "text", "text": {"body": "hi"}}));
        assert_eq!(
            (r.priority, r.tipo(), r.preview().as_deref()),
            (PRIORITY_NORMAL, "texto", Some("hi"))
        );
        assert!(validate(&base("text", json!({"body": "x".repeat(4096)}))).is_ok());
        assert!(validate(&base("text", json!({"body": "x".repeat(4097)}))).is_err());
        assert!(validate(&base("text", json!({"body": ""}))).is_err());
        assert!(validate(&base("text", json!({"body": "a", "extra": 1}))).is_err());
    }

    #[test]
    fn envelope_errors() {
        let e = validate(&json!({"to": "+1", "type": "text", "text": {"body": "a"}})).unwrap_err();
        assert_eq!(e.code, "missing_connection_id");
        let mut v = base("text", json!({"body": "a"}));
        v["priority"] = json!("urgent");
        assert_eq!(validate(&v).unwrap_err().code, "invalid_priority");
        let mut v = base("text", json!({"body": "a"}));
        v["image"] = json!({"id": "1"});
        assert_eq!(validate(&v).unwrap_err().code, "invalid_message");
        let mut v = base("text", json!({"body": "a"}));
        v["send_at"] = json!("tomorrow");
        assert_eq!(validate(&v).unwrap_err().code, "invalid_send_at");
        let mut v = base("text", json!({"body": "a"}));
        v["priority"] = json!("bulk");
        let soon = OffsetDateTime::now_utc() + time::Duration::days(30);
        v["send_at"] = json!(
            soon.format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        );
        v["context"] = json!({"message_id": "wamid.X"});
        let r = validate(&v).unwrap();
        assert_eq!(r.priority, PRIORITY_BULK);
        assert!(r.send_at.is_some());
        assert_eq!(r.body["context"]["message_id"], "wamid.X");
    }

    #[test]
    fn media_rules() {
        assert!(validate(&base("image", json!({"id": "123", "caption": "c"}))).is_ok());
        assert!(validate(&base("image", json!({"link": "https://x.io/a.jpg"}))).is_ok());
        assert!(
            validate(&base(
                "image",
                json!({"id": "1", "link": "https://x.io/a.jpg"})
            ))
            .is_err()
        );
        assert!(validate(&base("audio", json!({"id": "1", "caption": "no"}))).is_err());
        assert!(validate(&base("document", json!({"id": "1", "filename": "a.pdf"}))).is_ok());
        assert!(validate(&base("video", json!({"link": "ftp://x"}))).is_err());
    }

    #[test]
    fn interactive_rules() {
        let ok = json!({"type": "button", "body": {"text": "Pick"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "Yes"}},
                                   {"type": "reply", "reply": {"id": "b", "title": "No"}}]}});
        assert!(validate(&base("interactive", ok)).is_ok());
        let dup = json!({"type": "button", "body": {"text": "Pick"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "Yes"}},
                                   {"type": "reply", "reply": {"id": "b", "title": "Yes"}}]}});
        assert!(validate(&base("interactive", dup)).is_err());
        let rows: Vec<Value> = (0..11)
            .map(|i| json!({"id": format!("r{i}"), "title": "Row"}))
            .collect();
        let list = json!({"type": "list", "body": {"text": "b"}, "action": {"button": "Open", "sections": [{"title": "A", "rows": rows}]}});
        assert!(validate(&base("interactive", list)).is_err());
        let cta = json!({"type": "cta_url", "body": {"text": "b"}, "action": {"name": "cta_url", "parameters": {"display_text": "See", "url": "https://x.io"}}});
        assert!(validate(&base("interactive", cta)).is_ok());
    }

    #[test]
    fn template_location_contacts_reaction() {
        let r = validate(&base(
            "template",
            json!({"name": "order_update", "language": {"code": "en_US"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}]}),
        ))
        .unwrap();
        assert_eq!(r.template, Some(("order_update".into(), "en_US".into())));
        assert!(!r.is_free_form());
        assert!(validate(&base("template", json!({"name": "x"}))).is_err());
        assert!(validate(&base("location", json!({"latitude": 1.5, "longitude": 2}))).is_ok());
        assert!(validate(&base("location", json!({"latitude": 91, "longitude": 2}))).is_err());
        assert!(
            validate(&base(
                "contacts",
                json!([{"name": {"formatted_name": "Ana"}}])
            ))
            .is_ok()
        );
        assert!(validate(&base("contacts", json!([]))).is_err());
        assert!(
            validate(&base(
                "reaction",
                json!({"message_id": "wamid.1", "emoji": ""})
            ))
            .is_ok()
        );
    }

    #[test]
    fn lite_types_and_canonical() {
        let r = validate(&base(
            "template",
            json!({"name": "n", "language": {"code": "en"}}),
        ))
        .unwrap();
        assert_eq!(
            check_kind(&r, ConnectionKind::Lite).unwrap_err().code,
            "unsupported_for_lite"
        );
        assert!(check_kind(&r, ConnectionKind::Business).is_ok());
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"d":2,"c":3}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"c":3,"d":2},"b":1}"#).unwrap();
        assert_eq!(canonical(&a), canonical(&b));
    }
}
