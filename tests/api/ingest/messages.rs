//! Messages through Ingest: a batch with duplicates stores each once, statuses only move
//! forward whatever their order, content is sealed at rest and read back decrypted.

use super::{count, estado_of, events, outbound, status, text};
use crate::helpers::{expect_error, spawn_app};
use serde_json::Value;
use sincro_core::ingest::Estado;

#[tokio::test]
async fn a_batch_with_duplicates_stores_each_message_once() {
    // Arrange
    let mut app = spawn_app().await;
    let (user, _) = app.user("dups@example.com", false).await;
    let conn = app.connection(user, "business").await;
    let batch = vec![
        text(user, conn, "wamid.1", "+5511987654321", "Ana", "oi"),
        text(user, conn, "wamid.1", "+5511987654321", "Ana", "oi"),
        text(user, conn, "wamid.2", "+5511987654321", "Ana", "tudo bem?"),
        text(user, conn, "wamid.3", "+5521912345678", "Bia", "olá"),
    ];
    // Act
    let first = app.ingest(batch.clone()).await;
    let again = app.ingest(batch).await;
    // Assert
    assert_eq!(first.messages_inserted, 3);
    assert_eq!(first.messages_duplicate, 1);
    assert_eq!(first.leads_created, 2);
    assert_eq!(again.messages_inserted, 0);
    assert_eq!(again.messages_duplicate, 4);
    assert_eq!(again.events, 0, "a replayed batch emits nothing");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM mensajes_conversacion WHERE usuario_id = $1",
            user
        )
        .await,
        3
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM conversaciones WHERE usuario_id = $1",
            user
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM leads WHERE usuario_id = $1 AND origen = 'WhatsApp'",
            user
        )
        .await,
        2
    );
    let evs = events(&app, user).await;
    let seqs: Vec<i64> = evs.iter().map(|e| e.0).collect();
    assert_eq!(
        seqs,
        (1..=evs.len() as i64).collect::<Vec<_>>(),
        "gapless seq"
    );
    assert_eq!(evs.iter().filter(|e| e.1 == "message.received").count(), 3);
    assert_eq!(evs.iter().filter(|e| e.1 == "lead.created").count(), 2);
    let received = evs.iter().find(|e| e.1 == "message.received").unwrap();
    assert_eq!(received.2["from"], "+5511987654321");
    assert_eq!(received.2["text"], "oi");
    app.shutdown().await;
}

#[tokio::test]
async fn statuses_only_move_forward_whatever_their_order() {
    let mut app = spawn_app().await;
    let (user, _) = app.user("acks@example.com", false).await;
    let conn = app.connection(user, "business").await;
    let a = outbound(&app, user, conn, "wamid.out.a").await;
    let b = outbound(&app, user, conn, "wamid.out.b").await;
    // read arrives before delivered and sent.
    let r = app
        .ingest(vec![status(user, conn, "wamid.out.a", Estado::Read)])
        .await;
    assert_eq!(r.statuses_applied, 1);
    let r = app
        .ingest(vec![
            status(user, conn, "wamid.out.a", Estado::Delivered),
            status(user, conn, "wamid.out.a", Estado::Sent),
        ])
        .await;
    assert_eq!(r.statuses_applied, 0);
    assert_eq!(estado_of(&app, a).await, "read");
    // A repeated status is a no-op: no second event.
    let before = events(&app, user).await.len();
    app.ingest(vec![status(user, conn, "wamid.out.a", Estado::Read)])
        .await;
    assert_eq!(events(&app, user).await.len(), before);
    // failed is final; within one batch the highest status wins regardless of order.
    app.ingest(vec![
        status(user, conn, "wamid.out.b", Estado::Failed),
        status(user, conn, "wamid.out.b", Estado::Delivered),
    ])
    .await;
    app.ingest(vec![status(user, conn, "wamid.out.b", Estado::Read)])
        .await;
    assert_eq!(estado_of(&app, b).await, "failed");
    let err: Option<String> = app
        .pool()
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT error FROM mensajes_conversacion WHERE id = $1",
            &[&b],
        )
        .await
        .unwrap()
        .get(0);
    assert!(err.unwrap().starts_with("131026"));
    // A status for a message not stored yet waits.
    let r = app
        .ingest(vec![status(
            user,
            conn,
            "wamid.out.future",
            Estado::Delivered,
        )])
        .await;
    assert_eq!(r.statuses_pending, 1);
    let evs = events(&app, user).await;
    let statuses: Vec<&str> = evs
        .iter()
        .filter(|e| e.1 == "message.status")
        .map(|e| e.2["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["read", "failed"]);
    app.shutdown().await;
}

#[tokio::test]
async fn content_is_sealed_at_rest_and_read_back_decrypted() {
    let mut app = spawn_app().await;
    let (user, key) = app.user("read@example.com", false).await;
    let (_, other_key) = app.user("other@example.com", false).await;
    let conn = app.connection(user, "business").await;
    for i in 0..5 {
        app.ingest(vec![text(
            user,
            conn,
            &format!("w{i}"),
            "+5511987654321",
            "Ana",
            &format!("segredo {i}"),
        )])
        .await;
    }
    let client = app.pool().get().await.unwrap();
    for table in ["mensajes_conversacion", "events"] {
        let leaked: i64 = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM {table} t WHERE row_to_json(t)::text LIKE '%segredo%'"
                ),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(leaked, 0, "plaintext in {table}");
    }
    let convs: Value = app
        .get("/v1/conversations", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(convs["items"].as_array().unwrap().len(), 1);
    let conv = convs["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(convs["items"][0]["remitente"], "+5511987654321");
    assert!(convs["items"][0]["last_inbound_at"].is_string());
    let page1: Value = app
        .get(&format!("/v1/conversations/{conv}/messages?limit=3"), &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let texts: Vec<&str> = page1["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["contenido"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        vec!["segredo 4", "segredo 3", "segredo 2"],
        "newest first, decrypted"
    );
    assert_eq!(page1["items"][0]["payload"]["body"], "segredo 4");
    let cursor = page1["next_cursor"].as_str().unwrap();
    let page2: Value = app
        .get(
            &format!("/v1/conversations/{conv}/messages?limit=3&cursor={cursor}"),
            &key,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page2["items"].as_array().unwrap().len(), 2);
    assert!(page2["next_cursor"].is_null());
    let resp = app
        .get(&format!("/v1/conversations/{conv}/messages"), &other_key)
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "not_found").await;
    let theirs: Value = app
        .get("/v1/conversations", &other_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(theirs["items"].as_array().unwrap().is_empty());
    drop(client);
    app.shutdown().await;
}
