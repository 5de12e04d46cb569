//! Per-connection settings the CRM writes: `notifications_enabled = false` keeps the
//! connection's events stored but off the stream of non-admin keys (live and replayed);
//! `sync_contacts = false` keeps WhatsApp profile names off the leads.

use super::{contact_writes, row_json, set_settings, text};
use crate::helpers::{TestApp, spawn_business_app};
use futures::StreamExt;
use serde_json::{Value, json};
use sincro_sim::graph::GraphSimConfig;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn stream(app: &TestApp, key: &str, query: &str) -> Ws {
    let url = format!(
        "{}/v1/stream{query}",
        app.base.replacen("http://", "ws://", 1)
    );
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// The types of the frames before the first `test.sentinel`.
async fn types_until_sentinel(ws: &mut Ws) -> Vec<String> {
    let mut types = Vec::new();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("a frame")
            .expect("open")
            .unwrap();
        if let Message::Text(t) = m {
            let f: Value = serde_json::from_str(t.as_str()).unwrap();
            let kind = f["type"].as_str().unwrap().to_string();
            if kind == "test.sentinel" {
                return types;
            }
            types.push(kind);
        }
    }
}

async fn sentinel(app: &TestApp, user: Uuid) {
    let mut client = app.pool().get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    sincro_core::store::events::append(
        &tx,
        &app.app().context().sealer,
        user,
        "test.sentinel",
        &json!({}),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_notifications_off_keep_events_off_non_admin_streams() {
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (user, admin) = app.user("crm-notify@example.com", true).await;
    let made: Value = app
        .post("/v1/keys", &admin)
        .json(&json!({"name": "crm screens", "scopes": ["read"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reader = made["key"].as_str().expect("a read key").to_string();
    let n = app.business_number(&sim.base_url(), &admin).await;
    set_settings(
        &app,
        n.connection_id,
        json!({"notifications_enabled": false}),
    )
    .await;

    let mut read_ws = stream(&app, &reader, "").await;
    let mut admin_ws = stream(&app, &admin, "").await;
    contact_writes(&app, &sim.base_url(), &n, "+5511987650401", text("hola")).await;
    sentinel(&app, user).await;

    let seen = types_until_sentinel(&mut read_ws).await;
    assert!(!seen.contains(&"message.received".to_string()), "{seen:?}");
    let seen = types_until_sentinel(&mut admin_ws).await;
    assert!(seen.contains(&"message.received".to_string()), "{seen:?}");
    // Stored all the same, and left out of a replay too.
    assert_eq!(
        app.count(
            "SELECT count(*) FROM events WHERE usuario_id = $1 AND type = 'message.received' AND muted",
            &[&user]
        )
        .await,
        1
    );
    let mut replay = stream(&app, &reader, "?since=0").await;
    let seen = types_until_sentinel(&mut replay).await;
    assert!(!seen.contains(&"message.received".to_string()), "{seen:?}");
}

#[tokio::test]
async fn crm_sync_contacts_off_keeps_profile_names_off_the_lead() {
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (user, key) = app.user("crm-sync@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;
    let sim = sim.base_url();
    let contact = "+5511987650411";
    let lead = || async {
        row_json(
            &app,
            "SELECT nombre, metadata->'profile' AS profile FROM leads WHERE usuario_id = $1",
            &[&user],
        )
        .await
    };

    set_settings(&app, n.connection_id, json!({"sync_contacts": false})).await;
    contact_writes(&app, &sim, &n, contact, text("hola")).await;
    let l = lead().await;
    assert_eq!(
        (l["nombre"].clone(), l["profile"].clone()),
        (Value::Null, Value::Null)
    );

    set_settings(&app, n.connection_id, json!({"sync_contacts": true})).await;
    contact_writes(&app, &sim, &n, contact, text("otra vez")).await;
    assert_eq!(lead().await["nombre"], "Ana Ruiz");
}
