//! `GET/POST /webhooks/whatsapp`: Meta's handshake; every case of `tests/fixtures/meta-webhooks/`
//! (ids substituted, signed, posted) landing as the right rows and events; signatures,
//! malformed and oversized bodies refused with nothing stored; duplicates and reordered
//! statuses.

use crate::helpers::{BusinessNumber, TestApp, eventually, expect_error, spawn_business_app};
use serde_json::{Value, json};
use sincro_sim::graph::GraphSimConfig;
use std::path::PathBuf;
use std::time::Duration;
use uuid::Uuid;

const CONTACT: &str = "5511987654321";

fn fixtures(file: &str) -> serde_json::Map<String, Value> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/meta-webhooks");
    let text = std::fs::read_to_string(dir.join(file)).expect("fixture");
    serde_json::from_str(&text).unwrap()
}

/// Puts the test's account, contact and a unique wamid into a fixture envelope.
fn substitute(envelope: &mut Value, n: &BusinessNumber, wamid: &str) {
    for entry in envelope["entry"].as_array_mut().unwrap() {
        entry["id"] = json!(n.waba_id);
        for change in entry["changes"].as_array_mut().unwrap() {
            let v = &mut change["value"];
            if v.get("metadata").is_some() {
                v["metadata"] = json!({"display_phone_number": n.display_phone_number, "phone_number_id": n.phone_number_id});
            }
            for c in v["contacts"].as_array_mut().into_iter().flatten() {
                c["wa_id"] = json!(CONTACT);
            }
            for m in v["messages"].as_array_mut().into_iter().flatten() {
                m["from"] = json!(CONTACT);
                m["id"] = json!(wamid);
                if m.pointer("/context/from").is_some() {
                    m["context"]["from"] = json!(n.display_phone_number);
                }
            }
            for s in v["statuses"].as_array_mut().into_iter().flatten() {
                s["id"] = json!(wamid);
                s["recipient_id"] = json!(CONTACT);
            }
        }
    }
}

async fn post(app: &TestApp, n: &BusinessNumber, envelope: &Value) {
    let body = serde_json::to_vec(envelope).unwrap();
    let resp = app.post_webhook(&body, Some(&n.app_secret)).await;
    assert_eq!(
        resp.status().as_u16(),
        200,
        "{}",
        resp.text().await.unwrap()
    );
}

async fn message_tipo(app: &TestApp, n: &BusinessNumber, wamid: &str) -> Option<String> {
    let client = app.pool().get().await.unwrap();
    client
        .query_opt(
            "SELECT tipo FROM mensajes_conversacion WHERE connection_id = $1 AND external_id = $2",
            &[&n.connection_id, &wamid],
        )
        .await
        .unwrap()
        .map(|r| r.get(0))
}

