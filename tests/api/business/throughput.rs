//! A Business number's throughput level, which paces its sends (80 messages per second, 1,000
//! once Meta upgrades the number): read from Meta when the number is connected and again when
//! its actor starts, raised by Meta's `phone_number_quality_update` webhook (event
//! `THROUGHPUT_UPGRADE`, the number named only by its display number), and never moved by a
//! body its owner did not sign.

use crate::helpers::{BusinessNumber, TestApp, eventually, spawn_app_sharing, spawn_business_app};
use serde_json::{Value, json};
use sincro_sim::graph::GraphSimConfig;
use std::time::Duration;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);

/// The level the API shows for a number.
async fn level(app: &TestApp, key: &str, connection_id: Uuid) -> Value {
    let number: Value = app
        .get(&format!("/v1/business/numbers/{connection_id}"), key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    number["throughput_level"].clone()
}

/// Meta's upgrade webhook as documented since `current_limit` was retired.
fn upgrade_body(waba_id: &str, display_phone_number: &str, time: i64) -> Vec<u8> {
    json!({"object": "whatsapp_business_account", "entry": [{"id": waba_id, "time": time,
        "changes": [{"field": "phone_number_quality_update", "value": {
            "display_phone_number": display_phone_number,
            "event": "THROUGHPUT_UPGRADE",
            "max_daily_conversations_per_business": "TIER_UNLIMITED"}}]}]})
    .to_string()
    .into_bytes()
}

async fn throughput_events(app: &TestApp, usuario_id: Uuid) -> i64 {
    app.count(
        "SELECT count(*) FROM events WHERE usuario_id = $1 AND type = 'business.throughput'",
        &[&usuario_id],
    )
    .await
}

async fn set_sim_level(app: &TestApp, sim: &str, n: &BusinessNumber, level: &str) -> Value {
    let resp = app
        .http
        .post(format!("{sim}/sim/throughput"))
        .json(&json!({"phone_number_id": n.phone_number_id, "level": level}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn business_throughput_level_follows_metas_upgrade_and_only_its_owner_moves_it() {
    // Arrange: two tenants' numbers at Meta's default level.
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (user_a, key_a) = app.user("tp-a@example.com", false).await;
    let (user_b, key_b) = app.user("tp-b@example.com", false).await;
    let (_, admin) = app.user("tp-root@example.com", true).await;
    let a = app.business_number(&sim.base_url(), &key_a).await;
    let b = app.business_number(&sim.base_url(), &key_b).await;
    assert_eq!(level(&app, &key_a, a.connection_id).await, "STANDARD");

    // Act 1: B signs an upgrade naming A's display number under B's own account.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let forged = upgrade_body(&b.waba_id, &a.display_phone_number, now);
    let resp = app.post_webhook(&forged, Some(&b.app_secret)).await;
    assert_eq!(resp.status().as_u16(), 200);

    // Assert 1: nothing moved; the update is a dead letter, not a silent skip.
    assert!(app.inbox_drained(WAIT).await);
    assert_eq!(level(&app, &key_a, a.connection_id).await, "STANDARD");
    assert_eq!(level(&app, &key_b, b.connection_id).await, "STANDARD");
    let letters: Value = app
        .get("/v1/inbound/dead-letter", &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        letters.to_string().contains("throughput update for number"),
        "{letters}"
    );

    // Act 2: Meta upgrades A (the simulator then sends its webhook).
    let answer = set_sim_level(&app, &sim.base_url(), &a, "HIGH").await;
    assert_eq!(answer["webhook"], true);

    // Assert 2: A is HIGH with one event; B is untouched.
    let upgraded = eventually(WAIT, || async {
        (level(&app, &key_a, a.connection_id).await == "HIGH").then_some(())
    })
    .await;
    assert!(upgraded.is_some(), "the upgrade was not applied");
    assert!(app.inbox_drained(WAIT).await);
    assert_eq!(throughput_events(&app, user_a).await, 1);
    assert_eq!(throughput_events(&app, user_b).await, 0);
    assert_eq!(level(&app, &key_b, b.connection_id).await, "STANDARD");
    // Sends are paced by it: Meta takes 1,000 a second from A now.
    let stored: Value = app
        .pool()
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT configuracion FROM configuracion_mensajeria_usuario WHERE id = $1",
            &[&a.connection_id],
        )
        .await
        .unwrap()
        .get(0);
    let limits = sincro_core::outbound::settings::ConnectionLimits::from_config(
        sincro_core::connection::ConnectionKind::Business,
        &stored,
        &Default::default(),
    );
    assert_eq!(limits.per_period, 1000);

    // Act 3: the same upgrade again, a minute later.
    let again = upgrade_body(&a.waba_id, &a.display_phone_number, now + 60);
    assert_eq!(
        app.post_webhook(&again, Some(&a.app_secret))
            .await
            .status()
            .as_u16(),
        200
    );
    assert!(app.inbox_drained(WAIT).await);

    // Assert 3: a level a number already has is no change.
    assert_eq!(throughput_events(&app, user_a).await, 1);
}

#[tokio::test]
async fn business_throughput_level_is_read_again_when_the_number_starts() {
    // Arrange: a number connected at the default level, upgraded at Meta while no webhook
    // reached this daemon (its app is unsubscribed: Meta drops the webhook).
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (user, key) = app.user("tp-start@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;
    assert_eq!(level(&app, &key, n.connection_id).await, "STANDARD");
    let unsubscribed = app
        .http
        .delete(format!(
            "{}/v23.0/{}/subscribed_apps",
            sim.base_url(),
            n.waba_id
        ))
        .bearer_auth(&n.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(unsubscribed.status().as_u16(), 200);
    set_sim_level(&app, &sim.base_url(), &n, "HIGH").await;

    // Act: another node starts on the same database (its number actors read Meta anew).
    let other = spawn_app_sharing(&app).await;

    // Assert: the level Meta reports now is stored, with its event.
    let learnt = eventually(WAIT, || async {
        (level(&other, &key, n.connection_id).await == "HIGH").then_some(())
    })
    .await;
    assert!(learnt.is_some(), "the level was not read at start");
    let events = app
        .count(
            "SELECT count(*) FROM events WHERE usuario_id = $1 AND type = 'business.throughput'",
            &[&user],
        )
        .await;
    assert_eq!(events, 1);
}
