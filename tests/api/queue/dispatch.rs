//! The Dispatcher against fake connection actors: priorities overtaking a backlog, scheduled
//! sends, retries with backoff, permanent failures and the dead letter, uncertain outcomes,
//! unavailable connections, lease recovery, fairness between users, per-connection limits,
//! Lite pacing, statuses that beat the send, and two daemons sharing one backlog.

use super::fake::{self, Script, accept};
use super::{
    backlog, dispatcher, message, open_window, outbox_states, recipient, send, text,
    user_with_connection, wait_estado,
};
use crate::helpers::{eventually, spawn_app, spawn_app_sharing, spawn_app_with};
use serde_json::{Value, json};
use sincro_core::connection::{ConnectionKind, OutboundMessage, SendOutcome};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use uuid::Uuid;

fn fast_retries(env: &mut HashMap<String, String>) {
    env.insert("RETRY_BASE_MS".into(), "50".into());
    env.insert("API_RATE_PER_USER_PER_MINUTE".into(), "100000".into());
    env.insert("API_RATE_PER_IP_PER_MINUTE".into(), "100000".into());
}

#[tokio::test]
async fn queue_high_priority_overtakes_a_backlog() {
    let app = spawn_app_with(fast_retries).await;
    let (_, key, conn) =
        user_with_connection(&app, "lite", json!({"send_rate_per_minute": 600})).await;
    let bulk = backlog(&app, &key, conn, 60, "bulk").await;
    let high = send(&app, &key, &{
        let mut b = text(conn, "+5511900000001", "urgent");
        b["priority"] = json!("high");
        b
    })
    .await;
    let shared = app.app().context().shared.clone();
    let fake = fake::register(
        &shared,
        conn,
        ConnectionKind::Lite,
        accept(),
        Duration::ZERO,
    )
    .await;
    wait_estado(&app, &key, high, "sent", Duration::from_secs(20)).await;
    let order: Vec<Uuid> = fake.seen().iter().map(|s| s.message.message_id).collect();
    let at = order.iter().position(|id| *id == high).unwrap();
    assert!(
        at <= 3,
        "high priority sent {at}th after {:?}",
        &order[..at]
    );
    // And the bulk backlog keeps its age order.
    let bulk_order: Vec<Uuid> = order.iter().copied().filter(|id| *id != high).collect();
    assert_eq!(bulk_order, bulk[..bulk_order.len()]);
}

#[tokio::test]
async fn queue_scheduled_send_waits_for_its_time() {
    let app = spawn_app().await;
    let (_, key, conn) = user_with_connection(&app, "lite", json!({})).await;
    let shared = app.app().context().shared.clone();
    let fake = fake::register(
        &shared,
        conn,
        ConnectionKind::Lite,
        accept(),
        Duration::ZERO,
    )
    .await;
    let when = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let mut body = text(conn, "+5511912345678", "at two");
    body["send_at"] = json!(
        when.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    );
    let started = Instant::now();
    let id = send(&app, &key, &body).await;
    let v = message(&app, &key, id).await;
    assert!(v["send_at"].is_string());
    wait_estado(&app, &key, id, "sent", Duration::from_secs(15)).await;
    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].at.duration_since(started) >= Duration::from_millis(1500),
        "sent early: {:?}",
        seen[0].at.duration_since(started)
    );
}

