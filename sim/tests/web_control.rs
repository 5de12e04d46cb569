//! HTTP-level tests of the WhatsApp Web simulator's control routes. A "fake page" speaks the page
//! channel protocol (`/sim/ws`) directly, so these run without a browser.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sincro_sim::web::{self, WebSimConfig, WebSimHandle};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const KEYS: (&str, &str, &str) = ("bm9pc2U=", "aWRlbnRpdHk=", "YWR2");

async fn sim(config: WebSimConfig) -> WebSimHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    web::start(listener, config).await.unwrap()
}

fn fast() -> WebSimConfig {
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

struct FakePage {
    ws: Ws,
    device: String,
    welcome: Value,
}

impl FakePage {
    async fn open(sim: &WebSimHandle, device: Option<&str>, login: Option<&str>) -> FakePage {
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

    fn welcome_status(&self) -> &str {
        self.welcome["status"].as_str().unwrap()
    }

    /// The next push of type `t` (others are skipped), within 5 s.
    async fn next(&mut self, t: &str) -> Value {
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

    async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    fn qr(r: &str) -> String {
        format!("{r},{},{},{},WEB", KEYS.0, KEYS.1, KEYS.2)
    }

    /// Waits for the next ref and returns the QR string built from it.
    async fn next_qr(&mut self) -> String {
        let r = self.next("ref").await;
        Self::qr(r["ref"].as_str().unwrap())
    }

    /// Scans the current QR as `phone` and waits until the page is ready to receive.
    async fn link(&mut self, sim: &WebSimHandle, phone: &str) {
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

async fn post(sim: &WebSimHandle, route: &str, body: Value) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{}sim/{route}", sim.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn get(sim: &WebSimHandle, path: &str) -> (u16, Value) {
    let res = reqwest::get(format!("{}{path}", sim.base_url()))
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Polls `/sim/state` until the device's page is ready for messages.
async fn wait_ready(sim: &WebSimHandle, device: &str) {
    for _ in 0..100 {
        let (_, state) = get(sim, "sim/state").await;
        let ready = state["pages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["device"] == device && p["ready"] == true);
        if ready {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("page of device {device} never became ready");
}

fn assert_error(status: u16, body: &Value, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

#[tokio::test]
async fn web_page_is_served_self_contained() {
    let sim = sim(fast()).await;
    let html = reqwest::get(sim.base_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("window.Debug.VERSION = VERSION"));
    assert!(html.contains("var VERSION = '2.3000."));
    // Modules are defined through the page's __d registry and served by require.
    assert!(html.contains("window.__d = defineModule"));
    assert!(html.contains("window.require = requireModule"));
    assert!(!html.contains("__WA_JS__") && !html.contains("__WA_VERSION__"));
    assert!(!html.contains("src=\"http"), "no external resources");
    let (status, body) = get(&sim, "sim/nope").await;
    assert_error(status, &body, 404, "not_found");
    sim.shutdown().await;
}

#[tokio::test]
async fn web_scan_current_qr_links_and_stale_qr_is_refused() {
    let sim = sim(fast()).await;
    let mut page = FakePage::open(&sim, None, None).await;
    let first = page.next_qr().await;

    let (_, qrs) = get(&sim, "sim/qr").await;
    assert_eq!(qrs[0]["qr"], first, "{qrs}");
    assert_eq!(qrs[0]["device"], page.device);

    // The first ref expires; scanning it now is refused.
    let second = page.next_qr().await;
    assert_ne!(first, second);
    let (status, body) = post(&sim, "scan", json!({"qr": first, "phone": "5511999990001"})).await;
    assert_error(status, &body, 409, "qr_not_current");
    let (status, body) = post(
        &sim,
        "scan",
        json!({"qr": "garbage", "phone": "5511999990001"}),
    )
    .await;
    assert_error(status, &body, 409, "qr_not_current");
    let (status, body) = post(&sim, "scan", json!({"qr": second, "phone": "abc"})).await;
    assert_error(status, &body, 400, "invalid_phone");
    let (status, body) = post(&sim, "scan", json!({"phone": "5511999990001"})).await;
    assert_error(status, &body, 400, "invalid_request");

    let (status, body) = post(
        &sim,
        "scan",
        json!({"qr": second, "phone": "+55 11 99999-0001"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["account"], "5511999990001");
    page.next("pairing").await;
    let linked = page.next("linked").await;
    assert_eq!(linked["account"], "5511999990001");
    assert!(linked["lid"].as_str().unwrap().ends_with("@lid"));
    page.next("synced").await;

    // Scanned QRs are no longer shown.
    let (status, body) = post(
        &sim,
        "scan",
        json!({"qr": second, "phone": "5511999990001"}),
    )
    .await;
    assert_error(status, &body, 409, "qr_not_current");
    let (_, qrs) = get(&sim, "sim/qr").await;
    assert_eq!(qrs, json!([]));
    let (_, state) = get(&sim, "sim/state").await;
    assert_eq!(state["accounts"][0]["phone"], "5511999990001");
    assert_eq!(state["pages"][0]["state"], "CONNECTED");
    sim.shutdown().await;
}

#[tokio::test]
async fn web_refs_run_out_then_refresh_gives_a_new_cycle() {
    let sim = sim(WebSimConfig {
        first_ref_ms: 100,
        next_ref_ms: 60,
        refs_per_qr_cycle: 2,
        ..fast()
    })
    .await;
    let mut page = FakePage::open(&sim, None, None).await;
    let a = page.next("ref").await;
    let b = page.next("ref").await;
    assert_eq!(a["ttl_ms"], 100);
    assert_eq!(b["ttl_ms"], 60);
    page.next("idle").await;
    let (_, qrs) = get(&sim, "sim/qr").await;
    assert_eq!(qrs, json!([]), "an idle page shows no scannable QR");
    let (_, state) = get(&sim, "sim/state").await;
    assert_eq!(state["pages"][0]["state"], "UNPAIRED_IDLE");
    page.send(json!({"t": "refresh_qr"})).await;
    let c = page.next("ref").await;
    assert_ne!(c["ref"], b["ref"]);
    assert!(c["ref"].as_str().unwrap().starts_with("2@"));
    sim.shutdown().await;
}

#[tokio::test]
async fn web_messages_send_acks_and_sent_list() {
    let sim = sim(fast()).await;
    let mut page = FakePage::open(&sim, None, None).await;
    page.link(&sim, "5511999990002").await;

    // Inbound text.
    let (status, body) = post(
        &sim,
        "messages",
        json!({"account": "5511999990002", "from": "5511888880001", "name": "Ana", "text": "oi"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let msg = page.next("msg").await["msg"].clone();
    assert_eq!(msg["id"]["id"], id);
    assert_eq!(msg["id"]["fromMe"], false);
    assert_eq!(msg["id"]["_serialized"], body["serialized"]);
    assert_eq!(msg["from"], "5511888880001@c.us");
    assert_eq!(msg["to"], "5511999990002@c.us");
    assert_eq!(msg["type"], "chat");
    assert_eq!(msg["body"], "oi");
    assert_eq!(msg["notifyName"], "Ana");
    assert_eq!(msg["isNewMsg"], true);

    // Inbound media: the bytes are downloadable by directPath.
    let (status, body) = post(
        &sim,
        "messages",
        json!({"account": "5511999990002", "from": "5511888880001", "name": "Ana",
               "media": {"mimetype": "image/jpeg", "filename": "a.jpg",
                         "data_base64": "AAECAwQ=", "caption": "foto"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let msg = page.next("msg").await["msg"].clone();
    assert_eq!(msg["type"], "image");
    assert_eq!(msg["caption"], "foto");
    assert_eq!(msg["size"], 5);
    let res = reqwest::get(format!(
        "{}sim/media?direct_path={}&media_key={}",
        sim.base_url(),
        msg["directPath"].as_str().unwrap(),
        urlencode(msg["mediaKey"].as_str().unwrap()),
    ))
    .await
    .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), &[0, 1, 2, 3, 4]);

    // Outbound text: ack 1 at once, listed by /sim/sent.
    page.send(json!({"t": "send", "msg": {
        "id": "3EB0AAAA", "serialized": "true_5511888880001@c.us_3EB0AAAA",
        "to": "5511888880001@c.us", "type": "chat", "body": "olá"}}))
        .await;
    let ack = page.next("ack").await;
    assert_eq!(
        ack,
        json!({"t": "ack", "id": "true_5511888880001@c.us_3EB0AAAA", "ack": 1})
    );
    let (status, sent) = get(&sim, "sim/sent?account=5511999990002").await;
    assert_eq!(status, 200);
    assert_eq!(sent[0]["id"], "3EB0AAAA");
    assert_eq!(sent[0]["to"], "5511888880001@c.us");
    assert_eq!(sent[0]["type"], "chat");
    assert_eq!(sent[0]["body"], "olá");
    assert_eq!(sent[0]["ack"], 1);
    assert!(sent[0]["sent_at"].as_str().unwrap().ends_with('Z'));

    // Outbound media, uploaded first as the page's uploadMedia does.
    let entry: Value = reqwest::Client::new()
        .post(format!(
            "{}sim/upload?mimetype=application/pdf&filename=c.pdf",
            sim.base_url()
        ))
        .body(b"%PDF-1.4 test".to_vec())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page.send(json!({"t": "send", "msg": {
        "id": "3EB0BBBB", "serialized": "true_5511888880001@c.us_3EB0BBBB",
        "to": "5511888880001@c.us", "type": "document", "mimetype": "application/pdf",
        "filename": "c.pdf", "directPath": entry["directPath"], "mediaKey": entry["mediaKey"]}}))
        .await;
    page.next("ack").await;
    let (_, sent) = get(&sim, "sim/sent?account=5511999990002").await;
    let media = &sent[1]["media"];
    assert_eq!(media["mimetype"], "application/pdf");
    assert_eq!(media["filename"], "c.pdf");
    assert_eq!(media["size"], 13);
    assert_eq!(media["sha256"], sha256_hex(b"%PDF-1.4 test"));

    // Acks from the recipient's phone.
    let (status, body) = post(&sim, "acks", json!({"id": "3EB0AAAA", "ack": 3})).await;
    assert_eq!(status, 200, "{body}");
    let ack = page.next("ack").await;
    assert_eq!(ack["id"], "true_5511888880001@c.us_3EB0AAAA");
    assert_eq!(ack["ack"], 3);
    let (status, _) = post(
        &sim,
        "acks",
        json!({"id": "true_5511888880001@c.us_3EB0AAAA", "ack": 2}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(page.next("ack").await["ack"], 2);
    let (_, sent) = get(&sim, "sim/sent?account=5511999990002").await;
    assert_eq!(sent[0]["ack"], 2);
    let (status, body) = post(&sim, "acks", json!({"id": "nope", "ack": 2})).await;
    assert_error(status, &body, 404, "unknown_message");
    let (status, body) = post(&sim, "acks", json!({"id": "3EB0AAAA", "ack": 9})).await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, body) = post(&sim, "acks", json!({"id": id, "ack": 3})).await;
    assert_error(status, &body, 409, "not_outgoing");

    // Errors.
    let (status, body) = post(
        &sim,
        "messages",
        json!({"account": "5511000000000", "from": "5511888880001", "text": "x"}),
    )
    .await;
    assert_error(status, &body, 404, "unknown_account");
    let (status, body) = post(
        &sim,
        "messages",
        json!({"account": "5511999990002", "from": "5511888880001"}),
    )
    .await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, body) = get(&sim, "sim/sent?account=5511000000000").await;
    assert_error(status, &body, 404, "unknown_account");
    sim.shutdown().await;
}

#[tokio::test]
async fn web_offline_queue_restore_logout_and_revoked_login() {
    let sim = sim(fast()).await;
    let mut page = FakePage::open(&sim, None, None).await;
    page.link(&sim, "5511999990003").await;
    let device = page.device.clone();
    drop(page); // the browser goes away

    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, body) = post(
        &sim,
        "messages",
        json!({"account": "5511999990003", "from": "5511777770001", "text": "while away"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, state) = get(&sim, "sim/state").await;
    assert_eq!(state["devices"][0]["queued"], 1, "{state}");

    // Restored: straight to linked (no ref), then the queued message.
    let mut page = FakePage::open(&sim, Some(&device), Some("5511999990003")).await;
    assert_eq!(page.device, device);
    let linked = page.next("linked").await;
    assert_eq!(linked["fresh"], false);
    page.next("synced").await;
    page.next("offline").await;
    assert_eq!(page.next("msg").await["msg"]["body"], "while away");
    page.next("offline_done").await;

    // Conflict and takeover.
    let (status, body) = post(&sim, "conflict", json!({"account": "5511999990003"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["pages"], 1);
    assert_eq!(page.next("state").await["state"], "CONFLICT");
    page.send(json!({"t": "takeover"})).await;
    assert_eq!(page.next("state").await["state"], "CONNECTED");
    let (status, body) = post(
        &sim,
        "socket-state",
        json!({"account": "5511999990003", "state": "NOPE"}),
    )
    .await;
    assert_error(status, &body, 400, "invalid_request");

    // Logout from the phone.
    let (status, body) = post(&sim, "logout", json!({"account": "5511999990003"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(page.next("logout").await["reason"], "phone");
    let (status, body) = post(
        &sim,
        "messages",
        json!({"account": "5511999990003", "from": "5511777770001", "text": "x"}),
    )
    .await;
    assert_error(status, &body, 409, "no_linked_device");
    drop(page);

    // A profile that still holds the login is told it was revoked.
    let page = FakePage::open(&sim, Some(&device), Some("5511999990003")).await;
    assert_eq!(page.welcome_status(), "revoked");
    let (status, body) = post(&sim, "logout", json!({"account": "5511000000009"})).await;
    assert_error(status, &body, 404, "unknown_account");
    sim.shutdown().await;
}

#[tokio::test]
async fn web_pairing_code() {
    let sim = sim(fast()).await;
    let mut page = FakePage::open(&sim, None, None).await;
    page.next("ref").await;
    page.send(json!({"t": "pair_request", "rid": 7, "phone": "+55 11 99999-0004"}))
        .await;
    let reply = page.next("pair_code").await;
    assert_eq!(reply["rid"], 7);
    let code = reply["code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 8);
    assert!(
        code.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    );

    let (status, body) = post(
        &sim,
        "pair",
        json!({"code": "ZZZZZZZZ", "phone": "5511999990004"}),
    )
    .await;
    assert_error(status, &body, 404, "unknown_pairing_code");
    let (status, body) = post(
        &sim,
        "pair",
        json!({"code": code, "phone": "5511999990005"}),
    )
    .await;
    assert_error(status, &body, 409, "pairing_phone_mismatch");
    let dashed = format!("{}-{}", &code[..4], code[4..].to_lowercase());
    let (status, body) = post(
        &sim,
        "pair",
        json!({"code": dashed, "phone": "5511999990004"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    page.next("pairing").await;
    assert_eq!(page.next("linked").await["account"], "5511999990004");

    // `Socket.logout()` on the page unlinks the device too.
    page.send(json!({"t": "logout"})).await;
    assert_eq!(page.next("logout").await["reason"], "self");
    let (_, state) = get(&sim, "sim/state").await;
    assert_eq!(state["accounts"][0]["devices"], json!([]), "{state}");
    assert_eq!(state["devices"][0]["account"], Value::Null, "{state}");
    sim.shutdown().await;
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Polls `/sim/state` until the device keeps `n` pushes it has not confirmed.
async fn wait_kept(sim: &WebSimHandle, device: &str, n: u64) {
    for _ in 0..250 {
        let (_, state) = get(sim, "sim/state").await;
        let kept = state["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["device"] == device)
            .map(|d| d["queued"].as_u64().unwrap());
        if kept == Some(n) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("device {device} never kept {n} pushes");
}

#[tokio::test]
async fn web_messages_are_kept_for_the_device_until_the_page_confirms_them() {
    let sim = sim(fast()).await;
    let account = "5511999990004";
    let mut page = FakePage::open(&sim, None, None).await;
    page.link(&sim, account).await;
    let device = page.device.clone();

    // A page that is there gets it at once; the server keeps it until the page's receipt.
    let (status, body) = post(
        &sim,
        "messages",
        json!({"account": account, "from": "5511777770002", "text": "live"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let live = page.next("msg").await;
    assert_eq!(live["msg"]["body"], "live");
    wait_kept(&sim, &device, 1).await;
    page.send(json!({"t": "receipt", "sids": [live["sid"]]}))
        .await;
    wait_kept(&sim, &device, 0).await;

    // Away: kept, and delivered when the device's page is back.
    drop(page);
    let (status, body) = post(
        &sim,
        "messages",
        json!({"account": account, "from": "5511777770002", "text": "while away"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut page = FakePage::open(&sim, Some(&device), Some(account)).await;
    page.next("offline").await;
    let first = page.next("msg").await;
    assert_eq!(first["msg"]["body"], "while away");
    page.next("offline_done").await;

    // The page crashed before it had the message in its store: delivered again.
    drop(page);
    let mut page = FakePage::open(&sim, Some(&device), Some(account)).await;
    page.next("offline").await;
    let again = page.next("msg").await;
    assert_eq!(again["msg"]["id"], first["msg"]["id"]);
    page.send(json!({"t": "receipt", "sids": [again["sid"]]}))
        .await;
    wait_kept(&sim, &device, 0).await;

    // Confirmed: a later page of the device does not get it again.
    drop(page);
    let mut page = FakePage::open(&sim, Some(&device), Some(account)).await;
    page.next("synced").await;
    wait_ready(&sim, &device).await;
    let (status, _) = post(
        &sim,
        "messages",
        json!({"account": account, "from": "5511777770002", "text": "next"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(page.next("msg").await["msg"]["body"], "next");
    sim.shutdown().await;
}

#[tokio::test]
async fn web_phone_send_reaches_the_page_as_from_me() {
    let sim = sim(fast()).await;
    let account = "5511999990005";
    let contact = "5511777770003";
    let mut page = FakePage::open(&sim, None, None).await;
    page.link(&sim, account).await;

    let (status, body) = post(
        &sim,
        "phone-send",
        json!({"account": account, "to": contact, "text": "do celular"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["devices"], 1);
    let id = body["id"].as_str().unwrap().to_string();
    let msg = page.next("msg").await["msg"].clone();
    assert_eq!(msg["id"]["fromMe"], true);
    assert_eq!(msg["id"]["id"], id.as_str());
    assert_eq!(msg["id"]["remote"], format!("{contact}@c.us"));
    assert_eq!(msg["id"]["_serialized"], body["serialized"]);
    assert_eq!(msg["from"], format!("{account}@c.us"));
    assert_eq!(msg["to"], format!("{contact}@c.us"));
    assert_eq!(msg["body"], "do celular");
    assert_eq!(msg["isNewMsg"], true);

    // Listed with what the account sent, and acked like any sent message.
    let (_, sent) = get(&sim, &format!("sim/sent?account={account}")).await;
    let listed = sent
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id.as_str())
        .expect("listed")
        .clone();
    assert_eq!(listed["message"]["from_phone"], true);
    let (status, body) = post(&sim, "acks", json!({"id": id, "ack": 3})).await;
    assert_eq!(status, 200, "{body}");
    let ack = page.next("ack").await;
    assert_eq!(ack["id"], msg["id"]["_serialized"]);
    assert_eq!(ack["ack"], 3);

    let (status, body) = post(
        &sim,
        "phone-send",
        json!({"account": account, "to": contact, "text": ""}),
    )
    .await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, body) = post(
        &sim,
        "phone-send",
        json!({"account": "5511000000008", "to": contact, "text": "x"}),
    )
    .await;
    assert_error(status, &body, 404, "unknown_account");
    sim.shutdown().await;
}
