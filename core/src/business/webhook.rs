//! Meta's webhook envelopes (Meta's Cloud API documentation): the X-Hub-Signature-256 check over the raw
//! bytes, the ids a payload names (to find the app secret before anything is stored), and the
//! walk over every entry × change × message / status / template update into [`Change`]s.
//! Unknown fields and message types become `Desconocido` messages or are skipped with a count;
//! nothing in a payload can make this panic.

use crate::ingest::{Estado, InboundMessage, MessageKind, StatusUpdate};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use time::OffsetDateTime;
use uuid::Uuid;

/// Checks `sha256=<hex>` against HMAC-SHA256(app_secret, body), in constant time.
pub fn verify_signature(app_secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Some(tag) = crate::digest::decode_hex(hex).filter(|t| t.len() == 32) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

/// `sha256=<hex>` for `body` (tests and the demo sign with it).
pub fn sign(app_secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).expect("any key length");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    format!("sha256={}", crate::digest::hex(&tag))
}

pub use super::envelope::{EnvelopeError, Named, envelope};

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A template status update (`message_template_status_update`).
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateUpdate {
    pub waba_id: String,
    pub template_id: Option<String>,
    pub name: String,
    pub language: Option<String>,
    pub status: String,
    pub reason: Option<String>,
}

/// A `phone_number_quality_update`: Meta changed a number's throughput level or its
/// messaging limit. It names the number only by its display number (digits, no `+`).
#[derive(Debug, Clone, PartialEq)]
pub struct NumberUpdate {
    pub display_phone_number: String,
    /// `THROUGHPUT_UPGRADE`, `ONBOARDING`...
    pub event: String,
}

/// One thing a payload says, in order.
#[derive(Debug, Clone)]
pub enum Change {
    Message {
        phone_number_id: String,
        /// The contact's profile name from `value.contacts`.
        name: Option<String>,
        message: Value,
    },
    Status {
        phone_number_id: String,
        status: Value,
    },
    Template(TemplateUpdate),
    NumberUpdate(NumberUpdate),
    /// A field the daemon does not act on (account_update, quality...), by name.
    Ignored(String),
}

/// Every entry × change × message / status / template update of an envelope.
pub fn changes(envelope: &Value) -> Vec<Change> {
    take_array(&mut envelope.clone(), "entry")
        .into_iter()
        .flat_map(entry_changes)
        .collect()
}

/// The changes of one `entry[]` the caller gives up: its messages and statuses move into the
/// changes instead of being copied (the drain's bodies hold up to thousands of them).
pub fn entry_changes(mut entry: Value) -> Vec<Change> {
    let mut out = Vec::new();
    let waba_id = entry.get("id").and_then(id_text).unwrap_or_default();
    for mut change in take_array(&mut entry, "changes") {
        let value = change
            .get_mut("value")
            .map(Value::take)
            .unwrap_or(Value::Null);
        let field = change.get("field").and_then(Value::as_str).unwrap_or("");
        match field {
            "messages" => messages_change(value, &mut out),
            "smb_message_echoes" => echoes_change(value, &mut out),
            "message_template_status_update" => match template_update(&waba_id, &value) {
                Some(t) => out.push(Change::Template(t)),
                None => out.push(Change::Ignored(field.to_string())),
            },
            "phone_number_quality_update" => match number_update(&value) {
                Some(u) => out.push(Change::NumberUpdate(u)),
                None => out.push(Change::Ignored(field.to_string())),
            },
            other => out.push(Change::Ignored(other.to_string())),
        }
    }
    out
}

/// The array at `v[key]`, moved out (empty when it is missing or not an array).
pub fn take_array(v: &mut Value, key: &str) -> Vec<Value> {
    match v.get_mut(key) {
        Some(Value::Array(items)) => std::mem::take(items),
        _ => Vec::new(),
    }
}

