//! The fake page: speaks the page channel protocol (`/sim/ws`) the way the served page does, so
//! the control routes are tested without a browser; plus the simulator's HTTP helpers.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sincro_sim::web::{self, WebSimConfig, WebSimHandle};
use tokio_tungstenite::tungstenite::Message;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub const KEYS: (&str, &str, &str) = ("bm9pc2U=", "aWRlbnRpdHk=", "YWR2");

pub async fn sim(config: WebSimConfig) -> WebSimHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    web::start(listener, config).await.unwrap()
}

pub fn fast() -> WebSimConfig {
    WebSimConfig {
        first_ref_ms: 400,
        next_ref_ms: 250,
        refs_per_qr_cycle: 3,
        pairing_ms: 20,
        sync_ms: 20,
        ready_ms: 30,
        ..WebSimConfig::default()
    }
}

pub struct FakePage {
    ws: Ws,
    pub device: String,
    pub welcome: Value,
}

impl FakePage {
    pub async fn open(sim: &WebSimHandle, device: Option<&str>, login: Option<&str>) -> FakePage {
        let url = format!("{}sim/ws", sim.base_url().replace("http://", "ws://"));
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let hello = json!({
            "t": "hello",
            "device": device,
            "keys": {"noise": KEYS.0, "identity": KEYS.1, "adv": KEYS.2},
            "platform": "WEB",
            "login": login.map(|a| json!({"account": a})),
            "url": sim.base_url(),
        });
        ws.send(Message::text(hello.to_string())).await.unwrap();
        let mut page = FakePage {
            ws,
            device: String::new(),
            welcome: Value::Null,
        };
        page.welcome = page.next("welcome").await;
        page.device = page.welcome["device"].as_str().unwrap().to_string();
        page
    }

    pub fn welcome_status(&self) -> &str {
        self.welcome["status"].as_str().unwrap()
    }

    /// The next push of type `t` (others are skipped), within 5 s.
    pub async fn next(&mut self, t: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no {t:?} push within 5 s"))
                .expect("channel open")
                .expect("frame");
            if let Message::Text(text) = frame {
                let v: Value = serde_json::from_str(&text).unwrap();
                if v["t"] == t {
                    return v;
                }
            }
        }
    }

    pub async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    pub fn qr(r: &str) -> String {
        format!("{r},{},{},{},WEB", KEYS.0, KEYS.1, KEYS.2)
    }

    /// Waits for the next ref and returns the QR string built from it.
    pub async fn next_qr(&mut self) -> String {
        let r = self.next("ref").await;
        Self::qr(r["ref"].as_str().unwrap())
    }

    /// Scans the current QR as `phone` and waits until the page is ready to receive.
    pub async fn link(&mut self, sim: &WebSimHandle, phone: &str) {
        let qr = self.next_qr().await;
        let (status, body) = post(sim, "scan", json!({"qr": qr, "phone": phone})).await;
        assert_eq!(status, 200, "{body}");
        self.next("pairing").await;
        let linked = self.next("linked").await;
        assert_eq!(linked["account"], phone);
        assert_eq!(linked["wid"], format!("{phone}@c.us"));
        self.next("synced").await;
        wait_ready(sim, &self.device).await;
    }
}

pub async fn post(sim: &WebSimHandle, route: &str, body: Value) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{}sim/{route}", sim.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub async fn get(sim: &WebSimHandle, path: &str) -> (u16, Value) {
    let res = reqwest::get(format!("{}{path}", sim.base_url()))
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Polls `/sim/state` until `done` holds for it (within 10 s); panics naming `what` otherwise.
async fn wait_state(sim: &WebSimHandle, what: &str, done: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, state) = get(sim, "sim/state").await;
        if done(&state) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}; last state: {state}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The simulator's `devices` (or `pages`) list in a state.
fn list<'a>(state: &'a Value, key: &str) -> &'a Vec<Value> {
    state[key].as_array().unwrap()
}

/// Waits until the device's page is ready for messages.
pub async fn wait_ready(sim: &WebSimHandle, device: &str) {
    wait_state(
        sim,
        &format!("page of device {device} never became ready"),
        |s| {
            list(s, "pages")
                .iter()
                .any(|p| p["device"] == device && p["ready"] == true)
        },
    )
    .await
}

/// Waits until the device has no page connected (its browser went away).
pub async fn wait_offline(sim: &WebSimHandle, device: &str) {
    wait_state(sim, &format!("device {device} stayed online"), |s| {
        !list(s, "devices")
            .iter()
            .any(|d| d["device"] == device && d["online"] == true)
    })
    .await
}

/// Waits until the device keeps `n` pushes it has not confirmed.
pub async fn wait_kept(sim: &WebSimHandle, device: &str, n: u64) {
    wait_state(
        sim,
        &format!("device {device} never kept {n} pushes"),
        |s| {
            list(s, "devices")
                .iter()
                .find(|d| d["device"] == device)
                .and_then(|d| d["queued"].as_u64())
                == Some(n)
        },
    )
    .await
}

pub fn assert_error(status: u16, body: &Value, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
