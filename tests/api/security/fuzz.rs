//! Property tests of what parses outside input: Meta's webhook envelopes, the outbound
//! message validator, pagination cursors and the Lite page bridge's events. Arbitrary bytes
//! and JSON never panic, what comes out is bounded by what went in, and accepted inputs
//! round-trip where that applies. A few hundred cases each, so they run in CI.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use sincro_core::business::webhook;
use sincro_core::lite::bridge::BridgeEvent;
use sincro_core::outbound::validate;
use sincro_whatsapp::http::cursor;
use uuid::Uuid;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Keys the parsers look for, mixed with random ones, so random JSON reaches deep paths.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "object", "entry", "id", "changes", "field", "value", "metadata", "phone_number_id",
            "display_phone_number", "messages", "statuses", "contacts", "from", "timestamp",
            "type", "text", "body", "image", "link", "caption", "filename", "mime_type",
            "sha256", "status", "recipient_id", "errors", "context", "template", "name",
            "language", "code", "components", "interactive", "location", "reaction",
            "message_id", "emoji", "to", "connection_id", "priority", "send_at", "conversation",
            "pricing", "event", "message_template_id", "message_template_name", "reason",
            "latitude", "longitude", "address", "parameters", "sub_type", "index", "document",
            "audio", "video", "sticker", "preview_url", "wa_id", "profile", "biz_opaque_callback_data",
        ]).prop_map(String::from),
        1 => "[a-z_]{1,12}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop::sample::select(vec![
            "whatsapp_business_account",
            "messages",
            "text",
            "image",
            "sent",
            "delivered",
            "read",
            "failed",
            "+5511987654321",
            "5511987654321",
            "1700000000",
            "https://x.io/a.png",
            "APPROVED",
            "es",
            "message_template_status_update",
            "",
        ])
        .prop_map(Value::from),
        ".{0,24}".prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 96, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Nodes in a JSON value: the bound for what a parser may produce from it.
fn nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(nodes).sum(),
        Value::Object(m) => m.values().map(nodes).sum(),
        _ => 0,
    }
}

/// A webhook body shaped like Meta's, with arbitrary values inside.
fn webhook_body() -> impl Strategy<Value = Value> {
    (
        json_value(),
        json_value(),
        prop::sample::select(vec!["messages", "message_template_status_update", "x"]),
    )
        .prop_map(|(value, extra, field)| {
            json!({
                "object": "whatsapp_business_account",
                "entry": [{
                    "id": "102290129340398",
                    "changes": [
                        {"field": field, "value": value},
                        {"field": "messages", "value": {"metadata": {"phone_number_id": "1"}, "messages": [extra]}},
                    ],
                }],
            })
        })
}

/// The ids a body names, read from its parsed tree as the webhook route once did:
/// `webhook::envelope` scans the body without building the tree and must find the same.
fn named_by_tree(bytes: &[u8]) -> Option<webhook::Named> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let id_text = |v: &Value| match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let mut named = webhook::Named::default();
    for entry in v.get("entry").and_then(Value::as_array)? {
        for change in entry
            .get("changes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(p) = change
                .pointer("/value/metadata/phone_number_id")
                .and_then(Value::as_str)
                && !named.phone_number_ids.iter().any(|x| x == p)
            {
                named.phone_number_ids.push(p.to_string());
            }
        }
        if let Some(w) = entry.get("id").and_then(id_text)
            && !named.waba_ids.contains(&w)
        {
            named.waba_ids.push(w);
        }
    }
    (!named.phone_number_ids.is_empty() || !named.waba_ids.is_empty()).then_some(named)
}

