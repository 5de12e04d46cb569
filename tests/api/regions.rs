//! `DEFAULT_REGION`: every route that reads a phone number in national format uses the user's
//! own region, else the daemon's default (one lookup, `sincro_core::store::users::region`).

use crate::helpers::{TestApp, spawn_app_with};
use serde_json::{Value, json};

async fn app_in_brazil() -> (TestApp, uuid::Uuid, String) {
    let app = spawn_app_with(|env| {
        env.insert("DEFAULT_REGION".into(), "BR".into());
    })
    .await;
    // The user sets no region of their own.
    let (user, key) = app.user("sem-regiao@example.com", false).await;
    (app, user, key)
}

#[tokio::test]
async fn phone_validation_falls_back_to_the_default_region() {
    let (mut app, _, key) = app_in_brazil().await;
    let resp = app
        .post("/v1/phone-numbers/validate", &key)
        .json(&json!({"phone": "(11) 98765-4321"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["valid"], true, "{body}");
    assert_eq!(body["e164"], "+5511987654321");
    app.shutdown().await;
}

#[tokio::test]
async fn lead_search_falls_back_to_the_default_region() {
    let (mut app, user, key) = app_in_brazil().await;
    app.pool()
        .get()
        .await
        .unwrap()
        .execute(
            "INSERT INTO leads (usuario_id, nombre, telefono, origen)
             VALUES ($1, 'Ana', '+5511987654321', 'WhatsApp')",
            &[&user],
        )
        .await
        .unwrap();
    let found: Value = app
        .get("/v1/leads?phone=(11)%2098765-4321", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = found["items"].as_array().expect("a page");
    assert_eq!(items.len(), 1, "{found}");
    assert_eq!(items[0]["telefono"], "+5511987654321");
    app.shutdown().await;
}
