//! The inbound inbox drain: a bad item is isolated and dead-lettered while the rest of its batch
//! is stored, dead letters are listed per user (all for admins) and replayed once fixed; Lite
//! items stored in the inbox are drained like webhooks; a webhook body touches only the numbers
//! of the tenant whose app secret signed it; template updates only move forward.

use crate::helpers::{BusinessNumber, TestApp, eventually, expect_error, spawn_business_app};
use crate::ingest::text;
use serde_json::{Value, json};
use sincro_core::ingest::inbox;
use sincro_sim::graph::GraphSimConfig;
use std::time::Duration;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);

/// A webhook body for `n` carrying one text message per id, from distinct contacts.
fn messages_body(n: &BusinessNumber, ids: &[String]) -> Value {
    let messages: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({"from": format!("55119{:08}", 10_000_000 + i), "id": id,
                   "timestamp": "1760000000", "type": "text", "text": {"body": format!("hola {i}")}})
        })
        .collect();
    json!({"object": "whatsapp_business_account", "entry": [{"id": n.waba_id, "changes": [{
        "field": "messages",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": n.display_phone_number, "phone_number_id": n.phone_number_id},
                  "contacts": [], "messages": messages}}]}]})
}

fn template_body(waba_id: &str, name: &str, event: &str, time: i64) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": waba_id, "time": time, "changes": [{
        "field": "message_template_status_update",
        "value": {"event": event, "message_template_id": 4242, "message_template_name": name,
                  "message_template_language": "es", "reason": "NONE"}}]}]})
}

async fn post_signed(app: &TestApp, body: &Value, secret: &str) -> reqwest::Response {
    app.post_webhook(&serde_json::to_vec(body).unwrap(), Some(secret))
        .await
}

