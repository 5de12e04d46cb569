//! A contact changes number (Business: the `system` message `user_changed_number`; Lite:
//! WhatsApp Web's `change_number` notice, in real Chromium): the lead and the conversation
//! follow, messages from the new number (and late ones from the old) continue the same
//! history, and a `lead.updated` event says so.

use super::{WAIT, contact_writes, row_json, text};
use crate::helpers::{TestApp, eventually, spawn_business_app};
use crate::lite::{ACCOUNT, CHROMIUM, Lite, lite_app};
use serde_json::{Value, json};
use sincro_sim::graph::GraphSimConfig;

const OLD: &str = "+5511987650201";
const NEW: &str = "+5511987650202";

#[tokio::test]
async fn crm_number_change_moves_the_lead_and_continues_the_conversation() {
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (user, key) = app.user("crm-number@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;
    let sim = sim.base_url();
    let where_is = |id| {
        let app = &app;
        async move {
            row_json(
                app,
                "SELECT c.id AS conversation, c.lead_id AS lead, c.remitente FROM mensajes_conversacion m
                 JOIN conversaciones c ON c.id = m.conversacion_id WHERE m.id = $1",
                &[&id],
            )
            .await
        }
    };
    let before = where_is(contact_writes(&app, &sim, &n, OLD, text("hola")).await).await;

    // WhatsApp reports the change (from the old number, naming the new one).
    let change = json!({"type": "system", "system": {
        "body": "User A changed from 5511987650201 to 5511987650202",
        "wa_id": NEW.trim_start_matches('+'), "type": "user_changed_number"}});
    contact_writes(&app, &sim, &n, OLD, change).await;
    let lead = row_json(
        &app,
        "SELECT telefono, metadata FROM leads WHERE id = $1",
        &[&before["lead"]
            .as_str()
            .unwrap()
            .parse::<uuid::Uuid>()
            .unwrap()],
    )
    .await;
    assert_eq!(lead["telefono"], NEW);
    assert_eq!(lead["metadata"]["telefonos_anteriores"], json!([OLD]));
    assert_eq!(lead["metadata"]["wa_id"], NEW.trim_start_matches('+'));

    // The new number writes, and a late message from the old one arrives: one history.
    let after = where_is(contact_writes(&app, &sim, &n, NEW, text("sigo siendo yo")).await).await;
    assert_eq!(after["conversation"], before["conversation"]);
    assert_eq!(after["lead"], before["lead"]);
    assert_eq!(after["remitente"], NEW);
    let late = where_is(contact_writes(&app, &sim, &n, OLD, text("tarde")).await).await;
    assert_eq!(late["conversation"], before["conversation"]);
    // ...without taking the lead and conversation back to the old WhatsApp id.
    let ids: serde_json::Value = app
        .pool()
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT jsonb_build_array(l.metadata->'wa_id', c.metadata->'wa_id')
             FROM leads l JOIN conversaciones c ON c.lead_id = l.id WHERE l.usuario_id = $1",
            &[&user],
        )
        .await
        .unwrap()
        .get(0);
    let new_id = NEW.trim_start_matches('+');
    assert_eq!(ids, serde_json::json!([new_id, new_id]));
    let count = |sql: &'static str| {
        let app = &app;
        async move { app.count(sql, &[&user]).await }
    };
    assert_eq!(
        count("SELECT count(*) FROM leads WHERE usuario_id = $1").await,
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM conversaciones WHERE usuario_id = $1").await,
        1
    );

    // The API finds the lead by the new number, and the stream was told.
    let found: serde_json::Value = app
        .get(
            &format!("/v1/leads?phone={}", NEW.replace('+', "%2B")),
            &key,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["items"][0]["id"], before["lead"]);
    let told = eventually(WAIT, || async {
        let client = app.pool().get().await.unwrap();
        let rows = client
            .query(
                "SELECT seq FROM events WHERE usuario_id = $1 AND type = 'lead.updated'",
                &[&user],
            )
            .await
            .unwrap();
        (!rows.is_empty()).then_some(rows.len())
    })
    .await;
    assert!(told.is_some());
    let changed = change_event(&app, user).await;
    assert_eq!(changed["changes"]["telefono"], NEW);
    assert_eq!(changed["previous_telefono"], OLD);
}

