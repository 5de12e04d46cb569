//! Inbound webhooks shaped like Meta's, the 24 h service window and the send validation codes.

use crate::fixture::{Env, assert_meta_error, fast_config, wait_for};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn inbound_webhook_is_signed_and_shaped_like_meta() {
    let env = Env::new(fast_config()).await;
    let wamid = env
        .inbound(
            "+1 555 123 0001",
            json!({"type":"text","text":{"body":"hi"}}),
        )
        .await;
    assert!(wamid.starts_with("wamid."));
    let secret = env.secret();
    let body = wait_for("inbound webhook", Duration::from_secs(5), || {
        env.cb.bodies(&secret).into_iter().next()
    })
    .await;
    let entry = &body["entry"][0];
    assert_eq!(entry["id"], env.acct["waba_id"]);
    let change = &entry["changes"][0];
    assert_eq!(change["field"], "messages");
    let value = &change["value"];
    assert_eq!(value["messaging_product"], "whatsapp");
    assert_eq!(
        value["metadata"]["phone_number_id"],
        env.acct["phone_number_id"]
    );
    assert_eq!(
        value["metadata"]["display_phone_number"],
        env.acct["display_phone_number"]
    );
    assert_eq!(value["contacts"][0]["wa_id"], "15551230001");
    assert_eq!(value["contacts"][0]["profile"]["name"], "Ana");
    let msg = &value["messages"][0];
    assert_eq!(msg["id"], wamid.as_str());
    assert_eq!(msg["from"], "15551230001");
    assert_eq!(msg["type"], "text");
    assert_eq!(msg["text"]["body"], "hi");
    assert!(msg["timestamp"].as_str().unwrap().parse::<i64>().is_ok());
    // Mark as read: known inbound id works, unknown fails.
    let (st, v) = env
        .send(json!({"messaging_product":"whatsapp","status":"read","message_id":wamid}))
        .await;
    assert_eq!((st, v), (200, json!({"success": true})));
    let (st, v) = env
        .send(json!({"messaging_product":"whatsapp","status":"read","message_id":"wamid.nope"}))
        .await;
    assert_meta_error(st, &v, 100, 400);
    env.stop().await;
}

#[tokio::test]
async fn service_window_rules() {
    let env = Env::new(fast_config()).await;
    let (st, v) = env.text("15551230002", "hello").await;
    assert_meta_error(st, &v, 131047, 400);
    env.inbound("15551230002", json!({"type":"text","text":{"body":"hi"}}))
        .await;
    let (st, v) = env.text("+15551230002", "hello").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["messaging_product"], "whatsapp");
    assert_eq!(v["contacts"][0]["input"], "+15551230002");
    assert_eq!(v["contacts"][0]["wa_id"], "15551230002");
    let id = v["messages"][0]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("wamid."));
    // An inbound 25 h old leaves the window closed.
    let old = time::OffsetDateTime::now_utc().unix_timestamp() - 25 * 3600;
    let (st, _) = env
        .control(
            reqwest::Method::POST,
            "inbound",
            json!({"phone_number_id": env.s("phone_number_id"), "from": "15551230003",
                   "name": "Old", "timestamp": old, "message": {"type":"text","text":{"body":"hi"}}}),
        )
        .await;
    assert_eq!(st, 202);
    let (st, v) = env.text("15551230003", "late").await;
    assert_meta_error(st, &v, 131047, 400);
    // The send is recorded, with the request as received.
    let res = env
        .http
        .get(format!(
            "{}/sim/sent?phone_number_id={}",
            env.base,
            env.s("phone_number_id")
        ))
        .send()
        .await
        .unwrap();
    let sent: Vec<Value> = res.json().await.unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["id"], id.as_str());
    assert_eq!(sent[0]["to"], "+15551230002");
    assert_eq!(sent[0]["type"], "text");
    assert_eq!(sent[0]["request"]["text"]["body"], "hello");
    let at = sent[0]["received_at"].as_str().unwrap();
    assert_eq!(at.len(), "2026-01-01T00:00:00.000Z".len(), "{at}");
    assert!(
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).is_ok()
    );
    // Status webhooks follow: sent, delivered, read.
    let secret = env.secret();
    let statuses = wait_for("three statuses", Duration::from_secs(5), || {
        let s = env.cb.statuses(&secret);
        (s.len() >= 3).then_some(s)
    })
    .await;
    let names: Vec<&str> = statuses.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(names, ["sent", "delivered", "read"]);
    assert!(statuses.iter().all(|(w, _)| *w == id));
    env.stop().await;
}

