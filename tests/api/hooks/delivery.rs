//! Delivery to local receivers: the stream's frame, signed, in seq order, filtered by type;
//! both secrets sign during a rotation; a test delivery; a changed URL takes the next event at
//! once; deleting an endpoint or its user removes its delivery records; a hanging endpoint
//! delays neither another endpoint nor the WebSocket stream; two nodes never deliver one event
//! twice.

use super::{Mode, Receiver, create_hook, emit, hooks_app, seqs};
use crate::helpers::{eventually, spawn_app_sharing};
use futures::StreamExt;
use serde_json::json;
use sincro_core::hooks::sign;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test]
async fn events_arrive_in_order_signed_as_the_streams_frames_and_filtered() {
    // Arrange
    let app = hooks_app(&[]).await;
    let (user, key) = app.user("hooks-order@test", false).await;
    let rx = Receiver::start(Mode::Accept).await;
    let (id, secret) =
        create_hook(&app, &key, json!({"url": rx.url, "types": ["message.*"]})).await;

    // Act: 60 events, two of every three of a type the endpoint asked for.
    let kinds: Vec<&'static str> = (0..60)
        .map(|i| match i % 3 {
            0 => "message.received",
            1 => "message.status",
            _ => "lead.updated",
        })
        .collect();
    let seqs_emitted = emit(&app, user, &kinds).await;

    // Assert
    let got = rx.wait_accepted(40, WAIT).await;
    let wanted: Vec<i64> = seqs_emitted
        .iter()
        .zip(&kinds)
        .filter(|(_, k)| k.starts_with("message."))
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(
        seqs(&got),
        wanted,
        "every matching event once, in seq order"
    );
    let client = app.pool().get().await.unwrap();
    let stored =
        sincro_core::store::events::read_after(&client, &app.app().context().sealer, user, 0, 100)
            .await
            .unwrap();
    for r in &got {
        let seq = r.seq().unwrap();
        let event = stored.iter().find(|e| e.seq == seq).unwrap();
        let frame = sincro_core::hub::Frame::from_event(event);
        assert_eq!(r.body, &*frame.json, "the body is the stream's frame");
        assert_eq!(r.headers["x-sincro-event"], event.kind);
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(r.headers["x-sincro-webhook"], id.to_string());
        assert_eq!(
            r.delivery(),
            sign::delivery_id(id, 0, seq).to_string(),
            "stable delivery id"
        );
        let signature = &r.headers["x-sincro-signature"];
        assert!(sign::verify(
            &secret,
            signature,
            r.body.as_bytes(),
            now(),
            300
        ));
        assert!(!sign::verify(&secret, signature, b"{}", now(), 300));
    }
    // The cursor follows, and the deliveries are listed with their outcome.
    let view = eventually(WAIT, || async {
        let v = super::hook(&app, &key, id).await;
        (v["cursor"] == json!(seqs_emitted.last().unwrap())).then_some(v)
    })
    .await
    .expect("cursor at the newest event");
    assert_eq!(view["lag_events"], 0);
    let attempts = super::deliveries(&app, &key, id).await;
    assert_eq!(attempts.len(), 40);
    assert!(attempts.iter().all(|a| a["outcome"] == "delivered"
        && a["http_status"] == 200
        && a["latency_ms"].is_number()));
}

