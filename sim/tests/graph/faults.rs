//! Injected faults and the webhook delivery options (duplicates, reordering, batches, retries).

use crate::fixture::{Env, assert_meta_error, fast_config, wait_for};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[tokio::test]
async fn faults_are_injected_and_cleared() {
    let env = Env::new(fast_config()).await;
    let to = "15551230060";
    env.inbound(to, json!({"type":"text","text":{"body":"hi"}}))
        .await;
    let pnid = env.s("phone_number_id");
    // Two 131000 then normal.
    let (st, _) = env
        .control(
            reqwest::Method::POST,
            "faults",
            json!({"phone_number_id": pnid, "code": 131000, "count": 2}),
        )
        .await;
    assert_eq!(st, 201);
    for _ in 0..2 {
        let (st, v) = env.text(to, "x").await;
        assert_meta_error(st, &v, 131000, 500);
    }
    assert_eq!(env.text(to, "x").await.0, 200);
    // Bare 503 with no body.
    env.control(reqwest::Method::POST, "faults", json!({"http_status": 503}))
        .await;
    let res = env
        .http
        .post(env.url(&format!("{pnid}/messages")))
        .bearer_auth(env.s("access_token"))
        .json(&json!({"messaging_product":"whatsapp","to":to,"text":{"body":"x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.bytes().await.unwrap().is_empty());
    // Code with an overridden status.
    env.control(
        reqwest::Method::POST,
        "faults",
        json!({"code": 130429, "http_status": 429}),
    )
    .await;
    let (st, v) = env.text(to, "x").await;
    assert_meta_error(st, &v, 130429, 429);
    // Latency.
    env.control(reqwest::Method::POST, "faults", json!({"latency_ms": 300}))
        .await;
    let t0 = Instant::now();
    assert_eq!(env.text(to, "x").await.0, 200);
    assert!(t0.elapsed() >= Duration::from_millis(300));
    // Never answered.
    env.control(reqwest::Method::POST, "faults", json!({"timeout": true}))
        .await;
    let err = env
        .http
        .post(env.url(&format!("{pnid}/messages")))
        .bearer_auth(env.s("access_token"))
        .timeout(Duration::from_millis(300))
        .json(&json!({"messaging_product":"whatsapp","to":to,"text":{"body":"x"}}))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    // Ratio 1.0 hits every call until cleared.
    env.control(
        reqwest::Method::POST,
        "faults",
        json!({"code": 131016, "ratio": 1.0}),
    )
    .await;
    for _ in 0..3 {
        let (st, v) = env.text(to, "x").await;
        assert_meta_error(st, &v, 131016, 503);
    }
    let (st, v) = env
        .control(reqwest::Method::DELETE, "faults", json!({}))
        .await;
    assert_eq!((st, v["cleared"].clone()), (200, json!(1)));
    assert_eq!(env.text(to, "x").await.0, 200);
    // Async failure: 200, then sent and failed with the code.
    env.control(
        reqwest::Method::POST,
        "faults",
        json!({"code": 131026, "async": true}),
    )
    .await;
    let (st, v) = env.text(to, "x").await;
    assert_eq!(st, 200);
    let id = v["messages"][0]["id"].as_str().unwrap().to_string();
    let secret = env.secret();
    let failed = wait_for("failed status", Duration::from_secs(5), || {
        env.cb
            .changes(&secret)
            .into_iter()
            .filter_map(|(_, v)| v["statuses"].get(0).cloned())
            .find(|s| s["id"] == id.as_str() && s["status"] == "failed")
    })
    .await;
    assert_eq!(failed["errors"][0]["code"], 131026);
    // Bad fault spec.
    let (st, v) = env
        .control(reqwest::Method::POST, "faults", json!({"count": 1}))
        .await;
    assert_eq!(st, 400);
    assert_eq!(v["error"]["code"], "invalid_request");
    env.stop().await;
}

#[tokio::test]
async fn webhook_options_duplicate_reorder_batch_and_retry() {
    let env = Env::new(fast_config()).await;
    let secret = env.secret();
    let to = "15551230070";
    // Duplicate: every body twice.
    env.control(
        reqwest::Method::POST,
        "webhooks",
        json!({"duplicate": true}),
    )
    .await;
    env.inbound(to, json!({"type":"text","text":{"body":"dup"}}))
        .await;
    let bodies = wait_for("duplicated webhook", Duration::from_secs(5), || {
        let b = env.cb.bodies(&secret);
        (b.len() >= 2).then_some(b)
    })
    .await;
    assert_eq!(bodies[0], bodies[1]);
    env.cb.posts.lock().unwrap().clear();
    // Reorder: the statuses of one send arrive read, delivered, sent.
    env.control(reqwest::Method::POST, "webhooks", json!({"reorder": true}))
        .await;
    let (st, v) = env.text(to, "x").await;
    assert_eq!(st, 200);
    let id = v["messages"][0]["id"].as_str().unwrap().to_string();
    let statuses = wait_for("reordered statuses", Duration::from_secs(5), || {
        let s = env.cb.statuses(&secret);
        (s.len() >= 3).then_some(s)
    })
    .await;
    let names: Vec<&str> = statuses.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(names, ["read", "delivered", "sent"]);
    assert!(statuses.iter().all(|(w, _)| *w == id));
    env.cb.posts.lock().unwrap().clear();
    // Batch: three inbound messages in one POST.
    env.control(reqwest::Method::POST, "webhooks", json!({"batch": 3}))
        .await;
    for i in 0..3 {
        env.inbound(to, json!({"type":"text","text":{"body":format!("b{i}")}}))
            .await;
    }
    let bodies = wait_for("batched webhook", Duration::from_secs(5), || {
        let b = env.cb.bodies(&secret);
        (!b.is_empty()).then_some(b)
    })
    .await;
    assert_eq!(bodies[0]["entry"].as_array().unwrap().len(), 3);
    env.cb.posts.lock().unwrap().clear();
    // Retry: two 500s, then delivered on the third attempt.
    env.control(reqwest::Method::POST, "webhooks", json!({}))
        .await;
    env.cb.fail_next.store(2, Ordering::SeqCst);
    let before = env.cb.attempts.load(Ordering::SeqCst);
    env.inbound(to, json!({"type":"text","text":{"body":"retry"}}))
        .await;
    wait_for("retried webhook", Duration::from_secs(5), || {
        (!env.cb.bodies(&secret).is_empty()).then_some(())
    })
    .await;
    assert_eq!(env.cb.attempts.load(Ordering::SeqCst) - before, 3);
    let (_, log) = env
        .control(reqwest::Method::GET, "webhooks", json!({}))
        .await;
    let outcomes: Vec<&str> = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["outcome"].as_str().unwrap())
        .collect();
    assert!(
        outcomes.ends_with(&["retrying", "retrying", "delivered"]),
        "{outcomes:?}"
    );
    // Delay.
    env.cb.posts.lock().unwrap().clear();
    env.control(reqwest::Method::POST, "webhooks", json!({"delay_ms": 400}))
        .await;
    let t0 = Instant::now();
    env.inbound(to, json!({"type":"text","text":{"body":"late"}}))
        .await;
    wait_for("delayed webhook", Duration::from_secs(5), || {
        (!env.cb.bodies(&secret).is_empty()).then_some(())
    })
    .await;
    assert!(t0.elapsed() >= Duration::from_millis(400));
    env.stop().await;
}