/// The data of the `lead.updated` event that announced the change, opened as the stream sends it.
async fn change_event(app: &TestApp, user: uuid::Uuid) -> Value {
    let opened = sincro_core::store::events::read_after(
        &app.pool().get().await.unwrap(),
        &app.app().context().sealer,
        user,
        0,
        1000,
    )
    .await
    .unwrap();
    opened
        .into_iter()
        .find(|e| e.kind == "lead.updated" && e.data["reason"] == "user_changed_number")
        .expect("a lead.updated event for the change")
        .data
}

/// Waits for the row of `sql` (as JSON, its one parameter the Lite user) to exist.
async fn lite_row(lite: &Lite, sql: &str) -> Value {
    let got = eventually(WAIT, || async {
        lite.app
            .pool()
            .get()
            .await
            .unwrap()
            .query_opt(&format!("SELECT to_jsonb(x) FROM ({sql}) x"), &[&lite.user])
            .await
            .unwrap()
            .map(|r| r.get::<_, Value>(0))
    })
    .await;
    got.unwrap_or_else(|| panic!("no row for {sql}"))
}

#[tokio::test]
async fn lite_number_change_moves_the_lead_and_continues_the_conversation() {
    let _turn = CHROMIUM.lock().await;
    let Some(lite) = lite_app().await else { return };
    lite.working_session(ACCOUNT).await;
    let (old, new) = ("5511987650301", "5511987650302");
    let writes = |from: &'static str, text: &'static str| {
        let lite = &lite;
        async move {
            let (status, body) = lite
                .sim_post(
                    "messages",
                    json!({"account": ACCOUNT, "from": from, "name": "Ana", "text": text}),
                )
                .await;
            assert_eq!(status, 200, "{body}");
        }
    };
    writes(old, "hola").await;
    let before = lite_row(
        &lite,
        "SELECT c.id AS conversation, c.lead_id AS lead FROM conversaciones c
         WHERE c.usuario_id = $1",
    )
    .await;

    // The page shows WhatsApp Web's notice in the old chat.
    let (status, body) = lite
        .sim_post(
            "number-change",
            json!({"account": ACCOUNT, "from": old, "to": new}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let lead = lite_row(
        &lite,
        "SELECT id, telefono, metadata FROM leads
         WHERE usuario_id = $1 AND telefono = '+5511987650302'",
    )
    .await;
    assert_eq!(lead["id"], before["lead"]);
    assert_eq!(
        lead["metadata"]["telefonos_anteriores"],
        json!([format!("+{old}")])
    );
    assert_eq!(lead["metadata"]["wa_id"], new);

    // The new number writes: the same lead and conversation.
    writes(new, "sigo siendo yo").await;
    let after = lite_row(
        &lite,
        "SELECT c.id AS conversation, c.lead_id AS lead FROM mensajes_conversacion m
         JOIN conversaciones c ON c.id = m.conversacion_id
         WHERE c.usuario_id = $1 AND m.remitente = '+5511987650302'",
    )
    .await;
    assert_eq!(after, before);
    let count = |sql: &'static str| {
        let lite = &lite;
        async move { lite.app.count(sql, &[&lite.user]).await }
    };
    assert_eq!(
        count("SELECT count(*) FROM leads WHERE usuario_id = $1").await,
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM conversaciones WHERE usuario_id = $1").await,
        1
    );
    let changed = change_event(&lite.app, lite.user).await;
    assert_eq!(changed["changes"]["telefono"], format!("+{new}"));
    assert_eq!(changed["previous_telefono"], format!("+{old}"));
    lite.finish().await;
}
