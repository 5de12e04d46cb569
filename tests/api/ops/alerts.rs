//! Alerts end to end: one open alert per condition however often it is raised, resolved when
//! it clears, each transition an `alert` stream event; the API lists a user's own (admins
//! all) by state and acknowledges; `ALERT_WEBHOOK_URL` receives each raise and resolve signed,
//! again after a failure; a Business token Meta refuses raises one that new credentials
//! resolve; performance thresholds raise and resolve through the monitor.

use crate::helpers::{
    TestApp, eventually, expect_error, spawn_app, spawn_app_with, spawn_business_app,
};
use serde_json::{Value, json};
use sincro_core::alerts::{self, AlertCondition};
use sincro_core::store::alerts::Severity;
use sincro_core::store::events;
use sincro_sim::graph::GraphSimConfig;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);
const CONTACT: &str = "5511988887777";

fn condition(key: &str, user: Option<Uuid>) -> AlertCondition {
    AlertCondition {
        key: key.into(),
        usuario_id: user,
        connection_id: None,
        kind: "test_condition".into(),
        severity: Severity::Warning,
        source: "test".into(),
        message: "something to look at".into(),
        details: json!({"n": 1}),
    }
}

async fn list(app: &TestApp, key: &str, query: &str) -> Vec<Value> {
    let resp = app
        .get(&format!("/v1/alerts{query}"), key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(body.get("next_cursor").is_some());
    body["alerts"].as_array().unwrap().clone()
}

/// The `alert` events of `user`, oldest first.
async fn alert_events(app: &TestApp, user: Uuid) -> Vec<Value> {
    let client = app.pool().get().await.unwrap();
    let shared = &app.app().context().shared;
    events::read_after(&client, &shared.sealer, user, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "alert")
        .map(|e| e.data)
        .collect()
}

#[tokio::test]
async fn a_condition_is_one_alert_until_it_clears_and_the_api_lists_and_acks_it() {
    let app = spawn_app().await;
    let shared = app.app().context().shared.clone();
    let (alice, alice_key) = app.user("alert-alice@example.com", false).await;
    let (_bob, bob_key) = app.user("alert-bob@example.com", false).await;
    let (_admin, admin_key) = app.user("alert-admin@example.com", true).await;
    let key = format!("test:{alice}");

    let (first, opened) = alerts::raise_now(&shared, &condition(&key, Some(alice)))
        .await
        .unwrap();
    assert!(opened);
    let (again, opened_again) = alerts::raise_now(&shared, &condition(&key, Some(alice)))
        .await
        .unwrap();
    assert!(
        !opened_again,
        "a second raise of an open condition opens nothing"
    );
    assert_eq!(again.id, first.id);
    assert_eq!(again.count, 2);
    alerts::raise_now(&shared, &condition("test:system", None))
        .await
        .unwrap();

    let open = list(&app, &alice_key, "").await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["id"], first.id.to_string());
    assert_eq!(open[0]["kind"], "test_condition");
    assert!(open[0]["resolved_at"].is_null());
    assert!(
        list(&app, &bob_key, "").await.is_empty(),
        "another user's alerts are not listed"
    );
    assert_eq!(
        list(&app, &admin_key, "?state=open").await.len(),
        2,
        "admins see all"
    );

    // Acknowledged by its user; another user's ack finds nothing.
    let id = first.id;
    expect_error(
        app.post(&format!("/v1/alerts/{id}/ack"), &bob_key)
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    let acked: Value = app
        .post(&format!("/v1/alerts/{id}/ack"), &alice_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(acked["acked_by"], alice.to_string());
    assert!(acked["acked_at"].is_string());
    assert!(acked["resolved_at"].is_null(), "an ack does not resolve");

    let resolved = alerts::resolve_now(&shared, &key)
        .await
        .unwrap()
        .expect("was open");
    assert!(resolved.resolved_at.is_some());
    assert!(
        alerts::resolve_now(&shared, &key).await.unwrap().is_none(),
        "resolved once"
    );
    assert!(list(&app, &alice_key, "").await.is_empty());
    let done = list(&app, &alice_key, "?state=resolved").await;
    assert_eq!(done.len(), 1);
    assert!(done[0]["resolved_at"].is_string());

    // The condition coming back is a new alert.
    let (reopened, opened) = alerts::raise_now(&shared, &condition(&key, Some(alice)))
        .await
        .unwrap();
    assert!(opened);
    assert_ne!(reopened.id, first.id);
    assert_eq!(list(&app, &alice_key, "?state=all&limit=1").await.len(), 1);

    let states: Vec<String> = alert_events(&app, alice)
        .await
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["id"].as_str().unwrap(),
                e["state"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            format!("{}:raised", first.id),
            format!("{}:resolved", first.id),
            format!("{}:raised", reopened.id),
        ]
    );
    expect_error(
        app.get("/v1/alerts?state=later", &alice_key)
            .send()
            .await
            .unwrap(),
        400,
        "invalid_state",
    )
    .await;
}

/// A receiver that refuses its first request with 500 and keeps every request it got.
async fn receiver() -> (String, Arc<Mutex<Vec<(String, Vec<u8>)>>>) {
    use warp::Filter;
    let got: Arc<Mutex<Vec<(String, Vec<u8>)>>> = Default::default();
    let keep = got.clone();
    let route = warp::post()
        .and(warp::header::optional::<String>("x-sincro-signature"))
        .and(warp::body::bytes())
        .map(move |sig: Option<String>, body: bytes::Bytes| {
            let mut got = keep.lock().unwrap();
            got.push((sig.unwrap_or_default(), body.to_vec()));
            let status = if got.len() == 1 { 500 } else { 200 };
            warp::reply::with_status("", warp::http::StatusCode::from_u16(status).unwrap())
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("http://{addr}/hook"), got)
}

#[tokio::test]
async fn the_alert_webhook_gets_each_raise_and_resolve_signed_and_retried() {
    let (url, got) = receiver().await;
    let secret = "alert-hook-secret";
    let app = spawn_app_with(|env| {
        env.insert("ALERT_WEBHOOK_URL".into(), url.clone());
        env.insert("ALERT_WEBHOOK_SECRET".into(), secret.into());
    })
    .await;
    let shared = app.app().context().shared.clone();
    let (raised, _) = alerts::raise_now(&shared, &condition("test:hook", None))
        .await
        .unwrap();
    alerts::raise_now(&shared, &condition("test:hook", None))
        .await
        .unwrap();
    alerts::resolve_now(&shared, "test:hook").await.unwrap();

    // The first post fails (500) and is retried after its backoff.
    let delivered = eventually(WAIT, || async {
        let got = got.lock().unwrap().clone();
        let events: Vec<String> = got[1.min(got.len())..]
            .iter()
            .map(|(_, b)| {
                serde_json::from_slice::<Value>(b).unwrap()["event"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        (events.contains(&"alert.raised".to_string())
            && events.contains(&"alert.resolved".to_string()))
        .then_some(got)
    })
    .await
    .expect("the raise and the resolve delivered");
    assert_eq!(
        delivered.len(),
        3,
        "one failure, then one post per transition (not per raise)"
    );
    for (sig, body) in &delivered {
        assert_eq!(sig, &sincro_core::alerts::notifier::signature(secret, body));
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["alert"]["id"], raised.id.to_string());
    }
    // The receiver keeps a post before the notifier reads its answer and marks it delivered.
    let marked = eventually(WAIT, || async {
        let n = app
            .count(
                "SELECT count(*) FROM alert_deliveries WHERE delivered_at IS NOT NULL AND attempts >= 1",
                &[],
            )
            .await;
        (n == 2).then_some(())
    })
    .await;
    assert!(marked.is_some(), "both deliveries marked delivered");
}

#[tokio::test]
async fn a_refused_business_token_raises_an_alert_that_new_credentials_resolve() {
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let base = sim.base_url();
    let (user, key) = app.user("alert-business@example.com", false).await;
    let n = app.business_number(&base, &key).await;
    // The contact writes first: the 24 h window is open, so the send reaches Meta.
    let inbound: Value = app
        .http
        .post(format!("{base}/sim/inbound"))
        .json(
            &json!({"phone_number_id": n.phone_number_id, "from": CONTACT, "name": "Ana",
                      "message": {"type": "text", "text": {"body": "hello"}}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let wamid = inbound["id"].as_str().unwrap().to_string();
    eventually(WAIT, || async {
        (app.count(
            "SELECT count(*) FROM mensajes_conversacion WHERE external_id = $1",
            &[&wamid],
        )
        .await
            == 1)
            .then_some(())
    })
    .await
    .expect("the contact's message stored");
    let fault = app
        .http
        .post(format!("{base}/sim/faults"))
        .json(&json!({"phone_number_id": n.phone_number_id, "code": 190, "http_status": 400}))
        .send()
        .await
        .unwrap();
    assert_eq!(fault.status().as_u16(), 201);
    let sent = app
        .business_send(
            &n,
            user,
            &format!("+{CONTACT}"),
            json!({"type": "text", "text": {"body": "hi"}}),
            1,
        )
        .await;
    assert!(
        matches!(
            sent,
            sincro_core::connection::SendOutcome::Unavailable { .. }
        ),
        "{sent:?}"
    );
    let open = eventually(WAIT, || async {
        let open = list(&app, &key, "").await;
        open.iter()
            .find(|a| a["kind"] == "business_needs_credentials")
            .cloned()
    })
    .await
    .expect("an alert for the refused token");
    assert_eq!(open["connection_id"], n.connection_id.to_string());

    let patched = app
        .http
        .patch(format!(
            "{}/v1/business/numbers/{}",
            app.base, n.connection_id
        ))
        .bearer_auth(&key)
        .json(&json!({"access_token": n.access_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status().as_u16(), 200);
    let resolved = eventually(WAIT, || async {
        list(&app, &key, "?state=resolved")
            .await
            .into_iter()
            .find(|a| a["id"] == open["id"])
    })
    .await
    .expect("new credentials resolve the alert");
    assert!(resolved["resolved_at"].is_string());
}

#[tokio::test]
async fn performance_thresholds_and_cleared_dead_letters_resolve() {
    let app = spawn_app_with(|env| {
        env.insert("ALERT_INBOX_LAG_SECS".into(), "30".into());
        // The daemon's own sampler stays out of the way: the test checks samples it makes.
        env.insert("METRICS_SAMPLE_MS".into(), "3600000".into());
    })
    .await;
    let shared = app.app().context().shared.clone();
    let mut sample = sincro_core::telemetry::Sample {
        inbox_lag: Duration::from_secs(31),
        ..Default::default()
    };
    alerts::monitor::check(&shared, &sample).await;
    alerts::monitor::check(&shared, &sample).await;
    let open = app
        .count(
            "SELECT count(*) FROM alerts WHERE kind = 'inbox_lag' AND resolved_at IS NULL",
            &[],
        )
        .await;
    assert_eq!(open, 1);
    sample.inbox_lag = Duration::from_secs(2);
    alerts::monitor::check(&shared, &sample).await;
    assert_eq!(
        app.count(
            "SELECT count(*) FROM alerts WHERE kind = 'inbox_lag' AND resolved_at IS NOT NULL",
            &[]
        )
        .await,
        1
    );
    // A dead-letter alert of a user with no letter left to replay is resolved by the step.
    let (user, _) = app.user("letters@example.com", false).await;
    shared.raise_alert(sincro_core::store::alerts::NewAlert {
        usuario_id: Some(user),
        kind: "inbound_dead_letter".into(),
        severity: Severity::Warning,
        source: "ingest".into(),
        message: "letters".into(),
        details: json!({"count": 1}),
    });
    eventually(WAIT, || async {
        let key = format!("{}{user}", alerts::monitor::DEAD_LETTER_KEY_PREFIX);
        let open = app
            .count(
                "SELECT count(*) FROM alerts WHERE dedup_key = $1 AND resolved_at IS NULL",
                &[&key],
            )
            .await;
        (open == 1).then_some(())
    })
    .await
    .expect("the drain's alert under the key the monitor resolves");
    // A real sample of an idle daemon passes no threshold.
    let s = alerts::monitor::step(&shared).await.unwrap();
    assert_eq!(s.queue.len(), 3);
    assert_eq!(
        app.count("SELECT count(*) FROM alerts WHERE resolved_at IS NULL", &[])
            .await,
        0
    );
}
