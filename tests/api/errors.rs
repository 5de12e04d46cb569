//! Bad requests get the JSON error shape with a fitting status, and change nothing.

use crate::helpers::{TestApp, expect_error, spawn_app, spawn_app_with};

/// GET of a route that needs no key (health, readiness, metrics).
async fn probe(app: &TestApp, path: &str) -> reqwest::Response {
    app.http
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn unknown_routes_methods_and_bodies() {
    let mut app = spawn_app_with(|env| {
        env.insert("MAX_BODY_BYTES".into(), "1024".into());
    })
    .await;
    let (_, key) = app.user("errors@example.com", false).await;
    let validate = || app.post("/v1/phone-numbers/validate", &key);
    let cases = [
        (
            "an unknown route",
            app.get("/v1/nothing-here", &key),
            404,
            "not_found",
        ),
        (
            "a method the route does not take",
            app.http.delete(format!("{}/healthz", app.base)),
            405,
            "method_not_allowed",
        ),
        (
            "a body that is not JSON",
            validate()
                .header("content-type", "application/json")
                .body("{not json"),
            400,
            "invalid_body",
        ),
        (
            "a body over MAX_BODY_BYTES",
            validate().json(&serde_json::json!({"phone": "x".repeat(2000)})),
            413,
            "body_too_large",
        ),
        (
            "an unknown field",
            validate().json(&serde_json::json!({"phone": "+5511987654321", "unexpected": 1})),
            400,
            "invalid_body",
        ),
    ];
    for (case, request, status, code) in cases {
        let resp = request.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{case}");
        expect_error(resp, status, code).await;
    }
    app.shutdown().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let mut app = spawn_app().await;
    let resp = probe(&app, "/healthz").await;
    assert_eq!(resp.status(), 200);
    let resp = probe(&app, "/readyz").await;
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
    let resp = probe(&app, "/readyz").await;
    assert_eq!(resp.status(), 503);
    let resp = probe(&app, "/metrics").await;
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
    let resp = probe(&app, "/readyz").await;
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
    let resp = probe(&app, "/readyz").await;
    assert_eq!(resp.status(), 200);
    app.shutdown().await;
}
