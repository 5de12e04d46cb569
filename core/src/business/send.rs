//! The checks and shaping before a Business send: the recipient is E.164,
//! free-form messages only inside the contact's 24 h window (else a clear error suggesting a
//! template), templates only when approved, and the Cloud API body built from the API's
//! message (`messaging_product`, `recipient_type`, `to` added; unknown top-level keys dropped).

use super::callback;
use crate::connection::{OutboundMessage, SendOutcome};
use crate::phone;
use deadpool_postgres::GenericClient;
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// Top-level keys of a Cloud API message besides the type's own object.
const PASSTHROUGH: &[&str] = &["context", "biz_opaque_callback_data", "recipient_type"];

pub const MEDIA_KINDS: &[&str] = &["image", "audio", "video", "document", "sticker"];

/// Whether the message is a mark-as-read (`{"status":"read","message_id":...}`).
pub fn is_mark_read(msg: &OutboundMessage) -> bool {
    msg.kind == "read" || msg.body.get("status").and_then(Value::as_str) == Some("read")
}

fn failed(error: impl Into<String>) -> SendOutcome {
    SendOutcome::Failed {
        code: None,
        error: error.into(),
    }
}

/// The request body for `POST /{phone_number_id}/messages`, or why it cannot be sent. Pure.
pub fn request_body(msg: &OutboundMessage) -> Result<Value, SendOutcome> {
    if is_mark_read(msg) {
        let Some(id) = msg.body.get("message_id").and_then(Value::as_str) else {
            return Err(failed(
                "a mark-as-read needs message_id (the wamid of the inbound message)",
            ));
        };
        let mut out = json!({"messaging_product": "whatsapp", "status": "read", "message_id": id});
        if let Some(t) = msg.body.get("typing_indicator") {
            out["typing_indicator"] = t.clone();
        }
        return Ok(out);
    }
    let e164 = phone::normalize(&msg.to, None)
        .ok()
        .filter(|n| n.e164 == msg.to)
        .ok_or_else(|| {
            failed(format!(
                "recipient {:?} is not a phone number in E.164 (+5511987654321)",
                msg.to
            ))
        })?;
    let kind = msg.kind.as_str();
    let Some(object) = msg.body.get(kind).filter(|o| !o.is_null()) else {
        return Err(failed(format!(
            "a {kind} message needs a \"{kind}\" object"
        )));
    };
    let mut out = Map::new();
    out.insert("messaging_product".into(), json!("whatsapp"));
    out.insert("recipient_type".into(), json!("individual"));
    out.insert("to".into(), json!(e164.e164));
    out.insert("type".into(), json!(kind));
    out.insert(kind.into(), object.clone());
    for k in PASSTHROUGH {
        if let Some(v) = msg.body.get(*k) {
            out.insert((*k).into(), v.clone());
        }
    }
    // Meta echoes it on every status of the message: a send whose answer was lost is
    // recognised by its `sent` status (unless the caller set their own).
    out.entry("biz_opaque_callback_data")
        .or_insert_with(|| json!(callback::data(msg.message_id)));
    Ok(Value::Object(out))
}

/// Whether the contact wrote to this connection within the last 24 hours (`to` in any
/// spelling: conversations are keyed by the contact's key).
pub async fn window_open(
    client: &impl GenericClient,
    usuario_id: Uuid,
    connection_id: Uuid,
    to: &str,
) -> Result<bool, tokio_postgres::Error> {
    let to = phone::contact_key(to, None).key;
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM conversaciones WHERE usuario_id = $1 AND connection_id = $2
                 AND remitente = $3 AND last_inbound_at > now() - interval '24 hours')",
            &[&usuario_id, &connection_id, &to],
        )
        .await?;
    Ok(row.get(0))
}

/// The checks that need the store: the 24 h window for free-form messages, approval for
/// templates. `Ok(())` means go ahead.
pub async fn store_checks(
    client: &impl GenericClient,
    msg: &OutboundMessage,
) -> Result<(), SendOutcome> {
    if is_mark_read(msg) {
        return Ok(());
    }
    let retry = |e: &dyn std::fmt::Display| SendOutcome::Retry {
        code: None,
        error: format!("database: {e}"),
        after: None,
    };
    if msg.kind == "template" {
        let t = &msg.body["template"];
        let name = t.get("name").and_then(Value::as_str).unwrap_or("");
        let language = t
            .pointer("/language/code")
            .and_then(Value::as_str)
            .unwrap_or("");
        if name.is_empty() || language.is_empty() {
            return Err(failed(
                "a template message needs template.name and template.language.code",
            ));
        }
        let status = super::templates::status_of(client, msg.connection_id, name, language)
            .await
            .map_err(|e| retry(&e))?;
        return match status.as_deref() {
            Some("APPROVED") => Ok(()),
            Some(other) => Err(failed(format!(
                "template {name} ({language}) is {other}; only APPROVED templates can be sent"
            ))),
            None => Err(failed(format!(
                "template {name} ({language}) is not known for this number; create it or POST /v1/templates/sync"
            ))),
        };
    }
    let open = window_open(client, msg.usuario_id, msg.connection_id, &msg.to)
        .await
        .map_err(|e| retry(&e))?;
    if open {
        Ok(())
    } else {
        Err(SendOutcome::Failed {
            code: Some(131047),
            error: format!(
                "{} has not written to this number in the last 24 hours: free-form {} messages are \
                 refused outside the customer-service window; send an approved template instead",
                msg.to, msg.kind
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: &str, body: Value) -> OutboundMessage {
        OutboundMessage {
            message_id: Uuid::nil(),
            usuario_id: Uuid::nil(),
            connection_id: Uuid::nil(),
            to: "+5511987654321".into(),
            kind: kind.into(),
            body,
            attempt: 1,
            departure: None,
        }
    }

    #[test]
    fn shapes_the_cloud_api_body() {
        let m = msg(
            "text",
            json!({"type":"text","text":{"body":"hi"},"context":{"message_id":"wamid.1"},"priority":0}),
        );
        let b = request_body(&m).unwrap();
        assert_eq!(
            b,
            json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"+5511987654321",
                   "type":"text","text":{"body":"hi"},"context":{"message_id":"wamid.1"},
                   "biz_opaque_callback_data":"sincro:00000000-0000-0000-0000-000000000000"})
        );
        assert_eq!(
            callback::message_id("sincro:00000000-0000-0000-0000-000000000000"),
            Some(Uuid::nil())
        );
        assert_eq!(callback::message_id("crm-msg-42"), None);
        // The caller's own callback data is kept (and its sends are not resolved by it).
        let mut own = m.clone();
        own.body["biz_opaque_callback_data"] = json!("crm-msg-42");
        assert_eq!(
            request_body(&own).unwrap()["biz_opaque_callback_data"],
            "crm-msg-42"
        );
    }

    #[test]
    fn mark_as_read() {
        let m = msg("read", json!({"status":"read","message_id":"wamid.IN"}));
        assert_eq!(
            request_body(&m).unwrap(),
            json!({"messaging_product":"whatsapp","status":"read","message_id":"wamid.IN"})
        );
    }

    #[test]
    fn refuses_bad_recipients_and_missing_objects() {
        let mut m = msg("text", json!({"text":{"body":"x"}}));
        m.to = "11987654321".into();
        assert!(matches!(request_body(&m), Err(SendOutcome::Failed { .. })));
        let m = msg("image", json!({"text":{"body":"x"}}));
        assert!(matches!(request_body(&m), Err(SendOutcome::Failed { .. })));
    }
}