#[tokio::test]
async fn business_webhook_handshake() {
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (_, key) = app.user("hs@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;
    let get = |q: String| {
        app.http
            .get(format!("{}/webhooks/whatsapp?{q}", app.base))
            .send()
    };

    let ok = get(format!(
        "hub.mode=subscribe&hub.verify_token={}&hub.challenge=1158201444",
        n.verify_token
    ))
    .await
    .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    expect_error(
        get("hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1".into())
            .await
            .unwrap(),
        403,
        "forbidden",
    )
    .await;
    expect_error(
        get(format!(
            "hub.mode=unsubscribe&hub.verify_token={}&hub.challenge=1",
            n.verify_token
        ))
        .await
        .unwrap(),
        403,
        "forbidden",
    )
    .await;
    expect_error(
        get(format!(
            "hub.mode=subscribe&hub.verify_token={}",
            n.verify_token
        ))
        .await
        .unwrap(),
        400,
        "missing_parameter",
    )
    .await;
}

/// (file, case, expected `tipo`) for every inbound message case of the fixtures.
const MESSAGE_CASES: &[(&str, &str, &str)] = &[
    ("message.json", "text", "texto"),
    ("message.json", "image", "imagen"),
    ("message.json", "media_with_url", "imagen"),
    ("message.json", "video", "video"),
    ("message.json", "document", "documento"),
    ("message.json", "audio", "audio"),
    ("message.json", "voice", "audio"),
    ("message.json", "static_sticker", "sticker"),
    ("message.json", "animated_sticker", "sticker"),
    ("message.json", "reaction", "reaccion"),
    ("message.json", "unreaction_empty", "reaccion"),
    ("message.json", "unreaction_no_emoji", "reaccion"),
    ("message.json", "current_location", "ubicacion"),
    ("message.json", "chosen_location", "ubicacion"),
    ("message.json", "contacts", "contacto"),
    ("message.json", "order", "desconocido"),
    ("message.json", "unsupported", "desconocido"),
    ("message.json", "unsupported_with_type", "desconocido"),
    ("message.json", "reply", "texto"),
    ("message.json", "forwarded", "texto"),
    ("message.json", "forwarded_many_times", "texto"),
    (
        "message.json",
        "interactive_message_with_err",
        "interactivo",
    ),
    ("message.json", "referral", "texto"),
    ("callback_button.json", "button", "interactivo"),
    ("callback_button.json", "quick_reply", "interactivo"),
    (
        "callback_button.json",
        "quick_reply_without_context",
        "interactivo",
    ),
    ("callback_selection.json", "callback", "interactivo"),
    ("callback_selection.json", "description", "interactivo"),
    ("system.json", "phone_number_change", "sistema"),
    ("system.json", "identity_change", "sistema"),
    ("edited_message.json", "image", "desconocido"),
    ("deleted_message.json", "revoke", "desconocido"),
];

#[tokio::test]
async fn business_webhook_every_fixture_message_lands() {
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (user, key) = app.user("fixtures@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;

    // Every case of every message file is listed above.
    let mut listed = 0;
    for file in [
        "message.json",
        "callback_button.json",
        "callback_selection.json",
        "system.json",
        "edited_message.json",
        "deleted_message.json",
    ] {
        listed += fixtures(file).len();
    }
    assert_eq!(listed, MESSAGE_CASES.len());

    for (i, (file, case, tipo)) in MESSAGE_CASES.iter().enumerate() {
        let mut envelope = fixtures(file)[*case].clone();
        let wamid = format!("wamid.fixture{i}");
        substitute(&mut envelope, &n, &wamid);
        post(&app, &n, &envelope).await;
        let got = eventually(Duration::from_secs(10), || message_tipo(&app, &n, &wamid)).await;
        assert_eq!(got.as_deref(), Some(*tipo), "{file} / {case}");
    }
    // One lead, one conversation, one message.received event per message.
    assert_eq!(
        app.count("SELECT count(*) FROM leads WHERE usuario_id = $1", &[&user])
            .await,
        1
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM conversaciones WHERE usuario_id = $1",
            &[&user]
        )
        .await,
        1
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM events WHERE usuario_id = $1 AND type = 'message.received'",
            &[&user]
        )
        .await,
        MESSAGE_CASES.len() as i64
    );
    // Bodies sealed at rest; contact name kept on the lead.
    let client = app.pool().get().await.unwrap();
    let row = client
        .query_one(
            "SELECT contenido FROM mensajes_conversacion WHERE external_id = 'wamid.fixture0'",
            &[],
        )
        .await
        .unwrap();
    assert!(!row.get::<_, String>(0).contains("Body Text"));
    let name: Option<String> = client
        .query_one("SELECT nombre FROM leads WHERE usuario_id = $1", &[&user])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name.as_deref(), Some("Test Name"));
    // A row is marked drained when the drain's transaction commits, just after the messages
    // it stored became visible: wait for it.
    assert!(
        app.inbox_drained(Duration::from_secs(10)).await,
        "every inbox row drained"
    );
    let raw: String = client
        .query_one("SELECT body FROM webhook_inbox LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        raw.starts_with("sw1.") && !raw.contains("whatsapp_business_account"),
        "raw body sealed"
    );
}

/// Inserts an outbound message of the number with `wamid`, as the Dispatcher would have.
async fn outbound(app: &TestApp, user: Uuid, n: &BusinessNumber, wamid: &str) {
    let client = app.pool().get().await.unwrap();
    client
        .execute(
            "INSERT INTO mensajes_conversacion (conversacion_id, usuario_id, connection_id, tipo, remitente,
                 direccion, external_id, estado)
             SELECT id, $1, $2, 'texto', remitente, 'saliente', $3, 'queued' FROM conversaciones
             WHERE usuario_id = $1 AND connection_id = $2 LIMIT 1",
            &[&user, &n.connection_id, &wamid],
        )
        .await
        .unwrap();
}

