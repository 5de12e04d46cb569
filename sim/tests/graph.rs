//! Integration tests of the Meta Graph simulator over real HTTP on 127.0.0.1: a small warp
//! server in the test plays the daemon's webhook endpoint (handshake + signed POSTs).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sincro_sim::graph::{self, GraphSimConfig, GraphSimHandle};
use warp::Filter;

// ---------- callback server ----------

/// (X-Hub-Signature-256 header, raw body) of every acknowledged POST.
type Posts = Arc<Mutex<Vec<(Option<String>, Bytes)>>>;

#[derive(Clone, Default)]
struct Callback {
    url: String,
    posts: Posts,
    /// Answer 500 to this many POSTs before answering 200.
    fail_next: Arc<AtomicUsize>,
    attempts: Arc<AtomicUsize>,
}

impl Callback {
    async fn start(verify_token: &str) -> (Callback, tokio::task::JoinHandle<()>) {
        let cb = Callback::default();
        let vt = verify_token.to_string();
        let get = warp::get()
            .and(warp::query::<HashMap<String, String>>())
            .map(move |q: HashMap<String, String>| {
                let ok = q.get("hub.mode").map(String::as_str) == Some("subscribe")
                    && q.get("hub.verify_token") == Some(&vt);
                match (ok, q.get("hub.challenge")) {
                    (true, Some(c)) => {
                        warp::reply::with_status(c.clone(), warp::http::StatusCode::OK)
                    }
                    _ => warp::reply::with_status(
                        "bad token".to_string(),
                        warp::http::StatusCode::FORBIDDEN,
                    ),
                }
            });
        let c2 = cb.clone();
        let post = warp::post()
            .and(warp::header::optional::<String>("x-hub-signature-256"))
            .and(warp::body::bytes())
            .map(move |sig: Option<String>, body: Bytes| {
                c2.attempts.fetch_add(1, Ordering::SeqCst);
                let failing = c2
                    .fail_next
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if failing {
                    return warp::http::StatusCode::INTERNAL_SERVER_ERROR;
                }
                c2.posts.lock().unwrap().push((sig, body));
                warp::http::StatusCode::OK
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(warp::serve(get.or(post)).incoming(listener).run());
        (
            Callback {
                url: format!("http://{addr}/webhooks/whatsapp"),
                ..cb
            },
            task,
        )
    }

    /// Every received body, after checking its signature with `secret`.
    fn bodies(&self, secret: &str) -> Vec<Value> {
        self.posts
            .lock()
            .unwrap()
            .iter()
            .map(|(sig, body)| {
                let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
                mac.update(body);
                let hex: String = mac
                    .finalize()
                    .into_bytes()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                assert_eq!(sig.as_deref(), Some(format!("sha256={hex}").as_str()));
                serde_json::from_slice(body).unwrap()
            })
            .collect()
    }

    /// Every change `value` (with its field), in arrival order.
    fn changes(&self, secret: &str) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for b in self.bodies(secret) {
            assert_eq!(b["object"], "whatsapp_business_account");
            for e in b["entry"].as_array().unwrap() {
                for c in e["changes"].as_array().unwrap() {
                    out.push((c["field"].as_str().unwrap().to_string(), c["value"].clone()));
                }
            }
        }
        out
    }

    /// (wamid, status) of every status, in arrival order.
    fn statuses(&self, secret: &str) -> Vec<(String, String)> {
        self.changes(secret)
            .into_iter()
            .filter_map(|(_, v)| v.get("statuses").cloned())
            .flat_map(|s| s.as_array().cloned().unwrap())
            .map(|s| {
                (
                    s["id"].as_str().unwrap().to_string(),
                    s["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

async fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------- simulator fixture ----------

struct Env {
    sim: Option<GraphSimHandle>,
    base: String,
    http: reqwest::Client,
    cb: Callback,
    cb_task: tokio::task::JoinHandle<()>,
    acct: Value,
}

fn fast_config() -> GraphSimConfig {
    GraphSimConfig {
        template_review_delay: Duration::from_millis(100),
        status_interval: Duration::from_millis(20),
        webhook_retry_delays: vec![Duration::from_millis(50), Duration::from_millis(100)],
        webhook_gather_window: Duration::from_millis(300),
        ..Default::default()
    }
}

impl Env {
    async fn new(config: GraphSimConfig) -> Env {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim = graph::start(listener, config).await.unwrap();
        let base = sim.base_url();
        let (cb, cb_task) = Callback::start("vt-123").await;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let res = http
            .post(format!("{base}/sim/accounts"))
            .json(&json!({"callback_url": cb.url, "verify_token": "vt-123"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let acct: Value = res.json().await.unwrap();
        Env {
            sim: Some(sim),
            base,
            http,
            cb,
            cb_task,
            acct,
        }
    }

    fn s(&self, key: &str) -> String {
        self.acct[key].as_str().unwrap().to_string()
    }

    fn secret(&self) -> String {
        self.s("app_secret")
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v23.0/{path}", self.base)
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method, self.url(path))
            .bearer_auth(self.s("access_token"));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let res = rb.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn send(&self, body: Value) -> (u16, Value) {
        let path = format!("{}/messages", self.s("phone_number_id"));
        self.call(reqwest::Method::POST, &path, Some(body)).await
    }

    async fn text(&self, to: &str, body: &str) -> (u16, Value) {
        self.send(
            json!({"messaging_product":"whatsapp","to":to,"type":"text","text":{"body":body}}),
        )
        .await
    }

    async fn control(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let res = self
            .http
            .request(method, format!("{}/sim/{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn inbound(&self, from: &str, message: Value) -> String {
        let (st, v) = self
            .control(
                reqwest::Method::POST,
                "inbound",
                json!({"phone_number_id": self.s("phone_number_id"), "from": from, "name": "Ana", "message": message}),
            )
            .await;
        assert_eq!(st, 202, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    async fn stop(mut self) {
        if let Some(s) = self.sim.take() {
            s.shutdown().await;
        }
        self.cb_task.abort();
    }
}

fn assert_meta_error(status: u16, v: &Value, code: i64, http: u16) {
    assert_eq!(status, http, "{v}");
    let e = &v["error"];
    assert_eq!(e["code"], code, "{v}");
    assert_eq!(e["type"], "OAuthException", "{v}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("(#{code}) ")),
        "{v}"
    );
    assert_eq!(e["error_data"]["messaging_product"], "whatsapp");
    assert!(e["error_data"]["details"].is_string());
    assert!(e["fbtrace_id"].is_string());
}

// ---------- tests ----------

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

#[tokio::test]
async fn template_lifecycle() {
    let env = Env::new(fast_config()).await;
    let waba = env.s("waba_id");
    let secret = env.secret();
    let path = format!("{waba}/message_templates");
    // Bad name.
    let (st, v) = env
        .call(
            reqwest::Method::POST,
            &path,
            Some(
                json!({"name":"Order-Update","language":"en_US","category":"UTILITY",
                "components":[{"type":"BODY","text":"Hi"}]}),
            ),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(v["error"]["code"], 100);
    let create = json!({"name":"order_update","language":"en_US","category":"UTILITY",
        "components":[{"type":"BODY","text":"Hi {{1}}, order {{2}} shipped","example":{"body_text":[["Ana","42"]]}}]});
    let (st, v) = env
        .call(reqwest::Method::POST, &path, Some(create.clone()))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "PENDING");
    let tid = v["id"].as_str().unwrap().to_string();
    // Duplicate name + language.
    let (st, v) = env.call(reqwest::Method::POST, &path, Some(create)).await;
    assert_eq!(st, 400, "{v}");
    let send = |params: Vec<Value>| {
        json!({"messaging_product":"whatsapp","to":"15551230020","type":"template",
            "template":{"name":"order_update","language":{"code":"en_US"},
                "components":[{"type":"body","parameters":params}]}})
    };
    let two = vec![
        json!({"type":"text","text":"Ana"}),
        json!({"type":"text","text":"42"}),
    ];
    // Still PENDING: not sendable.
    let (st, v) = env.send(send(two.clone())).await;
    assert_meta_error(st, &v, 132001, 404);
    // The approval webhook arrives.
    let update = wait_for("template status webhook", Duration::from_secs(5), || {
        env.cb
            .changes(&secret)
            .into_iter()
            .find(|(f, _)| f == "message_template_status_update")
    })
    .await
    .1;
    assert_eq!(update["event"], "APPROVED");
    assert_eq!(update["message_template_name"], "order_update");
    assert_eq!(update["message_template_language"], "en_US");
    assert_eq!(
        update["message_template_id"].as_u64().unwrap().to_string(),
        tid
    );
    let (st, v) = env.call(reqwest::Method::GET, &tid, None).await;
    assert_eq!((st, v["status"].clone()), (200, json!("APPROVED")));
    // Parameter count mismatch, then a good send (no window needed for templates).
    let (st, v) = env.send(send(two[..1].to_vec())).await;
    assert_meta_error(st, &v, 132000, 400);
    let (st, v) = env.send(send(two.clone())).await;
    assert_eq!(st, 200, "{v}");
    // Wrong language.
    let mut other = send(two.clone());
    other["template"]["language"]["code"] = json!("pt_BR");
    let (st, v) = env.send(other).await;
    assert_meta_error(st, &v, 132001, 404);
    // A reject_ name is rejected, with the webhook.
    let (st, _) = env
        .call(
            reqwest::Method::POST,
            &path,
            Some(
                json!({"name":"reject_me","language":"en_US","category":"MARKETING",
                "components":[{"type":"BODY","text":"Buy"}]}),
            ),
        )
        .await;
    assert_eq!(st, 200);
    let rejected = wait_for("rejection webhook", Duration::from_secs(5), || {
        env.cb.changes(&secret).into_iter().find(|(f, v)| {
            f == "message_template_status_update" && v["message_template_name"] == "reject_me"
        })
    })
    .await
    .1;
    assert_eq!(rejected["event"], "REJECTED");
    assert_eq!(rejected["reason"], "INVALID_FORMAT");
    // List with paging.
    let (st, v) = env
        .call(reqwest::Method::GET, &format!("{path}?limit=1"), None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    let next = v["paging"]["next"].as_str().unwrap().to_string();
    let res = env
        .http
        .get(&next)
        .bearer_auth(env.s("access_token"))
        .send()
        .await
        .unwrap();
    let v2: Value = res.json().await.unwrap();
    assert_eq!(v2["data"].as_array().unwrap().len(), 1);
    assert_ne!(v2["data"][0]["name"], v["data"][0]["name"]);
    assert!(v2["paging"].get("next").is_none());
    // Delete by name; sending it afterwards fails.
    let (st, v) = env
        .call(
            reqwest::Method::DELETE,
            &format!("{path}?name=order_update"),
            None,
        )
        .await;
    assert_eq!((st, v), (200, json!({"success": true})));
    let (st, v) = env.send(send(two)).await;
    assert_meta_error(st, &v, 132001, 404);
    let (st, _) = env
        .call(
            reqwest::Method::DELETE,
            &format!("{path}?name=order_update"),
            None,
        )
        .await;
    assert_eq!(st, 400);
    env.stop().await;
}

/// One text to every recipient at once: how many were accepted. Every other one must have
/// been refused for throughput (130429).
async fn burst(env: &Arc<Env>, recipients: &[String]) -> usize {
    let answers = futures::future::join_all(recipients.iter().map(|r| {
        let env = Arc::clone(env);
        let r = r.clone();
        async move { env.text(&r, "burst").await }
    }))
    .await;
    for (st, v) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_meta_error(*st, v, 130429, 400);
    }
    answers.iter().filter(|(s, _)| *s == 200).count()
}

#[tokio::test]
async fn inbound_messages_use_up_the_throughput() {
    let env = Arc::new(
        Env::new(GraphSimConfig {
            statuses: vec![],
            ..fast_config()
        })
        .await,
    );
    let recipients: Vec<String> = (0..80).map(|i| format!("1555800{i:04}")).collect();
    let receive = |from: &[String]| {
        futures::future::join_all(from.iter().map(|r| {
            let env = Arc::clone(&env);
            let r = r.clone();
            async move {
                env.inbound(&r, json!({"type":"text","text":{"body":"hi"}}))
                    .await
            }
        }))
    };
    // Every contact's window open, then a quiet second.
    receive(&recipients).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t0 = Instant::now();
    receive(&recipients[..50]).await;
    // The 50 received leave 30 of the number's 80 for sending in the same second.
    let ok = burst(&env, &recipients).await;
    if t0.elapsed() < Duration::from_millis(900) {
        assert_eq!(ok, 30);
    } else {
        assert!(ok < 80, "{ok}");
    }
}

#[tokio::test]
async fn throughput_is_never_exceeded_in_any_second() {
    // Sends alone (the contacts' messages that open their windows not counted here).
    let env = Env::new(GraphSimConfig {
        statuses: vec![],
        throughput_counts_inbound: false,
        ..fast_config()
    })
    .await;
    let n = 100;
    let recipients: Vec<String> = (0..n).map(|i| format!("1555900{i:04}")).collect();
    for r in &recipients {
        env.inbound(r, json!({"type":"text","text":{"body":"hi"}}))
            .await;
    }
    // A burst of 100 at once: exactly 80 pass.
    let env = Arc::new(env);
    let t0 = Instant::now();
    let ok = burst(&env, &recipients).await;
    if t0.elapsed() < Duration::from_millis(900) {
        // All 100 arrived within one second.
        assert_eq!(ok, 80);
    } else {
        assert!(ok >= 80, "{ok}");
    }
    // Keep pushing for ~2 s; the server-side record never has more than 80 in any second.
    let until = Instant::now() + Duration::from_millis(2200);
    let mut i = 0usize;
    while Instant::now() < until {
        let wave = futures::future::join_all((0..20).map(|k| {
            let env = Arc::clone(&env);
            let r = recipients[(i + k) % n].clone();
            async move { env.text(&r, "more").await }
        }))
        .await;
        for (st, v) in wave {
            if st != 200 {
                assert_eq!(v["error"]["code"], 130429, "{v}");
            }
        }
        i += 20;
    }
    let sent: Vec<Value> = env
        .http
        .get(format!("{}/sim/sent", env.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut times: Vec<i128> = sent
        .iter()
        .map(|s| {
            let t = time::OffsetDateTime::parse(
                s["received_at"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            t.unix_timestamp_nanos() / 1_000_000
        })
        .collect();
    times.sort();
    assert!(
        times.len() > 160,
        "the window slides: {} accepted",
        times.len()
    );
    for (a, &t) in times.iter().enumerate() {
        let in_window = times[a..].iter().take_while(|&&u| u - t < 1000).count();
        assert!(
            in_window <= 80,
            "{in_window} sends within 1 s starting at {t}"
        );
    }
    let env = Arc::try_unwrap(env).ok().unwrap();
    env.stop().await;
}

#[tokio::test]
async fn pair_rate_limits_one_recipient_only() {
    let env = Env::new(GraphSimConfig {
        statuses: vec![],
        ..fast_config()
    })
    .await;
    env.inbound("15551230030", json!({"type":"text","text":{"body":"hi"}}))
        .await;
    env.inbound("15551230031", json!({"type":"text","text":{"body":"hi"}}))
        .await;
    for i in 0..45 {
        let (st, v) = env.text("15551230030", &format!("m{i}")).await;
        assert_eq!(st, 200, "message {i}: {v}");
    }
    let (st, v) = env.text("15551230030", "one too many").await;
    assert_meta_error(st, &v, 131056, 400);
    let (st, _) = env.text("15551230031", "other recipient").await;
    assert_eq!(st, 200);
    env.stop().await;
}

fn multipart_body(boundary: &str, mime: &str, data: &[u8], with_type: bool) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n").as_bytes());
    if with_type {
        b.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\n{mime}\r\n"
            )
            .as_bytes(),
        );
    }
    b.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\nContent-Type: {mime}\r\n\r\n").as_bytes());
    b.extend_from_slice(data);
    b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    b
}

async fn upload(env: &Env, mime: &str, data: &[u8], with_type: bool) -> (u16, Value) {
    let res = env
        .http
        .post(env.url(&format!("{}/media", env.s("phone_number_id"))))
        .bearer_auth(env.s("access_token"))
        .header("content-type", "multipart/form-data; boundary=BOUNDARY42")
        .body(multipart_body("BOUNDARY42", mime, data, with_type))
        .send()
        .await
        .unwrap();
    let st = res.status().as_u16();
    (st, res.json().await.unwrap())
}

#[tokio::test]
async fn media_upload_url_download_and_expiry() {
    let env = Env::new(GraphSimConfig {
        media_url_lifetime: Duration::from_millis(400),
        statuses: vec![],
        ..fast_config()
    })
    .await;
    let data = b"\xff\xd8\xff\xe0 a tiny jpeg \xff\xd9".to_vec();
    let (st, v) = upload(&env, "image/jpeg", &data, true).await;
    assert_eq!(st, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    // Validation: unsupported type, oversize image, missing type field.
    let (st, v) = upload(&env, "image/gif", b"GIF89a", true).await;
    assert_meta_error(st, &v, 131053, 400);
    let (st, v) = upload(&env, "image/png", &vec![0u8; 5 * 1024 * 1024 + 1], true).await;
    assert_meta_error(st, &v, 131053, 400);
    let (st, v) = upload(&env, "image/png", b"png", false).await;
    assert_meta_error(st, &v, 131008, 400);
    // Lookup.
    let (st, info) = env.call(reqwest::Method::GET, &id, None).await;
    assert_eq!(st, 200, "{info}");
    let hex: String = Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(info["sha256"], hex.as_str());
    assert_eq!(info["mime_type"], "image/jpeg");
    assert_eq!(info["file_size"], data.len().to_string().as_str());
    assert_eq!(info["messaging_product"], "whatsapp");
    let url = info["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&env.base));
    // Download: no bearer 401, wrong bearer 401, right bearer 200.
    let res = env.http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = env
        .http
        .get(&url)
        .bearer_auth("EAAGnope")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = env
        .http
        .get(&url)
        .bearer_auth(env.s("access_token"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert_eq!(res.bytes().await.unwrap().to_vec(), data);
    // Sending it: as an image works, as audio is a media error.
    env.inbound("15551230040", json!({"type":"text","text":{"body":"hi"}}))
        .await;
    let (st, v) = env
        .send(json!({"messaging_product":"whatsapp","to":"15551230040","type":"image","image":{"id":id}}))
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = env
        .send(json!({"messaging_product":"whatsapp","to":"15551230040","type":"audio","audio":{"id":id}}))
        .await;
    assert_meta_error(st, &v, 131053, 400);
    // The URL expires.
    let token = env.s("access_token");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let res = env.http.get(&url).bearer_auth(&token).send().await.unwrap();
        if res.status() == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "media URL never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Delete.
    let (st, v) = env.call(reqwest::Method::DELETE, &id, None).await;
    assert_eq!((st, v), (200, json!({"success": true})));
    let (st, _) = env.call(reqwest::Method::GET, &id, None).await;
    assert_eq!(st, 400);
    env.stop().await;
}

#[tokio::test]
async fn inbound_media_is_downloadable_with_matching_sha256() {
    let env = Env::new(fast_config()).await;
    let bytes = b"%PDF-1.4 hello %%EOF".to_vec();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
    env.inbound(
        "15551230050",
        json!({"type":"document","document":{"data_base64":b64,"mime_type":"application/pdf","filename":"x.pdf","caption":"c"}}),
    )
    .await;
    env.inbound("15551230050", json!({"type":"image","image":{}}))
        .await;
    let secret = env.secret();
    let msgs = wait_for("two media webhooks", Duration::from_secs(5), || {
        let m: Vec<Value> = env
            .cb
            .changes(&secret)
            .into_iter()
            .filter_map(|(_, v)| v["messages"].get(0).cloned())
            .collect();
        (m.len() == 2).then_some(m)
    })
    .await;
    let doc = msgs.iter().find(|m| m["type"] == "document").unwrap();
    let d = &doc["document"];
    assert!(d.get("data_base64").is_none());
    assert_eq!(d["mime_type"], "application/pdf");
    assert_eq!(d["filename"], "x.pdf");
    assert_eq!(d["caption"], "c");
    let want = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes));
    assert_eq!(d["sha256"], want.as_str());
    let (st, info) = env
        .call(reqwest::Method::GET, d["id"].as_str().unwrap(), None)
        .await;
    assert_eq!(st, 200);
    let got = env
        .http
        .get(info["url"].as_str().unwrap())
        .bearer_auth(env.s("access_token"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.to_vec(), bytes);
    // Generated image bytes also match their advertised digest.
    let img = msgs.iter().find(|m| m["type"] == "image").unwrap();
    let (_, info) = env
        .call(
            reqwest::Method::GET,
            img["image"]["id"].as_str().unwrap(),
            None,
        )
        .await;
    let got = env
        .http
        .get(info["url"].as_str().unwrap())
        .bearer_auth(env.s("access_token"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&got)),
        img["image"]["sha256"].as_str().unwrap()
    );
    assert_eq!(img["image"]["mime_type"], "image/jpeg");
    env.stop().await;
}

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
