//! `POST/GET/DELETE /v1/keys`: the secret shown once, scopes enforced on every route,
//! expiry, revocation seen at once by another node, and `key revoke` on the command line.

use super::{make_key, scoped};
use crate::helpers::{expect_error, spawn_app, spawn_app_sharing};
use serde_json::{Value, json};

#[tokio::test]
async fn keys_are_made_listed_and_scoped() {
    let mut app = spawn_app().await;
    let (user, full) = app.user("keys@example.com", false).await;
    let conn = app.connection(user, "business").await;
    let (read_id, read) = make_key(&app, &full, scoped("crm reader", &["read"])).await;
    let (_, sender) = make_key(&app, &full, scoped("sender", &["send"])).await;
    let (_, sessions) = make_key(&app, &full, scoped("ops", &["sessions"])).await;

    // The list shows scopes and use, never a secret.
    let resp = app.get("/v1/keys", &full).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(!text.contains(&read) && !text.contains(&full), "{text}");
    let list: Value = serde_json::from_str(&text).unwrap();
    let item = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == read_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(item["scopes"], json!(["read"]));
    assert_eq!(item["name"], "crm reader");
    assert!(item["last_used_at"].is_null() && item["expires_at"].is_null());
    assert!(item.get("key").is_none());

    // read: reads, cannot send or manage.
    assert_eq!(
        app.get("/v1/leads", &read).send().await.unwrap().status(),
        200
    );
    let msg = json!({"connection_id": conn, "to": "+5511987654321", "type": "text", "text": {"body": "hola"}});
    let resp = app
        .post("/v1/messages", &read)
        .json(&msg)
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "insufficient_scope").await;
    let resp = app.post("/v1/lite/sessions", &read).send().await.unwrap();
    expect_error(resp, 403, "insufficient_scope").await;
    let resp = app
        .post("/v1/keys", &read)
        .json(&scoped("x", &["read"]))
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "insufficient_scope").await;
    // send: sends (the window is closed here: a 422 past the scope check), cannot read.
    let resp = app
        .post("/v1/messages", &sender)
        .json(&msg)
        .send()
        .await
        .unwrap();
    expect_error(resp, 422, "outside_service_window").await;
    let resp = app.get("/v1/leads", &sender).send().await.unwrap();
    expect_error(resp, 403, "insufficient_scope").await;
    // sessions: connections, not messages.
    assert_eq!(
        app.get("/v1/business/numbers", &sessions)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let resp = app
        .post("/v1/messages", &sessions)
        .json(&msg)
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "insufficient_scope").await;
    // Admin routes need admin; a key cannot grant what its maker lacks.
    let resp = app.get("/v1/status", &full).send().await.unwrap();
    expect_error(resp, 403, "insufficient_scope").await;
    let resp = app
        .post("/v1/keys", &full)
        .json(&scoped("x", &["admin"]))
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "insufficient_scope").await;
    let resp = app
        .post("/v1/keys", &full)
        .json(&scoped("x", &["root"]))
        .send()
        .await
        .unwrap();
    expect_error(resp, 422, "invalid_scopes").await;
    let resp = app
        .post("/v1/keys", &full)
        .json(&json!({"scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 422, "invalid_expiry").await;
    // An admin user's key made before scopes keeps admin, and may grant it.
    let (_, admin) = app.user("keys-admin@example.com", true).await;
    assert_eq!(
        app.get("/v1/status", &admin).send().await.unwrap().status(),
        200
    );
    let (_, admin2) = make_key(&app, &admin, scoped("admin 2", &["admin"])).await;
    assert_eq!(
        app.get("/v1/status", &admin2)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // last_used_at is recorded.
    let client = app.pool().get().await.unwrap();
    let used: bool = client
        .query_one(
            "SELECT last_used_at IS NOT NULL FROM api_keys WHERE id = $1::text::uuid",
            &[&read_id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(used);
    app.shutdown().await;
}

#[tokio::test]
async fn expired_keys_are_refused() {
    let mut app = spawn_app().await;
    let (_, full) = app.user("expiry@example.com", false).await;
    let soon = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let (id, key) = make_key(
        &app,
        &full,
        json!({"scopes": ["read"], "expires_at": soon.format(&time::format_description::well_known::Rfc3339).unwrap()}),
    )
    .await;
    assert_eq!(app.get("/v1/me", &key).send().await.unwrap().status(), 200);
    app.pool()
        .get()
        .await
        .unwrap()
        .execute(
            "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap();
    let resp = app.get("/v1/me", &key).send().await.unwrap();
    expect_error(resp, 401, "expired_api_key").await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once_on_another_node() {
    let mut a = spawn_app().await;
    let mut b = spawn_app_sharing(&a).await;
    let (_, full) = a.user("revoke@example.com", false).await;
    let (id, key) = make_key(&a, &full, scoped("to revoke", &["read"])).await;
    assert_eq!(b.get("/v1/me", &key).send().await.unwrap().status(), 200);
    let resp = a
        .delete(&format!("/v1/keys/{id}"), &full)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert!(v["revoked_at"].is_string(), "{v}");
    // The very next request on the other node is refused.
    let resp = b.get("/v1/me", &key).send().await.unwrap();
    expect_error(resp, 401, "invalid_api_key").await;
    // Another user's key is a 404.
    let (_, stranger) = a.user("stranger@example.com", false).await;
    let resp = a
        .delete(&format!("/v1/keys/{id}"), &stranger)
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "not_found").await;
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test]
async fn cli_revokes_a_key() {
    let mut app = spawn_app().await;
    let (_, full) = app.user("cli-revoke@example.com", false).await;
    let (id, key) = make_key(&app, &full, scoped("cli", &["read"])).await;
    let out = crate::process::command(&["key", "revoke", &id], &app.env)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resp = app.get("/v1/me", &key).send().await.unwrap();
    expect_error(resp, 401, "invalid_api_key").await;
    let out = crate::process::command(
        &["key", "revoke", &uuid::Uuid::new_v4().to_string()],
        &app.env,
    )
    .output()
    .await
    .unwrap();
    assert!(!out.status.success());
    app.shutdown().await;
}
