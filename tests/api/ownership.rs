//! Node ownership (docs/ARCHITECTURE.md §5) against real PostgreSQL: leases are exclusive, expire
//! into another node's hands, split by fair share, come back on a graceful stop; a node whose
//! lease was taken stops sending for that connection at once and takes it back when free.

use crate::helpers::{eventually, spawn_app, spawn_app_with};
use crate::queue::fake::{self, accept};
use crate::queue::{backlog, dispatcher_stats, outbox_states, user_with_connection};
use serde_json::json;
use sincro_core::connection::ConnectionKind;
use sincro_core::nodes::ownership::Ownership;
use std::time::Duration;
use uuid::Uuid;

const LITE: ConnectionKind = ConnectionKind::Lite;

#[tokio::test]
async fn ownership_leases_are_exclusive_expire_and_split_fairly() {
    // Arrange: two nodes besides the test daemon's own.
    let app = spawn_app().await;
    let client = app.pool().get().await.unwrap();
    let n1 = Ownership::new(format!("n1-{}", Uuid::new_v4()), Duration::from_secs(3));
    let n2 = Ownership::new(format!("n2-{}", Uuid::new_v4()), Duration::from_secs(3));
    n1.heartbeat(&client).await.unwrap();
    n2.heartbeat(&client).await.unwrap();
    let ids: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();

    // Act / Assert: three live nodes, four connections: at most two each.
    assert_eq!(n1.fair_share(&client, 4).await.unwrap(), 2);
    let got1 = n1.acquire(&client, LITE, &ids[..2]).await.unwrap();
    assert_eq!(got1.len(), 2);
    let got2 = n2.acquire(&client, LITE, &ids).await.unwrap();
    assert_eq!(
        sorted(got2),
        sorted(ids[2..].to_vec()),
        "held leases are not taken"
    );
    assert!(n1.holds(LITE, ids[0]) && !n2.holds(LITE, ids[0]));
    assert_eq!(
        n1.acquire(&client, LITE, &ids[..1]).await.unwrap(),
        vec![ids[0]]
    );
    assert_eq!(
        Ownership::owner(&client, LITE, ids[0])
            .await
            .unwrap()
            .as_deref(),
        Some(n1.node_id())
    );

    // An expired lease (a node that stopped renewing) goes to whoever asks.
    client
        .execute(
            "UPDATE leases SET expires_at = now() - interval '1 second' WHERE resource = $1",
            &[&format!("lite:{}", ids[0])],
        )
        .await
        .unwrap();
    assert_eq!(Ownership::owner(&client, LITE, ids[0]).await.unwrap(), None);
    assert_eq!(
        n2.acquire(&client, LITE, &ids[..1]).await.unwrap(),
        vec![ids[0]]
    );
    let lost = n1.heartbeat(&client).await.unwrap();
    assert_eq!(lost, vec![format!("lite:{}", ids[0])]);
    assert!(!n1.holds(LITE, ids[0]) && n1.holds(LITE, ids[1]));

    // A graceful stop hands everything back at once and the node stops counting as live.
    n2.release_all(&client).await.unwrap();
    assert_eq!(n2.count(LITE), 0);
    assert_eq!(n1.acquire(&client, LITE, &ids).await.unwrap().len(), 4);
    assert_eq!(
        n1.fair_share(&client, 4).await.unwrap(),
        2,
        "n1 and the daemon"
    );
    n1.release(&client, LITE, &ids[..1]).await.unwrap();
    assert!(!n1.holds(LITE, ids[0]));
    assert_eq!(Ownership::owner(&client, LITE, ids[0]).await.unwrap(), None);
}

fn sorted(mut v: Vec<Uuid>) -> Vec<Uuid> {
    v.sort();
    v
}

#[tokio::test]
async fn ownership_a_taken_lease_stops_sending_until_it_is_free_again() {
    // Arrange: one connection at 10 messages a second with a backlog of 60.
    let app = spawn_app_with(|env| {
        env.insert("NODE_LEASE_SECS".into(), "3".into());
        env.insert("API_RATE_PER_USER_PER_MINUTE".into(), "100000".into());
    })
    .await;
    let (_, key, conn) =
        user_with_connection(&app, "lite", json!({"send_rate_per_minute": 600})).await;
    backlog(&app, &key, conn, 60, "normal").await;
    let shared = app.app().context().shared.clone();
    let f = fake::register(
        &shared,
        conn,
        ConnectionKind::Lite,
        accept(),
        Duration::ZERO,
    )
    .await;
    eventually(Duration::from_secs(20), || async {
        (f.seen().len() >= 5).then_some(())
    })
    .await
    .expect("sending started");

    // Act: another (live) node takes the lease, as after this node missed its renewals.
    let client = app.pool().get().await.unwrap();
    client
        .batch_execute(&format!(
            "INSERT INTO nodes (id) VALUES ('ghost');
             UPDATE leases SET node_id = 'ghost', expires_at = now() + interval '1 hour'
             WHERE resource = 'lite:{conn}'"
        ))
        .await
        .unwrap();

    // Assert: within a renewal the lane is gone, its last sends answered, nothing more sent.
    eventually(Duration::from_secs(5), || async {
        let s = dispatcher_stats(&app).await;
        (s.lanes.is_empty() && s.sending == 0).then_some(())
    })
    .await
    .expect("the lane stopped");
    let stopped_at = f.seen().len();
    assert!(stopped_at < 60, "all sent before the lease was taken");
    // Two more renewal rounds, in which a node ignoring the lost lease would send again.
    app.heartbeat_rounds(2).await;
    assert_eq!(f.seen().len(), stopped_at, "sent without the lease");

    // Act: the other node goes away; its lease is deleted with it.
    client
        .execute("DELETE FROM nodes WHERE id = 'ghost'", &[])
        .await
        .unwrap();

    // Assert: the connection is taken back and the rest is sent, each message once.
    eventually(Duration::from_secs(30), || async {
        (outbox_states(&app).await.get("sent") == Some(&60)).then_some(())
    })
    .await
    .expect("all sent after the lease came back");
    let seen = f.seen();
    let mut ids: Vec<Uuid> = seen.iter().map(|s| s.message.message_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!((seen.len(), ids.len()), (60, 60), "each message once");
}
