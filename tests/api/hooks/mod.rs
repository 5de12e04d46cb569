//! Event webhooks: the API (`api`), delivery against local receivers (`delivery`), failures
//! and recovery (`failures`), a `kill -9` of the daemon process mid-delivery (`kill`), and the
//! lanes' rounds written several to a commit (`progress`).
//! [`Receiver`] is a small HTTP/1.1 server on loopback whose answer the test sets (accept,
//! a status, drop the connection, hang) and which records every request.

mod api;
mod delivery;
mod failures;
mod kill;
mod progress;

use crate::helpers::{TestApp, eventually};
use sincro_core::store::events::{self, NewEvent};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use uuid::Uuid;

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 200.
    Accept,
    /// This status.
    Status(u16),
    /// Close the connection without an answer (the receiver is down).
    Drop,
    /// Never answer.
    Hang,
}

/// One request the receiver got (whatever it answered).
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: String,
    /// The mode it was answered with.
    pub mode: Mode,
}

impl Received {
    pub fn seq(&self) -> Option<i64> {
        self.headers
            .get("x-sincro-seq")
            .and_then(|s| s.parse().ok())
    }

    pub fn delivery(&self) -> &str {
        &self.headers["x-sincro-delivery"]
    }

    pub fn accepted(&self) -> bool {
        self.mode == Mode::Accept
    }
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    mode: Arc<Mutex<Mode>>,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub async fn start(mode: Mode) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let r = Receiver {
            url,
            mode: Arc::new(Mutex::new(mode)),
            got: Arc::default(),
        };
        let server = r.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(server.clone().serve(socket));
            }
        });
        r
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// The requests it accepted (200).
    pub fn accepted(&self) -> Vec<Received> {
        self.got().into_iter().filter(|r| r.accepted()).collect()
    }

    /// Waits until it accepted `n` requests.
    pub async fn wait_accepted(&self, n: usize, limit: Duration) -> Vec<Received> {
        eventually(limit, || async {
            let got = self.accepted();
            (got.len() >= n).then_some(got)
        })
        .await
        .unwrap_or_else(|| panic!("accepted {} of {n}", self.accepted().len()))
    }

    async fn serve(self, socket: tokio::net::TcpStream) {
        let mut reader = BufReader::new(socket);
        loop {
            let mut headers = HashMap::new();
            let mut line = String::new();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            loop {
                line.clear();
                if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((k, v)) = l.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            if reader.read_exact(&mut body).await.is_err() {
                return;
            }
            let mode = *self.mode.lock().unwrap();
            self.got.lock().unwrap().push(Received {
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
                mode,
            });
            let status = match mode {
                Mode::Accept => 200,
                Mode::Status(s) => s,
                Mode::Drop => return,
                Mode::Hang => {
                    // Hold the connection until the client gives up.
                    let mut rest = Vec::new();
                    let _ = reader.read_to_end(&mut rest).await;
                    return;
                }
            };
            let answer =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nretry-after: 0\r\n\r\n");
            if reader.get_mut().write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
    }
}

/// A daemon whose webhooks may reach loopback receivers, with fast retries.
pub async fn hooks_app(extra: &[(&str, &str)]) -> TestApp {
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    crate::helpers::spawn_app_with(move |env| {
        env.insert("WEBHOOK_URL_ALLOW".into(), "127.0.0.1/32".into());
        env.insert("WEBHOOK_RETRY_BASE_MS".into(), "20".into());
        env.insert("WEBHOOK_RETRY_MAX_MS".into(), "200".into());
        env.insert("WEBHOOK_POLL_MS".into(), "200".into());
        for (k, v) in extra {
            env.insert(k, v);
        }
    })
    .await
}

/// Appends one event per kind for `user` to the durable log (as the daemon's own writers
/// do) and returns their seqs.
pub async fn emit(app: &TestApp, user: Uuid, kinds: &[&'static str]) -> Vec<i64> {
    let mut client = app.pool().get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    let batch: Vec<NewEvent> = kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| NewEvent {
            usuario_id: user,
            kind,
            data: serde_json::json!({"n": i, "text": "hola"}),
        })
        .collect();
    let seqs = events::append_many(&tx, &app.app().context().sealer, &batch)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    seqs
}

/// Creates an endpoint through the API; returns its id and secret.
pub async fn create_hook(app: &TestApp, key: &str, body: serde_json::Value) -> (Uuid, String) {
    let resp = app
        .post("/v1/webhooks", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        201,
        "{}",
        resp.text().await.unwrap()
    );
    let made: serde_json::Value = resp.json().await.unwrap();
    (
        made["id"].as_str().unwrap().parse().unwrap(),
        made["secret"].as_str().unwrap().to_string(),
    )
}

/// The endpoint as `GET /v1/webhooks/{id}` shows it.
pub async fn hook(app: &TestApp, key: &str, id: Uuid) -> serde_json::Value {
    app.get(&format!("/v1/webhooks/{id}"), key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Its attempts, newest first.
pub async fn deliveries(app: &TestApp, key: &str, id: Uuid) -> Vec<serde_json::Value> {
    let v: serde_json::Value = app
        .get(&format!("/v1/webhooks/{id}/deliveries?limit=500"), key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["items"].as_array().unwrap().clone()
}

/// The seqs accepted, in arrival order.
pub fn seqs(got: &[Received]) -> Vec<i64> {
    got.iter().filter_map(Received::seq).collect()
}
