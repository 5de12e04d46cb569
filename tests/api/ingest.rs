//! The message pipeline: batches with duplicates, lead find-or-create and merging, statuses in
//! any order, profiles with history, sealed content read back decrypted, and events.

use crate::helpers::{TestApp, expect_error, spawn_app};
use serde_json::{Value, json};
use sincro_core::ingest::{Estado, InboundItem, InboundMessage, MessageKind, StatusUpdate};
use time::OffsetDateTime;
use uuid::Uuid;

pub fn text(user: Uuid, conn: Uuid, id: &str, from: &str, name: &str, body: &str) -> InboundItem {
    InboundItem::Message(InboundMessage {
        usuario_id: user,
        connection_id: conn,
        external_id: id.to_string(),
        from: from.to_string(),
        outgoing: false,
        profile_name: Some(name.to_string()),
        profile_picture_url: None,
        kind: MessageKind::Texto,
        text: Some(body.to_string()),
        payload: json!({"body": body}),
        details: json!({}),
        timestamp: OffsetDateTime::now_utc(),
    })
}

fn status(user: Uuid, conn: Uuid, id: &str, estado: Estado) -> InboundItem {
    InboundItem::Status(StatusUpdate {
        usuario_id: user,
        connection_id: conn,
        external_id: id.to_string(),
        estado,
        error: (estado == Estado::Failed).then(|| "131026: Message undeliverable".to_string()),
        timestamp: OffsetDateTime::now_utc(),
        message_id: None,
    })
}

async fn events(app: &TestApp, user: Uuid) -> Vec<(i64, String, Value)> {
    let client = app.pool().get().await.unwrap();
    let evs = sincro_core::store::events::read_after(
        &client,
        &app.app().context().sealer,
        user,
        0,
        10_000,
    )
    .await
    .unwrap();
    evs.into_iter().map(|e| (e.seq, e.kind, e.data)).collect()
}

