//! `POST /v1/messages/batch`: one result per item in order (valid items queued, refused ones
//! reported with the single route's status and code), bodies that are not a batch or carry
//! more than 1,000 messages change nothing, idempotency per item (across batches, within one
//! batch, and shared with the single route), the `send` scope and tenant isolation, and a
//! batch of 1,000 all stored and sent.

use super::fake::{self, accept};
use super::{message, open_window, outbox_states, reached, recipient, text, user_with_connection};
use crate::helpers::{TestApp, eventually, expect_error, spawn_app, spawn_app_with};
use serde_json::{Value, json};
use sincro_core::connection::ConnectionKind;
use std::collections::HashSet;
use std::time::Duration;
use uuid::Uuid;

const TO: &str = "+5511987654321";

/// POSTs a batch; asserts 200 and returns its results.
async fn batch(app: &TestApp, key: &str, messages: Vec<Value>) -> Vec<Value> {
    let resp = app
        .post("/v1/messages/batch", key)
        .json(&json!({ "messages": messages }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    let results = v["results"].as_array().unwrap().clone();
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["index"], i, "results in request order: {v}");
    }
    results
}

/// The id of a queued (202) result.
fn queued_id(r: &Value) -> Uuid {
    assert_eq!(r["status"], 202, "{r}");
    assert!(r.get("error").is_none(), "{r}");
    r["message"]["id"].as_str().unwrap().parse().unwrap()
}

