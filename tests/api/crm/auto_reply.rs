//! Automatic answers (`settings.auto_reply`): to a contact's first message, or to any message
//! while the business is closed, once per contact per window, never to the user's own
//! messages; each one a normal queued message that Meta receives and that gets its statuses.

use super::{WAIT, contact_writes, set_settings, stored, text};
use crate::helpers::{BusinessNumber, TestApp, eventually, spawn_business_app};
use serde_json::{Value, json};
use sincro_sim::graph::GraphSimConfig;

const ANSWER: &str = "Gracias por escribir, ya te respondemos";

/// How many messages the number sent to `phone` (as the simulator received them).
async fn sent_to(app: &TestApp, sim: &str, n: &BusinessNumber, phone: &str) -> Vec<Value> {
    let sent: Value = app
        .http
        .get(format!(
            "{sim}/sim/sent?phone_number_id={}",
            n.phone_number_id
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let digits = phone.trim_start_matches('+');
    sent.as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            ["to", "wa_id"].iter().any(|k| {
                s[*k]
                    .as_str()
                    .is_some_and(|t| t.trim_start_matches('+') == digits)
            })
        })
        .cloned()
        .collect()
}

/// Waits until the number sent `count` messages to `phone`; returns them.
async fn answered(
    app: &TestApp,
    sim: &str,
    n: &BusinessNumber,
    phone: &str,
    count: usize,
) -> Vec<Value> {
    eventually(WAIT, || async {
        let s = sent_to(app, sim, n, phone).await;
        (s.len() >= count).then_some(s)
    })
    .await
    .unwrap_or_else(|| panic!("{count} answer(s) to {phone}"))
}

fn config(extra: Value) -> Value {
    let mut c = json!({"text": ANSWER, "window_minutes": 60});
    c.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"auto_reply": true, "auto_reply_config": c})
}

