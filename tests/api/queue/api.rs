//! `POST /v1/messages` and friends: validation (nothing written on bad input), ownership,
//! the 24 h window and template approval for Business, Lite types, idempotency (also under
//! concurrency), cancel, GET.

use super::fake::{self, accept};
use super::{open_window, outbox_states, send, text, user_with_connection, wait_estado};
use crate::helpers::{expect_error, spawn_app};
use serde_json::{Value, json};
use sincro_core::connection::ConnectionKind;
use std::time::Duration;
use uuid::Uuid;

const TO: &str = "+5511987654321";

#[tokio::test]
async fn queue_bad_requests_change_nothing() {
    let app = spawn_app().await;
    let (user, key, conn) = user_with_connection(&app, "business", json!({})).await;
    open_window(&app, user, conn, TO).await;
    let (_, _, lite) = user_with_connection(&app, "lite", json!({})).await;
    let (_, other_key, _) = user_with_connection(&app, "business", json!({})).await;
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"to": TO, "type": "text", "text": {"body": "x"}}),
            400,
            "missing_connection_id",
        ),
        (
            json!({"connection_id": conn, "type": "text", "text": {"body": "x"}}),
            400,
            "invalid_phone",
        ),
        (
            json!({"connection_id": conn, "to": TO, "type": "fax", "fax": {}}),
            400,
            "invalid_message",
        ),
        (
            json!({"connection_id": conn, "to": TO, "type": "text", "text": {"body": "x".repeat(4097)}}),
            400,
            "invalid_message",
        ),
        (
            json!({"connection_id": conn, "to": TO, "type": "text", "text": {"body": "x"}, "priority": "urgent"}),
            400,
            "invalid_priority",
        ),
        (
            json!({"connection_id": conn, "to": TO, "type": "text", "text": {"body": "x"}, "send_at": "soon"}),
            400,
            "invalid_send_at",
        ),
        (
            json!({"connection_id": conn, "to": TO, "type": "image", "image": {"id": "1", "link": "https://x.io/a.png"}}),
            400,
            "invalid_message",
        ),
        (
            json!({"connection_id": conn, "to": "not a phone", "type": "text", "text": {"body": "x"}}),
            422,
            "invalid_phone",
        ),
        (
            json!({"connection_id": Uuid::new_v4(), "to": TO, "type": "text", "text": {"body": "x"}}),
            404,
            "not_found",
        ),
        // Outside the 24 h window: free-form refused, a template suggested.
        (
            text(conn, "+5511912345678", "x"),
            422,
            "outside_service_window",
        ),
        (
            json!({"connection_id": conn, "to": TO, "type": "template", "template": {"name": "nope", "language": {"code": "en_US"}}}),
            422,
            "template_not_found",
        ),
        (
            json!({"connection_id": lite, "to": TO, "type": "template", "template": {"name": "t", "language": {"code": "en_US"}}}),
            404,
            "not_found",
        ),
    ];
    for (body, status, code) in cases {
        let resp = app
            .post("/v1/messages", &key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let got = expect_error(resp, status, code).await;
        if code == "outside_service_window" {
            assert!(
                got["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("template")
            );
        }
    }
    // Another user's connection is a 404 too.
    let resp = app
        .post("/v1/messages", &other_key)
        .json(&text(conn, TO, "x"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "not_found").await;
    // Not JSON.
    let resp = app
        .post("/v1/messages", &key)
        .body("{")
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "invalid_body").await;
    assert!(outbox_states(&app).await.is_empty());
    let client = app.pool().get().await.unwrap();
    let n: i64 = client
        .query_one("SELECT count(*) FROM mensajes_conversacion", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);

    // A template must be APPROVED.
    client
        .execute(
            "INSERT INTO whatsapp_templates (usuario_id, connection_id, name, language, status) VALUES ($1, $2, 'promo', 'en_US', 'PENDING')",
            &[&user, &conn],
        )
        .await
        .unwrap();
    let tpl = json!({"connection_id": conn, "to": "+5511912345678", "type": "template", "template": {"name": "promo", "language": {"code": "en_US"}}});
    let resp = app
        .post("/v1/messages", &key)
        .json(&tpl)
        .send()
        .await
        .unwrap();
    expect_error(resp, 422, "template_not_approved").await;
    client
        .execute("UPDATE whatsapp_templates SET status = 'APPROVED'", &[])
        .await
        .unwrap();
    send(&app, &key, &tpl).await; // outside the window, a template is fine

    // Lite: no templates or interactive messages.
    let (_, lite_key, lite) = user_with_connection(&app, "lite", json!({})).await;
    let tpl_lite = json!({"connection_id": lite, "to": TO, "type": "template", "template": {"name": "t", "language": {"code": "en_US"}}});
    let resp = app
        .post("/v1/messages", &lite_key)
        .json(&tpl_lite)
        .send()
        .await
        .unwrap();
    expect_error(resp, 422, "unsupported_for_lite").await;
    // Lite has no 24 h window.
    send(&app, &lite_key, &text(lite, "+5511912345678", "hello")).await;
}

#[tokio::test]
async fn queue_send_get_and_events() {
    let app = spawn_app().await;
    let (user, key, conn) = user_with_connection(&app, "business", json!({})).await;
    open_window(&app, user, conn, TO).await;
    let shared = app.app().context().shared.clone();
    let fake = fake::register(
        &shared,
        conn,
        ConnectionKind::Business,
        accept(),
        Duration::ZERO,
    )
    .await;
    let id = send(
        &app,
        &key,
        &json!({"connection_id": conn, "to": "+55 11 98765-4321", "type": "text",
        "text": {"body": "hello"}, "context": {"message_id": "wamid.IN1"}}),
    )
    .await;
    let v = wait_estado(&app, &key, id, "sent", Duration::from_secs(10)).await;
    assert_eq!(v["attempts"], 1);
    assert_eq!(v["queue_state"], "sent");
    assert_eq!(v["uncertain"], false);
    assert_eq!(v["to"], TO);
    assert_eq!(v["external_id"], format!("fake.{id}.1"));
    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].message.to, TO);
    assert_eq!(
        seen[0].message.body,
        json!({"type": "text", "text": {"body": "hello"}, "context": {"message_id": "wamid.IN1"}})
    );
    // The body is sealed at rest, and the conversation shows it opened.
    let client = app.pool().get().await.unwrap();
    let row = client
        .query_one("SELECT payload FROM outbox WHERE message_id = $1", &[&id])
        .await
        .unwrap();
    assert!(!row.get::<_, String>(0).contains("hello"));
    // Events: queued then sent.
    let statuses: Vec<String> =
        sincro_core::store::events::read_after(&client, &app.app().context().sealer, user, 0, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "message.status" && e.data["message_id"] == id.to_string())
            .map(|e| e.data["status"].as_str().unwrap().to_string())
            .collect();
    assert_eq!(statuses, ["queued", "sent"]);
    // Another user sees nothing.
    let (_, other, _) = user_with_connection(&app, "business", json!({})).await;
    let resp = app
        .get(&format!("/v1/messages/{id}"), &other)
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "not_found").await;
}

