//! The parts of an inbound message that say where it came from or what happened to the
//! contact, checked as Meta shapes them, so a test cannot make the simulator deliver what Meta
//! never would: a Click-to-WhatsApp `referral` (strings only; `source_url`, `source_id` and
//! `source_type` always there; `source_type` `ad` or `post`; `media_type` `image` or `video`)
//! and a `system` message (`user_changed_number` naming the new `wa_id`, or
//! `customer_identity_changed`).

use super::errors::ControlError;
use serde_json::{Map, Value};

const REFERRAL_FIELDS: &[&str] = &[
    "source_url",
    "source_id",
    "source_type",
    "headline",
    "body",
    "media_type",
    "image_url",
    "video_url",
    "thumbnail_url",
    "ctwa_clid",
    "welcome_message",
];

/// Refuses a message whose referral or system object Meta would not send.
pub fn check(msg: &Map<String, Value>) -> Result<(), ControlError> {
    if let Some(r) = msg.get("referral") {
        referral(r)?;
    }
    if msg.get("type").and_then(Value::as_str) == Some("system") {
        system(msg.get("system").unwrap_or(&Value::Null))?;
    }
    Ok(())
}

fn bad(message: String) -> ControlError {
    ControlError::bad_request(message)
}

fn referral(r: &Value) -> Result<(), ControlError> {
    let r = r
        .as_object()
        .ok_or_else(|| bad("message.referral must be an object".into()))?;
    for (k, v) in r {
        if !REFERRAL_FIELDS.contains(&k.as_str()) {
            return Err(bad(format!("message.referral.{k} is not a referral field")));
        }
        if k != "welcome_message" && !v.is_string() {
            return Err(bad(format!("message.referral.{k} must be a string")));
        }
    }
    for k in ["source_url", "source_id", "source_type"] {
        if !r.contains_key(k) {
            return Err(bad(format!("message.referral.{k} is required")));
        }
    }
    if !matches!(r["source_type"].as_str(), Some("ad" | "post")) {
        return Err(bad("message.referral.source_type must be ad or post".into()));
    }
    if let Some(m) = r.get("media_type")
        && !matches!(m.as_str(), Some("image" | "video"))
    {
        return Err(bad(
            "message.referral.media_type must be image or video".into()
        ));
    }
    Ok(())
}

fn system(s: &Value) -> Result<(), ControlError> {
    let kind = s.get("type").and_then(Value::as_str);
    if s.get("body").and_then(Value::as_str).is_none() {
        return Err(bad("message.system.body is required".into()));
    }
    match kind {
        Some("user_changed_number") => {
            let wa_id = s.get("wa_id").and_then(Value::as_str).unwrap_or("");
            if !(7..=15).contains(&wa_id.len()) || !wa_id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(
                    "message.system.wa_id (the new number) must be 7 to 15 digits".into(),
                ));
            }
            Ok(())
        }
        Some("customer_identity_changed") => Ok(()),
        _ => Err(bad(
            "message.system.type must be user_changed_number or customer_identity_changed".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(v: Value) -> bool {
        check(v.as_object().unwrap()).is_ok()
    }

    #[test]
    fn referrals_as_meta_sends_them() {
        let good = json!({"type": "text", "referral": {"source_url": "u", "source_id": "1",
            "source_type": "ad", "media_type": "image", "ctwa_clid": "c"}});
        assert!(ok(good));
        assert!(!ok(
            json!({"referral": {"source_url": "u", "source_id": "1", "source_type": "tv"}})
        ));
        assert!(!ok(
            json!({"referral": {"source_url": "u", "source_type": "ad"}})
        ));
        assert!(!ok(
            json!({"referral": {"source_url": "u", "source_id": 1, "source_type": "ad"}})
        ));
        assert!(!ok(
            json!({"referral": {"source_url": "u", "source_id": "1", "source_type": "ad", "x": "y"}})
        ));
    }

    #[test]
    fn number_changes_name_the_new_number() {
        let change = |wa: &str| {
            json!({"type": "system", "system": {"body": "changed",
            "type": "user_changed_number", "wa_id": wa}})
        };
        assert!(ok(change("5511987650202")));
        assert!(!ok(change("+55 11")));
        assert!(!ok(
            json!({"type": "system", "system": {"body": "b", "type": "other"}})
        ));
    }
}