fn messages_change(mut value: Value, out: &mut Vec<Change>) {
    let pnid = value
        .pointer("/metadata/phone_number_id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let messages = take_array(&mut value, "messages");
    let statuses = take_array(&mut value, "statuses");
    let contacts = value.get("contacts").and_then(Value::as_array);
    for mut message in messages {
        let from = message.get("from").and_then(Value::as_str);
        let name = contacts
            .into_iter()
            .flatten()
            .find(|c| c.get("wa_id").and_then(Value::as_str) == from)
            .or_else(|| contacts.and_then(|c| c.first()))
            .and_then(|c| c.pointer("/profile/name"))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(String::from);
        // Errors of the whole change (e.g. an unsupported payload) belong to its messages.
        if let (Some(errors), Some(obj)) = (value.get("errors"), message.as_object_mut())
            && !obj.contains_key("errors")
        {
            obj.insert("errors".into(), errors.clone());
        }
        out.push(Change::Message {
            phone_number_id: pnid.clone(),
            name,
            message,
        });
    }
    for status in statuses {
        out.push(Change::Status {
            phone_number_id: pnid.clone(),
            status,
        });
    }
}

/// Coexistence: a number used in the WhatsApp Business app and the Cloud API gets
/// `smb_message_echoes` for the messages the user sent from the app
/// (`value.message_echoes[]`: `from` the business number, `to` the customer, `id`,
/// `timestamp`, `type` and the type's object). Each becomes a message whose object carries
/// `to`, which [`inbound_message`] reads as one the user sent.
fn echoes_change(mut value: Value, out: &mut Vec<Change>) {
    let pnid = value
        .pointer("/metadata/phone_number_id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    for message in take_array(&mut value, "message_echoes") {
        out.push(Change::Message {
            phone_number_id: pnid.clone(),
            name: None,
            message,
        });
    }
}

fn number_update(v: &Value) -> Option<NumberUpdate> {
    let display = v.get("display_phone_number").and_then(id_text)?;
    Some(NumberUpdate {
        display_phone_number: crate::phone::digits_of(&display),
        event: v.get("event")?.as_str()?.to_ascii_uppercase(),
    })
}

fn template_update(waba_id: &str, v: &Value) -> Option<TemplateUpdate> {
    Some(TemplateUpdate {
        waba_id: waba_id.to_string(),
        template_id: v.get("message_template_id").and_then(id_text),
        name: v.get("message_template_name")?.as_str()?.to_string(),
        language: v
            .get("message_template_language")
            .and_then(Value::as_str)
            .map(String::from),
        status: v.get("event")?.as_str()?.to_ascii_uppercase(),
        reason: v
            .pointer("/rejection_info/reason")
            .or_else(|| v.get("reason"))
            .and_then(Value::as_str)
            .filter(|r| *r != "NONE")
            .map(String::from),
    })
}

fn timestamp(v: &Value) -> OffsetDateTime {
    v.get("timestamp")
        .and_then(|t| {
            t.as_str()
                .and_then(|s| s.parse::<i64>().ok())
                .or_else(|| t.as_i64())
        })
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .unwrap_or_else(OffsetDateTime::now_utc)
}

fn text_at(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer).and_then(Value::as_str).map(String::from)
}

/// Media message types, whose object carries a Meta media id to download.
pub const MEDIA_TYPES: &[&str] = &["image", "audio", "video", "document", "sticker"];

