//! The message pipeline: batches with duplicates, lead find-or-create and merging, statuses in
//! any order, profiles with history, sealed content read back decrypted, and events. The
//! builders of inbound items and the store's counts shared by both halves.

mod leads;
mod messages;

use crate::helpers::TestApp;
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

pub fn status(user: Uuid, conn: Uuid, id: &str, estado: Estado) -> InboundItem {
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

pub async fn events(app: &TestApp, user: Uuid) -> Vec<(i64, String, Value)> {
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

pub async fn count(app: &TestApp, sql: &str, user: Uuid) -> i64 {
    app.pool()
        .get()
        .await
        .unwrap()
        .query_one(sql, &[&user])
        .await
        .unwrap()
        .get(0)
}

pub async fn outbound(app: &TestApp, user: Uuid, conn: Uuid, wamid: &str) -> Uuid {
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

pub async fn estado_of(app: &TestApp, id: Uuid) -> String {
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
