//! Every mutating route leaves one audit row (user, key id, client IP, action, target,
//! outcome), on success and on failure; no row holds a message body, a token or a key.

use super::{make_key, scoped};
use crate::helpers::spawn_app;
use serde_json::json;
use std::collections::BTreeSet;
use uuid::Uuid;

const BODY: &str = "the secret body of a message 7f3a";
const TOKEN: &str = "EAAGsecret-access-token-5d21";
const APP_SECRET: &str = "app-secret-value-9c77";

#[tokio::test]
async fn every_mutating_route_is_audited_without_content() {
    let mut app = spawn_app().await;
    let (user, key) = app.user("audit@example.com", false).await;
    let conn = app.connection(user, "business").await;
    let to = "+5511987654321";
    crate::queue::open_window(&app, user, conn, to).await;
    let some = Uuid::new_v4();
    let send = |method: reqwest::Method, path: String| {
        app.http
            .request(method, format!("{}{path}", app.base))
            .bearer_auth(&key)
    };
    use reqwest::Method;
    // Messages: queued, refused, cancelled, a requeue refused.
    let resp = send(Method::POST, "/v1/messages".into())
        .json(&json!({"connection_id": conn, "to": to, "type": "text", "text": {"body": BODY}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let message: serde_json::Value = resp.json().await.unwrap();
    let message_id = message["id"].as_str().unwrap().to_string();
    let other = app.connection(user, "business").await;
    let resp = send(Method::POST, "/v1/messages".into())
        .json(&json!({"connection_id": other, "to": to, "type": "text", "text": {"body": BODY}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    send(Method::POST, format!("/v1/messages/{message_id}/cancel"))
        .send()
        .await
        .unwrap();
    send(Method::POST, format!("/v1/messages/{message_id}/requeue"))
        .send()
        .await
        .unwrap();
    // Lite sessions (unknown ids: audited as not found).
    send(Method::DELETE, format!("/v1/lite/sessions/{some}"))
        .send()
        .await
        .unwrap();
    send(
        Method::DELETE,
        format!("/v1/lite/sessions/{some}?logout=true"),
    )
    .send()
    .await
    .unwrap();
    send(
        Method::POST,
        format!("/v1/lite/sessions/{some}/pairing-code"),
    )
    .json(&json!({"phone": to}))
    .send()
    .await
    .unwrap();
    // Business numbers: secrets in the bodies never reach the log.
    send(Method::POST, "/v1/business/numbers".into())
        .json(&json!({"phone_number_id": "1", "waba_id": "2", "access_token": " ", "app_secret": APP_SECRET, "verify_token": TOKEN}))
        .send()
        .await
        .unwrap();
    send(Method::PATCH, format!("/v1/business/numbers/{some}"))
        .json(&json!({"access_token": TOKEN, "app_secret": APP_SECRET}))
        .send()
        .await
        .unwrap();
    send(Method::DELETE, format!("/v1/business/numbers/{some}"))
        .send()
        .await
        .unwrap();
    // Templates.
    send(Method::POST, "/v1/templates".into())
        .json(&json!({"connection_id": some, "name": "promo", "language": "es", "category": "MARKETING", "components": []}))
        .send()
        .await
        .unwrap();
    send(
        Method::DELETE,
        format!("/v1/templates/promo?connection_id={some}&language=es"),
    )
    .send()
    .await
    .unwrap();
    send(Method::POST, "/v1/templates/sync".into())
        .send()
        .await
        .unwrap();
    // Media, keys, settings, merges.
    let resp = send(Method::POST, "/v1/media?filename=a.png".into())
        .header("content-type", "image/png")
        .body(b"\x89PNG not really".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let media: serde_json::Value = resp.json().await.unwrap();
    send(
        Method::GET,
        format!("/v1/media/{}/url", media["id"].as_str().unwrap()),
    )
    .send()
    .await
    .unwrap();
    let (key_id, made) = make_key(&app, &key, scoped("audited", &["read"])).await;
    send(Method::DELETE, format!("/v1/keys/{key_id}"))
        .send()
        .await
        .unwrap();
    send(Method::PATCH, "/v1/me".into())
        .json(&json!({"default_region": "BR"}))
        .send()
        .await
        .unwrap();
    send(Method::POST, "/v1/leads/merge-duplicates".into())
        .send()
        .await
        .unwrap();

    let client = app.pool().get().await.unwrap();
    let rows = client
        .query(
            "SELECT action, outcome, target, ip, api_key_id IS NOT NULL, row_to_json(audit_log)::text
             FROM audit_log WHERE usuario_id = $1 ORDER BY id",
            &[&user],
        )
        .await
        .unwrap();
    let seen: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                r.get::<_, Option<String>>(1).unwrap_or_default(),
            )
        })
        .collect();
    let expected = [
        ("message.queue", "ok"),
        ("message.queue", "outside_service_window"),
        ("message.cancel", "ok"),
        ("message.requeue", "not_requeueable"),
        ("lite.session.stop", "not_found"),
        ("lite.session.logout", "not_found"),
        ("lite.session.pairing_code", "not_found"),
        ("business.number.connect", "invalid_field"),
        ("business.number.credentials", "not_found"),
        ("business.number.remove", "not_found"),
        ("template.delete", "not_found"),
        ("media.upload", "ok"),
        ("media.url", "ok"),
        ("key.create", "ok"),
        ("key.revoke", "ok"),
        ("user.update", "ok"),
        ("lead.merge_duplicates", "ok"),
    ];
    for (action, outcome) in expected {
        assert!(
            seen.contains(&(action.to_string(), outcome.to_string())),
            "no audit row ({action}, {outcome}) in {seen:?}"
        );
    }
    // Their outcome depends on number actors these bare rows do not have; the row is there.
    for action in ["template.create", "template.sync"] {
        assert!(seen.iter().any(|(a, _)| a == action), "{seen:?}");
    }
    for r in &rows {
        assert_eq!(r.get::<_, Option<String>>(3).as_deref(), Some("127.0.0.1"));
        assert!(r.get::<_, bool>(4));
        let whole: String = r.get(5);
        for secret in [BODY, TOKEN, APP_SECRET, key.as_str(), made.as_str()] {
            assert!(!whole.contains(secret), "audit row holds a secret: {whole}");
        }
    }
    let queued = rows
        .iter()
        .find(|r| {
            r.get::<_, String>(0) == "message.queue"
                && r.get::<_, Option<String>>(1).as_deref() == Some("ok")
        })
        .unwrap();
    assert_eq!(
        queued.get::<_, Option<String>>(2).as_deref(),
        Some(message_id.as_str())
    );
    app.shutdown().await;
}
