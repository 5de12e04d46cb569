//! Outbox leases: rows of a dead Dispatcher come back (or become uncertain when in flight), and
//! two daemons on one database share a backlog without sending anything twice.

use super::fake::{self, accept};
use super::{
    backlog, dispatcher, fast_retries, message, outbox_states, send, text, user_with_connection,
    wait_estado,
};
use crate::helpers::{eventually, spawn_app, spawn_app_sharing, spawn_app_with};
use serde_json::json;
use sincro_core::connection::ConnectionKind;
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

#[tokio::test]
async fn queue_expired_leases_come_back() {
    // Arrange: rows held by a node that is gone (no lease row), and a row held by a live node.
    let app = spawn_app().await;
    let (_, key, conn) = user_with_connection(&app, "lite", json!({})).await;
    let a = send(
        &app,
        &key,
        &text(conn, "+5511912345678", "claimed by a dead node"),
    )
    .await;
    let b = send(
        &app,
        &key,
        &text(conn, "+5511912345679", "in flight on a dead node"),
    )
    .await;
    let c = send(
        &app,
        &key,
        &text(conn, "+5511912345670", "claimed by a live node"),
    )
    .await;
    let client = app.pool().get().await.unwrap();
    client
        .execute(
            "UPDATE outbox SET state = 'sending',
                 lease_owner = CASE WHEN message_id = $3 THEN 'live-node/y' ELSE 'dead-node/x' END,
                 inflight_at = CASE WHEN message_id = $2 THEN now() ELSE NULL END,
                 attempts = CASE WHEN message_id = $2 THEN 1 ELSE 0 END
             WHERE message_id = ANY($1)",
            &[&vec![a, b, c], &b, &c],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO outbox_owners (owner, node_id, until) VALUES ('live-node/y', 'live-node', now() + interval '1 minute')",
            &[],
        )
        .await
        .unwrap();
    let dispatcher = dispatcher(&app);
    let sweep = || async {
        dispatcher
            .call(
                sincro_core::outbound::dispatcher::DispatcherMessage::Sweep,
                Some(Duration::from_secs(10)),
            )
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    };

    // Act
    let recovered = sweep().await;

    // Assert: the dead node's rows came back; the live node keeps its claim.
    assert_eq!(recovered.returned, 1);
    assert_eq!(recovered.uncertain, vec![b]);
    let state_of = |id: Uuid| {
        let client = &client;
        async move {
            client
                .query_one("SELECT state FROM outbox WHERE message_id = $1", &[&id])
                .await
                .unwrap()
                .get::<_, String>(0)
        }
    };
    assert_eq!(state_of(c).await, "sending");
    let shared = app.app().context().shared.clone();
    let fake = fake::register(
        &shared,
        conn,
        ConnectionKind::Lite,
        accept(),
        Duration::ZERO,
    )
    .await;
    wait_estado(&app, &key, a, "sent", Duration::from_secs(10)).await;
    assert_eq!(message(&app, &key, b).await["uncertain"], true);
    assert_eq!(fake.sends_of(b), 0);
    assert_eq!(
        fake.sends_of(c),
        0,
        "a live node's claim was sent by another"
    );

    // Act: the live node stops renewing; its lease runs out.
    client
        .execute(
            "UPDATE outbox_owners SET until = now() - interval '1 second' WHERE owner = 'live-node/y'",
            &[],
        )
        .await
        .unwrap();
    let recovered = sweep().await;

    // Assert: its row comes back and is sent here; its lease row is gone.
    assert_eq!(recovered.returned, 1);
    wait_estado(&app, &key, c, "sent", Duration::from_secs(10)).await;
    assert_eq!(fake.sends_of(c), 1);
    let owners: i64 = client
        .query_one(
            "SELECT count(*) FROM outbox_owners WHERE owner = 'live-node/y'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owners, 0);
}

#[tokio::test]
async fn queue_two_daemons_share_a_backlog_without_duplicates() {
    // Arrange: two nodes, two connections registered on both (as Business numbers are): each
    // connection is sent for by the one node holding its lease, and the nodes split them.
    let mut a = spawn_app_with(|env| {
        fast_retries(env);
        env.insert("NODE_LEASE_SECS".into(), "3".into());
    })
    .await;
    let b = spawn_app_sharing(&a).await;
    let settings = json!({"send_rate_per_minute": 100000});
    let (_, key1, conn1) = user_with_connection(&a, "lite", settings.clone()).await;
    let (_, key2, conn2) = user_with_connection(&a, "lite", settings).await;
    let mut ids = backlog(&a, &key1, conn1, 150, "normal").await;
    ids.extend(backlog(&b, &key2, conn2, 150, "normal").await);
    let mut fakes = Vec::new();
    for app in [&a, &b] {
        for conn in [conn1, conn2] {
            fakes.push(
                fake::register(
                    &app.app().context().shared,
                    conn,
                    ConnectionKind::Lite,
                    accept(),
                    Duration::from_millis(3),
                )
                .await,
            );
        }
    }

    // Act
    eventually(Duration::from_secs(30), || async {
        (outbox_states(&a).await.get("sent") == Some(&300)).then_some(())
    })
    .await
    .expect("all sent");

    // Assert: each message once, each connection through one node, both nodes busy.
    let mut count: HashMap<Uuid, usize> = HashMap::new();
    for f in &fakes {
        for s in f.seen() {
            *count.entry(s.message.message_id).or_default() += 1;
        }
    }
    assert_eq!(count.len(), 300);
    assert!(
        ids.iter().all(|id| count[id] == 1),
        "a message was sent twice"
    );
    let busy: Vec<usize> = fakes.iter().map(|f| f.seen().len()).collect();
    // fakes: [a/conn1, a/conn2, b/conn1, b/conn2]
    assert!(
        (busy[0] == 0 || busy[2] == 0) && (busy[1] == 0 || busy[3] == 0),
        "a connection was sent for by both nodes: {busy:?}"
    );
    assert!(
        busy[0] + busy[1] > 0 && busy[2] + busy[3] > 0,
        "one node did all the work: {busy:?}"
    );
    a.shutdown().await;
}
