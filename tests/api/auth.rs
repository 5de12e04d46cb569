//! API keys: required on every /v1 route, hashed at rest, scoped to their user; admin-only
//! status; per-user rate limit with Retry-After.

use crate::helpers::{expect_error, spawn_app, spawn_app_with};
use serde_json::Value;
use uuid::Uuid;

async fn insert_lead(app: &crate::helpers::TestApp, user: Uuid, phone: &str) -> Uuid {
    let client = app.pool().get().await.unwrap();
    client
        .query_one(
            "INSERT INTO leads (usuario_id, nombre, telefono, origen) VALUES ($1, 'Ana', $2, 'WhatsApp') RETURNING id",
            &[&user, &phone],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn missing_and_invalid_keys_are_401() {
    let mut app = spawn_app().await;
    let resp = app
        .http
        .get(format!("{}/v1/leads", app.base))
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "missing_api_key").await;
    let resp = app
        .get(
            "/v1/leads",
            "swk_000000000000_notarealkeynotarealkeynotarealkey12",
        )
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "invalid_api_key").await;
    let resp = app.get("/v1/leads", "garbage").send().await.unwrap();
    expect_error(resp, 401, "invalid_api_key").await;
    // A real key with one character changed is refused too.
    let (_, key) = app.user("a@example.com", false).await;
    let mut tampered = key.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let resp = app.get("/v1/leads", &tampered).send().await.unwrap();
    expect_error(resp, 401, "invalid_api_key").await;
    app.shutdown().await;
}

#[tokio::test]
async fn keys_are_stored_hashed_only() {
    let mut app = spawn_app().await;
    let (user, key) = app.user("hash@example.com", false).await;
    let client = app.pool().get().await.unwrap();
    let row = client
        .query_one(
            "SELECT prefix, key_hash, row_to_json(api_keys)::text FROM api_keys WHERE usuario_id = $1",
            &[&user],
        )
        .await
        .unwrap();
    let raw: String = row.get(2);
    let secret = crate::helpers::key_secret(&key);
    assert!(!raw.contains(secret), "the key's secret part is stored");
    assert!(key.contains(&row.get::<_, String>(0)));
    assert_eq!(row.get::<_, Vec<u8>>(1).len(), 32);
    app.shutdown().await;
}

#[tokio::test]
async fn users_see_only_their_own_rows() {
    // Arrange
    let mut app = spawn_app().await;
    let (alice, alice_key) = app.user("alice@example.com", false).await;
    let (bob, bob_key) = app.user("bob@example.com", false).await;
    let alice_lead = insert_lead(&app, alice, "+5511987654321").await;
    insert_lead(&app, bob, "+5511987654322").await;
    // Act
    let own = app
        .get(&format!("/v1/leads/{alice_lead}"), &alice_key)
        .send()
        .await
        .unwrap();
    let other = app
        .get(&format!("/v1/leads/{alice_lead}"), &bob_key)
        .send()
        .await
        .unwrap();
    let bob_list: Value = app
        .get("/v1/leads", &bob_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Assert
    assert_eq!(own.status(), 200);
    expect_error(other, 404, "not_found").await;
    let items = bob_list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["telefono"], "+5511987654322");
    app.shutdown().await;
}

#[tokio::test]
async fn lead_listing_filters_by_phone_and_paginates() {
    let mut app = spawn_app().await;
    let (user, key) = app.user("pages@example.com", false).await;
    for i in 0..5 {
        insert_lead(&app, user, &format!("+55119876543{i:02}")).await;
    }
    let page1: Value = app
        .get("/v1/leads?limit=2", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page1["items"].as_array().unwrap().len(), 2);
    let mut seen: Vec<String> = Vec::new();
    let mut cursor = page1["next_cursor"].as_str().map(String::from);
    seen.extend(
        page1["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_string()),
    );
    while let Some(c) = cursor {
        let page: Value = app
            .get(&format!("/v1/leads?limit=2&cursor={c}"), &key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["id"].as_str().unwrap().to_string()),
        );
        cursor = page["next_cursor"].as_str().map(String::from);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5);
    // "(11) 98765-4302" in region BR is +5511987654302.
    app.pool()
        .get()
        .await
        .unwrap()
        .execute(
            "UPDATE usuarios SET default_region = 'BR' WHERE id = $1",
            &[&user],
        )
        .await
        .unwrap();
    let found: Value = app
        .get("/v1/leads?phone=(11)%2098765-4302", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    assert_eq!(found["items"][0]["telefono"], "+5511987654302");
    let bad = app.get("/v1/leads?cursor=zzz", &key).send().await.unwrap();
    expect_error(bad, 400, "invalid_cursor").await;
    let bad = app.get("/v1/leads?phone=hello", &key).send().await.unwrap();
    expect_error(bad, 422, "invalid_phone").await;
    app.shutdown().await;
}

#[tokio::test]
async fn status_needs_an_admin_key() {
    let mut app = spawn_app().await;
    let (_, user_key) = app.user("user@example.com", false).await;
    let (_, admin_key) = app.user("admin@example.com", true).await;
    let resp = app.get("/v1/status", &user_key).send().await.unwrap();
    expect_error(resp, 403, "insufficient_scope").await;
    let resp = app.get("/v1/status", &admin_key).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn per_user_rate_limit_answers_429_with_retry_after() {
    let mut app = spawn_app_with(|env| {
        env.insert("API_RATE_PER_USER_PER_MINUTE".into(), "3".into());
    })
    .await;
    let (_, key) = app.user("busy@example.com", false).await;
    let (_, other_key) = app.user("calm@example.com", false).await;
    for _ in 0..3 {
        assert_eq!(
            app.get("/v1/leads", &key).send().await.unwrap().status(),
            200
        );
    }
    let resp = app.get("/v1/leads", &key).send().await.unwrap();
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    expect_error(resp, 429, "rate_limited").await;
    // Another user is not affected.
    assert_eq!(
        app.get("/v1/leads", &other_key)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.shutdown().await;
}

#[tokio::test]
async fn phone_validation() {
    let mut app = spawn_app().await;
    let (_, key) = app.user("phones@example.com", false).await;
    let ok: Value = app
        .post("/v1/phone-numbers/validate", &key)
        .json(&serde_json::json!({"phone": "(11) 98765-4321", "region": "BR"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ok["valid"], true);
    assert_eq!(ok["e164"], "+5511987654321");
    assert_eq!(ok["country"], "BR");
    let invalid: Value = app
        .post("/v1/phone-numbers/validate", &key)
        .json(&serde_json::json!({"phone": "+1 555 000"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(invalid["valid"], false);
    let resp = app
        .post("/v1/phone-numbers/validate", &key)
        .json(&serde_json::json!({"phone": "123456", "region": "ZZ"}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 422, "invalid_region").await;
    app.shutdown().await;
}
