//! Bad requests get the JSON error shape with a fitting status, and change nothing.

use crate::helpers::{expect_error, spawn_app, spawn_app_with};

#[tokio::test]
async fn unknown_routes_methods_and_bodies() {
    let mut app = spawn_app_with(|env| {
        env.insert("MAX_BODY_BYTES".into(), "1024".into());
    })
    .await;
    let (_, key) = app.user("errors@example.com", false).await;
    let resp = app.get("/v1/nothing-here", &key).send().await.unwrap();
    expect_error(resp, 404, "not_found").await;
    let resp = app
        .http
        .delete(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    expect_error(resp, 405, "method_not_allowed").await;
    let resp = app
        .post("/v1/phone-numbers/validate", &key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "invalid_body").await;
    let resp = app
        .post("/v1/phone-numbers/validate", &key)
        .json(&serde_json::json!({"phone": "x".repeat(2000)}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 413, "body_too_large").await;
    let resp = app
        .post("/v1/phone-numbers/validate", &key)
        .json(&serde_json::json!({"phone": "+5511987654321", "unexpected": 1}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "invalid_body").await;
    app.shutdown().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let mut app = spawn_app().await;
    let resp = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["ready"], true);
    // A migration row removed → not ready (pending migrations).
    app.pool()
        .get()
        .await
        .unwrap()
        .execute("DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)", &[])
        .await
        .unwrap();
    let resp = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let resp = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone() {
    let mut app = spawn_app().await;
    // Terminate every connection to this test's database and forbid new ones.
    let name = app.database_url.rsplit('/').next().unwrap().to_string();
    let admin = crate::helpers::connect(&format!("{}/postgres", crate::helpers::SERVER)).await;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';"
        ))
        .await
        .unwrap();
    let resp = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let resp = app
        .http
        .get(format!("{}/v1/leads", app.base))
        .bearer_auth("swk_000000000000_abcdefghijabcdefghijabcdefghijabcdefghij")
        .send()
        .await
        .unwrap();
    expect_error(resp, 503, "unavailable").await;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true"
        ))
        .await
        .unwrap();
    let resp = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    app.shutdown().await;
}
