//! `POST/GET/PATCH/DELETE /v1/business/numbers`: validation against the Graph API before
//! anything is stored, secrets sealed, the number's actor started and stopped, and one user
//! never seeing or touching another's numbers.

use crate::helpers::{eventually, expect_error, spawn_business_app};
use serde_json::{Value, json};
use sincro_sim::graph::GraphSimConfig;
use std::time::Duration;

async fn sim_account(http: &reqwest::Client, sim: &str) -> Value {
    http.post(format!("{sim}/sim/accounts"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Good credentials of account `a` with `field` set to `value`.
fn with(a: &Value, field: &str, value: Value) -> Value {
    let mut c = creds(a);
    c[field] = value;
    c
}

fn creds(a: &Value) -> Value {
    json!({
        "phone_number_id": a["phone_number_id"],
        "waba_id": a["waba_id"],
        "access_token": a["access_token"],
        "app_secret": a["app_secret"],
        "verify_token": a["verify_token"],
    })
}

#[tokio::test]
async fn business_number_connects_lists_and_stays_sealed() {
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (user, key) = app.user("biz@example.com", false).await;
    let number = app.business_number(&sim.base_url(), &key).await;

    let list: Value = app
        .get("/v1/business/numbers", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], number.connection_id.to_string());
    assert_eq!(items[0]["phone_number_id"], number.phone_number_id);
    assert_eq!(items[0]["status"], "connected");
    assert_eq!(
        items[0]["phone"],
        format!("+{}", number.display_phone_number)
    );
    let shown = list.to_string();
    assert!(!shown.contains(&number.access_token) && !shown.contains(&number.app_secret));

    // At rest: sealed, never in clear.
    let client = app.pool().get().await.unwrap();
    let row = client
        .query_one(
            "SELECT usuario_id, configuracion::text FROM configuracion_mensajeria_usuario WHERE id = $1",
            &[&number.connection_id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, uuid::Uuid>(0), user);
    let stored: String = row.get(1);
    for secret in [
        &number.access_token,
        &number.app_secret,
        &number.verify_token,
    ] {
        assert!(
            !stored.contains(secret.as_str()),
            "a secret is stored in clear"
        );
    }
    assert!(stored.contains("\"tipo_conexion\": \"business\""));

    // Its actor runs, is supervised and registered for the Dispatcher.
    assert!(
        app.app()
            .context()
            .shared
            .connections
            .get(number.connection_id)
            .is_some()
    );
    let admin_key = app.user("admin@example.com", true).await.1;
    let status: Value = app
        .get("/v1/status", &admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        status
            .to_string()
            .contains(&format!("business_number:{}", number.connection_id))
    );
    assert!(status.to_string().contains("webhook_inbox"));

    // Audit without secrets.
    let audited = app
        .count("SELECT count(*) FROM audit_log WHERE usuario_id = $1 AND action = 'business.number.connect'", &[&user])
        .await;
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn business_credentials_are_validated_before_anything_is_stored() {
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (_, key) = app.user("val@example.com", false).await;
    let a = sim_account(&app.http, &sim.base_url()).await;
    let b = sim_account(&app.http, &sim.base_url()).await;

    // (what is wrong, the change to good credentials, status, code, text the message names)
    let missing = json!({"phone_number_id": a["phone_number_id"]});
    let cases: Vec<(&str, Value, u16, &str, Option<&str>)> = vec![
        (
            "a token Meta does not know",
            with(&a, "access_token", json!("EAAnot-a-token")),
            422,
            "credentials_rejected",
            Some("190"),
        ),
        (
            "a phone number id this token cannot see",
            with(&a, "phone_number_id", b["phone_number_id"].clone()),
            422,
            "credentials_rejected",
            Some("phone number id"),
        ),
        (
            "a WABA the token has no access to",
            with(&a, "waba_id", b["waba_id"].clone()),
            422,
            "credentials_rejected",
            None,
        ),
        (
            "a malformed phone number id",
            with(&a, "phone_number_id", json!("12ab")),
            422,
            "invalid_field",
            None,
        ),
        (
            "a blank app secret",
            with(&a, "app_secret", json!("  ")),
            422,
            "invalid_field",
            None,
        ),
        (
            "an unknown field",
            with(&a, "extra", json!(1)),
            400,
            "invalid_body",
            None,
        ),
        ("missing fields", missing, 400, "invalid_body", None),
    ];
    for (case, bad, status, code, names) in cases {
        let resp = app
            .post("/v1/business/numbers", &key)
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{case}");
        let body = expect_error(resp, status, code).await;
        if let Some(text) = names {
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains(text), "{case}: {body}");
        }
    }

    assert_eq!(
        app.count("SELECT count(*) FROM configuracion_mensajeria_usuario", &[])
            .await,
        0
    );
    assert!(app.app().context().shared.connections.ids().is_empty());

    // The good ones work, once.
    let ok = app
        .post("/v1/business/numbers", &key)
        .json(&creds(&a))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 201);
    let again = app
        .post("/v1/business/numbers", &key)
        .json(&creds(&a))
        .send()
        .await
        .unwrap();
    expect_error(again, 409, "number_already_connected").await;
    let (_, other_key) = app.user("other@example.com", false).await;
    let theirs = app
        .post("/v1/business/numbers", &other_key)
        .json(&creds(&a))
        .send()
        .await
        .unwrap();
    expect_error(theirs, 409, "number_already_connected").await;
}

#[tokio::test]
async fn business_numbers_of_another_user_are_not_found() {
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (_, alice) = app.user("alice@example.com", false).await;
    let (_, bob) = app.user("bob@example.com", false).await;
    let number = app.business_number(&sim.base_url(), &alice).await;
    let path = format!("/v1/business/numbers/{}", number.connection_id);

    let list: Value = app
        .get("/v1/business/numbers", &bob)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"], json!([]));
    expect_error(app.get(&path, &bob).send().await.unwrap(), 404, "not_found").await;
    let patch = app
        .patch(&path, &bob)
        .json(&json!({"access_token": number.access_token}))
        .send()
        .await
        .unwrap();
    expect_error(patch, 404, "not_found").await;
    let del = app.delete(&path, &bob).send().await.unwrap();
    expect_error(del, 404, "not_found").await;
    let tpl = app
        .get(
            &format!("/v1/templates?connection_id={}", number.connection_id),
            &bob,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(tpl.json::<Value>().await.unwrap()["items"], json!([]));
    let sync = app
        .post("/v1/templates/sync", &bob)
        .json(&json!({"connection_id": number.connection_id}))
        .send()
        .await
        .unwrap();
    expect_error(sync, 404, "not_found").await;
    let media = app
        .post(
            &format!("/v1/media?connection_id={}", number.connection_id),
            &bob,
        )
        .header("content-type", "image/png")
        .body(vec![1u8, 2, 3])
        .send()
        .await
        .unwrap();
    expect_error(media, 404, "not_found").await;

    // Still Alice's, still running.
    assert_eq!(
        app.get(&path, &alice)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert!(
        app.app()
            .context()
            .shared
            .connections
            .get(number.connection_id)
            .is_some()
    );
}

#[tokio::test]
async fn business_number_credentials_are_replaced_and_the_number_removed() {
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (user, key) = app.user("patch@example.com", false).await;
    let number = app.business_number(&sim.base_url(), &key).await;
    let path = format!("/v1/business/numbers/{}", number.connection_id);
    let url = format!("{}{path}", app.base);

    // A token Meta refuses changes nothing.
    let bad = app
        .http
        .patch(&url)
        .bearer_auth(&key)
        .json(&json!({"access_token": "EAAwrong"}))
        .send()
        .await
        .unwrap();
    expect_error(bad, 422, "credentials_rejected").await;
    let ok = app
        .http
        .patch(&url)
        .bearer_auth(&key)
        .json(&json!({"access_token": number.access_token, "verify_token": "new-verify-token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    // The new verify token answers the handshake.
    let hs = app.http.get(format!("{}/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=new-verify-token&hub.challenge=42", app.base))
        .send().await.unwrap();
    assert_eq!(hs.status().as_u16(), 200);
    assert!(
        eventually(Duration::from_secs(10), || async {
            app.app()
                .context()
                .shared
                .connections
                .get(number.connection_id)
                .map(|_| ())
        })
        .await
        .is_some()
    );

    let del = app
        .http
        .delete(&url)
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status().as_u16(), 200);
    let removed: Value = del.json().await.unwrap();
    assert_eq!(removed["webhooks"]["state"], "unsubscribed", "{removed}");
    // Meta no longer posts the account's webhooks to the app.
    let subs: Value = app
        .http
        .get(format!(
            "{}/v23.0/{}/subscribed_apps",
            sim.base_url(),
            number.waba_id
        ))
        .bearer_auth(&number.access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(subs["data"], json!([]), "{subs}");
    expect_error(app.get(&path, &key).send().await.unwrap(), 404, "not_found").await;
    assert!(
        app.app()
            .context()
            .shared
            .connections
            .get(number.connection_id)
            .is_none()
    );
    let left = app
        .count("SELECT count(*) FROM configuracion_mensajeria_usuario WHERE usuario_id = $1 AND configuracion::text LIKE '%access_token%'", &[&user])
        .await;
    assert_eq!(left, 0, "secrets dropped");
    // The number can be connected again.
    let again = app.post("/v1/business/numbers", &key).json(&json!({
        "phone_number_id": number.phone_number_id, "waba_id": number.waba_id,
        "access_token": number.access_token, "app_secret": number.app_secret, "verify_token": number.verify_token,
    })).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 201);
}
