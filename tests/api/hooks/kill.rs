//! `kill -9` of the daemon process in the middle of deliveries: after a restart everything
//! arrives, and repeats keep their delivery id. Strictly one at a time: in order, and at most
//! the delivery in flight at the kill is repeated. Several in flight: at most two rounds (the
//! one in flight and the one whose record was committing).

use super::{Mode, Receiver, seqs};
use crate::helpers::{base_env, fresh_database};
use crate::process;
use sincro_core::seal::Sealer;
use sincro_core::store::events::{self, NewEvent};
use std::collections::HashMap;
use std::time::Duration;

#[tokio::test]
async fn kill_9_mid_delivery_loses_nothing_and_repeats_at_most_the_one_in_flight() {
    const EVENTS: usize = 1000;
    let (got, first_seen) = deliver_across_a_kill(1, EVENTS).await;
    assert_eq!(
        first_seen,
        (1..=EVENTS as i64).collect::<Vec<_>>(),
        "in order"
    );
    let repeats = got - EVENTS;
    assert!(
        repeats <= 1,
        "{repeats} deliveries repeated; at most the one in flight"
    );
}

#[tokio::test]
async fn kill_9_with_several_in_flight_loses_nothing_and_repeats_at_most_two_rounds() {
    // More events: with four in flight the backlog goes faster, and the kill must land in it.
    const EVENTS: usize = 4000;
    const IN_FLIGHT: usize = 4;
    let (got, mut first_seen) = deliver_across_a_kill(IN_FLIGHT as i32, EVENTS).await;
    first_seen.sort();
    assert_eq!(first_seen, (1..=EVENTS as i64).collect::<Vec<_>>());
    let repeats = got - EVENTS;
    assert!(
        repeats <= 2 * IN_FLIGHT,
        "{repeats} deliveries repeated; at most two rounds of {IN_FLIGHT}"
    );
}

/// Delivers `events` to one endpoint taking `max_in_flight` at once, with a `kill -9` of the
/// daemon process once deliveries are under way and a restart. Returns how many requests the
/// receiver accepted and each seq in the order it first arrived; checks on the way that a
/// repeat keeps its delivery id.
async fn deliver_across_a_kill(max_in_flight: i32, events: usize) -> (usize, Vec<i64>) {
    // Arrange: a daemon process whose one endpoint is a local receiver, and a backlog.
    let rx = Receiver::start(Mode::Accept).await;
    let db = fresh_database().await;
    let data = tempfile::tempdir().unwrap();
    let mut env = base_env(&db, data.path());
    env.insert("WEBHOOK_URL_ALLOW".into(), "127.0.0.1/32".into());
    env.insert("WEBHOOK_RETRY_BASE_MS".into(), "20".into());
    env.insert("WEBHOOK_RETRY_MAX_MS".into(), "200".into());
    let mut first = process::serve(env.clone()).await;
    let pool = sincro_core::store::connect_pool(&db, 2).unwrap();
    let (user, key) = {
        let mut client = pool.get().await.unwrap();
        let (made, _) =
            sincro_core::store::users::create_with_key(&mut client, "kill@hooks.test", None, false)
                .await
                .unwrap();
        (made.usuario_id, made.key.plaintext.expose().to_string())
    };
    let http = reqwest::Client::new();
    let created = http
        .post(format!("http://{}/v1/webhooks", first.addr))
        .bearer_auth(&key)
        .json(&serde_json::json!({"url": rx.url, "max_in_flight": max_in_flight}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let sealer = Sealer::from_env_value(&env["ENCRYPTION_KEY"]).unwrap();
    {
        let mut client = pool.get().await.unwrap();
        let tx = client.transaction().await.unwrap();
        let batch: Vec<NewEvent> = (0..events)
            .map(|i| NewEvent {
                usuario_id: user,
                kind: "message.received",
                data: serde_json::json!({"n": i}),
            })
            .collect();
        events::append_many(&tx, &sealer, &batch).await.unwrap();
        tx.commit().await.unwrap();
    }

    // Act: kill -9 once deliveries are under way, then start again on the same DATA_DIR.
    rx.wait_accepted(50, Duration::from_secs(60)).await;
    first.signal(libc::SIGKILL);
    first.exited(Duration::from_secs(30)).await;
    let at_kill = rx.accepted().len();
    assert!(at_kill < events, "the backlog was done before the kill");
    let mut second = process::serve(env.clone()).await;

    // Assert
    let got = {
        let _ = &second;
        crate::helpers::eventually(Duration::from_secs(120), || async {
            let got = rx.accepted();
            let mut distinct = seqs(&got);
            distinct.sort();
            distinct.dedup();
            (distinct.len() == events).then_some(got)
        })
        .await
        .unwrap_or_else(|| panic!("only {} delivered after the restart", rx.accepted().len()))
    };
    let mut first_seen: Vec<i64> = Vec::new();
    let mut ids: HashMap<i64, String> = HashMap::new();
    for r in &got {
        let seq = r.seq().unwrap();
        match ids.get(&seq) {
            Some(id) => assert_eq!(id, r.delivery(), "a repeat keeps its delivery id"),
            None => {
                ids.insert(seq, r.delivery().to_string());
                first_seen.push(seq);
            }
        }
    }
    second.signal(libc::SIGTERM);
    second.exited(Duration::from_secs(30)).await;
    (got.len(), first_seen)
}