#[tokio::test]
async fn queue_retries_then_succeeds_and_permanent_errors_fail_at_once() {
    let app = spawn_app_with(fast_retries).await;
    let (user, key, conn) = user_with_connection(&app, "business", json!({})).await;
    open_window(&app, user, conn, "+5511912345678").await;
    open_window(&app, user, conn, "+5511912345679").await;
    let shared = app.app().context().shared.clone();
    let script: Script = Box::new(|m: &OutboundMessage| {
        let body = m.body["text"]["body"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match (body.as_str(), m.attempt) {
            ("flaky", 1 | 2) => SendOutcome::Retry {
                code: Some(131000),
                error: "Something went wrong".into(),
                after: None,
            },
            ("bad", _) => SendOutcome::Failed {
                code: Some(131026),
                error: "Message undeliverable".into(),
            },
            _ => SendOutcome::Sent {
                external_id: format!("fake.{}.{}", m.message_id, m.attempt),
            },
        }
    });
    let fake = fake::register(
        &shared,
        conn,
        ConnectionKind::Business,
        script,
        Duration::ZERO,
    )
    .await;
    let flaky = send(&app, &key, &text(conn, "+5511912345678", "flaky")).await;
    let bad = send(&app, &key, &text(conn, "+5511912345679", "bad")).await;
    let v = wait_estado(&app, &key, flaky, "sent", Duration::from_secs(15)).await;
    assert_eq!(v["attempts"], 3);
    assert_eq!(fake.sends_of(flaky), 3);
    let v = wait_estado(&app, &key, bad, "failed", Duration::from_secs(15)).await;
    assert_eq!(v["attempts"], 1);
    assert_eq!(v["last_code"], 131026);
    assert!(v["error"].as_str().unwrap().contains("131026"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.sends_of(bad), 1, "a permanent error was retried");
    // The dead letter lists it; re-queued, it goes again.
    let dead: Value = app
        .get("/v1/messages/dead-letter", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = dead["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [bad.to_string()]);
    fake.set_script(accept());
    let resp = app
        .post(&format!("/v1/messages/{bad}/requeue"), &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v = wait_estado(&app, &key, bad, "sent", Duration::from_secs(10)).await;
    assert_eq!(v["attempts"], 1);
    let resp = app
        .post(&format!("/v1/messages/{bad}/requeue"), &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
}

#[tokio::test]
async fn queue_gives_up_after_max_attempts() {
    let app = spawn_app_with(|env| {
        fast_retries(env);
        env.insert("OUTBOX_MAX_ATTEMPTS".into(), "3".into());
    })
    .await;
    let (_, key, conn) = user_with_connection(&app, "lite", json!({})).await;
    let shared = app.app().context().shared.clone();
    let script: Script = Box::new(|_| SendOutcome::Retry {
        code: None,
        error: "page busy".into(),
        after: Some(Duration::from_millis(20)),
    });
    let fake = fake::register(&shared, conn, ConnectionKind::Lite, script, Duration::ZERO).await;
    let id = send(&app, &key, &text(conn, "+5511912345678", "never")).await;
    let v = wait_estado(&app, &key, id, "failed", Duration::from_secs(15)).await;
    assert_eq!(v["attempts"], 3);
    assert_eq!(fake.sends_of(id), 3);
    assert!(
        v["last_error"]
            .as_str()
            .unwrap()
            .contains("gave up after 3 attempts"),
        "{v}"
    );
}

#[tokio::test]
async fn queue_uncertain_is_marked_not_resent_and_unavailable_costs_no_attempt() {
    let app = spawn_app_with(fast_retries).await;
    let (_, key, conn) = user_with_connection(&app, "lite", json!({})).await;
    let shared = app.app().context().shared.clone();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = calls.clone();
    let script: Script =
        Box::new(
            move |m: &OutboundMessage| match m.body["text"]["body"].as_str() {
                Some("lost") => SendOutcome::Uncertain {
                    error: "timeout after the request left".into(),
                },
                _ if c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 => {
                    SendOutcome::Unavailable {
                        reason: "not WORKING".into(),
                    }
                }
                _ => SendOutcome::Sent {
                    external_id: format!("fake.{}", m.message_id),
                },
            },
        );
    let fake = fake::register(&shared, conn, ConnectionKind::Lite, script, Duration::ZERO).await;
    let lost = send(&app, &key, &text(conn, "+5511912345678", "lost")).await;
    let v = eventually(Duration::from_secs(10), || async {
        let v = message(&app, &key, lost).await;
        (v["uncertain"] == true).then_some(v)
    })
    .await
    .expect("marked uncertain");
    assert_eq!(v["estado"], "queued");
    assert_eq!(v["queue_state"], "uncertain");
    let later = send(&app, &key, &text(conn, "+5511912345679", "later")).await;
    let v = wait_estado(&app, &key, later, "sent", Duration::from_secs(15)).await;
    assert_eq!(
        v["attempts"], 1,
        "an unavailable connection spent an attempt: {v}"
    );
    assert_eq!(fake.sends_of(later), 2);
    assert_eq!(fake.sends_of(lost), 1, "an uncertain message was resent");
    let dead: Value = app
        .get("/v1/messages/dead-letter", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dead["items"][0]["id"], lost.to_string());
    assert_eq!(dead["items"][0]["uncertain"], true);
}

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
async fn queue_one_users_backlog_does_not_delay_another() {
    let app = spawn_app_with(fast_retries).await;
    let (_, key_a, conn_a) =
        user_with_connection(&app, "lite", json!({"send_rate_per_minute": 600})).await;
    let (_, key_b, conn_b) = user_with_connection(&app, "lite", json!({})).await;
    backlog(&app, &key_a, conn_a, 150, "normal").await;
    let shared = app.app().context().shared.clone();
    let fake_a = fake::register(
        &shared,
        conn_a,
        ConnectionKind::Lite,
        accept(),
        Duration::ZERO,
    )
    .await;
    let fake_b = fake::register(
        &shared,
        conn_b,
        ConnectionKind::Lite,
        accept(),
        Duration::ZERO,
    )
    .await;
    eventually(Duration::from_secs(10), || async {
        (fake_a.seen().len() >= 5).then_some(())
    })
    .await
    .unwrap();
    let started = Instant::now();
    let b = send(&app, &key_b, &text(conn_b, "+5511912345678", "mine")).await;
    wait_estado(&app, &key_b, b, "sent", Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "waited {:?} behind another user's backlog",
        started.elapsed()
    );
    assert_eq!(fake_b.seen().len(), 1);
    assert!(
        fake_a.seen().len() < 150,
        "A's backlog finished first; the test proves nothing"
    );
}

/// Most sends within any `window` in the sorted arrival times.
fn max_in_window(times: &[Instant], window: Duration) -> usize {
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi].duration_since(times[lo]) >= window {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

#[tokio::test]
async fn queue_per_connection_limit_is_kept_and_used() {
    let app = spawn_app_with(|env| {
        fast_retries(env);
        env.insert("PAIR_RATE_BURST".into(), "0".into());
    })
    .await;
    let (user, key, conn) =
        user_with_connection(&app, "business", json!({"send_rate_per_second": 40})).await;
    for i in 0..160 {
        open_window(&app, user, conn, &recipient(i)).await;
    }
    backlog(&app, &key, conn, 160, "bulk").await;
    let shared = app.app().context().shared.clone();
    let fake = fake::register(
        &shared,
        conn,
        ConnectionKind::Business,
        accept(),
        Duration::from_millis(5),
    )
    .await;
    eventually(Duration::from_secs(20), || async {
        (outbox_states(&app).await.get("sent") == Some(&160)).then_some(())
    })
    .await
    .expect("all sent");
    let mut times: Vec<Instant> = fake.seen().iter().map(|s| s.at).collect();
    times.sort();
    let worst = max_in_window(&times, Duration::from_secs(1));
    assert!(
        worst <= 40,
        "{worst} sends in one second with a limit of 40"
    );
    // Most of the limit is used (the benchmark measures it precisely; tests share the CPU).
    let span = times.last().unwrap().duration_since(times[0]).as_secs_f64();
    let rate = (times.len() - 1) as f64 / span;
    assert!(rate >= 32.0, "only {rate:.1}/s of 40/s");
}

#[tokio::test]
async fn queue_lite_pacing_gap_and_daily_cap() {
    let app = spawn_app().await;
    let (_, key, conn) = user_with_connection(
        &app,
        "lite",
        json!({"send_gap_min_ms": 300, "send_gap_max_ms": 400, "daily_send_cap": 3}),
    )
    .await;
    let ids: Vec<Uuid> = {
        let mut v = Vec::new();
        for i in 0..5 {
            v.push(send(&app, &key, &text(conn, &recipient(i), "paced")).await);
        }
        v
    };
    let shared = app.app().context().shared.clone();
    let fake = fake::register(
        &shared,
        conn,
        ConnectionKind::Lite,
        accept(),
        Duration::ZERO,
    )
    .await;
    eventually(Duration::from_secs(10), || async {
        (fake.seen().len() >= 3).then_some(())
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = fake.seen();
    assert_eq!(seen.len(), 3, "the daily cap of 3 was passed");
    for pair in seen.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(
            gap >= Duration::from_millis(290),
            "gap {gap:?} under the configured 300 ms"
        );
    }
    // The rest wait, queued (not dropped, not failed).
    for id in &ids[3..] {
        assert_eq!(message(&app, &key, *id).await["estado"], "queued");
    }
    let client = app.pool().get().await.unwrap();
    let alerts: i64 = client
        .query_one(
            "SELECT count(*) FROM alerts WHERE kind = 'daily_cap_reached'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(alerts, 1);
}

#[tokio::test]
async fn queue_statuses_that_beat_the_send_are_applied() {
    let app = spawn_app().await;
    let (_, key, conn) = user_with_connection(&app, "lite", json!({})).await;
    let id = send(&app, &key, &text(conn, "+5511912345678", "fast ack")).await;
    let client = app.pool().get().await.unwrap();
    client
        .execute(
            "INSERT INTO pending_statuses (connection_id, external_id, estado) VALUES ($1, $2, 'delivered')",
            &[&conn, &format!("fake.{id}.1")],
        )
        .await
        .unwrap();
    let shared = app.app().context().shared.clone();
    fake::register(
        &shared,
        conn,
        ConnectionKind::Lite,
        accept(),
        Duration::ZERO,
    )
    .await;
    let v = wait_estado(&app, &key, id, "delivered", Duration::from_secs(10)).await;
    assert_eq!(v["external_id"], format!("fake.{id}.1"));
    let left: i64 = client
        .query_one("SELECT count(*) FROM pending_statuses", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
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
