//! Failures: a receiver down, then back (everything arrives once, in order; once with several
//! in flight); a 4xx endpoint disabled and alerted; a replay from a seq still retained, and a
//! clear 4xx for one that is not; a cursor that fell behind retention moves on with an
//! `expired` record and an alert.

use super::{Mode, Receiver, create_hook, deliveries, emit, hook, hooks_app, seqs};
use crate::helpers::{eventually, expect_error};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_receiver_down_then_back_gets_everything_once_in_order() {
    let (emitted, got) = down_then_back("hooks-down@test", 1).await;
    assert_eq!(seqs(&got), emitted, "each event once, in order");
}

#[tokio::test]
async fn with_several_in_flight_a_receiver_down_then_back_gets_everything_once() {
    let (emitted, got) = down_then_back("hooks-down4@test", 4).await;
    let mut arrived = seqs(&got);
    arrived.sort();
    assert_eq!(arrived, emitted, "each event once");
}

/// 20 events to an endpoint taking `max_in_flight` at once while its receiver is down, then
/// back; checks that the endpoint was failing with nothing acknowledged, and recovered with
/// every delivery id once and its cursor at the newest event. Returns the seqs emitted and
/// what the receiver accepted.
async fn down_then_back(email: &str, max_in_flight: i32) -> (Vec<i64>, Vec<super::Received>) {
    // Arrange: the receiver drops every connection (down).
    let app = hooks_app(&[]).await;
    let (user, key) = app.user(email, false).await;
    let rx = Receiver::start(Mode::Drop).await;
    let (id, _) = create_hook(
        &app,
        &key,
        json!({"url": rx.url, "max_in_flight": max_in_flight}),
    )
    .await;

    // Act: events while it is down; several retries fail; then it is back.
    let emitted = emit(&app, user, &["message.received"; 20]).await;
    eventually(WAIT, || async {
        let retried = deliveries(&app, &key, id)
            .await
            .iter()
            .filter(|a| a["outcome"] == "retry")
            .count();
        (retried >= 5).then_some(())
    })
    .await
    .expect("retries while down");
    let down = hook(&app, &key, id).await;
    assert!(down["failing_since"].is_string());
    assert_eq!(down["cursor"], 0, "nothing acknowledged while down");
    rx.set(Mode::Accept);

    // Assert
    let got = rx.wait_accepted(20, WAIT).await;
    let mut ids: Vec<&str> = got.iter().map(|r| r.delivery()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20);
    let back = eventually(WAIT, || async {
        let v = hook(&app, &key, id).await;
        (v["cursor"] == 20).then_some(v)
    })
    .await
    .expect("cursor caught up");
    assert!(back["failing_since"].is_null(), "{back}");
    assert_eq!(back["enabled"], true);
    // Nothing more arrives: no delivery was repeated.
    assert_eq!(rx.accepted().len(), 20);
    (emitted, got)
}

