//! Where a lead came from, read off its messages: Meta's Click-to-WhatsApp `referral`
//! (Business; on Lite the page's `ctwaContext`, renamed by [`from_page`]; both kept in
//! `details.referral` by their parsers), or a `wa.me` link whose prefilled text the user listed in
//! `settings.lead_sources.wa_me`. Each message that says so carries it in
//! `metadata.source`; the lead keeps its first touch in `metadata.source` (a message that says
//! nothing counts as `direct`) and it is never overwritten. `GET /v1/leads?source=` filters on
//! its `type`.

use super::settings::WaMeLink;
use crate::ingest::model::InboundMessage;
use crate::store::clean;
use serde_json::{Map, Value, json};

/// `source.type` values.
pub mod kind {
    /// A Click-to-WhatsApp ad or post (`source_type` says which).
    pub const CLICK_TO_WHATSAPP: &str = "click_to_whatsapp";
    /// A `wa.me` link with prefilled text.
    pub const WA_ME: &str = "wa_me";
    /// The contact wrote without an ad or a known link.
    pub const DIRECT: &str = "direct";
    pub const ALL: &[&str] = &[CLICK_TO_WHATSAPP, WA_ME, DIRECT];
}

/// The referral fields kept, as Meta names them.
pub const REFERRAL_FIELDS: &[&str] = &[
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
];

/// A provider's referral object reduced to [`REFERRAL_FIELDS`] (strings only, made storable),
/// or None when it names none of them.
pub fn referral(object: &Value) -> Option<Value> {
    let mut out = Map::new();
    for k in REFERRAL_FIELDS {
        if let Some(v) = object.get(*k).and_then(Value::as_str) {
            out.insert((*k).into(), json!(clean::owned_text(v.to_string())));
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// The page's `ctwaContext` (WhatsApp Web's names) as a referral with Meta's names.
pub fn from_page(ctwa: &Value) -> Option<Value> {
    let mut r = Map::new();
    for (page, meta) in [
        ("sourceUrl", "source_url"),
        ("sourceId", "source_id"),
        ("sourceType", "source_type"),
        ("title", "headline"),
        ("description", "body"),
        ("mediaType", "media_type"),
        ("thumbnailUrl", "thumbnail_url"),
        ("ctwaClid", "ctwa_clid"),
    ] {
        if let Some(v) = ctwa.get(page) {
            r.insert(meta.into(), v.clone());
        }
    }
    referral(&Value::Object(r))
}

/// What `m` says about where its contact came from, if anything.
pub fn of_message(m: &InboundMessage, links: &[WaMeLink]) -> Option<Value> {
    if m.outgoing {
        return None;
    }
    if let Some(r) = m.details.get("referral").filter(|r| r.is_object()) {
        let mut s = r.clone();
        s["type"] = json!(kind::CLICK_TO_WHATSAPP);
        return Some(s);
    }
    let text = m.text.as_deref()?.trim();
    let link = links
        .iter()
        .find(|l| starts_with_ignoring_case(text, &l.text))?;
    Some(json!({"type": kind::WA_ME, "name": link.name, "prefilled_text": link.text}))
}

fn starts_with_ignoring_case(text: &str, prefix: &str) -> bool {
    text.to_lowercase().starts_with(&prefix.to_lowercase())
}

/// The lead's first touch from its first message's source (`direct` when it said nothing).
pub fn first_touch(source: Option<&Value>, message_id: uuid::Uuid, at: i64) -> Value {
    let mut s = source
        .cloned()
        .unwrap_or_else(|| json!({"type": kind::DIRECT}));
    s["message_id"] = json!(message_id);
    s["at"] = json!(at);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::model::MessageKind;

    fn message(text: &str, details: Value) -> InboundMessage {
        InboundMessage {
            usuario_id: uuid::Uuid::nil(),
            connection_id: uuid::Uuid::nil(),
            external_id: "x".into(),
            from: "+5511987654321".into(),
            outgoing: false,
            profile_name: None,
            profile_picture_url: None,
            kind: MessageKind::Texto,
            text: Some(text.into()),
            payload: Value::Null,
            details,
            timestamp: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn referral_wins_and_keeps_meta_names() {
        let r = referral(
            &json!({"source_type": "ad", "source_id": "1", "ctwa_clid": "c",
            "headline": "H", "extra": "dropped", "source_url": 5}),
        )
        .unwrap();
        assert_eq!(
            r,
            json!({"source_type": "ad", "source_id": "1", "ctwa_clid": "c", "headline": "H"})
        );
        let s = of_message(&message("hi", json!({"referral": r})), &[]).unwrap();
        assert_eq!(s["type"], kind::CLICK_TO_WHATSAPP);
        assert_eq!(s["ctwa_clid"], "c");
        assert!(referral(&json!({"other": 1})).is_none());
    }

    #[test]
    fn wa_me_by_prefilled_text() {
        let links = [WaMeLink {
            text: "Hola, vi el anuncio".into(),
            name: Some("instagram".into()),
        }];
        let s = of_message(
            &message("hola, VI el anuncio y quiero saber", json!({})),
            &links,
        );
        assert_eq!(s.unwrap()["name"], "instagram");
        assert!(of_message(&message("otra cosa", json!({})), &links).is_none());
        let first = first_touch(None, uuid::Uuid::nil(), 7);
        assert_eq!(first["type"], kind::DIRECT);
        assert_eq!(first["at"], 7);
    }
}
