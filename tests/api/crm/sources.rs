//! Lead sources: a Click-to-WhatsApp referral (Business webhooks; the page's context on Lite),
//! a `wa.me` link's prefilled text, or neither
//! (`direct`); kept on the message, first touch kept on the lead and never overwritten, and
//! `GET /v1/leads?source=` filtering on it.

use super::{WAIT, contact_writes, row_json, set_settings, text};
use crate::helpers::{eventually, expect_error, spawn_business_app};
use crate::lite::{ACCOUNT, CHROMIUM, CONTACT, lite_app};
use serde_json::{Value, json};
use sincro_sim::graph::GraphSimConfig;

const AD: &str = "+5511987650101";
const LINK: &str = "+5511987650102";
const PLAIN: &str = "+5511987650103";

fn from_ad(body: &str, clid: &str) -> Value {
    json!({"type": "text", "text": {"body": body}, "referral": {
        "source_url": "https://fb.me/ad-1", "source_id": "120210000000001", "source_type": "ad",
        "headline": "Plan Pro 20% off", "body": "Only this week", "media_type": "image",
        "image_url": "https://scontent.example/ad.jpg", "ctwa_clid": clid}})
}

#[tokio::test]
async fn crm_lead_sources_first_touch_on_the_lead_and_each_message() {
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (user, key) = app.user("crm-sources@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;
    set_settings(
        &app,
        n.connection_id,
        json!({"lead_sources": {"wa_me": [{"text": "Hola, quiero info del plan", "name": "site"}]}}),
    )
    .await;
    let sim = sim.base_url();

    // An ad click, then a second click on another ad: the lead keeps the first.
    let first = contact_writes(&app, &sim, &n, AD, from_ad("hi", "clid-1")).await;
    let second = contact_writes(&app, &sim, &n, AD, from_ad("again", "clid-2")).await;
    let message_source = |id| {
        let app = &app;
        async move {
            row_json(
                app,
                "SELECT metadata->'source' AS s FROM mensajes_conversacion WHERE id = $1",
                &[&id],
            )
            .await["s"]
                .clone()
        }
    };
    assert_eq!(message_source(first).await["ctwa_clid"], "clid-1");
    assert_eq!(message_source(second).await["ctwa_clid"], "clid-2");
    let lead_source = |phone: &'static str| {
        let app = &app;
        async move {
            row_json(
                app,
                "SELECT metadata->'source' AS s FROM leads WHERE usuario_id = $1 AND telefono = $2",
                &[&user, &phone],
            )
            .await["s"]
                .clone()
        }
    };
    let s = lead_source(AD).await;
    assert_eq!(s["type"], "click_to_whatsapp");
    assert_eq!(s["source_type"], "ad");
    assert_eq!(s["source_id"], "120210000000001");
    assert_eq!(s["source_url"], "https://fb.me/ad-1");
    assert_eq!(s["headline"], "Plan Pro 20% off");
    assert_eq!(s["ctwa_clid"], "clid-1", "first touch kept: {s}");
    assert_eq!(s["message_id"], first.to_string());

    // A wa.me link's prefilled text, and a contact who came on their own.
    let linked = contact_writes(&app, &sim, &n, LINK, text("Hola, quiero info del plan Pro")).await;
    assert_eq!(message_source(linked).await["type"], "wa_me");
    let s = lead_source(LINK).await;
    assert_eq!(
        (s["type"].as_str(), s["name"].as_str()),
        (Some("wa_me"), Some("site"))
    );
    contact_writes(&app, &sim, &n, PLAIN, text("buenas")).await;
    assert_eq!(lead_source(PLAIN).await["type"], "direct");

    // The CRM filters on it.
    let phones = |source: &'static str| {
        let app = &app;
        let key = &key;
        async move {
            let v: Value = app
                .get(&format!("/v1/leads?source={source}"), key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["telefono"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(phones("click_to_whatsapp").await, vec![AD]);
    assert_eq!(phones("wa_me").await, vec![LINK]);
    assert_eq!(phones("direct").await, vec![PLAIN]);
    let bad = app
        .get("/v1/leads?source=billboard", &key)
        .send()
        .await
        .unwrap();
    expect_error(bad, 400, "invalid_source").await;

    // Each new lead's first touch was announced with it (`lead.created`).
    let opened = sincro_core::store::events::read_after(
        &app.pool().get().await.unwrap(),
        &app.app().context().sealer,
        user,
        0,
        1000,
    )
    .await
    .unwrap();
    let announced: Vec<&str> = opened
        .iter()
        .filter(|e| e.kind == "lead.created")
        .filter_map(|e| e.data["source"]["type"].as_str())
        .collect();
    assert_eq!(announced, vec!["click_to_whatsapp", "wa_me", "direct"]);
}

#[tokio::test]
async fn crm_lead_source_from_the_pages_click_to_whatsapp_context() {
    let _turn = CHROMIUM.lock().await;
    let Some(lite) = lite_app().await else { return };
    lite.working_session(ACCOUNT).await;
    let (status, sent) = lite
        .sim_post(
            "messages",
            json!({"account": ACCOUNT, "from": CONTACT, "name": "Ana", "text": "hola",
                   "ctwa_context": {"sourceUrl": "https://fb.me/ad-9", "sourceId": "120210000000009",
                       "sourceType": "ad", "title": "Plan Pro", "description": "Only today",
                       "mediaType": "image", "ctwaClid": "clid-lite"}}),
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    let id = sent["id"].as_str().unwrap().to_string();
    let message_source = eventually(WAIT, || async {
        let r = row_json(
            &lite.app,
            "SELECT (SELECT metadata->'source' FROM mensajes_conversacion WHERE external_id = $1) AS s",
            &[&id],
        )
        .await;
        (!r["s"].is_null()).then(|| r["s"].clone())
    })
    .await
    .expect("the message stored with its source");
    assert_eq!(message_source["type"], "click_to_whatsapp");
    assert_eq!(message_source["ctwa_clid"], "clid-lite");
    assert_eq!(message_source["headline"], "Plan Pro");
    let lead = row_json(
        &lite.app,
        "SELECT metadata->'source' AS s FROM leads WHERE usuario_id = $1",
        &[&lite.user],
    )
    .await;
    assert_eq!(lead["s"]["source_id"], "120210000000009");
    assert_eq!(lead["s"]["source_url"], "https://fb.me/ad-9");
    lite.finish().await;
}
