//! Inbound under batching: concurrent webhook POSTs share commits (group commit) yet each 200
//! means its body is committed, also when the database goes away right after; a database that
//! is gone answers 503 and stores nothing; the drain, storing many rows in one transaction,
//! keeps each conversation's order, stores a replayed body once, and dead-letters only the bad
//! item of a batch, never its neighbours; a flood's step is stored by parallel lanes, each
//! contact in one, in order, once.

use crate::helpers::{BusinessNumber, TestApp, eventually, expect_error, spawn_business_app};
use serde_json::{Value, json};
use sincro_sim::graph::GraphSimConfig;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

/// A webhook body carrying one text message per `(id, sender)`.
fn body(n: &BusinessNumber, messages: &[(String, String)]) -> Vec<u8> {
    let messages: Vec<Value> = messages
        .iter()
        .map(|(id, from)| {
            json!({"from": from, "id": id, "timestamp": "1760000000", "type": "text",
                   "text": {"body": format!("text of {id}")}})
        })
        .collect();
    serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": n.waba_id, "changes": [{
        "field": "messages",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": n.display_phone_number, "phone_number_id": n.phone_number_id},
                  "contacts": [], "messages": messages}}]}]}))
    .unwrap()
}

fn sender(i: usize) -> String {
    format!("55119{:08}", 20_000_000 + i)
}

async fn inbox_rows(app: &TestApp) -> i64 {
    app.count("SELECT count(*) FROM webhook_inbox", &[]).await
}

/// Messages stored for the connection, and how many distinct external ids they carry.
async fn stored(app: &TestApp, connection: Uuid) -> (i64, i64) {
    let client = app.pool().get().await.unwrap();
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT external_id) FROM mensajes_conversacion WHERE connection_id = $1",
            &[&connection],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// The external ids of `contact`'s stored messages, in the order they were stored.
