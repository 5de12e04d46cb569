//! One realistic run of the real binary with JSON logs at `debug`: keys made, a Business
//! number connected with its token and app secret, a contact's message in through the signed
//! webhook, a message out, a stream client live, a Lite session linked in Chromium, alerts
//! delivered to a webhook. Then its whole log is searched for every body, contact number,
//! token, secret and key it handled (none may appear), each line's `service` names a
//! component, request lines carry their request id, send lines their message; the answers of
//! its POSTs match their documented schemas; and its `/metrics` serves every metric the
//! example Prometheus rules name, with no contact number anywhere.

use super::metrics::{rule_metrics, served};
use super::openapi::assert_conforms;
use crate::helpers::{base_env, eventually, fresh_database};
use crate::lite::{ACCOUNT, CHROMIUM, chromium, lite_env};
use crate::process::{command, serve};
use futures::StreamExt;
use serde_json::{Value, json};
use sincro_sim::graph::{self, GraphSimConfig};
use sincro_sim::web::{self, WebSimConfig};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const WAIT: Duration = Duration::from_secs(60);

/// Every `service` a log line may name.
pub const SERVICES: [&str; 11] = [
    "daemon",
    "api",
    "store",
    "queue",
    "lite",
    "business",
    "ingest",
    "stream",
    "alerts",
    "supervisor",
    "nodes",
];