#[tokio::test]
async fn crm_auto_reply_answers_first_messages_once_per_window() {
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (user, key) = app.user("crm-auto@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;
    set_settings(&app, n.connection_id, config(json!({}))).await;
    let sim = sim.base_url();
    let (a, b, c, d) = (
        "+5511987650301",
        "+5511987650302",
        "+5511987650303",
        "+5511987650304",
    );

    // A first message is answered with the configured text, through the queue.
    contact_writes(&app, &sim, &n, a, text("hola")).await;
    let to_a = answered(&app, &sim, &n, a, 1).await;
    assert_eq!(to_a[0]["type"], "text");
    assert_eq!(to_a[0]["request"]["text"]["body"], ANSWER);
    let delivered = eventually(WAIT, || async {
        let n = app
            .count(
                "SELECT count(*) FROM mensajes_conversacion WHERE usuario_id = $1 AND direccion = 'saliente'
                   AND metadata->>'auto_reply' = 'true' AND estado IN ('sent', 'delivered', 'read')",
                &[&user],
            )
            .await;
        (n == 1).then_some(())
    });
    assert!(
        delivered.await.is_some(),
        "the answer is a normal message with its statuses"
    );

    // A second message within the window is not answered: B's first message, written after
    // it, is answered, and by then A still has one.
    contact_writes(&app, &sim, &n, a, text("¿hay alguien?")).await;
    contact_writes(&app, &sim, &n, b, text("hola")).await;
    answered(&app, &sim, &n, b, 1).await;
    assert_eq!(sent_to(&app, &sim, &n, a).await.len(), 1);

    // The user's own message from the Business app is never answered.
    let echo: Value = app
        .http
        .post(format!("{sim}/sim/echo"))
        .json(
            &json!({"phone_number_id": n.phone_number_id, "to": c, "message": text("¿te ayudo?")}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stored(&app, echo["id"].as_str().unwrap()).await;
    contact_writes(&app, &sim, &n, d, text("hola")).await;
    answered(&app, &sim, &n, d, 1).await;
    assert!(
        sent_to(&app, &sim, &n, c).await.is_empty(),
        "C, written to from the Business app, was not answered"
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM auto_replies WHERE connection_id = $1 AND message_id IS NOT NULL",
            &[&n.connection_id]
        )
        .await,
        3
    );
}

#[tokio::test]
async fn crm_auto_reply_answers_outside_business_hours() {
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (_user, key) = app.user("crm-hours@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;
    let sim = sim.base_url();
    let (e, f) = ("+5511987650311", "+5511987650312");

    // Off by default: the first message goes unanswered (decided as it is stored).
    contact_writes(&app, &sim, &n, e, text("hola")).await;
    let decided = "SELECT count(*) FROM auto_replies WHERE connection_id = $1";
    assert_eq!(app.count(decided, &[&n.connection_id]).await, 0);

    // Closed all week (no opening hours), so a later message is answered: once.
    set_settings(
        &app,
        n.connection_id,
        config(
            json!({"business_hours": {"time_zone": "America/Sao_Paulo", "weekly": {},
                                          "holidays": ["2026-12-25"]}}),
        ),
    )
    .await;
    contact_writes(&app, &sim, &n, e, text("¿están?")).await;
    let to_e = answered(&app, &sim, &n, e, 1).await;
    assert_eq!(to_e[0]["request"]["text"]["body"], ANSWER);
    contact_writes(&app, &sim, &n, e, text("¿hola?")).await;
    contact_writes(&app, &sim, &n, f, text("hola")).await;
    answered(&app, &sim, &n, f, 1).await;
    assert_eq!(sent_to(&app, &sim, &n, e).await.len(), 1);
}

#[tokio::test]
async fn crm_auto_reply_left_pending_by_a_stopped_daemon_is_queued_once() {
    // Arrange: automatic answers configured, but off while G writes, so nothing answers it;
    // then the row a daemon killed between the decision's commit and the queueing leaves
    // behind: G's slot claimed, the answer pending for two minutes.
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (user, key) = app.user("crm-pending@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;
    let sim = sim.base_url();
    let g = "+5511987650321";
    let mut off = config(json!({}));
    off["auto_reply"] = json!(false);
    set_settings(&app, n.connection_id, off).await;
    let inbound = contact_writes(&app, &sim, &n, g, text("hola")).await;
    let client = app.pool().get().await.unwrap();
    let cut_off =
        "INSERT INTO auto_replies (connection_id, contact, replied_at, in_reply_to, pending)
                   VALUES ($1, $2, now() - interval '2 minutes', $3, true)
                   ON CONFLICT (connection_id, contact) DO UPDATE
                   SET replied_at = now() - interval '2 minutes', pending = true";
    client
        .execute(cut_off, &[&n.connection_id, &g, &inbound])
        .await
        .unwrap();
    let shared = app.app().context().shared.clone();

    // Act: one sweep (the poller's own, every 30 s, may run too: either queues it, once).
    sincro_core::crm::auto_reply::resume_pending(&shared)
        .await
        .unwrap();

    // Assert: the answer is queued and reaches the contact; the slot is settled.
    let to_g = answered(&app, &sim, &n, g, 1).await;
    assert_eq!(to_g[0]["request"]["text"]["body"], ANSWER);
    let settled = "SELECT count(*) FROM auto_replies
                   WHERE connection_id = $1 AND NOT pending AND message_id IS NOT NULL";
    assert_eq!(app.count(settled, &[&n.connection_id]).await, 1);

    // Act + Assert: cut off again after the queueing but before the slot was settled: the
    // sweep finds the answer already queued (same key) and queues nothing more.
    client
        .execute(cut_off, &[&n.connection_id, &g, &inbound])
        .await
        .unwrap();
    sincro_core::crm::auto_reply::resume_pending(&shared)
        .await
        .unwrap();
    let answers = "SELECT count(*) FROM mensajes_conversacion
                   WHERE usuario_id = $1 AND metadata->>'auto_reply' = 'true'";
    assert_eq!(app.count(answers, &[&user]).await, 1);
    assert_eq!(app.count(settled, &[&n.connection_id]).await, 1);
}