async fn count(app: &TestApp, sql: &str, user: Uuid) -> i64 {
    app.pool()
        .get()
        .await
        .unwrap()
        .query_one(sql, &[&user])
        .await
        .unwrap()
        .get(0)
}

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
async fn three_spellings_of_one_number_merge_into_one_lead() {
    // Arrange: the CRM has three leads typed three ways, region BR.
    let mut app = spawn_app().await;
    let (user, key) = app.user("merge@example.com", false).await;
    let client = app.pool().get().await.unwrap();
    client
        .execute(
            "UPDATE usuarios SET default_region = 'BR' WHERE id = $1",
            &[&user],
        )
        .await
        .unwrap();
    let mut ids = Vec::new();
    for (phone, email) in [
        ("+55 11 98765-4321", None),
        ("5511987654321", Some("ana@example.com")),
        ("(11) 98765-4321", None),
    ] {
        let id: Uuid = client
            .query_one(
                "INSERT INTO leads (usuario_id, nombre, telefono, email, origen) VALUES ($1, 'Ana CRM', $2, $3, 'CRM') RETURNING id",
                &[&user, &phone, &email],
            )
            .await
            .unwrap()
            .get(0);
        ids.push(id);
    }
    let conn = app.connection(user, "business").await;
    // Act: a WhatsApp message from that number.
    let report = app
        .ingest(vec![text(
            user,
            conn,
            "wamid.m1",
            "+5511987654321",
            "Ana WA",
            "oi",
        )])
        .await;
    // Assert
    assert_eq!(report.leads_created, 0);
    assert_eq!(report.leads_merged, 2);
    let live: Vec<(Uuid, String, Option<String>)> = client
        .query(
            "SELECT id, telefono, email FROM leads WHERE usuario_id = $1 AND merged_into IS NULL",
            &[&user],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(live.len(), 1, "{live:?}");
    let (survivor, telefono, email) = &live[0];
    assert_eq!(telefono, "+5511987654321");
    assert_eq!(*survivor, ids[0], "the oldest lead survives");
    assert_eq!(
        email.as_deref(),
        Some("ana@example.com"),
        "fields carried over"
    );
    let merged: i64 = client
        .query_one(
            "SELECT count(*) FROM leads WHERE merged_into = $1",
            &[survivor],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(merged, 2);
    let conv_lead: Uuid = client
        .query_one(
            "SELECT lead_id FROM conversaciones WHERE usuario_id = $1",
            &[&user],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(conv_lead, *survivor);
    let evs = events(&app, user).await;
    let merged_ev = evs
        .iter()
        .find(|e| e.1 == "lead.merged")
        .expect("lead.merged event");
    assert_eq!(merged_ev.2["lead_id"], json!(survivor));
    assert_eq!(merged_ev.2["merged_ids"].as_array().unwrap().len(), 2);
    // The API finds the lead by any spelling.
    let found: Value = app
        .get("/v1/leads?phone=(11)%2098765-4321", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    assert_eq!(found["items"][0]["id"], json!(survivor));
    drop(client);
    app.shutdown().await;
}

#[tokio::test]
async fn merge_duplicates_on_request() {
    let mut app = spawn_app().await;
    let (user, key) = app.user("merge2@example.com", false).await;
    let client = app.pool().get().await.unwrap();
    for phone in ["+55 21 91234-5678", "5521912345678", "+5511987654321"] {
        client
            .execute(
                "INSERT INTO leads (usuario_id, telefono) VALUES ($1, $2)",
                &[&user, &phone],
            )
            .await
            .unwrap();
    }
    let resp: Value = app
        .post("/v1/leads/merge-duplicates", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["merged"], 1);
    let live: i64 = client
        .query_one(
            "SELECT count(*) FROM leads WHERE usuario_id = $1 AND merged_into IS NULL",
            &[&user],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 2);
    let audited: i64 = client
        .query_one(
            "SELECT count(*) FROM audit_log WHERE usuario_id = $1 AND action = 'lead.merge_duplicates'",
            &[&user],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 1);
    drop(client);
    app.shutdown().await;
}

async fn outbound(app: &TestApp, user: Uuid, conn: Uuid, wamid: &str) -> Uuid {
    let client = app.pool().get().await.unwrap();
    let conv: Uuid = client
        .query_one(
            "INSERT INTO conversaciones (usuario_id, tipo, remitente, connection_id) VALUES ($1, 'saliente', $3, $2) RETURNING id",
            &[&user, &conn, &format!("+55119000{:05}", wamid.len() * 7 + wamid.bytes().map(u32::from).sum::<u32>() as usize)],
        )
        .await
        .unwrap()
        .get(0);
    client
        .query_one(
            "INSERT INTO mensajes_conversacion (conversacion_id, usuario_id, connection_id, direccion, external_id, estado)
             VALUES ($1, $2, $3, 'saliente', $4, 'sent') RETURNING id",
            &[&conv, &user, &conn, &wamid],
        )
        .await
        .unwrap()
        .get(0)
}

async fn estado_of(app: &TestApp, id: Uuid) -> String {
    app.pool()
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT estado FROM mensajes_conversacion WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0)
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
async fn profile_changes_are_kept_with_history() {
    let mut app = spawn_app().await;
    let (user, _) = app.user("profile@example.com", false).await;
    let conn = app.connection(user, "lite").await;
    app.ingest(vec![text(user, conn, "m1", "+5511987654321", "Ana", "1")])
        .await;
    app.ingest(vec![text(
        user,
        conn,
        "m2",
        "+5511987654321",
        "Ana Souza",
        "2",
    )])
    .await;
    let row = app
        .pool()
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT nombre, metadata FROM leads WHERE usuario_id = $1",
            &[&user],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "Ana Souza");
    let meta: Value = row.get(1);
    assert_eq!(meta["profile"]["name"], "Ana Souza");
    assert_eq!(meta["profile_history"][0]["profile"]["name"], "Ana");
    // A name the CRM user typed is kept; the profile still updates.
    app.pool()
        .get()
        .await
        .unwrap()
        .execute(
            "UPDATE leads SET nombre = 'Cliente VIP' WHERE usuario_id = $1",
            &[&user],
        )
        .await
        .unwrap();
    app.ingest(vec![text(
        user,
        conn,
        "m3",
        "+5511987654321",
        "Ana S.",
        "3",
    )])
    .await;
    let row = app
        .pool()
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT nombre, metadata FROM leads WHERE usuario_id = $1",
            &[&user],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "Cliente VIP");
    assert_eq!(row.get::<_, Value>(1)["profile"]["name"], "Ana S.");
    let evs = events(&app, user).await;
    assert_eq!(evs.iter().filter(|e| e.1 == "lead.updated").count(), 2);
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

#[tokio::test]
async fn senders_libphonenumber_cannot_place_are_stored_by_their_id() {
    let mut app = spawn_app().await;
    let (user, _) = app.user("weird@example.com", false).await;
    let conn = app.connection(user, "lite").await;
    let r = app
        .ingest(vec![
            text(user, conn, "x1", "status@broadcast", "?", "x"),
            text(user, conn, "x2", "+999123456789", "Zed", "unplaced"),
            text(user, conn, "x3", "+5511987654321", "Ana", "ok"),
        ])
        .await;
    assert_eq!(r.messages_inserted, 3);
    assert_eq!(r.leads_created, 3);
    let client = app.pool().get().await.unwrap();
    let conv: String = client
        .query_one(
            "SELECT c.remitente FROM conversaciones c JOIN mensajes_conversacion m ON m.conversacion_id = c.id
             WHERE m.external_id = 'x2'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(conv, "+999123456789", "keyed by the digits as given");
    drop(client);
    app.shutdown().await;
}

#[tokio::test]
async fn my_default_region_is_validated() {
    let mut app = spawn_app().await;
    let (_, key) = app.user("me@example.com", false).await;
    let resp = app
        .http
        .patch(format!("{}/v1/me", app.base))
        .bearer_auth(&key)
        .json(&json!({"default_region": "br"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let me: Value = resp.json().await.unwrap();
    assert_eq!(me["default_region"], "BR");
    let resp = app
        .http
        .patch(format!("{}/v1/me", app.base))
        .bearer_auth(&key)
        .json(&json!({"default_region": "Brazil"}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 422, "invalid_region").await;
    let me: Value = app
        .get("/v1/me", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        me["default_region"], "BR",
        "a refused change changes nothing"
    );
    app.shutdown().await;
}