async fn estado(app: &TestApp, wamid: &str) -> (String, Option<String>) {
    let client = app.pool().get().await.unwrap();
    let r = client
        .query_one(
            "SELECT estado, error FROM mensajes_conversacion WHERE external_id = $1",
            &[&wamid],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

#[tokio::test]
async fn business_webhook_statuses_duplicates_and_reordering() {
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (user, key) = app.user("statuses@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;
    let statuses = fixtures("message_status.json");

    // A conversation to hang outbound messages on; its inbound message posted twice.
    let mut text = fixtures("message.json")["text"].clone();
    substitute(&mut text, &n, "wamid.in");
    post(&app, &n, &text).await;
    post(&app, &n, &text).await;
    assert!(
        eventually(Duration::from_secs(10), || message_tipo(
            &app, &n, "wamid.in"
        ))
        .await
        .is_some()
    );

    let expected = [
        ("sent", "sent"),
        ("delivered", "delivered"),
        ("read", "read"),
        ("played", "read"),
        ("failed", "failed"),
        ("with_tracker", "sent"),
        ("group", "read"),
    ];
    assert_eq!(statuses.len(), expected.len());
    for (case, want) in expected {
        let wamid = format!("wamid.out.{case}");
        outbound(&app, user, &n, &wamid).await;
        let mut envelope = statuses[case].clone();
        substitute(&mut envelope, &n, &wamid);
        post(&app, &n, &envelope).await;
        let got = eventually(Duration::from_secs(10), || async {
            let (e, err) = estado(&app, &wamid).await;
            (e == want).then_some(err)
        })
        .await;
        assert!(
            got.is_some(),
            "{case}: expected {want}, got {:?}",
            estado(&app, &wamid).await
        );
        if case == "failed" {
            assert!(got.unwrap().unwrap().contains("130472"));
        }
    }

    // Reordered: read arrives before sent and delivered; read stays.
    outbound(&app, user, &n, "wamid.out.reorder").await;
    for case in ["read", "sent", "delivered", "sent"] {
        let mut envelope = statuses[case].clone();
        substitute(&mut envelope, &n, "wamid.out.reorder");
        post(&app, &n, &envelope).await;
    }
    assert!(app.inbox_drained(Duration::from_secs(10)).await);
    assert_eq!(estado(&app, "wamid.out.reorder").await.0, "read");

    // The duplicated inbound message is one row and one event.
    assert_eq!(
        app.count(
            "SELECT count(*) FROM mensajes_conversacion WHERE external_id = 'wamid.in'",
            &[]
        )
        .await,
        1
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM events WHERE usuario_id = $1 AND type = 'message.received'",
            &[&user]
        )
        .await,
        1
    );
}

#[tokio::test]
async fn business_webhook_status_waits_for_the_send_answer_being_written() {
    // Arrange: a conversation, and an outbound message whose send's answer (the external id
    // Meta gave it) is being written by a transaction that has not committed yet, holding
    // the connection's status-order lock as the outbound recorder does.
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (user, key) = app.user("race@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;
    let mut text = fixtures("message.json")["text"].clone();
    substitute(&mut text, &n, "wamid.race.in");
    post(&app, &n, &text).await;
    eventually(Duration::from_secs(10), || {
        message_tipo(&app, &n, "wamid.race.in")
    })
    .await
    .expect("the inbound message is stored");
    outbound(&app, user, &n, "wamid.race.placeholder").await;
    let mut recorder = app.pool().get().await.unwrap();
    let answer = recorder.transaction().await.unwrap();
    sincro_core::store::status_order::lock(&answer, &[n.connection_id])
        .await
        .unwrap();
    answer
        .execute(
            "UPDATE mensajes_conversacion SET external_id = 'wamid.race.out', estado = 'sent'
             WHERE external_id = 'wamid.race.placeholder'",
            &[],
        )
        .await
        .unwrap();

    // Act: Meta's `delivered` arrives before that answer is committed, then it commits.
    let mut envelope = fixtures("message_status.json")["delivered"].clone();
    substitute(&mut envelope, &n, "wamid.race.out");
    post(&app, &n, &envelope).await;
    app.until_waiting_on_lock(
        Some("advisory"),
        "the status waits for the answer being written",
    )
    .await;
    answer.commit().await.unwrap();

    // Assert: the status is applied to the message, not left waiting for a message that
    // already exists.
    let applied = eventually(Duration::from_secs(10), || async {
        (estado(&app, "wamid.race.out").await.0 == "delivered").then_some(())
    })
    .await;
    assert!(
        applied.is_some(),
        "{:?}",
        estado(&app, "wamid.race.out").await
    );
    assert!(app.inbox_drained(Duration::from_secs(10)).await);
    assert_eq!(
        app.count("SELECT count(*) FROM pending_statuses", &[])
            .await,
        0
    );
}

#[tokio::test]
async fn business_webhook_template_updates() {
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (user, key) = app.user("tplhook@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;
    let cases = fixtures("template_status_update.json");
    for (case, name, status) in [
        ("approved", "order_confirmation", "APPROVED"),
        ("rejected", "abandoned_cart", "REJECTED"),
    ] {
        let mut envelope = cases[case].clone();
        substitute(&mut envelope, &n, "unused");
        post(&app, &n, &envelope).await;
        let got = eventually(Duration::from_secs(10), || async {
            let client = app.pool().get().await.unwrap();
            client
                .query_opt(
                    "SELECT status, rejection_reason FROM whatsapp_templates WHERE connection_id = $1 AND name = $2",
                    &[&n.connection_id, &name],
                )
                .await
                .unwrap()
                .filter(|r| r.get::<_, String>(0) == status)
                .map(|r| r.get::<_, Option<String>>(1))
        })
        .await;
        let reason = got.unwrap_or_else(|| panic!("{case} applied"));
        assert_eq!(reason.is_some(), case == "rejected");
    }
    assert_eq!(
        app.count(
            "SELECT count(*) FROM events WHERE usuario_id = $1 AND type = 'template.status'",
            &[&user]
        )
        .await,
        2
    );
}

#[tokio::test]
async fn business_webhook_bad_requests_store_nothing() {
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (_, key) = app.user("bad@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;
    let mut envelope = fixtures("message.json")["text"].clone();
    substitute(&mut envelope, &n, "wamid.bad");
    let body = serde_json::to_vec(&envelope).unwrap();

    expect_error(
        app.post_webhook(&body, None).await,
        401,
        "missing_signature",
    )
    .await;
    expect_error(
        app.post_webhook(&body, Some("not-the-secret")).await,
        401,
        "invalid_signature",
    )
    .await;
    // Signed correctly, then altered (re-serialised with a space): the raw bytes differ.
    let signed = sincro_core::business::webhook::sign(&n.app_secret, &body);
    let mut altered = body.clone();
    altered.insert(1, b' ');
    let resp = app
        .http
        .post(format!("{}/webhooks/whatsapp", app.base))
        .header("x-hub-signature-256", signed)
        .body(altered)
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "invalid_signature").await;
    // A number and account that are not connected here answer like a bad signature, so the
    // route does not tell who is connected.
    let mut foreign = envelope.clone();
    foreign["entry"][0]["id"] = json!("888888888");
    foreign["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = json!("999999999");
    let fb = serde_json::to_vec(&foreign).unwrap();
    expect_error(
        app.post_webhook(&fb, Some(&n.app_secret)).await,
        401,
        "invalid_signature",
    )
    .await;
    // Malformed bodies.
    expect_error(
        app.post_webhook(b"{not json", Some(&n.app_secret)).await,
        400,
        "invalid_payload",
    )
    .await;
    expect_error(
        app.post_webhook(b"{\"object\":\"x\",\"entry\":[]}", Some(&n.app_secret))
            .await,
        400,
        "invalid_payload",
    )
    .await;
    // Over Meta's 3 MB.
    let mut big = envelope.clone();
    big["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] =
        json!("x".repeat(3 * 1024 * 1024));
    let bb = serde_json::to_vec(&big).unwrap();
    let resp = app.post_webhook(&bb, Some(&n.app_secret)).await;
    assert_eq!(resp.status().as_u16(), 413);

    assert_eq!(
        app.count("SELECT count(*) FROM webhook_inbox", &[]).await,
        0
    );
    assert_eq!(
        app.count("SELECT count(*) FROM mensajes_conversacion", &[])
            .await,
        0
    );
    // And the right one is taken.
    post(&app, &n, &envelope).await;
    assert!(
        eventually(Duration::from_secs(10), || message_tipo(
            &app,
            &n,
            "wamid.bad"
        ))
        .await
        .is_some()
    );
}