/// Asserts a refused result's status and code.
fn refused(r: &Value, status: u16, code: &str) {
    assert_eq!(r["status"], status, "{r}");
    assert_eq!(r["error"]["code"], code, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert!(r.get("message").is_none(), "{r}");
}

async fn messages_count(app: &TestApp) -> i64 {
    let client = app.pool().get().await.unwrap();
    client
        .query_one("SELECT count(*) FROM mensajes_conversacion", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn batch_queues_valid_items_and_reports_each_refusal_in_place() {
    let app = spawn_app().await;
    let (user, key, conn) = user_with_connection(&app, "business", json!({})).await;
    open_window(&app, user, conn, TO).await;
    let (_, _, others) = user_with_connection(&app, "business", json!({})).await;
    let (_, _, lite) = user_with_connection(&app, "lite", json!({})).await;
    let client = app.pool().get().await.unwrap();
    client
        .execute(
            "INSERT INTO whatsapp_templates (usuario_id, connection_id, name, language, status)
             VALUES ($1, $2, 'promo', 'en_US', 'APPROVED'), ($1, $2, 'draft', 'en_US', 'PENDING')",
            &[&user, &conn],
        )
        .await
        .unwrap();
    let template = |name: &str, to: &str| json!({"connection_id": conn, "to": to, "type": "template", "template": {"name": name, "language": {"code": "en_US"}}});
    let mut keyed_bad = text(conn, TO, "key");
    keyed_bad["idempotency_key"] = json!("has space");
    let results = batch(
        &app,
        &key,
        vec![
            text(conn, TO, "first"),
            json!({"connection_id": conn, "to": TO, "type": "fax", "fax": {}}),
            text(conn, "+5511912345678", "nobody wrote"),
            text(others, TO, "not mine"),
            template("promo", "+5511912345678"),
            template("draft", "+5511912345678"),
            template("missing", TO),
            keyed_bad,
            json!("not an object"),
            text(conn, "12", "bad phone"),
            text(conn, TO, "second"),
            template("promo", "+5511912345679"),
        ],
    )
    .await;
    assert_eq!(results.len(), 12);
    let first = queued_id(&results[0]);
    refused(&results[1], 400, "invalid_message");
    refused(&results[2], 422, "outside_service_window");
    refused(&results[3], 404, "not_found");
    let promo = queued_id(&results[4]);
    refused(&results[5], 422, "template_not_approved");
    refused(&results[6], 422, "template_not_found");
    refused(&results[7], 400, "invalid_idempotency_key");
    refused(&results[8], 400, "invalid_message");
    refused(&results[9], 422, "invalid_phone");
    let second = queued_id(&results[10]);
    let promo2 = queued_id(&results[11]);

    // Exactly the valid four were written, each as the single route would have written it.
    let states = outbox_states(&app).await;
    assert_eq!(
        states.get("pending").copied().unwrap_or(0)
            + states.get("sending").copied().unwrap_or(0)
            + states.get("sent").copied().unwrap_or(0),
        4,
        "{states:?}"
    );
    assert_eq!(messages_count(&app).await, 4);
    for (id, r) in [
        (first, &results[0]),
        (promo, &results[4]),
        (second, &results[10]),
        (promo2, &results[11]),
    ] {
        let v = message(&app, &key, id).await;
        assert_eq!(v["id"], r["message"]["id"]);
        assert_eq!(r["message"]["estado"], "queued");
        assert_eq!(v["connection_id"], json!(conn));
    }
    assert_eq!(message(&app, &key, first).await["to"], TO);
    // One conversation per contact, whatever how many messages the batch had for it.
    let convs: i64 = client
        .query_one(
            "SELECT count(DISTINCT conversacion_id) FROM mensajes_conversacion WHERE id = ANY($1)",
            &[&vec![first, second]],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(convs, 1);
    // Another user's Lite session is not found either.
    let results = batch(
        &app,
        &key,
        vec![json!({"connection_id": lite, "to": TO, "type": "text", "text": {"body": "x"}})],
    )
    .await;
    refused(&results[0], 404, "not_found");
}

#[tokio::test]
async fn batch_bodies_that_are_not_a_batch_or_too_big_change_nothing() {
    let app = spawn_app().await;
    let (user, key, conn) = user_with_connection(&app, "business", json!({})).await;
    open_window(&app, user, conn, TO).await;
    let post = |body: Value| app.post("/v1/messages/batch", &key).json(&body).send();
    let one = text(conn, TO, "hi");
    expect_error(post(json!([one])).await.unwrap(), 400, "invalid_batch").await;
    expect_error(post(one.clone()).await.unwrap(), 400, "invalid_batch").await;
    expect_error(post(json!({})).await.unwrap(), 400, "invalid_batch").await;
    expect_error(
        post(json!({"messages": []})).await.unwrap(),
        400,
        "invalid_batch",
    )
    .await;
    expect_error(
        post(json!({"messages": one})).await.unwrap(),
        400,
        "invalid_batch",
    )
    .await;
    expect_error(
        post(json!({"messages": [one], "extra": 1})).await.unwrap(),
        400,
        "invalid_batch",
    )
    .await;
    let too_many: Vec<Value> = (0..1001).map(|_| text(conn, TO, "hi")).collect();
    let body = expect_error(
        post(json!({ "messages": too_many })).await.unwrap(),
        400,
        "too_many_messages",
    )
    .await;
    assert!(body["error"]["message"].as_str().unwrap().contains("1000"));
    let resp = app
        .post("/v1/messages/batch", &key)
        .body("{\"messages\": [")
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "invalid_body").await;
    // Every item refused: answered, nothing written.
    let results = batch(
        &app,
        &key,
        vec![
            text(conn, "+5511912345678", "outside"),
            json!({"connection_id": conn, "to": TO}),
        ],
    )
    .await;
    refused(&results[0], 422, "outside_service_window");
    refused(&results[1], 400, "invalid_message");
    assert!(outbox_states(&app).await.is_empty());
    assert_eq!(messages_count(&app).await, 0);
    let client = app.pool().get().await.unwrap();
    let keys: i64 = client
        .query_one("SELECT count(*) FROM idempotency_keys", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(keys, 0);
}

#[tokio::test]
async fn batch_idempotency_is_per_item() {
    let app = spawn_app().await;
    let (user, key, conn) = user_with_connection(&app, "business", json!({})).await;
    for to in [TO, "+5511912345678"] {
        open_window(&app, user, conn, to).await;
    }
    let keyed = |to: &str, body: &str, k: &str| {
        let mut m = text(conn, to, body);
        m["idempotency_key"] = json!(k);
        m
    };
    let first = batch(
        &app,
        &key,
        vec![
            keyed(TO, "a", "k-a"),
            keyed("+5511912345678", "b", "k-b"),
            text(conn, TO, "no key"),
        ],
    )
    .await;
    let (a, b) = (queued_id(&first[0]), queued_id(&first[1]));
    assert!(first[0].get("replayed").is_none());
    assert_eq!(messages_count(&app).await, 3);

    // The same batch again: the keyed items answer with their first messages, the one without
    // a key is queued again; a key with another body is that item's 409.
    let again = batch(
        &app,
        &key,
        vec![
            keyed(TO, "a", "k-a"),
            keyed("+5511912345678", "changed", "k-b"),
            text(conn, TO, "no key"),
        ],
    )
    .await;
    assert_eq!(again[0]["status"], 202);
    assert_eq!(again[0]["replayed"], true);
    assert_eq!(again[0]["message"]["id"], json!(a));
    refused(&again[1], 409, "idempotency_key_reused");
    queued_id(&again[2]);
    assert_eq!(messages_count(&app).await, 4);

    // One key twice in one batch: the same body is one message, another body a 409.
    let inner = batch(
        &app,
        &key,
        vec![
            keyed(TO, "c", "k-c"),
            keyed(TO, "c", "k-c"),
            keyed(TO, "other", "k-c"),
        ],
    )
    .await;
    let c = queued_id(&inner[0]);
    assert_eq!(inner[1]["replayed"], true);
    assert_eq!(inner[1]["message"]["id"], json!(c));
    refused(&inner[2], 409, "idempotency_key_reused");
    assert_eq!(messages_count(&app).await, 5);

    // A key whose first item was refused is still free for a corrected one.
    let fixed = batch(
        &app,
        &key,
        vec![
            keyed("+5511900000000", "outside", "k-d"),
            keyed(TO, "d", "k-d"),
        ],
    )
    .await;
    refused(&fixed[0], 422, "outside_service_window");
    queued_id(&fixed[1]);

    // Keys are the user's, shared with the single route's Idempotency-Key.
    let resp = app
        .post("/v1/messages", &key)
        .header("idempotency-key", "k-b")
        .json(&text(conn, "+5511912345678", "b"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.headers()["idempotent-replayed"], "true");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["id"], json!(b));
    assert_eq!(messages_count(&app).await, 6);
}

#[tokio::test]
async fn batch_needs_the_send_scope_and_stays_in_its_tenant() {
    let app = spawn_app().await;
    let (alice, alice_key, alice_conn) = user_with_connection(&app, "business", json!({})).await;
    let (bob, bob_key, bob_conn) = user_with_connection(&app, "business", json!({})).await;
    open_window(&app, alice, alice_conn, TO).await;
    open_window(&app, bob, bob_conn, TO).await;
    let resp = app
        .post("/v1/keys", &alice_key)
        .json(&json!({"name": "reader", "scopes": ["read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let reader = resp.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = app
        .post("/v1/messages/batch", &reader)
        .json(&json!({"messages": [text(alice_conn, TO, "x")]}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "insufficient_scope").await;
    let resp = app
        .post("/v1/messages/batch", "not-a-key")
        .json(&json!({"messages": [text(alice_conn, TO, "x")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(messages_count(&app).await, 0);

    // Alice naming Bob's number: that item is a 404, her own is queued on hers only.
    let results = batch(
        &app,
        &alice_key,
        vec![text(bob_conn, TO, "into bob"), text(alice_conn, TO, "mine")],
    )
    .await;
    refused(&results[0], 404, "not_found");
    let mine = queued_id(&results[1]);
    let client = app.pool().get().await.unwrap();
    let on_bob: i64 = client
        .query_one(
            "SELECT count(*) FROM outbox WHERE connection_id = $1 OR usuario_id = $2",
            &[&bob_conn, &bob],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(on_bob, 0);
    // Bob cannot read it, nor replay it with Alice's key name.
    let resp = app
        .get(&format!("/v1/messages/{mine}"), &bob_key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let mut keyed = text(bob_conn, TO, "mine");
    keyed["idempotency_key"] = json!("shared-name");
    let mut alice_keyed = text(alice_conn, TO, "mine");
    alice_keyed["idempotency_key"] = json!("shared-name");
    let a = queued_id(&batch(&app, &alice_key, vec![alice_keyed]).await[0]);
    let b = queued_id(&batch(&app, &bob_key, vec![keyed]).await[0]);
    assert_ne!(a, b, "each user's keys are their own");
}

#[tokio::test]
async fn batch_of_a_thousand_is_stored_and_sent() {
    let app = spawn_app_with(|env| {
        env.insert("API_RATE_PER_USER_PER_MINUTE".into(), "100000".into());
    })
    .await;
    let (user, key, conn) =
        user_with_connection(&app, "business", json!({"send_rate_per_second": 2000})).await;
    let client = app.pool().get().await.unwrap();
    let phones: Vec<String> = (0..1000).map(recipient).collect();
    client
        .execute(
            "INSERT INTO conversaciones (usuario_id, servicio_origen, tipo, remitente, connection_id, last_inbound_at)
             SELECT $1, 'whatsapp', 'entrante', p, $2, now() FROM unnest($3::text[]) AS p",
            &[&user, &conn, &phones],
        )
        .await
        .unwrap();
    let shared = app.app().context().shared.clone();
    let fake = fake::register(
        &shared,
        conn,
        ConnectionKind::Business,
        accept(),
        Duration::ZERO,
    )
    .await;
    let items: Vec<Value> = phones
        .iter()
        .enumerate()
        .map(|(i, p)| text(conn, p, &format!("bulk {i}")))
        .collect();
    let results = batch(&app, &key, items).await;
    assert_eq!(results.len(), 1000);
    let ids: Vec<Uuid> = results.iter().map(queued_id).collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 1000);
    for (r, p) in results.iter().zip(&phones) {
        assert_eq!(&r["message"]["to"], p);
    }
    let sent = eventually(Duration::from_secs(120), || {
        let client = &client;
        let ids = &ids;
        async move {
            let rows = client
                .query(
                    "SELECT estado FROM mensajes_conversacion WHERE id = ANY($1)",
                    &[ids],
                )
                .await
                .ok()?;
            (rows.len() == 1000 && rows.iter().all(|r| reached(r.get::<_, &str>(0), "sent")))
                .then_some(())
        }
    })
    .await;
    assert!(
        sent.is_some(),
        "all 1,000 reached sent: {:?}",
        outbox_states(&app).await
    );
    let seen = fake.seen();
    let once: HashSet<Uuid> = seen.iter().map(|s| s.message.message_id).collect();
    assert_eq!(seen.len(), 1000, "each message sent once");
    assert_eq!(once, ids.iter().copied().collect());
}
