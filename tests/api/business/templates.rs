//! Template lifecycle through the API: create (PENDING at Meta), review by webhook
//! (APPROVED / REJECTED with `template.status` events), list, sync, delete; bad input refused.

use crate::helpers::{eventually, expect_error, spawn_business_app};
use serde_json::{Value, json};
use sincro_sim::graph::GraphSimConfig;
use std::time::Duration;

fn body_component() -> Value {
    json!([{"type": "BODY", "text": "Hello {{1}}", "example": {"body_text": [["Ana"]]}}])
}

#[tokio::test]
async fn business_template_lifecycle() {
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (user, key) = app.user("tpl@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;

    // connection_id may be left out: the user has one number.
    let created = app
        .post("/v1/templates", &key)
        .json(&json!({"name": "welcome", "language": "pt_BR", "category": "utility", "components": body_component()}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let t: Value = created.json().await.unwrap();
    assert_eq!(t["status"], "PENDING");
    assert_eq!(t["connection_id"], n.connection_id.to_string());
    let rejected = app
        .post("/v1/templates", &key)
        .json(&json!({"connection_id": n.connection_id, "name": "reject_me", "language": "en_US", "category": "MARKETING", "components": body_component()}))
        .send()
        .await
        .unwrap();
    assert_eq!(rejected.status().as_u16(), 201);

    let reviewed = eventually(Duration::from_secs(10), || async {
        let v: Value = app
            .get("/v1/templates", &key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = v["items"].as_array().unwrap().clone();
        let done = items.iter().all(|t| t["status"] != "PENDING") && items.len() == 2;
        done.then_some(items)
    })
    .await
    .expect("both reviewed");
    let by = |name: &str| reviewed.iter().find(|t| t["name"] == name).unwrap().clone();
    assert_eq!(by("welcome")["status"], "APPROVED");
    assert_eq!(by("reject_me")["status"], "REJECTED");
    assert!(by("reject_me")["rejection_reason"].is_string());
    assert_eq!(
        app.count(
            "SELECT count(*) FROM events WHERE usuario_id = $1 AND type = 'template.status'",
            &[&user]
        )
        .await,
        2
    );
    let approved: Value = app
        .get("/v1/templates?status=approved", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(approved["items"].as_array().unwrap().len(), 1);

    // Sync agrees with Meta; rows Meta lost are removed.
    let client = app.pool().get().await.unwrap();
    client
        .execute(
            "INSERT INTO whatsapp_templates (usuario_id, connection_id, name, language, status) VALUES ($1, $2, 'ghost', 'en', 'APPROVED')",
            &[&user, &n.connection_id],
        )
        .await
        .unwrap();
    let sync: Value = app
        .post("/v1/templates/sync", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sync["items"][0]["report"]["total"], 2, "{sync}");
    assert_eq!(sync["items"][0]["report"]["removed"], 1, "{sync}");

    // Delete at Meta and here.
    let del = app
        .delete("/v1/templates/welcome", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status().as_u16(), 204);
    let left: Value = app
        .get("/v1/templates", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(left["items"].as_array().unwrap().len(), 1);
    let at_meta: Value = app
        .http
        .get(format!(
            "{}/v23.0/{}/message_templates",
            sim.base_url(),
            n.waba_id
        ))
        .bearer_auth(&n.access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!at_meta.to_string().contains("\"welcome\""));
    let gone = app
        .delete("/v1/templates/welcome", &key)
        .send()
        .await
        .unwrap();
    expect_error(gone, 404, "not_found").await;
}

#[tokio::test]
async fn business_template_bad_input_changes_nothing() {
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (_, key) = app.user("tplbad@example.com", false).await;
    let cases = [
        (
            json!({"name": "Bad Name", "language": "en_US", "category": "UTILITY", "components": body_component()}),
            422,
            "invalid_template_name",
        ),
        (
            json!({"name": "ok_name", "language": "en_US", "category": "SPAM", "components": body_component()}),
            422,
            "invalid_category",
        ),
        (
            json!({"name": "ok_name", "language": "en_US", "category": "UTILITY", "components": []}),
            422,
            "invalid_components",
        ),
        (
            json!({"name": "ok_name", "language": "en_US", "category": "UTILITY"}),
            400,
            "invalid_body",
        ),
        // No number yet: connection_id cannot be guessed.
        (
            json!({"name": "ok_name", "language": "en_US", "category": "UTILITY", "components": body_component()}),
            422,
            "connection_id_required",
        ),
    ];
    for (body, status, code) in cases {
        expect_error(
            app.post("/v1/templates", &key)
                .json(&body)
                .send()
                .await
                .unwrap(),
            status,
            code,
        )
        .await;
    }
    let n = app.business_number(&sim.base_url(), &key).await;
    // Meta refuses it (a variable without an example): 422 naming Meta, nothing stored.
    let refused = app
        .post("/v1/templates", &key)
        .json(&json!({"connection_id": n.connection_id, "name": "no_example", "language": "en_US", "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Hi {{1}}"}]}))
        .send()
        .await
        .unwrap();
    let body = expect_error(refused, 422, "graph_error").await;
    assert!(body["error"]["message"].as_str().unwrap().contains("Meta"));
    assert_eq!(
        app.count("SELECT count(*) FROM whatsapp_templates", &[])
            .await,
        0
    );
}