async fn stored_order(app: &TestApp, contact: &str) -> Vec<String> {
    let client = app.pool().get().await.unwrap();
    client
        .query(
            "SELECT external_id FROM mensajes_conversacion WHERE remitente LIKE $1
             ORDER BY created_at, id",
            &[&format!("%{}", &contact[5..])],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Inbox rows not drained yet.
async fn pending_rows(app: &TestApp) -> i64 {
    app.count(
        "SELECT count(*) FROM webhook_inbox WHERE processed_at IS NULL",
        &[],
    )
    .await
}

/// Asserts that `letters` (rows of `external_id, reason` from `inbound_dead_letters`) hold one
/// dead letter, `external_id`, with the reason of the store that refused it
/// (`TestApp::refuse_message`).
fn assert_only_dead_letter(letters: &[tokio_postgres::Row], external_id: &str) {
    assert_eq!(letters.len(), 1, "only the bad item is a dead letter");
    assert_eq!(letters[0].get::<_, String>(0), external_id);
    assert!(
        letters[0]
            .get::<_, String>(1)
            .contains("refuses the poison")
    );
}

async fn wait_stored(app: &TestApp, connection: Uuid, expected: i64) {
    eventually(WAIT, || async {
        (stored(app, connection).await.0 >= expected).then_some(())
    })
    .await
    .expect("every message stored");
    assert_eq!(stored(app, connection).await, (expected, expected));
}

#[tokio::test]
async fn inbound_concurrent_posts_are_each_answered_after_their_commit_and_stored_once() {
    // Arrange: a number; 40 bodies (30 with one message, 10 with three), the first sent twice.
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (_, key) = app.user("group@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;
    let mut bodies: Vec<Vec<u8>> = (0..40)
        .map(|i| {
            let count = if i < 30 { 1 } else { 3 };
            let messages: Vec<(String, String)> = (0..count)
                .map(|k| (format!("wamid.group.{i}.{k}"), sender(i % 7)))
                .collect();
            body(&n, &messages)
        })
        .collect();
    bodies.push(bodies[0].clone());
    let app = Arc::new(app);
    let answered = Arc::new(AtomicI64::new(0));

    // Act: every POST at once; each, as soon as it has its 200, counts the inbox rows.
    let posts = bodies.into_iter().map(|b| {
        let (app, answered, secret) = (app.clone(), answered.clone(), n.app_secret.clone());
        async move {
            let resp = app.post_webhook(&b, Some(&secret)).await;
            assert_eq!(
                resp.status().as_u16(),
                200,
                "{}",
                resp.text().await.unwrap()
            );
            // Every request counted here had its 200 before this count: its row is committed.
            let answered_before = answered.fetch_add(1, Ordering::SeqCst) + 1;
            let rows = inbox_rows(&app).await;
            assert!(
                rows >= answered_before,
                "{answered_before} POSTs answered 200 but only {rows} inbox rows committed"
            );
        }
    });
    futures::future::join_all(posts).await;

    // Assert: one inbox row per POST; every message stored exactly once (the replay too).
    assert_eq!(inbox_rows(&app).await, 41);
    // The commits the 200s waited for are measured, in buckets from half a millisecond.
    let text = app.metrics_text().await;
    for series in [
        "sincro_inbox_commit_seconds_bucket{le=\"0.0005\"}",
        "sincro_inbox_group_commit_rows_bucket{le=\"1\"}",
    ] {
        assert!(text.contains(series), "/metrics lacks {series}");
    }
    wait_stored(&app, n.connection_id, 30 + 30).await;
    let events = app
        .count(
            "SELECT count(*) FROM events WHERE type = 'message.received'",
            &[],
        )
        .await;
    assert_eq!(events, 60);
}

#[tokio::test]
async fn inbound_a_200_stays_committed_when_the_database_drops_right_after() {
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (_, key) = app.user("durable@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;
    let name = app.database_url.rsplit('/').next().unwrap().to_string();
    let admin = crate::helpers::connect(&format!("{}/postgres", crate::helpers::SERVER)).await;
    let terminate =
        format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'");

    // Act: five rounds of: POST (again, as Meta does, until a 200), then at once every
    // connection of the daemon to the database is killed.
    let mut ok = 0;
    for round in 0..5 {
        let b = body(&n, &[(format!("wamid.durable.{round}"), sender(round))]);
        let answered = eventually(WAIT, || async {
            let resp = app.post_webhook(&b, Some(&n.app_secret)).await;
            match resp.status().as_u16() {
                200 => Some(()),
                503 => None,
                other => panic!("unexpected {other}: {}", resp.text().await.unwrap()),
            }
        })
        .await;
        assert!(answered.is_some(), "round {round} never answered 200");
        ok += 1;
        admin.batch_execute(&terminate).await.unwrap();

        // Assert: a fresh connection finds every body that had its 200.
        let check = crate::helpers::connect(&app.database_url).await;
        let rows: i64 = check
            .query_one("SELECT count(*) FROM webhook_inbox", &[])
            .await
            .unwrap()
            .get(0);
        assert!(rows >= ok, "{ok} bodies answered 200, {rows} committed");
    }

    // Act: the database refuses connections altogether.
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false; {terminate}"
        ))
        .await
        .unwrap();
    let b = body(&n, &[("wamid.durable.down".into(), sender(9))]);
    // Assert: 503, and after the database is back nothing of it was stored.
    expect_error(
        app.post_webhook(&b, Some(&n.app_secret)).await,
        503,
        "unavailable",
    )
    .await;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true"
        ))
        .await
        .unwrap();
    wait_stored(&app, n.connection_id, 5).await;
    assert_eq!(
        app.count(
            "SELECT count(*) FROM mensajes_conversacion WHERE external_id = 'wamid.durable.down'",
            &[]
        )
        .await,
        0
    );
}