#[tokio::test]
async fn deleting_an_endpoint_or_its_user_removes_its_delivery_records() {
    // Arrange: two endpoints of one user, each with delivery records.
    let app = hooks_app(&[]).await;
    let (user, key) = app.user("hooks-delete@test", false).await;
    let rx = Receiver::start(Mode::Accept).await;
    let (first, _) = create_hook(&app, &key, json!({"url": rx.url})).await;
    let (second, _) = create_hook(&app, &key, json!({"url": rx.url})).await;
    emit(&app, user, &["lead.created", "lead.updated"]).await;
    rx.wait_accepted(4, WAIT).await;
    let records = |id: uuid::Uuid| {
        let app = &app;
        async move {
            app.count(
                "SELECT count(*) FROM event_webhook_attempts WHERE webhook_id = $1",
                &[&id],
            )
            .await
        }
    };
    let both = eventually(WAIT, || async {
        (records(first).await == 2 && records(second).await == 2).then_some(())
    })
    .await;
    assert!(both.is_some(), "two records per endpoint");

    // Act / Assert: deleting one endpoint removes its records only.
    let deleted = app
        .delete(&format!("/v1/webhooks/{first}"), &key)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 200);
    assert_eq!(records(first).await, 0);
    assert_eq!(records(second).await, 2);

    // Act / Assert: deleting the user removes its endpoints and their records.
    let client = app.pool().get().await.unwrap();
    client
        .execute("DELETE FROM usuarios WHERE id = $1", &[&user])
        .await
        .unwrap();
    assert_eq!(records(second).await, 0);
}

