//! `/v1/webhooks`: the secret shown once, bad input refused with nothing stored, private
//! URLs refused unless allowed, another user's endpoint invisible, audit rows for changes.

use super::{Mode, Receiver, create_hook, hook, hooks_app};
use crate::helpers::{expect_error, spawn_app};
use serde_json::json;

#[tokio::test]
async fn the_secret_is_shown_once_and_header_values_never() {
    // Arrange
    let app = hooks_app(&[]).await;
    let (_, key) = app.user("hooks-api@test", false).await;
    let rx = Receiver::start(Mode::Accept).await;

    // Act
    let resp = app
        .post("/v1/webhooks", &key)
        .json(&json!({
            "url": rx.url,
            "types": ["message.*", "lead.created"],
            "headers": {"Authorization": "Bearer receiver-token"},
            "description": "n8n",
        }))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(resp.status().as_u16(), 201);
    let made: serde_json::Value = resp.json().await.unwrap();
    assert!(made["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(made["types"], json!(["message.*", "lead.created"]));
    assert_eq!(made["max_in_flight"], 1);
    let id: uuid::Uuid = made["id"].as_str().unwrap().parse().unwrap();
    let shown = hook(&app, &key, id).await;
    let listed: serde_json::Value = app
        .get("/v1/webhooks", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for view in [&shown, &listed["items"][0]] {
        assert!(view.get("secret").is_none(), "{view}");
        assert_eq!(view["headers"], json!(["Authorization"]));
        assert!(!view.to_string().contains("receiver-token"));
    }
    let stored = app
        .count(
            "SELECT count(*) FROM event_webhooks WHERE secret LIKE 'sw1.%' AND headers LIKE 'sw1.%'",
            &[],
        )
        .await;
    assert_eq!(stored, 1, "secret and headers sealed at rest");
    let audited = app
        .count(
            "SELECT count(*) FROM audit_log WHERE action = 'webhook.create' AND outcome = 'ok'",
            &[],
        )
        .await;
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn bad_input_is_refused_and_nothing_is_stored() {
    // Arrange
    let app = hooks_app(&[]).await;
    let (_, key) = app.user("hooks-bad@test", false).await;
    let rx = Receiver::start(Mode::Accept).await;
    let cases = [
        (json!({"url": "ftp://example.com/x"}), 422, "invalid_url"),
        (json!({"url": "not a url"}), 422, "invalid_url"),
        (
            json!({"url": rx.url, "types": ["Message.Received"]}),
            422,
            "invalid_types",
        ),
        (json!({"url": rx.url, "types": []}), 422, "invalid_types"),
        (
            json!({"url": rx.url, "headers": {"X-Sincro-Signature": "x"}}),
            422,
            "invalid_header",
        ),
        (
            json!({"url": rx.url, "headers": {"Host": "evil"}}),
            422,
            "invalid_header",
        ),
        (
            json!({"url": rx.url, "headers": {"bad name": "x"}}),
            422,
            "invalid_header",
        ),
        (
            json!({"url": rx.url, "max_in_flight": 0}),
            422,
            "invalid_max_in_flight",
        ),
        (
            json!({"url": rx.url, "max_in_flight": 17}),
            422,
            "invalid_max_in_flight",
        ),
        (
            json!({"url": rx.url, "secret": "mine"}),
            400,
            "invalid_body",
        ),
        (json!({"types": ["lead.*"]}), 400, "invalid_body"),
    ];

    // Act / Assert
    for (body, status, code) in cases {
        let resp = app
            .post("/v1/webhooks", &key)
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_error(resp, status, code).await;
    }
    assert_eq!(
        app.count("SELECT count(*) FROM event_webhooks", &[]).await,
        0
    );
    let failed = app
        .count(
            "SELECT count(*) FROM audit_log WHERE action = 'webhook.create' AND outcome <> 'ok'",
            &[],
        )
        .await;
    assert!(failed >= 9, "failures audited too: {failed}");
}

#[tokio::test]
async fn a_private_url_is_refused_unless_allowed() {
    // Arrange: the default configuration (no WEBHOOK_URL_ALLOW).
    let app = spawn_app().await;
    let (_, key) = app.user("hooks-ssrf@test", false).await;

    // Act / Assert
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/x",
        "http://[::1]/x",
    ] {
        let resp = app
            .post("/v1/webhooks", &key)
            .json(&json!({"url": url}))
            .send()
            .await
            .unwrap();
        expect_error(resp, 422, "url_not_allowed").await;
    }
    assert_eq!(
        app.count("SELECT count(*) FROM event_webhooks", &[]).await,
        0
    );
    // With the switch, loopback is accepted (as the other tests do).
    let allowed = hooks_app(&[]).await;
    let (_, key) = allowed.user("hooks-ssrf2@test", false).await;
    create_hook(&allowed, &key, json!({"url": "http://127.0.0.1:9/hook"})).await;
}

#[tokio::test]
async fn another_users_endpoint_is_not_found_and_changes_are_audited() {
    // Arrange
    let app = hooks_app(&[]).await;
    let (_, key_a) = app.user("hooks-a@test", false).await;
    let (_, key_b) = app.user("hooks-b@test", false).await;
    let rx = Receiver::start(Mode::Accept).await;
    let (id, _) = create_hook(&app, &key_a, json!({"url": rx.url})).await;

    // Act / Assert: B sees nothing of A's endpoint.
    let path = format!("/v1/webhooks/{id}");
    expect_error(
        app.get(&path, &key_b).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    let patched = app
        .patch(&path, &key_b)
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    expect_error(patched, 404, "not_found").await;
    expect_error(
        app.delete(&path, &key_b).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;

    // A changes, rotates and deletes it.
    let patched = app
        .patch(&path, &key_a)
        .json(&json!({"types": ["lead.*"], "description": null, "max_in_flight": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status().as_u16(), 200);
    let view: serde_json::Value = patched.json().await.unwrap();
    assert_eq!(view["types"], json!(["lead.*"]));
    assert_eq!(view["max_in_flight"], 4);
    let rotated: serde_json::Value = app
        .post(&format!("{path}/rotate-secret"), &key_a)
        .json(&json!({"overlap_secs": 60}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(rotated["secret"].as_str().unwrap().starts_with("whsec_"));
    assert!(rotated["previous_secret_until"].is_string());
    let deleted = app.delete(&path, &key_a).send().await.unwrap();
    assert_eq!(deleted.status().as_u16(), 200);
    expect_error(
        app.get(&path, &key_a).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    let actions = app
        .count(
            "SELECT count(DISTINCT action) FROM audit_log WHERE action IN
               ('webhook.create', 'webhook.update', 'webhook.rotate_secret', 'webhook.delete')",
            &[],
        )
        .await;
    assert_eq!(actions, 4);
}