async fn dead_letters(app: &TestApp, key: &str, query: &str) -> Vec<Value> {
    let resp = app
        .get(&format!("/v1/inbound/dead-letter{query}"), key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let page: Value = resp.json().await.unwrap();
    page["items"].as_array().unwrap().clone()
}

async fn stored(app: &TestApp, connection: Uuid) -> i64 {
    app.count(
        "SELECT count(*) FROM mensajes_conversacion WHERE connection_id = $1",
        &[&connection],
    )
    .await
}

async fn template_status(app: &TestApp, connection: Uuid, name: &str) -> String {
    let client = app.pool().get().await.unwrap();
    client
        .query_one(
            "SELECT status FROM whatsapp_templates WHERE connection_id = $1 AND name = $2",
            &[&connection, &name],
        )
        .await
        .unwrap()
        .get(0)
}

async fn add_template(app: &TestApp, user: Uuid, connection: Uuid, name: &str, status: &str) {
    let client = app.pool().get().await.unwrap();
    client
        .execute(
            "INSERT INTO whatsapp_templates (usuario_id, connection_id, meta_template_id, name, language, status)
             VALUES ($1, $2, '4242', $3, 'es', $4)",
            &[&user, &connection, &name, &status],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn inbound_poison_item_is_dead_lettered_and_replayed() {
    // Arrange: a number, and a store that refuses one message (as it would a value it cannot
    // hold), through a trigger in this test's own database.
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (user, key) = app.user("poison@example.com", false).await;
    let (_, admin) = app.user("ops@example.com", true).await;
    let (_, other) = app.user("other@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;
    let client = app.pool().get().await.unwrap();
    app.refuse_message("wamid.poison").await;
    let mut ids: Vec<String> = (0..99).map(|i| format!("wamid.good.{i}")).collect();
    ids.insert(42, "wamid.poison".into());

    // Act: one webhook with 100 messages.
    let resp = post_signed(&app, &messages_body(&n, &ids), &n.app_secret).await;
    assert_eq!(resp.status().as_u16(), 200);

    // Assert: 99 stored, the poison one dead-lettered with the store's reason, an alert.
    let letters = eventually(WAIT, || async {
        let l = dead_letters(&app, &key, "").await;
        (!l.is_empty() && stored(&app, n.connection_id).await == 99).then_some(l)
    })
    .await
    .expect("99 stored and one dead letter");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["external_id"], "wamid.poison");
    assert_eq!(letters[0]["usuario_id"], user.to_string());
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap()
            .contains("refuses the poison"),
        "{letters:?}"
    );
    assert_eq!(dead_letters(&app, &admin, "").await.len(), 1);
    assert!(dead_letters(&app, &other, "").await.is_empty());
    assert!(
        eventually(WAIT, || async {
            (app.count(
                "SELECT count(*) FROM alerts WHERE kind = 'inbound_dead_letter' AND usuario_id = $1",
                &[&user],
            )
            .await
                > 0)
            .then_some(())
        })
        .await
        .is_some()
    );

    // Act: another user cannot replay it; the owner does once the store is fixed.
    let id = letters[0]["id"].as_str().unwrap().to_string();
    let path = format!("/v1/inbound/{id}/replay");
    expect_error(
        app.post(&path, &other).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    client
        .batch_execute("DROP TRIGGER refuse_poison ON mensajes_conversacion")
        .await
        .unwrap();
    let resp = app.post(&path, &key).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 202);

    // Assert: all 100 stored once; nothing open; a second replay is refused.
    assert!(
        eventually(WAIT, || async {
            (stored(&app, n.connection_id).await == 100).then_some(())
        })
        .await
        .is_some()
    );
    assert!(dead_letters(&app, &key, "").await.is_empty());
    let all = dead_letters(&app, &key, "?state=all").await;
    assert_eq!(all.len(), 1);
    assert!(all[0]["replayed_at"].is_string());
    expect_error(
        app.post(&path, &key).send().await.unwrap(),
        409,
        "already_replayed",
    )
    .await;
    expect_error(
        app.get("/v1/inbound/dead-letter?state=nope", &key)
            .send()
            .await
            .unwrap(),
        400,
        "invalid_state",
    )
    .await;
}

#[tokio::test]
async fn inbound_lite_items_in_the_inbox_are_drained() {
    // Arrange: a Lite connection, and an item that names another connection than its row.
    let (app, _sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (user, key) = app.user("lite-inbox@example.com", false).await;
    let conn = app.connection(user, "lite").await;
    let other = app.connection(user, "lite").await;
    let shared = app.app().context().shared.clone();
    let client = app.pool().get().await.unwrap();

    // Act: what a Lite session does when the page reports messages.
    let good = text(user, conn, "LITE1", "+5511987650001", "Ana", "hola");
    let stray = text(user, other, "LITE2", "+5511987650002", "Bia", "oi");
    inbox::store_lite(&client, &shared.sealer, user, conn, &[good, stray])
        .await
        .unwrap();
    inbox::wake(&shared);

    // Assert: the item of the row's connection stored, the stray one dead-lettered.
    assert!(
        eventually(WAIT, || async {
            (stored(&app, conn).await == 1).then_some(())
        })
        .await
        .is_some()
    );
    let letters = eventually(WAIT, || async {
        let l = dead_letters(&app, &key, "").await;
        (!l.is_empty()).then_some(l)
    })
    .await
    .unwrap();
    assert_eq!(letters[0]["external_id"], "LITE2");
    assert_eq!(letters[0]["source"], "lite");
    assert_eq!(stored(&app, other).await, 0);
}

#[tokio::test]
async fn inbound_webhook_touches_only_the_signers_numbers() {
    // Arrange: two tenants, each with a number; B has an approved template.
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (user_a, key_a) = app.user("tenant-a@example.com", false).await;
    let (user_b, key_b) = app.user("tenant-b@example.com", false).await;
    let (_, admin) = app.user("root@example.com", true).await;
    let a = app.business_number(&sim.base_url(), &key_a).await;
    let b = app.business_number(&sim.base_url(), &key_b).await;
    add_template(&app, user_b, b.connection_id, "promo", "APPROVED").await;

    // Act: A signs, with A's own secret, a body whose first entry is A's message and whose
    // second names B's account with a template change and B's number with a message.
    let mut body = messages_body(&a, &["wamid.a.1".to_string()]);
    let b_template = template_body(&b.waba_id, "promo", "DISABLED", 1_760_000_100);
    let b_message = messages_body(&b, &["wamid.b.forged".to_string()]);
    let entries = body["entry"].as_array_mut().unwrap();
    entries.push(b_template["entry"][0].clone());
    let mut forged = b_message["entry"][0].clone();
    forged["id"] = json!(a.waba_id);
    entries.push(forged);
    let resp = post_signed(&app, &body, &a.app_secret).await;

    // Assert: A's message stored; B's template and conversations untouched; the refused
    // changes are dead letters only admins see.
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        eventually(WAIT, || async {
            (stored(&app, a.connection_id).await == 1).then_some(())
        })
        .await
        .is_some()
    );
    let letters = eventually(WAIT, || async {
        let l = dead_letters(&app, &admin, "").await;
        (l.len() >= 2).then_some(l)
    })
    .await
    .expect("two refused changes");
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert_eq!(
        template_status(&app, b.connection_id, "promo").await,
        "APPROVED"
    );
    assert_eq!(stored(&app, b.connection_id).await, 0);
    assert!(dead_letters(&app, &key_b, "").await.is_empty());
    let a_sees: Vec<Value> = dead_letters(&app, &key_a, "").await;
    assert_eq!(
        a_sees.len(),
        1,
        "A sees the message it named under its own account: {a_sees:?}"
    );
    assert_eq!(a_sees[0]["external_id"], "wamid.b.forged");

    // A body naming only B's number, signed by A: refused like a bad signature.
    let only_b = messages_body(&b, &["wamid.b.2".to_string()]);
    expect_error(
        post_signed(&app, &only_b, &a.app_secret).await,
        401,
        "invalid_signature",
    )
    .await;
    let _ = user_a;
}

#[tokio::test]
async fn inbound_template_updates_only_move_forward() {
    // Arrange: a number with a pending template.
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (user, key) = app.user("tpl@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;
    add_template(&app, user, n.connection_id, "welcome", "PENDING").await;
    let send = |event: &str, time: i64| template_body(&n.waba_id, "welcome", event, time);
    let wait_for = |status: &'static str| {
        let app = &app;
        let conn = n.connection_id;
        async move {
            eventually(WAIT, || async {
                (template_status(app, conn, "welcome").await == status).then_some(())
            })
            .await
            .is_some()
        }
    };

    let post = |event: &'static str, time: i64| {
        let body = send(event, time);
        let app = &app;
        let secret = n.app_secret.clone();
        async move { post_signed(app, &body, &secret).await.status().as_u16() }
    };

    // Act + Assert: approved at t=200; a replay of PENDING from t=100 and one from the same
    // second change nothing; a later pause applies; after deletion nothing moves.
    assert_eq!(post("APPROVED", 200).await, 200);
    assert!(wait_for("APPROVED").await);
    assert_eq!(post("PENDING", 100).await, 200);
    assert_eq!(post("PENDING", 200).await, 200);
    assert!(app.inbox_drained(WAIT).await);
    assert_eq!(
        template_status(&app, n.connection_id, "welcome").await,
        "APPROVED"
    );
    assert_eq!(post("PAUSED", 300).await, 200);
    assert!(wait_for("PAUSED").await);
    assert_eq!(post("DELETED", 400).await, 200);
    assert!(wait_for("DELETED").await);
    assert_eq!(post("APPROVED", 500).await, 200);
    assert!(app.inbox_drained(WAIT).await);
    assert_eq!(
        template_status(&app, n.connection_id, "welcome").await,
        "DELETED"
    );
}

#[tokio::test]
async fn inbound_forged_webhook_flood_writes_nothing() {
    // Arrange: a connected number; an attacker who knows its ids but not its app secret.
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (_, key) = app.user("flood@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;
    let body = messages_body(&n, &["wamid.forged".to_string()]);

    // Act: a flood of forged posts from one address.
    let mut statuses = Vec::new();
    for _ in 0..60 {
        statuses.push(post_signed(&app, &body, "not-the-app-secret").await);
    }

    // Assert: refused (401, then 429 with Retry-After once the address's failures are used
    // up), and nothing written anywhere.
    let codes: Vec<u16> = statuses.iter().map(|r| r.status().as_u16()).collect();
    assert!(codes.iter().all(|c| *c == 401 || *c == 429), "{codes:?}");
    let limited = statuses
        .iter()
        .find(|r| r.status().as_u16() == 429)
        .expect("the flood is rate limited");
    assert!(limited.headers().contains_key("retry-after"));
    // One store lookup for the number the whole flood named (a second if the cache's few
    // seconds ran out mid-flood).
    let lookups = app
        .app()
        .context()
        .webhook_routes
        .lookups
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        (1..=2).contains(&lookups),
        "{lookups} lookups for one number"
    );
    for table in [
        "webhook_inbox",
        "inbound_dead_letters",
        "mensajes_conversacion",
        "alerts",
    ] {
        assert_eq!(
            app.count(&format!("SELECT count(*) FROM {table}"), &[])
                .await,
            0,
            "{table}"
        );
    }
}