#[tokio::test]
async fn during_a_rotation_both_secrets_sign_and_a_test_delivery_goes_out_now() {
    // Arrange
    let app = hooks_app(&[]).await;
    let (user, key) = app.user("hooks-rotate@test", false).await;
    let rx = Receiver::start(Mode::Accept).await;
    let (id, old) = create_hook(&app, &key, json!({"url": rx.url})).await;

    // Act
    let rotated: serde_json::Value = app
        .post(&format!("/v1/webhooks/{id}/rotate-secret"), &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new = rotated["secret"].as_str().unwrap().to_string();
    emit(&app, user, &["lead.created"]).await;
    let got = rx.wait_accepted(1, WAIT).await;
    let tested: serde_json::Value = app
        .post(&format!("/v1/webhooks/{id}/test"), &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // Assert
    let signature = &got[0].headers["x-sincro-signature"];
    assert_eq!(signature.matches("v1=").count(), 2, "{signature}");
    for secret in [&new, &old] {
        assert!(sign::verify(
            secret,
            signature,
            got[0].body.as_bytes(),
            now(),
            300
        ));
    }
    assert_eq!(tested["delivered"], true, "{tested}");
    assert_eq!(tested["status"], 200);
    let test = rx.wait_accepted(2, WAIT).await.pop().unwrap();
    assert_eq!(test.headers["x-sincro-event"], "webhook.test");
    assert!(test.seq().is_none());
    let body: serde_json::Value = serde_json::from_str(&test.body).unwrap();
    assert_eq!(body["seq"], serde_json::Value::Null);
    assert_eq!(body["data"]["webhook_id"], id.to_string());
}

#[tokio::test]
async fn a_new_url_takes_the_very_next_event_of_an_idle_endpoint() {
    // Arrange: an endpoint that delivered and went idle; its lane's poll set far off, so only
    // the change's announcement can make it reload before the next event.
    let app = hooks_app(&[("WEBHOOK_POLL_MS", "600000")]).await;
    let (user, key) = app.user("hooks-moved@test", false).await;
    let (old_rx, new_rx) = (
        Receiver::start(Mode::Accept).await,
        Receiver::start(Mode::Accept).await,
    );
    let (id, _) = create_hook(&app, &key, json!({"url": old_rx.url})).await;
    let first = emit(&app, user, &["lead.created"]).await[0];
    assert_eq!(seqs(&old_rx.wait_accepted(1, WAIT).await), vec![first]);

    // Act
    let moved = app
        .patch(&format!("/v1/webhooks/{id}"), &key)
        .json(&json!({"url": new_rx.url}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status().as_u16(), 200);
    let next = emit(&app, user, &["lead.updated"]).await[0];

    // Assert: the next event goes to the new URL only (a lane that had not reloaded would
    // have sent it to the old one first, and only then found the change).
    assert_eq!(seqs(&new_rx.wait_accepted(1, WAIT).await), vec![next]);
    assert_eq!(seqs(&old_rx.got()), vec![first]);
}

#[tokio::test]
async fn a_hanging_endpoint_delays_neither_another_endpoint_nor_the_stream() {
    // Arrange: one endpoint never answers (its attempt waits out a 60 s timeout).
    let app = hooks_app(&[
        ("WEBHOOK_TIMEOUT_MS", "60000"),
        ("WEBHOOK_LEASE_SECS", "120"),
    ])
    .await;
    let (user, key) = app.user("hooks-hang@test", false).await;
    let hanging = Receiver::start(Mode::Hang).await;
    let fast = Receiver::start(Mode::Accept).await;
    create_hook(&app, &key, json!({"url": hanging.url})).await;
    create_hook(&app, &key, json!({"url": fast.url})).await;
    let url = format!(
        "{}/v1/stream?access_token={key}",
        app.base.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();

    // Act
    emit(&app, user, &["lead.created"]).await;
    eventually(WAIT, || async { (!hanging.got().is_empty()).then_some(()) })
        .await
        .expect("the hanging endpoint got its first delivery");
    let kinds = vec!["lead.updated"; 30];
    emit(&app, user, &kinds).await;

    // Assert: all 31 reached the other endpoint and the stream while the first attempt to the
    // hanging one is still open (nothing retried, nothing further sent to it).
    let got = fast.wait_accepted(31, WAIT).await;
    assert_eq!(seqs(&got), (1..=31).collect::<Vec<i64>>());
    let mut frames = 0;
    while frames < 31 {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("stream frame in time")
            .unwrap()
            .unwrap();
        if msg.is_text() {
            frames += 1;
        }
    }
    assert_eq!(hanging.got().len(), 1, "still on its first attempt");
}

#[tokio::test]
async fn two_nodes_never_deliver_one_event_twice() {
    // Arrange: two daemons on one database, three endpoints.
    let a = hooks_app(&[]).await;
    let b = spawn_app_sharing(&a).await;
    let (user, key) = a.user("hooks-nodes@test", false).await;
    let mut receivers = Vec::new();
    for _ in 0..3 {
        let rx = Receiver::start(Mode::Accept).await;
        create_hook(&a, &key, json!({"url": rx.url})).await;
        receivers.push(rx);
    }

    // Act: events written through both nodes.
    for round in 0..10 {
        let node = if round % 2 == 0 { &a } else { &b };
        emit(node, user, &["lead.updated"; 10]).await;
    }

    // Assert
    for rx in &receivers {
        let got = rx.wait_accepted(100, WAIT).await;
        assert_eq!(seqs(&got), (1..=100).collect::<Vec<i64>>());
    }
    let owners = a
        .count(
            "SELECT count(DISTINCT split_part(lease_owner, '/', 1)) FROM event_webhooks",
            &[],
        )
        .await;
    assert!(owners >= 1);
}

#[tokio::test]
async fn a_crashed_dispatcher_is_restarted_and_delivery_resumes_at_the_cursor() {
    // Arrange: a backlog being delivered.
    let app = hooks_app(&[]).await;
    let (user, key) = app.user("hooks-crash@test", false).await;
    let rx = Receiver::start(Mode::Accept).await;
    create_hook(&app, &key, json!({"url": rx.url})).await;
    emit(&app, user, &["message.received"; 300]).await;
    rx.wait_accepted(20, WAIT).await;

    // Act: the HookDispatcher panics (its lanes end with it).
    let daemon = app.app().context().actors.daemon.clone();
    let crashed = daemon
        .call(
            |reply| sincro_core::daemon::DaemonMessage::Crash {
                child: "hook_dispatcher".into(),
                reply,
            },
            Some(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert!(matches!(crashed, ractor::rpc::CallResult::Success(true)));

    // Assert: everything arrives in order; at most the delivery in flight is repeated.
    let got = eventually(Duration::from_secs(60), || async {
        let got = rx.accepted();
        let mut distinct = seqs(&got);
        distinct.dedup();
        (distinct.len() >= 300).then_some(got)
    })
    .await
    .expect("all 300 delivered after the restart");
    let mut distinct = seqs(&got);
    distinct.dedup();
    assert_eq!(distinct, (1..=300).collect::<Vec<i64>>());
    assert!(got.len() - 300 <= 1, "{} repeated", got.len() - 300);
}