/// One inbound message object → the normalised message (`from` as `+` + wa_id). An echo of a
/// message the user sent from the Business app (the object names the customer in `to`, which
/// messages from customers never carry) becomes an `outgoing` message to that customer.
pub fn inbound_message(
    usuario_id: Uuid,
    connection_id: Uuid,
    name: Option<String>,
    m: &Value,
) -> Option<InboundMessage> {
    let external_id = m.get("id").and_then(Value::as_str)?.to_string();
    let echo_to = m.get("to").and_then(Value::as_str);
    let outgoing = echo_to.is_some();
    let from = match echo_to {
        Some(to) => to,
        None => m.get("from").and_then(Value::as_str)?,
    };
    // An echo's profile names are the business's, not the customer's.
    let name = if outgoing { None } else { name };
    let kind_str = m.get("type").and_then(Value::as_str).unwrap_or("unknown");
    let object = m.get(kind_str).cloned().unwrap_or(Value::Null);
    let (kind, text) = match kind_str {
        "text" => (MessageKind::Texto, text_at(m, "/text/body")),
        "image" => (MessageKind::Imagen, text_at(m, "/image/caption")),
        "video" => (MessageKind::Video, text_at(m, "/video/caption")),
        "audio" => (MessageKind::Audio, None),
        "document" => (MessageKind::Documento, text_at(m, "/document/caption")),
        "sticker" => (MessageKind::Sticker, None),
        "location" => (
            MessageKind::Ubicacion,
            text_at(m, "/location/name").or_else(|| text_at(m, "/location/address")),
        ),
        "contacts" => {
            let names: Vec<String> = m
                .get("contacts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| text_at(c, "/name/formatted_name"))
                .collect();
            (
                MessageKind::Contacto,
                (!names.is_empty()).then(|| names.join(", ")),
            )
        }
        "interactive" => (
            MessageKind::Interactivo,
            text_at(m, "/interactive/button_reply/title")
                .or_else(|| text_at(m, "/interactive/list_reply/title"))
                .or_else(|| text_at(m, "/interactive/nfm_reply/body")),
        ),
        "button" => (MessageKind::Interactivo, text_at(m, "/button/text")),
        "reaction" => (MessageKind::Reaccion, text_at(m, "/reaction/emoji")),
        "system" => (MessageKind::Sistema, text_at(m, "/system/body")),
        _ => (MessageKind::Desconocido, None),
    };
    let mut details = details(kind_str, m, &object);
    if outgoing {
        details["source"] = json!("business_app");
    }
    let payload = match kind_str {
        "contacts" => m.get("contacts").cloned().unwrap_or(Value::Null),
        _ if kind == MessageKind::Desconocido => {
            // Keep whatever the provider sent about it (order, revoke, edit, unsupported...).
            let mut o = Map::new();
            for (k, v) in m.as_object().into_iter().flatten() {
                if !matches!(
                    k.as_str(),
                    "from" | "to" | "id" | "timestamp" | "type" | "context"
                ) {
                    o.insert(k.clone(), v.clone());
                }
            }
            Value::Object(o)
        }
        _ => object,
    };
    Some(InboundMessage {
        usuario_id,
        connection_id,
        external_id,
        from: format!("+{}", from.trim_start_matches('+')),
        outgoing,
        profile_name: name,
        profile_picture_url: None,
        kind,
        text: text.filter(|t| !t.is_empty() || kind == MessageKind::Reaccion),
        payload,
        details,
        timestamp: timestamp(m),
    })
}

/// Non-content facts kept in clear: the provider type, reply/forward context ids and flags,
/// media type and id, error codes.
fn details(kind_str: &str, m: &Value, object: &Value) -> Value {
    let mut d = json!({"provider": "whatsapp_cloud", "type": kind_str});
    if let Some(c) = m.get("context") {
        let mut ctx = Map::new();
        for k in ["id", "from", "forwarded", "frequently_forwarded"] {
            if let Some(v) = c.get(k) {
                ctx.insert(k.into(), v.clone());
            }
        }
        d["context"] = Value::Object(ctx);
    }
    if MEDIA_TYPES.contains(&kind_str) {
        for k in ["id", "mime_type", "sha256", "voice", "animated", "filename"] {
            if let Some(v) = object.get(k) {
                d[format!("media_{k}")] = v.clone();
            }
        }
    }
    if let Some(errors) = m.get("errors").and_then(Value::as_array) {
        let codes: Vec<Value> = errors
            .iter()
            .filter_map(|e| e.get("code").cloned())
            .collect();
        d["error_codes"] = Value::Array(codes);
    }
    // Click-to-WhatsApp: where the contact came from (an ad's or post's ids, link, texts and
    // the click id), not content the contact wrote.
    if let Some(r) = m.get("referral").and_then(crate::crm::source::referral) {
        d["referral"] = r;
    }
    if kind_str == "system" {
        for (from, to) in [("type", "system_type"), ("wa_id", "new_wa_id")] {
            if let Some(v) = object.get(from).and_then(Value::as_str) {
                d[to] = json!(v);
            }
        }
    }
    d
}

/// One status object → the normalised update (None for a status the daemon does not know).
pub fn status_update(usuario_id: Uuid, connection_id: Uuid, s: &Value) -> Option<StatusUpdate> {
    let external_id = s.get("id").and_then(Value::as_str)?.to_string();
    let estado = Estado::parse(s.get("status").and_then(Value::as_str)?)?;
    let error = s
        .get("errors")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
        .map(|e| {
            let code = e.get("code").map(|c| c.to_string()).unwrap_or_default();
            let title = text_at(e, "/title")
                .or_else(|| text_at(e, "/message"))
                .unwrap_or_default();
            match text_at(e, "/error_data/details") {
                Some(d) if d != title => format!("(#{code}) {title}: {d}"),
                _ => format!("(#{code}) {title}"),
            }
        });
    let message_id = s
        .get("biz_opaque_callback_data")
        .and_then(Value::as_str)
        .and_then(super::callback::message_id);
    Some(StatusUpdate {
        usuario_id,
        connection_id,
        external_id,
        estado,
        error,
        timestamp: timestamp(s),
        message_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_round_trip_and_tampering() {
        let body = br#"{"object":"whatsapp_business_account"}"#;
        let sig = sign("secret", body);
        assert!(verify_signature("secret", body, &sig));
        assert!(!verify_signature("other", body, &sig));
        assert!(!verify_signature("secret", b"{}", &sig));
        assert!(!verify_signature("secret", body, "sha256=zz"));
        assert!(!verify_signature(
            "secret",
            body,
            &sig.replace("sha256=", "sha1=")
        ));
        assert!(!verify_signature("secret", body, ""));
    }

    #[test]
    fn envelope_names_numbers_and_wabas() {
        let body = json!({"object":"whatsapp_business_account","entry":[
            {"id":"W1","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"P1"}}}]},
            {"id":"W2","changes":[{"field":"message_template_status_update","value":{"event":"APPROVED"}}]}]});
        let named = envelope(body.to_string().as_bytes()).unwrap();
        assert_eq!(named.phone_number_ids, vec!["P1"]);
        // Every entry's account, also the one whose changes name a number: the signature must
        // be checked against the owner of everything the body may touch.
        assert_eq!(named.waba_ids, vec!["W1", "W2"]);
        assert!(matches!(envelope(b"nope"), Err(EnvelopeError::NotJson(_))));
        assert!(envelope(b"{\"entry\":[]}").is_err());
        assert!(envelope(b"[1,2]").is_err());
    }

    #[test]
    fn quality_updates_name_their_number_by_its_display_digits() {
        // As Meta documents it since `current_limit` was retired: no metadata, no phone number id.
        let body = json!({"object":"whatsapp_business_account","entry":[{"id":"W1","time":1733000000,
            "changes":[{"field":"phone_number_quality_update","value":{
                "display_phone_number":"1 555-078-3881","event":"THROUGHPUT_UPGRADE",
                "max_daily_conversations_per_business":"TIER_UNLIMITED"}}]}]});
        match changes(&body).as_slice() {
            [Change::NumberUpdate(u)] => {
                assert_eq!(u.display_phone_number, "15550783881");
                assert_eq!(u.event, "THROUGHPUT_UPGRADE");
            }
            other => panic!("{other:?}"),
        }
        let shapeless = json!({"entry":[{"id":"W1","changes":[
            {"field":"phone_number_quality_update","value":{"event":"ONBOARDING"}}]}]});
        assert!(
            matches!(changes(&shapeless).as_slice(), [Change::Ignored(f)] if f == "phone_number_quality_update")
        );
    }

    #[test]
    fn odd_shapes_never_panic() {
        for body in [
            json!({"entry": [{"changes": [{"field": "messages", "value": {"messages": [{"type": "text"}]}}]}]}),
            json!({"entry": [{"changes": [{"field": "messages", "value": {"messages": [{"id": "x", "from": "1", "type": 5}]}}]}]}),
            json!({"entry": [{"changes": "no"}]}),
            json!({"entry": [{"changes": [{"field": "messages", "value": {"statuses": [{"id": "x", "status": "weird"}]}}]}]}),
        ] {
            for c in changes(&body) {
                if let Change::Message { message, .. } = c {
                    let _ = inbound_message(Uuid::nil(), Uuid::nil(), None, &message);
                }
            }
        }
    }

    #[test]
    fn maps_types() {
        let m = json!({"from":"5511987654321","id":"wamid.1","timestamp":"1697043223","type":"image",
            "image":{"caption":"look","mime_type":"image/jpeg","sha256":"abc","id":"99"},
            "context":{"forwarded":true}});
        let i = inbound_message(Uuid::nil(), Uuid::nil(), Some("Ana".into()), &m).unwrap();
        assert_eq!(i.kind, MessageKind::Imagen);
        assert_eq!(i.text.as_deref(), Some("look"));
        assert_eq!(i.from, "+5511987654321");
        assert_eq!(i.details["media_id"], "99");
        assert_eq!(i.details["context"]["forwarded"], true);
        assert_eq!(i.timestamp.unix_timestamp(), 1697043223);
        let u =
            json!({"from":"1","id":"w","timestamp":"1","type":"order","order":{"catalog_id":"1"}});
        let i = inbound_message(Uuid::nil(), Uuid::nil(), None, &u).unwrap();
        assert_eq!(i.kind, MessageKind::Desconocido);
        assert_eq!(i.payload["order"]["catalog_id"], "1");
    }

    #[test]
    fn business_app_echoes_are_outgoing_messages_to_the_customer() {
        let envelope = json!({"object":"whatsapp_business_account","entry":[{"id":"WABA","changes":[{
            "field":"smb_message_echoes",
            "value":{"messaging_product":"whatsapp",
                     "metadata":{"display_phone_number":"15550001111","phone_number_id":"PNID"},
                     "message_echoes":[{"from":"15550001111","to":"5215512345678","id":"wamid.E1",
                                        "timestamp":"1697043223","type":"text","text":{"body":"hola"}}]}}]}]});
        let changes = changes(&envelope);
        assert_eq!(changes.len(), 1);
        let Change::Message {
            phone_number_id,
            name,
            message,
        } = &changes[0]
        else {
            panic!("{changes:?}");
        };
        assert_eq!(phone_number_id, "PNID");
        let m = inbound_message(Uuid::nil(), Uuid::nil(), name.clone(), message).unwrap();
        assert!(m.outgoing);
        assert_eq!(m.from, "+5215512345678");
        assert_eq!(m.text.as_deref(), Some("hola"));
        assert_eq!(m.external_id, "wamid.E1");
        assert_eq!(m.details["source"], "business_app");
    }

    #[test]
    fn failed_status_keeps_code_and_details() {
        let s = json!({"id":"wamid.X","status":"failed","timestamp":"1","errors":[{"code":131026,
            "title":"Message undeliverable","error_data":{"details":"not on WhatsApp"}}]});
        let u = status_update(Uuid::nil(), Uuid::nil(), &s).unwrap();
        assert_eq!(u.estado, Estado::Failed);
        assert_eq!(
            u.error.as_deref(),
            Some("(#131026) Message undeliverable: not on WhatsApp")
        );
        let played = json!({"id":"w","status":"played","timestamp":"1"});
        assert_eq!(
            status_update(Uuid::nil(), Uuid::nil(), &played)
                .unwrap()
                .estado,
            Estado::Read
        );
    }
}