#[tokio::test]
async fn queue_idempotency_key() {
    let app = spawn_app().await;
    let (user, key, conn) = user_with_connection(&app, "business", json!({})).await;
    open_window(&app, user, conn, TO).await;
    let body = text(conn, TO, "once");
    let first = app
        .post("/v1/messages", &key)
        .header("Idempotency-Key", "k-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    // Same key, same body (keys in another order): the first message, nothing new.
    let again = app
        .post("/v1/messages", &key)
        .header("Idempotency-Key", "k-1")
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"text":{{"body":"once"}},"type":"text","to":"{TO}","connection_id":"{conn}"}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    // Same key, another body: 409.
    let resp = app
        .post("/v1/messages", &key)
        .header("Idempotency-Key", "k-1")
        .json(&text(conn, TO, "twice"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 409, "idempotency_key_reused").await;
    // Concurrent duplicates: one message.
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let req = app
                .post("/v1/messages", &key)
                .header("Idempotency-Key", "k-2")
                .json(&text(conn, TO, "race"));
            tokio::spawn(async move { req.send().await.unwrap() })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let resp = t.await.unwrap();
        assert_eq!(resp.status(), 202);
        let v: Value = resp.json().await.unwrap();
        ids.insert(v["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(outbox_states(&app).await["pending"], 2);
    // Keys are per user: another user may use "k-1".
    let (user2, key2, conn2) = user_with_connection(&app, "business", json!({})).await;
    open_window(&app, user2, conn2, TO).await;
    let resp = app
        .post("/v1/messages", &key2)
        .header("Idempotency-Key", "k-1")
        .json(&text(conn2, TO, "other"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let resp = app
        .post("/v1/messages", &key)
        .header("Idempotency-Key", "")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn queue_cancel_only_before_sending() {
    let app = spawn_app().await;
    let (user, key, conn) = user_with_connection(&app, "business", json!({})).await;
    open_window(&app, user, conn, TO).await;
    let shared = app.app().context().shared.clone();
    let fake = fake::register(
        &shared,
        conn,
        ConnectionKind::Business,
        accept(),
        Duration::ZERO,
    )
    .await;
    let later = (time::OffsetDateTime::now_utc() + time::Duration::seconds(3))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let mut body = text(conn, TO, "later");
    body["send_at"] = json!(later);
    let id = send(&app, &key, &body).await;
    let resp = app
        .post(&format!("/v1/messages/{id}/cancel"), &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        (v["estado"].as_str(), v["queue_state"].as_str()),
        (Some("cancelled"), Some("cancelled"))
    );
    // Sent ones cannot be cancelled.
    let sent = send(&app, &key, &text(conn, TO, "now")).await;
    wait_estado(&app, &key, sent, "sent", Duration::from_secs(10)).await;
    let resp = app
        .post(&format!("/v1/messages/{sent}/cancel"), &key)
        .send()
        .await
        .unwrap();
    expect_error(resp, 409, "not_cancellable").await;
    let resp = app
        .post(&format!("/v1/messages/{}/cancel", Uuid::new_v4()), &key)
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "not_found").await;
    // A message due at the same moment, queued after it: once that one is sent, the lane has
    // passed the cancelled one's time.
    let mut after = text(conn, TO, "after");
    after["send_at"] = json!(later);
    let after = send(&app, &key, &after).await;
    wait_estado(&app, &key, after, "sent", Duration::from_secs(15)).await;
    assert_eq!(fake.sends_of(id), 0, "a cancelled message was sent");
}

#[tokio::test]
async fn queue_rows_go_with_their_connection_or_user() {
    // Arrange: one user with two connections, another user, messages scheduled an hour ahead.
    let app = spawn_app().await;
    let (user, key, gone) = user_with_connection(&app, "lite", json!({})).await;
    let kept = app.connection(user, "lite").await;
    let (_, other_key, other) = user_with_connection(&app, "lite", json!({})).await;
    let later = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let scheduled = |conn: Uuid, body: &str| {
        let mut b = text(conn, "+5511912345678", body);
        b["send_at"] = json!(later);
        b
    };
    let on_gone = [
        send(&app, &key, &scheduled(gone, "one")).await,
        send(&app, &key, &scheduled(gone, "two")).await,
    ];
    let on_kept = send(&app, &key, &scheduled(kept, "three")).await;
    let others = send(&app, &other_key, &scheduled(other, "four")).await;
    let queued = |id: Uuid| {
        let app = &app;
        async move {
            app.count("SELECT count(*) FROM outbox WHERE message_id = $1", &[&id])
                .await
        }
    };
    // Act: the CRM deletes one connection.
    let client = app.pool().get().await.unwrap();
    client
        .execute(
            "DELETE FROM configuracion_mensajeria_usuario WHERE id = $1",
            &[&gone],
        )
        .await
        .unwrap();
    // Assert: its queued rows are gone, its messages stay (without their connection), the
    // other connection's row stays.
    for id in on_gone {
        assert_eq!(queued(id).await, 0);
        assert_eq!(
            app.count(
                "SELECT count(*) FROM mensajes_conversacion WHERE id = $1 AND connection_id IS NULL",
                &[&id]
            )
            .await,
            1
        );
    }
    assert_eq!(queued(on_kept).await, 1);
    // Act: the user is deleted.
    client
        .execute("DELETE FROM usuarios WHERE id = $1", &[&user])
        .await
        .unwrap();
    // Assert: its last queued row went with it; the other user's stays.
    assert_eq!(queued(on_kept).await, 0);
    assert_eq!(queued(others).await, 1);
}