#[tokio::test]
async fn validation_codes() {
    let env = Env::new(fast_config()).await;
    let to = "15551230010";
    env.inbound(to, json!({"type":"text","text":{"body":"hi"}}))
        .await;
    let cases: Vec<(Value, i64)> = vec![
        (json!({"to":to,"text":{"body":"x"}}), 100),
        (
            json!({"messaging_product":"whatsapp","to":to,"text":{"body":"x"},"foo":1}),
            100,
        ),
        (
            json!({"messaging_product":"whatsapp","to":to,"type":"txt","txt":{}}),
            100,
        ),
        (
            json!({"messaging_product":"whatsapp","to":to,"type":"text","text":{}}),
            131008,
        ),
        (
            json!({"messaging_product":"whatsapp","type":"text","text":{"body":"x"}}),
            131008,
        ),
        (
            json!({"messaging_product":"whatsapp","to":to,"text":{"body":"x".repeat(4097)}}),
            131009,
        ),
        (
            json!({"messaging_product":"whatsapp","to":"12ab","text":{"body":"x"}}),
            131009,
        ),
        (
            json!({"messaging_product":"whatsapp","to":to,"type":"interactive","interactive":{
            "type":"button","body":{"text":"b"},"action":{"buttons":[
                {"type":"reply","reply":{"id":"1","title":"A"}},{"type":"reply","reply":{"id":"2","title":"B"}},
                {"type":"reply","reply":{"id":"3","title":"C"}},{"type":"reply","reply":{"id":"4","title":"D"}}]}}}),
            131009,
        ),
        (
            json!({"messaging_product":"whatsapp","to":to,"type":"interactive","interactive":{
            "type":"button","body":{"text":"b"},"action":{"buttons":[
                {"type":"reply","reply":{"id":"1","title":"Same"}},{"type":"reply","reply":{"id":"2","title":"Same"}}]}}}),
            131009,
        ),
        (
            json!({"messaging_product":"whatsapp","to":to,"type":"image","image":{"id":"123456"}}),
            131053,
        ),
        (
            json!({"messaging_product":"whatsapp","to":to,"type":"template","template":{"name":"nope","language":{"code":"en_US"}}}),
            132001,
        ),
    ];
    for (body, code) in cases {
        let (st, v) = env.send(body.clone()).await;
        let http = if code == 132001 { 404 } else { 400 };
        assert_meta_error(st, &v, code, http);
    }
    let rows: Vec<Value> = (0..11)
        .map(|i| json!({"id":format!("r{i}"),"title":"Row"}))
        .collect();
    let (st, v) = env
        .send(
            json!({"messaging_product":"whatsapp","to":to,"type":"interactive","interactive":{
            "type":"list","body":{"text":"b"},"action":{"button":"Pick","sections":[
                {"title":"A","rows":rows[..6]},{"title":"B","rows":rows[6..]}]}}}),
        )
        .await;
    assert_meta_error(st, &v, 131009, 400);
    // Every valid type passes.
    let valid = vec![
        json!({"type":"location","location":{"latitude":37.48,"longitude":-122.14,"name":"HQ"}}),
        json!({"type":"contacts","contacts":[{"name":{"formatted_name":"Ana Ruiz"},"phones":[{"phone":"+1 555 0100"}]}]}),
        json!({"type":"reaction","reaction":{"message_id":"wamid.X","emoji":"👍"}}),
        json!({"type":"image","image":{"link":"https://cdn.example/p.jpg","caption":"c"}}),
        json!({"type":"interactive","interactive":{"type":"cta_url","body":{"text":"b"},
            "action":{"name":"cta_url","parameters":{"display_text":"See","url":"https://x.io"}}}}),
        json!({"type":"interactive","interactive":{"type":"list","header":{"type":"text","text":"H"},
            "body":{"text":"b"},"footer":{"text":"f"},"action":{"button":"Pick","sections":[{"title":"A","rows":rows[..10]}]}}}),
    ];
    for mut body in valid {
        body["messaging_product"] = json!("whatsapp");
        body["to"] = json!(to);
        let (st, v) = env.send(body.clone()).await;
        assert_eq!(st, 200, "{body} -> {v}");
    }
    env.stop().await;
}
