//! The fixture of the Graph simulator's tests: a small warp server playing the daemon's webhook
//! endpoint (handshake + signed POSTs), a simulator with one account pointed at it, and Meta's
//! error shape.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use sincro_sim::graph::{self, GraphSimConfig, GraphSimHandle};
use warp::Filter;

// ---------- callback server ----------

/// (X-Hub-Signature-256 header, raw body) of every acknowledged POST.
pub type Posts = Arc<Mutex<Vec<(Option<String>, Bytes)>>>;

#[derive(Clone, Default)]
pub struct Callback {
    pub url: String,
    pub posts: Posts,
    /// Answer 500 to this many POSTs before answering 200.
    pub fail_next: Arc<AtomicUsize>,
    pub attempts: Arc<AtomicUsize>,
}

impl Callback {
    pub async fn start(verify_token: &str) -> (Callback, tokio::task::JoinHandle<()>) {
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
    pub fn bodies(&self, secret: &str) -> Vec<Value> {
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
    pub fn changes(&self, secret: &str) -> Vec<(String, Value)> {
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
    pub fn statuses(&self, secret: &str) -> Vec<(String, String)> {
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

pub async fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub struct Env {
    pub sim: Option<GraphSimHandle>,
    pub base: String,
    pub http: reqwest::Client,
    pub cb: Callback,
    pub cb_task: tokio::task::JoinHandle<()>,
    pub acct: Value,
}

pub fn fast_config() -> GraphSimConfig {
    GraphSimConfig {
        template_review_delay: Duration::from_millis(100),
        status_interval: Duration::from_millis(20),
        webhook_retry_delays: vec![Duration::from_millis(50), Duration::from_millis(100)],
        webhook_gather_window: Duration::from_millis(300),
        ..Default::default()
    }
}

impl Env {
    pub async fn new(config: GraphSimConfig) -> Env {
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

    pub fn s(&self, key: &str) -> String {
        self.acct[key].as_str().unwrap().to_string()
    }

    pub fn secret(&self) -> String {
        self.s("app_secret")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/v23.0/{path}", self.base)
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
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

    pub async fn send(&self, body: Value) -> (u16, Value) {
        let path = format!("{}/messages", self.s("phone_number_id"));
        self.call(reqwest::Method::POST, &path, Some(body)).await
    }

    pub async fn text(&self, to: &str, body: &str) -> (u16, Value) {
        self.send(
            json!({"messaging_product":"whatsapp","to":to,"type":"text","text":{"body":body}}),
        )
        .await
    }

    pub async fn control(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
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

    pub async fn inbound(&self, from: &str, message: Value) -> String {
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

    pub async fn stop(mut self) {
        if let Some(s) = self.sim.take() {
            s.shutdown().await;
        }
        self.cb_task.abort();
    }
}

pub fn assert_meta_error(status: u16, v: &Value, code: i64, http: u16) {
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
