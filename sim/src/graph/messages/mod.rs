//! Validation of a `POST /{phone_number_id}/messages` body on its own (no state): every message
//! type of Meta's Cloud API documentation with Meta's documented limits, and mark-as-read. Unknown keys
//! are refused with code 100 (Meta rejects unexpected parameters), missing required ones with
//! 131008 and bad values with 131009. What needs state (media ids, templates, window, limits) is
//! checked afterwards in `send.rs`.

use serde_json::{Map, Value};

use super::errors::GraphError;
use super::state::normalize_phone;
use fields::*;
use interactive::validate_interactive;
use kinds::*;
use template::validate_template;

mod fields;
mod interactive;
mod kinds;
mod template;

/// A media object referenced by id that must exist and be of `kind` (image, audio, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct MediaRef {
    pub kind: String,
    pub id: String,
}

/// The template part of a template send.
#[derive(Debug, Clone)]
pub struct TemplateRef {
    pub name: String,
    pub language: String,
    pub components: Vec<Value>,
}

#[derive(Debug, Clone)]
pub struct SendRequest {
    pub to: String,
    pub wa_id: String,
    pub kind: String,
    pub media: Vec<MediaRef>,
    pub template: Option<TemplateRef>,
    pub biz_opaque: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Request {
    MarkRead { message_id: String },
    Send(SendRequest),
}

// The daemon keeps a list like this one; the simulator checks on its own, not through it.
const TYPES: &[&str] = &[
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

type R<T> = Result<T, GraphError>;

/// Validates a whole request body.
pub fn validate(body: &Value) -> R<Request> {
    let m = as_obj(body, "body")?;
    match m.get("messaging_product") {
        None | Some(Value::Null) => {
            return Err(GraphError::param(
                "The parameter messaging_product is required.",
            ));
        }
        Some(Value::String(s)) if s == "whatsapp" => {}
        Some(other) => {
            return Err(GraphError::param(format!(
                "Param messaging_product must be one of {{WHATSAPP}} - got {other}."
            )));
        }
    }
    if m.contains_key("status") {
        return validate_mark_read(m);
    }
    let kind = match opt_str(m, "type", "")? {
        None => "text",
        Some(t) if TYPES.contains(&t) => t,
        Some(t) => {
            return Err(GraphError::param(format!(
                "Param type must be one of {{{}}} - got \"{t}\".",
                TYPES.join(", ")
            )));
        }
    };
    let mut allowed = vec![
        "messaging_product",
        "recipient_type",
        "to",
        "type",
        "context",
        "biz_opaque_callback_data",
    ];
    allowed.push(kind);
    only_keys(m, &allowed, "body")?;
    if let Some(rt) = opt_str(m, "recipient_type", "")?
        && rt != "individual"
    {
        return Err(GraphError::invalid(format!(
            "Param recipient_type must be \"individual\" - got \"{rt}\"."
        )));
    }
    let to = req_str(m, "to", "")?;
    let wa_id = normalize_phone(to).ok_or_else(|| {
        GraphError::invalid(format!(
            "Param to is not a valid WhatsApp phone number: \"{to}\"."
        ))
    })?;
    if let Some(ctx) = m.get("context") {
        let c = as_obj(ctx, "context")?;
        only_keys(c, &["message_id"], "context")?;
        let id = req_str(c, "message_id", "context")?;
        if !id.starts_with("wamid.") {
            return Err(GraphError::invalid(
                "Param context['message_id'] is not a valid message id.",
            ));
        }
    }
    let biz_opaque = opt_str(m, "biz_opaque_callback_data", "")?;
    if let Some(b) = biz_opaque
        && b.chars().count() > 512
    {
        return Err(GraphError::invalid(
            "Param biz_opaque_callback_data is too long: at most 512 characters allowed.",
        ));
    }
    let payload = m
        .get(kind)
        .ok_or_else(|| GraphError::missing(format!("The parameter {kind} is required.")))?;
    let mut media = Vec::new();
    let mut template = None;
    match kind {
        "text" => validate_text(payload)?,
        "image" | "audio" | "video" | "document" | "sticker" => {
            if let Some(r) = validate_media(kind, payload, kind)? {
                media.push(r);
            }
        }
        "location" => validate_location(payload)?,
        "contacts" => validate_contacts(payload)?,
        "reaction" => validate_reaction(payload)?,
        "interactive" => validate_interactive(payload, &mut media)?,
        "template" => template = Some(validate_template(payload, &mut media)?),
        _ => unreachable!("type checked above"),
    }
    Ok(Request::Send(SendRequest {
        to: to.to_string(),
        wa_id,
        kind: kind.to_string(),
        media,
        template,
        biz_opaque: biz_opaque.map(str::to_string),
    }))
}

fn validate_mark_read(m: &Map<String, Value>) -> R<Request> {
    only_keys(
        m,
        &[
            "messaging_product",
            "status",
            "message_id",
            "typing_indicator",
        ],
        "body",
    )?;
    let status = req_str(m, "status", "")?;
    if status != "read" {
        return Err(GraphError::invalid(format!(
            "Param status must be \"read\" - got \"{status}\"."
        )));
    }
    let message_id = req_str(m, "message_id", "")?;
    if let Some(t) = m.get("typing_indicator") {
        let t = as_obj(t, "typing_indicator")?;
        only_keys(t, &["type"], "typing_indicator")?;
        if req_str(t, "type", "typing_indicator")? != "text" {
            return Err(GraphError::invalid(
                "Param typing_indicator['type'] must be \"text\".",
            ));
        }
    }
    Ok(Request::MarkRead {
        message_id: message_id.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code(v: Value) -> i64 {
        match validate(&v) {
            Ok(_) => 0,
            Err(e) => e.code,
        }
    }

    fn base(kind: &str, payload: Value) -> Value {
        let mut v = json!({"messaging_product":"whatsapp","to":"+15551230001","type":kind});
        v[kind] = payload;
        v
    }

    #[test]
    fn text_limits() {
        assert_eq!(code(base("text", json!({"body":"hi"}))), 0);
        assert_eq!(code(base("text", json!({"body":"x".repeat(4096)}))), 0);
        assert_eq!(code(base("text", json!({"body":"x".repeat(4097)}))), 131009);
        assert_eq!(code(base("text", json!({}))), 131008);
        assert_eq!(code(base("text", json!({"body":"hi","bogus":1}))), 100);
        assert_eq!(code(json!({"to":"+15551230001","text":{"body":"x"}})), 100);
        assert_eq!(
            code(json!({"messaging_product":"whatsapp","to":"abc","text":{"body":"x"}})),
            131009
        );
    }

    #[test]
    fn media_rules() {
        assert_eq!(code(base("image", json!({"id":"123","caption":"c"}))), 0);
        assert_eq!(
            code(base("image", json!({"id":"1","link":"https://x.io/a.jpg"}))),
            131009
        );
        assert_eq!(code(base("image", json!({"caption":"c"}))), 131008);
        assert_eq!(code(base("audio", json!({"id":"1","caption":"c"}))), 100);
        assert_eq!(code(base("document", json!({"link":"ftp://x"}))), 131009);
        assert_eq!(
            code(base("image", json!({"id":"1","caption":"c".repeat(1025)}))),
            131009
        );
    }

    #[test]
    fn interactive_rules() {
        let btn = |n: usize| {
            let buttons: Vec<Value> = (0..n)
                .map(|i| json!({"type":"reply","reply":{"id":format!("b{i}"),"title":format!("T{i}")}}))
                .collect();
            base(
                "interactive",
                json!({"type":"button","body":{"text":"pick"},"action":{"buttons":buttons}}),
            )
        };
        assert_eq!(code(btn(3)), 0);
        assert_eq!(code(btn(4)), 131009);
        assert_eq!(code(btn(0)), 131009);
        let rows: Vec<Value> = (0..11)
            .map(|i| json!({"id":format!("r{i}"),"title":"Row"}))
            .collect();
        let list = |rows: Vec<Value>| {
            base(
                "interactive",
                json!({"type":"list","body":{"text":"b"},"action":{"button":"Options",
                    "sections":[{"title":"A","rows":rows[..5].to_vec()},{"title":"B","rows":rows[5..].to_vec()}]}}),
            )
        };
        assert_eq!(code(list(rows.clone())), 131009);
        assert_eq!(code(list(rows[..10].to_vec())), 0);
        let long_title = base(
            "interactive",
            json!({"type":"button","body":{"text":"b"},"action":{"buttons":[
                {"type":"reply","reply":{"id":"a","title":"x".repeat(21)}}]}}),
        );
        assert_eq!(code(long_title), 131009);
        let cta = base(
            "interactive",
            json!({"type":"cta_url","body":{"text":"b"},"action":{"name":"cta_url",
                "parameters":{"display_text":"See","url":"https://x.io"}}}),
        );
        assert_eq!(code(cta), 0);
    }

    #[test]
    fn mark_read_and_template() {
        assert!(matches!(
            validate(
                &json!({"messaging_product":"whatsapp","status":"read","message_id":"wamid.X"})
            ),
            Ok(Request::MarkRead { .. })
        ));
        assert_eq!(
            code(json!({"messaging_product":"whatsapp","status":"read"})),
            131008
        );
        assert_eq!(
            code(base(
                "template",
                json!({"name":"t","language":{"code":"en_US"}})
            )),
            0
        );
        assert_eq!(code(base("template", json!({"name":"t"}))), 131008);
    }
}
