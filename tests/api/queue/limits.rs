//! The Dispatcher's limits against fake connection actors: fairness between users, a
//! connection's concurrent sends, Lite pacing (gap and daily cap).

use super::fake::{self, accept};
use super::{
    backlog, fast_retries, lane_idle, message, open_window, outbox_states, recipient, send, text,
    user_with_connection, wait_estado,
};
use crate::helpers::{eventually, spawn_app, spawn_app_with};
use serde_json::json;
use sincro_core::connection::ConnectionKind;
use std::time::{Duration, Instant};
use uuid::Uuid;

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
    // The lane reached the cap (its alert) and holds nothing more to send.
    eventually(Duration::from_secs(10), || async {
        (app.count(
            "SELECT count(*) FROM alerts WHERE kind = 'daily_cap_reached'",
            &[],
        )
        .await
            >= 1)
            .then_some(())
    })
    .await
    .expect("the daily cap alert");
    lane_idle(&app).await;
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