#[tokio::test]
async fn inbound_batched_drain_keeps_order_dedups_replays_and_isolates_the_bad_item() {
    // Arrange: a store that refuses one message, and a drain held on its first step (a lock
    // on the messages table) so the bodies posted meanwhile are drained together.
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (user, key) = app.user("order@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;
    let mut holder = crate::helpers::connect(&app.database_url).await;
    app.refuse_message("wamid.order.poison").await;
    let lock = holder.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE mensajes_conversacion IN SHARE ROW EXCLUSIVE MODE")
        .await
        .unwrap();
    let contact = sender(1);
    let ordered: Vec<String> = (0..12).map(|i| format!("wamid.order.{i}")).collect();
    let post = |messages: Vec<(String, String)>| {
        let (app, b, secret) = (&app, body(&n, &messages), n.app_secret.clone());
        async move {
            let resp = app.post_webhook(&b, Some(&secret)).await;
            assert_eq!(resp.status().as_u16(), 200);
        }
    };
    post(vec![(ordered[0].clone(), contact.clone())]).await;
    app.until_waiting_on_lock(None, "the drain waits on the lock")
        .await;

    // Act: one contact's messages one POST after another, a body with a bad message between
    // two good ones from others, and a replay of an earlier body; then the lock goes.
    for (i, id) in ordered.iter().enumerate().skip(1) {
        post(vec![(id.clone(), contact.clone())]).await;
        if i == 5 {
            post(vec![
                ("wamid.order.left".into(), sender(2)),
                ("wamid.order.poison".into(), sender(3)),
                ("wamid.order.right".into(), sender(4)),
            ])
            .await;
            post(vec![(ordered[3].clone(), contact.clone())]).await;
        }
    }
    lock.rollback().await.unwrap();

    // Assert: every good message stored once, the bad one dead-lettered alone with its reason.
    wait_stored(&app, n.connection_id, 12 + 2).await;
    let client = app.pool().get().await.unwrap();
    let letters = client
        .query(
            "SELECT external_id, reason FROM inbound_dead_letters ORDER BY created_at",
            &[],
        )
        .await
        .unwrap();
    assert_only_dead_letter(&letters, "wamid.order.poison");

    // Assert: the contact's conversation holds its messages in the order they were posted,
    // and the stream's events announce them in that order.
    assert_eq!(stored_order(&app, &contact).await, ordered);
    let sealer = &app.app().context().sealer;
    let events = sincro_core::store::events::read_after(&client, sealer, user, 0, 1000)
        .await
        .unwrap();
    let announced: Vec<String> = events
        .iter()
        .filter(|e| e.kind == "message.received")
        .filter_map(|e| e.data["external_id"].as_str().map(str::to_owned))
        .filter(|id| ordered.contains(id))
        .collect();
    assert_eq!(announced, ordered);
}

/// Holds the drain on its first step (a lock on the messages table, one message posted), posts
/// `bodies` while it waits, and lets it go: the next step takes every body at once.
async fn in_one_step(app: &TestApp, n: &BusinessNumber, bodies: Vec<Vec<(String, String)>>) {
    let mut holder = crate::helpers::connect(&app.database_url).await;
    let lock = holder.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE mensajes_conversacion IN SHARE ROW EXCLUSIVE MODE")
        .await
        .unwrap();
    let first = body(n, &[("wamid.lanes.first".into(), sender(9_999))]);
    let resp = app.post_webhook(&first, Some(&n.app_secret)).await;
    assert_eq!(resp.status().as_u16(), 200);
    app.until_waiting_on_lock(None, "the drain waits on the lock")
        .await;
    for messages in bodies {
        let resp = app
            .post_webhook(&body(n, &messages), Some(&n.app_secret))
            .await;
        assert_eq!(resp.status().as_u16(), 200);
    }
    lock.rollback().await.unwrap();
}

/// 24 bodies of 50 messages from 300 contacts (a campaign's answers), contact 0 writing one
/// message in each body; `poison` replaces one message of contact 1 when given.
fn campaign(poison: Option<&str>) -> (Vec<Vec<(String, String)>>, Vec<String>) {
    let mut ordered = Vec::new();
    let bodies = (0..24)
        .map(|b| {
            (0..50)
                .map(|i| {
                    let id = format!("wamid.lanes.{b}.{i}");
                    if i == 0 {
                        ordered.push(id.clone());
                        return (id, sender(0));
                    }
                    if b == 12 && i == 1 {
                        if let Some(p) = poison {
                            return (p.to_string(), sender(1));
                        }
                    }
                    (id, sender(1 + (b * 49 + i) % 299))
                })
                .collect()
        })
        .collect();
    (bodies, ordered)
}

#[tokio::test]
async fn inbound_a_flood_is_stored_in_parallel_lanes_each_contact_in_one_in_order_and_once() {
    // Arrange: a number, and 1,200 messages that one drain step takes at once (more than
    // `LANES_FROM_ITEMS`, so the step stores them in parallel lanes).
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (user, key) = app.user("lanes@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;
    let (bodies, ordered) = campaign(None);
    assert!(bodies.len() * 50 >= sincro_core::ingest::lanes::LANES_FROM_ITEMS);

    // Act
    in_one_step(&app, &n, bodies).await;

    // Assert: every message stored once, and the inbox drained.
    wait_stored(&app, n.connection_id, 1 + 24 * 50).await;
    eventually(WAIT, || async {
        (pending_rows(&app).await == 0).then_some(())
    })
    .await
    .expect("every inbox row marked done");
    assert_eq!(inbox_rows(&app).await, 25);

    // Assert: the step's messages were written by two transactions (a row's `xmin`), and each
    // contact's by one of them.
    let client = app.pool().get().await.unwrap();
    let writers = app
        .count(
            "SELECT count(DISTINCT xmin::text)::bigint FROM mensajes_conversacion
             WHERE external_id LIKE 'wamid.lanes.%' AND external_id <> 'wamid.lanes.first'",
            &[],
        )
        .await;
    assert_eq!(writers, 2, "the flood was stored in two lanes");
    let split_contacts = app
        .count(
            "SELECT count(*) FROM (SELECT remitente FROM mensajes_conversacion
                 WHERE external_id LIKE 'wamid.lanes.%' AND external_id <> 'wamid.lanes.first'
                 GROUP BY remitente HAVING count(DISTINCT xmin::text) > 1) AS s",
            &[],
        )
        .await;
    assert_eq!(
        split_contacts, 0,
        "a contact's messages are written by one lane"
    );

    // Assert: contact 0's messages stored and announced in the order they were posted; every
    // message announced once, the user's events numbered without a gap.
    assert_eq!(stored_order(&app, &sender(0)).await, ordered);
    let sealer = &app.app().context().sealer;
    let events = sincro_core::store::events::read_after(&client, sealer, user, 0, 5000)
        .await
        .unwrap();
    for pair in events.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1, "event numbers without a gap");
    }
    let announced: Vec<String> = events
        .iter()
        .filter(|e| e.kind == "message.received")
        .filter_map(|e| e.data["external_id"].as_str().map(str::to_owned))
        .collect();
    let distinct: std::collections::HashSet<&String> = announced.iter().collect();
    assert_eq!(
        (announced.len(), distinct.len()),
        (1 + 24 * 50, 1 + 24 * 50)
    );
    let contact0: Vec<String> = announced
        .into_iter()
        .filter(|id| ordered.contains(id))
        .collect();
    assert_eq!(contact0, ordered);
}

#[tokio::test]
async fn inbound_a_bad_item_in_a_lane_is_dead_lettered_alone() {
    // Arrange: a store that refuses one message of a flood drained in lanes.
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (_, key) = app.user("lanes-poison@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;
    let client = app.pool().get().await.unwrap();
    app.refuse_message("wamid.lanes.poison").await;
    let (bodies, _) = campaign(Some("wamid.lanes.poison"));

    // Act
    in_one_step(&app, &n, bodies).await;

    // Assert: all but the bad message stored, it alone a dead letter with the store's reason,
    // and every inbox row marked done.
    wait_stored(&app, n.connection_id, 24 * 50).await;
    let letters = eventually(WAIT, || async {
        let rows = client
            .query("SELECT external_id, reason FROM inbound_dead_letters", &[])
            .await
            .unwrap();
        (!rows.is_empty()).then_some(rows)
    })
    .await
    .expect("a dead letter");
    assert_only_dead_letter(&letters, "wamid.lanes.poison");
    assert_eq!(pending_rows(&app).await, 0);
}
