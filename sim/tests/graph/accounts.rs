//! Tokens, account creation (with Meta's webhook handshake), the control endpoints that pick a
//! message's statuses and an account's state, and shutdown.

use crate::fixture::{Callback, Env, fast_config, wait_for};
use serde_json::{Value, json};
use sincro_sim::graph::{self, GraphSimConfig};
use std::time::{Duration, Instant};

#[tokio::test]
async fn auth_requires_a_valid_token() {
    let env = Env::new(fast_config()).await;
    let url = env.url(&format!("{}/messages", env.s("phone_number_id")));
    let body = json!({"messaging_product":"whatsapp","to":"15551230001","text":{"body":"x"}});
    for token in [None, Some("EAAGwrong")] {
        let mut rb = env.http.post(&url).json(&body);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        let res = rb.send().await.unwrap();
        assert_eq!(res.status(), 401);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"]["code"], 190);
        assert_eq!(v["error"]["type"], "OAuthException");
    }
    // Unknown object with a valid token.
    let (st, v) = env.call(reqwest::Method::GET, "999999", None).await;
    assert_eq!(st, 400);
    assert_eq!(v["error"]["code"], 100);
    // Non-version prefix.
    let res = env
        .http
        .get(format!("{}/latest/me", env.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    env.stop().await;
}

#[tokio::test]
async fn account_creation_handshake() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = graph::start(listener, fast_config()).await.unwrap();
    let base = sim.base_url();
    let (cb, task) = Callback::start("right").await;
    let http = reqwest::Client::new();
    // Wrong verify token: the callback answers 403, nothing is created.
    let res = http
        .post(format!("{base}/sim/accounts"))
        .json(&json!({"callback_url": cb.url, "verify_token": "wrong", "phone_number_id": "1066"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "webhook_verification_failed");
    assert!(sim.accounts().is_empty());
    // Unreachable callback.
    let res = http
        .post(format!("{base}/sim/accounts"))
        .json(&json!({"callback_url": "http://127.0.0.1:1/x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    // Right token: 201 with everything filled in.
    let res = http
        .post(format!("{base}/sim/accounts"))
        .json(&json!({"callback_url": cb.url, "verify_token": "right", "phone_number_id": "1066"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let v: Value = res.json().await.unwrap();
    for k in [
        "phone_number_id",
        "waba_id",
        "display_phone_number",
        "access_token",
        "app_secret",
        "verify_token",
        "callback_url",
    ] {
        assert!(v[k].as_str().is_some_and(|s| !s.is_empty()), "{k} in {v}");
    }
    assert_eq!(v["phone_number_id"], "1066");
    // Same number again: 409.
    let res = http
        .post(format!("{base}/sim/accounts"))
        .json(&json!({"phone_number_id": "1066"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    // No callback at all.
    let res = http
        .post(format!("{base}/sim/accounts"))
        .json(&json!({"callback_url": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(sim.accounts().len(), 2);
    sim.shutdown().await;
    task.abort();
}

#[tokio::test]
async fn chosen_status_and_account_endpoints() {
    let env = Env::new(GraphSimConfig {
        statuses: vec![],
        ..fast_config()
    })
    .await;
    let secret = env.secret();
    let to = "15551230080";
    env.inbound(to, json!({"type":"text","text":{"body":"hi"}}))
        .await;
    let (_, v) = env.text(to, "x").await;
    let id = v["messages"][0]["id"].as_str().unwrap().to_string();
    let (st, _) = env
        .control(
            reqwest::Method::POST,
            "statuses",
            json!({"id": id, "status": "failed", "code": 131026}),
        )
        .await;
    assert_eq!(st, 202);
    let failed = wait_for("chosen status", Duration::from_secs(5), || {
        env.cb
            .changes(&secret)
            .into_iter()
            .filter_map(|(_, v)| v["statuses"].get(0).cloned())
            .next()
    })
    .await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["recipient_id"], to);
    assert_eq!(failed["errors"][0]["code"], 131026);
    let (st, _) = env
        .control(
            reqwest::Method::POST,
            "statuses",
            json!({"id": "wamid.none", "status": "read"}),
        )
        .await;
    assert_eq!(st, 404);
    // Phone number info.
    let pnid = env.s("phone_number_id");
    let (st, v) = env.call(reqwest::Method::GET, &pnid, None).await;
    assert_eq!(st, 200);
    assert_eq!(v["display_phone_number"], env.acct["display_phone_number"]);
    assert_eq!(v["quality_rating"], "GREEN");
    let (st, v) = env
        .call(
            reqwest::Method::GET,
            &format!("{pnid}?fields=throughput,platform_type"),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["throughput"]["level"], "STANDARD");
    assert_eq!(v["platform_type"], "CLOUD_API");
    let (st, v) = env
        .call(reqwest::Method::GET, &format!("{pnid}?fields=bogus"), None)
        .await;
    assert_eq!((st, v["error"]["code"].clone()), (400, json!(100)));
    // WABA numbers.
    let waba = env.s("waba_id");
    let (st, v) = env
        .call(reqwest::Method::GET, &format!("{waba}/phone_numbers"), None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["data"][0]["id"], pnid.as_str());
    // debug_token.
    let (st, v) = env
        .call(
            reqwest::Method::GET,
            &format!("debug_token?input_token={}", env.s("access_token")),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["data"]["is_valid"], true);
    assert_eq!(
        v["data"]["granular_scopes"][0]["target_ids"][0],
        waba.as_str()
    );
    let (_, v) = env
        .call(
            reqwest::Method::GET,
            "debug_token?input_token=EAAGbad",
            None,
        )
        .await;
    assert_eq!(v["data"]["is_valid"], false);
    // subscribed_apps: unsubscribing stops webhook delivery.
    let (st, v) = env
        .call(
            reqwest::Method::GET,
            &format!("{waba}/subscribed_apps"),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    let (st, _) = env
        .call(
            reqwest::Method::DELETE,
            &format!("{waba}/subscribed_apps"),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let before = env.cb.posts.lock().unwrap().len();
    env.inbound(to, json!({"type":"text","text":{"body":"unheard"}}))
        .await;
    let sim = env.sim.as_ref().unwrap();
    wait_for("dropped delivery", Duration::from_secs(5), || {
        sim.deliveries()
            .iter()
            .any(|d| d.outcome == "dropped")
            .then_some(())
    })
    .await;
    assert_eq!(env.cb.posts.lock().unwrap().len(), before);
    let (st, v) = env
        .call(
            reqwest::Method::POST,
            &format!("{waba}/subscribed_apps"),
            None,
        )
        .await;
    assert_eq!((st, v), (200, json!({"success": true})));
    env.stop().await;
}

#[tokio::test]
async fn shutdown_releases_held_requests_and_closes_the_port() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = graph::start(listener, fast_config()).await.unwrap();
    let base = sim.base_url();
    let http = reqwest::Client::new();
    let acct: Value = http
        .post(format!("{base}/sim/accounts"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    http.post(format!("{base}/sim/faults"))
        .json(&json!({"timeout": true}))
        .send()
        .await
        .unwrap();
    let url = format!(
        "{base}/v23.0/{}/messages",
        acct["phone_number_id"].as_str().unwrap()
    );
    let token = acct["access_token"].as_str().unwrap().to_string();
    let held = tokio::spawn({
        let http = http.clone();
        async move {
            http.post(url)
                .bearer_auth(token)
                .json(
                    &json!({"messaging_product":"whatsapp","to":"15551230001","text":{"body":"x"}}),
                )
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let t0 = Instant::now();
    sim.shutdown().await;
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
    let answered = tokio::time::timeout(Duration::from_secs(2), held)
        .await
        .expect("held request released")
        .unwrap();
    assert!(matches!(answered, Ok(503) | Err(_)), "{answered:?}");
    let fresh = reqwest::Client::new();
    assert!(
        fresh
            .get(format!("{base}/sim/accounts"))
            .send()
            .await
            .is_err()
    );
}