/// `GET url` with the key, its JSON body; None while it does not answer with JSON.
async fn get_json(http: &reqwest::Client, url: String, key: &str) -> Option<Value> {
    http.get(url)
        .bearer_auth(key)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// `POST base + path` with the key and a JSON body: a success whose body matches the schema
/// documented for `template`, as JSON.
async fn post_json(
    http: &reqwest::Client,
    base: &str,
    (path, template): (&str, &str),
    key: &str,
    body: Value,
) -> Value {
    let resp = http
        .post(format!("{base}{path}"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    assert!((200..300).contains(&status), "POST {path}: {status}");
    assert_conforms("POST", template, status, &bytes);
    serde_json::from_slice(&bytes).unwrap()
}

/// The daemon's `/metrics` text, None while it does not answer.
async fn scrape(http: &reqwest::Client, base: &str) -> Option<String> {
    http.get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()
}

const CONTACT: &str = "5511987651234";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_logs_no_content_or_secret_and_serves_every_ruled_metric() {
    let _turn = CHROMIUM.lock().await;
    let graph = graph::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        GraphSimConfig::default(),
    )
    .await
    .unwrap();
    let web = web::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        WebSimConfig::fast(),
    )
    .await
    .unwrap();
    let hook = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/alerts", hook.local_addr().unwrap());
    drop(hook); // Nothing answers there: deliveries fail and are retried, never blocking.
    let database_url = fresh_database().await;
    let data_dir = tempfile::tempdir().unwrap();
    let mut env = base_env(&database_url, data_dir.path());
    let has_chromium = chromium().is_some();
    lite_env(&mut env, &web);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let alert_secret = format!("alert-secret-{run}");
    env.insert("GRAPH_API_BASE".into(), graph.base_url());
    env.insert("LOG_LEVEL".into(), "debug".into());
    env.insert("METRICS_SAMPLE_MS".into(), "500".into());
    env.insert("ALERT_WEBHOOK_URL".into(), hook_url);
    env.insert("ALERT_WEBHOOK_SECRET".into(), alert_secret.clone());
    let out = command(
        &[
            "user",
            "create",
            "--email",
            "ops-flow@example.com",
            "--admin",
        ],
        &env,
    )
    .output()
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string();
    let mut daemon = serve(env.clone()).await;
    let base = format!("http://{}", daemon.addr);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // A second key, shown once.
    let made: Value = http
        .post(format!("{base}/v1/keys"))
        .bearer_auth(&key)
        .header("x-request-id", format!("ops-flow-{run}"))
        .json(&json!({"name": "crm", "scopes": ["read", "send"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let second_key = made["key"].as_str().expect("the new key").to_string();

    // A Business number connected with its credentials, webhooks pointed here.
    let account: Value = http
        .post(format!("{}/sim/accounts", graph.base_url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let field = |k: &str| account[k].as_str().unwrap().to_string();
    let (token, app_secret, verify) = (
        field("access_token"),
        field("app_secret"),
        field("verify_token"),
    );
    let credentials = json!({"phone_number_id": field("phone_number_id"), "waba_id": field("waba_id"),
        "access_token": token, "app_secret": app_secret, "verify_token": verify});
    let number = post_json(
        &http,
        &base,
        ("/v1/business/numbers", "/v1/business/numbers"),
        &key,
        credentials,
    )
    .await;
    let connection = number["id"].as_str().expect("connected").to_string();
    let subscribed = http
        .post(format!("{}/v23.0/{}/subscribed_apps", graph.base_url(), field("waba_id")))
        .bearer_auth(&token)
        .json(&json!({"override_callback_uri": format!("{base}/webhooks/whatsapp"), "verify_token": verify}))
        .send()
        .await
        .unwrap();
    assert_eq!(subscribed.status().as_u16(), 200);

    // A stream client, live before anything arrives.
    let mut request = format!("{}/v1/stream", base.replacen("http", "ws", 1))
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();

    // A contact writes (signed webhook), the user answers.
    let inbound_body = format!("inbound body {run}");
    let wrote: Value = http
        .post(format!("{}/sim/inbound", graph.base_url()))
        .json(
            &json!({"phone_number_id": field("phone_number_id"), "from": CONTACT, "name": "Ana",
                      "message": {"type": "text", "text": {"body": inbound_body}}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(wrote["id"].is_string(), "{wrote}");
    let frame = tokio::time::timeout(WAIT, async {
        while let Some(Ok(msg)) = ws.next().await {
            if let Ok(v) = serde_json::from_str::<Value>(msg.to_text().unwrap_or("")) {
                if v["type"] == "message.received" {
                    return v;
                }
            }
        }
        panic!("stream ended");
    })
    .await
    .expect("the contact's message on the stream");
    assert_eq!(frame["data"]["direction"], "entrante");
    let outbound_body = format!("outbound body {run}");
    let send = json!({"connection_id": connection, "to": format!("+{CONTACT}"), "type": "text",
        "text": {"body": outbound_body}});
    let queued = post_json(
        &http,
        &base,
        ("/v1/messages", "/v1/messages"),
        &second_key,
        send,
    )
    .await;
    let message = queued["id"].as_str().expect("queued").to_string();
    eventually(WAIT, || async {
        let m = get_json(&http, format!("{base}/v1/messages/{message}"), &key).await?;
        (m["estado"] == "sent").then_some(())
    })
    .await
    .expect("the message sent");

    // A Lite session linked in Chromium, until a health check measured its browser.
    if has_chromium {
        let created = post_json(
            &http,
            &base,
            ("/v1/lite/sessions", "/v1/lite/sessions"),
            &key,
            json!({}),
        )
        .await;
        let id = created["id"].as_str().unwrap().to_string();
        eventually(WAIT, || async {
            let qr = get_json(&http, format!("{base}/v1/lite/sessions/{id}/qr"), &key).await?;
            let scanned = http
                .post(format!("{}sim/scan", web.base_url()))
                .json(&json!({"qr": qr["qr"].as_str()?, "phone": ACCOUNT}))
                .send()
                .await
                .ok()?;
            scanned.status().is_success().then_some(())
        })
        .await
        .expect("the QR scanned");
        eventually(WAIT, || async {
            let text = scrape(&http, &base).await?;
            text.contains("sincro_lite_chromium_session_pss_bytes{")
                .then_some(())
        })
        .await
        .expect("the session's Chromium measured");
        let stopped = http
            .delete(format!("{base}/v1/lite/sessions/{id}"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(stopped.status().as_u16(), 200);
        // Its browser closed, its gauges no longer report one.
        let gone = eventually(WAIT, || async {
            let text = scrape(&http, &base).await?;
            text.lines()
                .any(|l| {
                    l.starts_with("sincro_lite_chromium_processes{")
                        && l.contains(&id)
                        && l.split_whitespace().last() == Some("0")
                })
                .then_some(())
        })
        .await;
        assert!(
            gone.is_some(),
            "a stopped session still reports its Chromium"
        );
    }

    // Every metric a rule reads is served (Lite's only when Chromium ran here).
    let missing = |text: &str| -> Vec<String> {
        let names = served(text);
        rule_metrics()
            .into_iter()
            .filter(|m| {
                !names.contains(m) && (has_chromium || !m.starts_with("sincro_lite_chromium"))
            })
            .collect()
    };
    let served_all = eventually(WAIT, || async {
        let text = scrape(&http, &base).await?;
        missing(&text).is_empty().then_some(text)
    })
    .await;
    let Some(text) = served_all else {
        let text = scrape(&http, &base).await.unwrap_or_default();
        panic!("metrics the rules name are missing: {:?}", missing(&text));
    };
    assert!(!text.contains(CONTACT), "a contact number in /metrics");
    let _ = ws.close(None).await;

    daemon.signal(libc::SIGTERM);
    assert!(daemon.exited(WAIT).await.success());
    graph.shutdown().await;
    web.shutdown().await;

    let log = daemon.log();
    assert!(log.len() > 50, "{} lines", log.len());
    let key_material = env["ENCRYPTION_KEY"].split(':').nth(1).unwrap().to_string();
    let forbidden = [
        ("the inbound body", inbound_body.as_str()),
        ("the outbound body", outbound_body.as_str()),
        ("the contact's number", CONTACT),
        ("the access token", token.as_str()),
        ("the app secret", app_secret.as_str()),
        ("the verify token", verify.as_str()),
        ("the admin key", key.as_str()),
        ("the second key", second_key.as_str()),
        ("the alert webhook secret", alert_secret.as_str()),
        ("the encryption key", key_material.as_str()),
    ];
    let mut seen = std::collections::BTreeSet::new();
    let mut tagged_request = false;
    for line in &log {
        for (what, secret) in &forbidden {
            assert!(!line.contains(secret), "{what} in the log: {line}");
        }
        let v: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        let service = v["service"].as_str().unwrap_or_default();
        assert!(SERVICES.contains(&service), "{line}");
        seen.insert(service.to_string());
        if v["span"]["name"] == "request" {
            assert!(
                v["span"]["request_id"].is_string(),
                "a request line without its id: {line}"
            );
        }
        if v["span"]["name"] == "send" {
            assert!(
                v["span"]["message_id"].is_string(),
                "a send line without its message: {line}"
            );
        }
        tagged_request |= v["span"]["request_id"] == format!("ops-flow-{run}");
    }
    assert!(
        tagged_request,
        "the client's X-Request-Id is on the request's lines"
    );
    for component in ["api", "business", "queue", "ingest", "store"] {
        assert!(seen.contains(component), "no {component} line: {seen:?}");
    }
    if has_chromium {
        assert!(seen.contains("lite"), "{seen:?}");
    }
}
