//! The Dispatcher against fake connection actors: priorities overtaking a backlog, scheduled
//! sends, retries with backoff, permanent failures and the dead letter, uncertain outcomes,
//! unavailable connections, and statuses that beat the send.

use super::fake::{self, Script, accept};
use super::{
    backlog, fast_retries, lane_idle, message, open_window, send, text, user_with_connection,
    wait_estado,
};
use crate::helpers::{eventually, plan_of, spawn_app, spawn_app_with};
use serde_json::{Value, json};
use sincro_core::connection::{ConnectionKind, OutboundMessage, SendOutcome};
use std::time::{Duration, Instant};
use uuid::Uuid;

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
    // The lane holds and sends nothing more: a retry would have had to happen by now.
    lane_idle(&app).await;
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

/// The largest number of rows any node of an `EXPLAIN (ANALYZE, FORMAT JSON)` plan produced.
fn most_rows(node: &Value) -> u64 {
    let own =
        node["Actual Rows"].as_u64().unwrap_or(0) * node["Actual Loops"].as_u64().unwrap_or(1);
    node["Plans"]
        .as_array()
        .into_iter()
        .flatten()
        .map(most_rows)
        .fold(own, u64::max)
}

#[tokio::test]
async fn queue_next_due_finds_the_earliest_pending_row_without_reading_the_backlog() {
    // Arrange: a scheduled campaign of 20,000 bulk rows due in two hours, one normal message
    // due in one, a high one due in three, and a row sent already (not pending) due long ago.
    let app = spawn_app().await;
    let (user, _, conn) = user_with_connection(&app, "business", json!({})).await;
    let client = app.pool().get().await.unwrap();
    client
        .batch_execute(&format!(
            "WITH c AS (INSERT INTO conversaciones (usuario_id, servicio_origen, tipo, remitente, connection_id)
                 VALUES ('{user}', 'whatsapp', 'saliente', '+5511900000000', '{conn}') RETURNING id),
             m AS (INSERT INTO mensajes_conversacion (id, conversacion_id, usuario_id, connection_id, tipo, remitente, canal, direccion, estado)
                 SELECT gen_random_uuid(), c.id, '{user}', '{conn}', 'texto', '+5511900000000', 'whatsapp', 'saliente', 'queued'
                 FROM c, generate_series(1, 20003) RETURNING id)
             INSERT INTO outbox (message_id, usuario_id, connection_id, recipient, payload, priority, state, due_at)
             SELECT id, '{user}', '{conn}', '+5511900000000', 'x',
                 CASE WHEN n <= 20000 THEN 2 WHEN n = 20001 THEN 1 ELSE 0 END,
                 CASE WHEN n = 20003 THEN 'sent' ELSE 'pending' END,
                 CASE WHEN n <= 20000 THEN now() + interval '2 hours'
                      WHEN n = 20001 THEN now() + interval '1 hour'
                      WHEN n = 20002 THEN now() + interval '3 hours'
                      ELSE now() - interval '1 day' END
             FROM (SELECT id, row_number() OVER () AS n FROM m) x"
        ))
        .await
        .unwrap();
    // Act
    let due = sincro_core::outbound::claim::next_due(&client, conn)
        .await
        .unwrap()
        .expect("rows are pending");
    let plan = plan_of(
        &client,
        "ANALYZE,",
        sincro_core::outbound::claim::NEXT_DUE_SQL,
        &[&conn],
    )
    .await;
    // Assert: the normal message's hour, whatever the priorities; a few index entries read
    // for each of the three priorities, not the campaign's 20,000.
    assert!(
        due > Duration::from_secs(3500) && due <= Duration::from_secs(3600),
        "{due:?}"
    );
    let read = most_rows(&plan[0]["Plan"]);
    assert!(read <= 10, "a plan node produced {read} rows: {plan}");
}