#[tokio::test]
async fn an_endpoint_refusing_with_4xx_is_disabled_and_alerted() {
    // Arrange: failing for a second is enough to be disabled.
    let app = hooks_app(&[("WEBHOOK_DISABLE_AFTER_SECS", "1")]).await;
    let (user, key) = app.user("hooks-4xx@test", false).await;
    let rx = Receiver::start(Mode::Status(410)).await;
    let (id, _) = create_hook(&app, &key, json!({"url": rx.url})).await;

    // Act: events keep coming until the endpoint is disabled.
    let disabled = eventually(WAIT, || async {
        emit(&app, user, &["lead.updated"]).await;
        let v = hook(&app, &key, id).await;
        (v["enabled"] == false).then_some(v)
    })
    .await
    .expect("disabled after failing for a second");

    // Assert: each 410 is a permanent failure of its delivery (never retried).
    assert!(
        disabled["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("failing")
    );
    let attempts = deliveries(&app, &key, id).await;
    assert!(!attempts.is_empty());
    assert!(
        attempts
            .iter()
            .all(|a| a["outcome"] == "failed" && a["http_status"] == 410)
    );
    assert!(attempts.iter().all(|a| a["attempt"] == 1), "never retried");
    let alerts = eventually(WAIT, || async {
        let n = app
            .count(
                "SELECT count(*) FROM alerts WHERE kind = 'webhook_disabled'
                   AND usuario_id = $1 AND details->>'webhook_id' = $2",
                &[&user, &id.to_string()],
            )
            .await;
        (n > 0).then_some(n)
    })
    .await;
    assert_eq!(alerts, Some(1));
    // Enabled again, it delivers what comes next.
    rx.set(Mode::Accept);
    let enabled = app
        .patch(&format!("/v1/webhooks/{id}"), &key)
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(enabled.status().as_u16(), 200);
    // What came after the last acknowledged seq (events emitted while it was being disabled,
    // and a new one) arrives, in order.
    let from = disabled["cursor"].as_i64().unwrap() + 1;
    let next = emit(&app, user, &["lead.created"]).await[0];
    let expected: Vec<i64> = (from..=next).collect();
    let got = rx.wait_accepted(expected.len(), WAIT).await;
    assert_eq!(seqs(&got), expected);
}

#[tokio::test]
async fn replay_redelivers_what_is_retained_and_refuses_what_is_not() {
    // Arrange: five events delivered.
    let app = hooks_app(&[]).await;
    let (user, key) = app.user("hooks-replay@test", false).await;
    let rx = Receiver::start(Mode::Accept).await;
    let (id, _) = create_hook(&app, &key, json!({"url": rx.url})).await;
    emit(&app, user, &["lead.updated"; 5]).await;
    let first = rx.wait_accepted(5, WAIT).await;

    // Act
    let replayed = app
        .post(&format!("/v1/webhooks/{id}/replay?since=2"), &key)
        .send()
        .await
        .unwrap();

    // Assert: 3, 4, 5 again, with new delivery ids.
    assert_eq!(replayed.status().as_u16(), 202);
    let all = rx.wait_accepted(8, WAIT).await;
    assert_eq!(seqs(&all[5..]), vec![3, 4, 5]);
    for again in &all[5..] {
        assert!(first.iter().all(|f| f.delivery() != again.delivery()));
    }
    // Past retention (events 1-3 purged) and ahead of the newest: clear 4xx, nothing moved.
    app.count(
        "WITH d AS (DELETE FROM events WHERE usuario_id = $1 AND seq <= 3 RETURNING 1)
         SELECT count(*) FROM d",
        &[&user],
    )
    .await;
    let old = app
        .post(&format!("/v1/webhooks/{id}/replay?since=1"), &key)
        .send()
        .await
        .unwrap();
    let body = expect_error(old, 422, "since_not_retained").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("since=3")
    );
    let ahead = app
        .post(&format!("/v1/webhooks/{id}/replay?since=99"), &key)
        .send()
        .await
        .unwrap();
    expect_error(ahead, 400, "invalid_since").await;
    let ok = app
        .post(&format!("/v1/webhooks/{id}/replay?since=3"), &key)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 202);
}

#[tokio::test]
async fn a_cursor_behind_retention_moves_on_with_a_record_and_an_alert() {
    // Arrange: the receiver is down while retention removes events it never got.
    let app = hooks_app(&[]).await;
    let (user, key) = app.user("hooks-expired@test", false).await;
    let rx = Receiver::start(Mode::Drop).await;
    let (id, _) = create_hook(&app, &key, json!({"url": rx.url})).await;
    emit(&app, user, &["lead.updated"; 5]).await;
    eventually(WAIT, || async { (!rx.got().is_empty()).then_some(()) })
        .await
        .expect("a first attempt");
    // Disabled meanwhile so the lane lets go of what it read; events 1-3 are purged.
    let patch = |enabled: bool| {
        app.patch(&format!("/v1/webhooks/{id}"), &key)
            .json(&json!({"enabled": enabled}))
            .send()
    };
    assert_eq!(patch(false).await.unwrap().status().as_u16(), 200);
    app.count(
        "WITH d AS (DELETE FROM events WHERE usuario_id = $1 AND seq <= 3 RETURNING 1)
         SELECT count(*) FROM d",
        &[&user],
    )
    .await;

    // Act
    rx.set(Mode::Accept);
    assert_eq!(patch(true).await.unwrap().status().as_u16(), 200);

    // Assert: what retention kept arrives; the `alert` events the gap raises may follow it.
    let got = rx.wait_accepted(2, WAIT).await;
    let (leads, others): (Vec<_>, Vec<_>) = got
        .into_iter()
        .partition(|r| r.headers.get("x-sincro-event").map(String::as_str) == Some("lead.updated"));
    assert_eq!(seqs(&leads), vec![4, 5]);
    assert!(
        others
            .iter()
            .all(|r| r.headers["x-sincro-event"] == "alert"),
        "only alerts besides the kept events"
    );
    let attempts = deliveries(&app, &key, id).await;
    let expired = attempts
        .iter()
        .find(|a| a["outcome"] == "expired")
        .expect("an expired record");
    assert_eq!(expired["seq"], 3);
    let alerted = eventually(WAIT, || async {
        let n = app
            .count(
                "SELECT count(*) FROM alerts WHERE kind = 'webhook_events_expired' AND usuario_id = $1",
                &[&user],
            )
            .await;
        (n > 0).then_some(n)
    })
    .await;
    assert_eq!(alerted, Some(1));
}