/// Envelope-shaped JSON with anything where the ids are looked for.
fn envelope_like() -> impl Strategy<Value = Value> {
    let change = (json_value(), json_value(), prop::bool::ANY).prop_map(|(pnid, other, nested)| {
        if nested {
            json!({"field": "messages", "value": {"metadata": {"phone_number_id": pnid}, "messages": other}})
        } else {
            json!({"field": "messages", "value": pnid, "metadata": other})
        }
    });
    let id = prop_oneof![
        json_value(),
        "[0-9]{0,20}".prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from)
    ];
    let entry = (id, prop::collection::vec(change, 0..4), json_value())
        .prop_map(|(id, changes, extra)| json!({"id": id, "changes": changes, "extra": extra}));
    prop::collection::vec(entry, 0..4)
        .prop_map(|entries| json!({"object": "whatsapp_business_account", "entry": entries}))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn webhook_envelope_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let named = webhook::envelope(&bytes).ok();
        prop_assert_eq!(named.clone(), named_by_tree(&bytes));
        if named.is_some() {
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            prop_assert!(webhook::changes(&v).len() <= bytes.len());
        }
    }

    #[test]
    fn webhook_envelope_names_what_the_tree_names(body in prop_oneof![envelope_like(), json_value()]) {
        let bytes = serde_json::to_vec(&body).unwrap();
        prop_assert_eq!(webhook::envelope(&bytes).ok(), named_by_tree(&bytes));
    }

    #[test]
    fn webhook_changes_take_any_json(body in webhook_body()) {
        let bytes = serde_json::to_vec(&body).unwrap();
        let named = webhook::envelope(&bytes).expect("an envelope");
        prop_assert_eq!(Some(named.clone()), named_by_tree(&bytes));
        prop_assert!(named.phone_number_ids.len() + named.waba_ids.len() <= nodes(&body));
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        let changes = webhook::changes(&v);
        prop_assert!(changes.len() <= nodes(&body), "{} changes from {} nodes", changes.len(), nodes(&body));
        // Parsing is a function of the input.
        prop_assert_eq!(format!("{changes:?}"), format!("{:?}", webhook::changes(&v)));
    }

    #[test]
    fn validator_takes_any_json(v in json_value()) {
        let _ = validate::validate(&v);
    }

    #[test]
    fn validator_accepted_requests_round_trip(
        kind in prop::sample::select(vec!["text", "image", "document", "location", "reaction", "template", "audio"]),
        inner in json_value(),
        to in prop_oneof![Just("+5511987654321".to_string()), ".{0,20}"],
        priority in prop::option::of(prop::sample::select(vec!["high", "normal", "bulk", "x"])),
    ) {
        let mut body = json!({"connection_id": Uuid::nil(), "to": to, "type": kind});
        body[kind] = inner;
        if let Some(p) = priority {
            body["priority"] = json!(p);
        }
        if let Ok(req) = validate::validate(&body) {
            // The canonical form is stable and validates to the same request.
            let canon = validate::canonical(&body);
            let again: Value = serde_json::from_str(&canon).unwrap();
            prop_assert_eq!(validate::canonical(&again), canon);
            prop_assert_eq!(validate::validate(&again).expect("accepted again"), req);
        }
    }

    #[test]
    fn validator_accepts_plain_texts(text in "[^\u{0}]{1,200}") {
        let body = json!({"connection_id": Uuid::nil(), "to": "+5511987654321", "type": "text", "text": {"body": text}});
        let req = validate::validate(&body).expect("a text message");
        prop_assert_eq!(req.body["text"]["body"].as_str(), Some(text.as_str()));
    }

    #[test]
    fn cursors_round_trip(
        nanos in (-377_705_116_800i128 * 1_000_000_000)..(253_402_300_799i128 * 1_000_000_000),
        id in any::<u128>(),
    ) {
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap();
        let id = Uuid::from_u128(id);
        let c = cursor::encode(at, id);
        prop_assert!(c.len() < 128);
        let (at2, id2) = cursor::decode(&c).expect("our own cursor");
        prop_assert_eq!((at2, id2), (at, id));
    }

    #[test]
    fn cursors_refuse_garbage_cleanly(s in ".{0,300}", bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = cursor::decode(&s);
        use base64::Engine;
        let _ = cursor::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes));
    }

    #[test]
    fn bridge_events_take_any_text(s in ".{0,400}") {
        let _ = BridgeEvent::parse(&s);
    }

    #[test]
    fn bridge_messages_take_any_json(fields in prop::collection::vec((key(), json_value()), 0..12), id in ".{0,40}") {
        let mut msg: Map<String, Value> = fields.into_iter().collect();
        msg.insert("id".into(), json!(id));
        let payload = json!({"t": "msg", "msg": msg}).to_string();
        if let Ok(BridgeEvent::Msg { msg: parsed, .. }) = BridgeEvent::parse(&payload) {
            prop_assert_eq!(&parsed.id, &id);
            if let Some(body) = msg.get("body").and_then(Value::as_str) {
                prop_assert_eq!(parsed.body.as_deref(), Some(body));
            }
        }
    }

    #[test]
    fn bridge_messages_parse_when_well_formed(
        id in "[A-Za-z0-9]{1,32}",
        body in prop::option::of(".{0,100}"),
        t in prop::option::of(any::<i64>()),
        media in any::<bool>(),
    ) {
        let payload = json!({"t": "msg", "msg": {
            "id": id, "serialized": format!("false_5511@c.us_{id}"), "remote": "5511@c.us",
            "type": "chat", "body": body, "t": t, "media": media,
        }})
        .to_string();
        match BridgeEvent::parse(&payload) {
            Ok(BridgeEvent::Msg { msg, .. }) => {
                prop_assert_eq!(&msg.id, &id);
                prop_assert_eq!(msg.body, body);
                prop_assert_eq!(msg.t, t);
                prop_assert_eq!(msg.media, media);
            }
            other => prop_assert!(false, "not a message: {other:?}"),
        }
    }
}
