//! Erasure: after `DELETE /v1/contacts/{phone}` no row (every text, jsonb and bytea column,
//! sealed values opened) and no file under `DATA_DIR` holds the contact's number or anything
//! it wrote or was sent, while another contact batched in the same webhook body keeps all of
//! its own; the lead is anonymised (or deleted with `?lead=delete`); the audit row says an
//! erasure happened without content; a later message from the number starts fresh.

use super::{
    WAIT, body, business_user, business_user_with, find_anywhere, receive, send, settled,
    sim_inbound, text,
};
use crate::helpers::{eventually, expect_error};
use serde_json::{Value, json};
use sincro_sim::graph::GraphSimConfig;
use std::path::Path;
use uuid::Uuid;

const CONTACT: &str = "5511987654321";
const OTHER: &str = "5521999990000";

#[tokio::test]
async fn erasure_leaves_nothing_of_the_contact_and_keeps_the_others() {
    // No status webhooks: one arriving after the erasure would name the number again (it
    // lands in the inbox like any webhook, and inbox retention purges it).
    let config = GraphSimConfig {
        statuses: Vec::new(),
        ..GraphSimConfig::default()
    };
    let (app, sim, user, key, n) = business_user_with(config, "erase@example.com").await;
    let conn = n.connection_id;
    let data_dir = Path::new(&app.env["DATA_DIR"]).to_path_buf();
    // The CRM typed the contact's number its own way before WhatsApp saw it.
    let client = app.pool().get().await.unwrap();
    let crm_lead: Uuid = client
        .query_one(
            "INSERT INTO leads (usuario_id, nombre, telefono, email) VALUES ($1, 'Ana Souza', '+55 (11) 98765-4321', 'ana@example.com') RETURNING id",
            &[&user],
        )
        .await
        .unwrap()
        .get(0);
    // One webhook body with both contacts, then more from each.
    receive(
        &app,
        &n,
        &body(
            &n,
            vec![
                text(CONTACT, "wamid.a1", "segredo-da-ana"),
                text(OTHER, "wamid.b1", "recado-do-bruno"),
            ],
        ),
    )
    .await;
    sim_inbound(&app, &sim, &n, CONTACT, "STOP").await;
    sim_inbound(&app, &sim, &n, OTHER, "ok").await;
    // A reply and a file sent to the contact.
    let (status, sent) = send(&app, &key, &json!({"connection_id": conn, "to": CONTACT, "type": "text", "text": {"body": "resposta-para-ana"}})).await;
    assert_eq!(status, 202, "{sent}");
    let file = b"arquivo-da-ana-PDF-bytes".to_vec();
    let up: Value = app
        .post(
            &format!("/v1/media?connection_id={conn}&filename=ana-contrato.pdf"),
            &key,
        )
        .header("content-type", "application/pdf")
        .body(file.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let media_id = up["id"].as_str().unwrap().to_string();
    let (status, sent) = send(&app, &key, &json!({"connection_id": conn, "to": CONTACT, "type": "document", "document": {"id": media_id, "filename": "ana-contrato.pdf"}})).await;
    assert_eq!(status, 202, "{sent}");
    let other_reply = send(&app, &key, &json!({"connection_id": conn, "to": OTHER, "type": "text", "text": {"body": "resposta-para-bruno"}})).await;
    assert_eq!(other_reply.0, 202);
    settled(&app).await;
    let needles = [
        "98765-4321",
        "987654321",
        "87654321",
        "segredo-da-ana",
        "resposta-para-ana",
        "arquivo-da-ana",
        "ana-contrato",
        "Ana Souza",
        "ana@example.com",
        "Nome 5511987654321",
    ];
    let before = find_anywhere(&app, &data_dir, &needles).await;
    assert!(
        before.iter().any(|f| f.contains("segredo-da-ana")),
        "the search finds what is there: {before:?}"
    );
    assert!(before.iter().any(|f| f.starts_with("file ")), "{before:?}");

    // A number that is none, another user's view: refused or not found, nothing changed.
    expect_error(
        app.delete("/v1/contacts/hello", &key).send().await.unwrap(),
        400,
        "invalid_phone",
    )
    .await;
    let (_, other_key) = app.user("erase-other@example.com", false).await;
    expect_error(
        app.delete("/v1/contacts/5511987654321", &other_key)
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    expect_error(
        app.delete("/v1/contacts/5511987654321?lead=burn", &key)
            .send()
            .await
            .unwrap(),
        400,
        "invalid_lead_mode",
    )
    .await;

    // Erased under another spelling of the number.
    let resp = app
        .delete("/v1/contacts/%2B55%2011%2098765-4321", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let erased: Value = resp.json().await.unwrap();
    assert_eq!(erased["lead"], "anonymised");
    assert!(erased["messages"].as_u64().unwrap() >= 4, "{erased}");
    assert_eq!(erased["media_files"], 1, "{erased}");
    assert!(
        erased["inbox_rows_rewritten"].as_u64().unwrap() >= 1,
        "{erased}"
    );
    assert!(
        erased["inbox_rows_deleted"].as_u64().unwrap() >= 1,
        "{erased}"
    );

    let left = find_anywhere(&app, &data_dir, &needles).await;
    assert!(left.is_empty(), "still there after erasure: {left:#?}");
    // The other contact keeps its messages, its part of the shared webhook body and its reply.
    let kept = find_anywhere(
        &app,
        &data_dir,
        &["recado-do-bruno", "resposta-para-bruno", "5521999990000"],
    )
    .await;
    for table in [
        "mensajes_conversacion.contenido",
        "webhook_inbox.body",
        "leads.telefono",
        "outbox.payload",
    ] {
        assert!(
            kept.iter().any(|f| f.starts_with(table)),
            "{table} lost the other contact: {kept:#?}"
        );
    }
    // The merged CRM lead and WhatsApp's lead: both rows kept, personal fields cleared.
    let rows = client
        .query("SELECT id, nombre, telefono, email FROM leads WHERE usuario_id = $1 AND telefono IS NULL", &[&user])
        .await
        .unwrap();
    assert!(rows.iter().any(|r| r.get::<_, Uuid>(0) == crm_lead));
    assert!(rows.iter().all(
        |r| r.get::<_, Option<String>>(1).is_none() && r.get::<_, Option<String>>(3).is_none()
    ));
    // The audit row: an erasure, counts only.
    let details: Value = client
        .query_one(
            "SELECT details FROM audit_log WHERE action = 'contact.erase' AND outcome = 'ok'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(details["messages"].is_number(), "{details}");

    // The number writes again: a new lead and conversation, opted in again by default.
    receive(
        &app,
        &n,
        &body(&n, vec![text(CONTACT, "wamid.a3", "oi de novo")]),
    )
    .await;
    let fresh: Uuid = client
        .query_one(
            "SELECT id FROM leads WHERE usuario_id = $1 AND telefono = '+5511987654321'",
            &[&user],
        )
        .await
        .unwrap()
        .get(0);
    assert!(rows.iter().all(|r| r.get::<_, Uuid>(0) != fresh));
    let bulk = json!({"connection_id": conn, "to": CONTACT, "type": "text", "text": {"body": "x"}, "priority": "bulk"});
    assert_eq!(send(&app, &key, &bulk).await.0, 202);
}

#[tokio::test]
async fn erasure_can_delete_the_lead() {
    let (app, _sim, user, key, n) = business_user("erase-lead@example.com").await;
    receive(&app, &n, &body(&n, vec![text(OTHER, "wamid.b1", "recado")])).await;
    let resp = app
        .delete("/v1/contacts/5521999990000?lead=delete", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        app.count("SELECT count(*) FROM leads WHERE usuario_id = $1", &[&user])
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT count(*) FROM mensajes_conversacion", &[])
            .await,
        0
    );
    // Gone is gone: a second erasure finds nothing.
    expect_error(
        app.delete("/v1/contacts/5521999990000", &key)
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    let logged = eventually(WAIT, || async {
        (app.count(
            "SELECT count(*) FROM audit_log WHERE action = 'contact.erase'",
            &[],
        )
        .await
            == 2)
            .then_some(())
    })
    .await;
    assert!(logged.is_some());
}

#[tokio::test]
async fn erasure_keeps_a_file_other_contacts_messages_still_use() {
    // Arrange: one uploaded file sent to two contacts.
    let (app, _sim, _user, key, n) = business_user("erase-shared@example.com").await;
    let conn = n.connection_id;
    for (from, wamid) in [(CONTACT, "wamid.s1"), (OTHER, "wamid.s2")] {
        receive(&app, &n, &body(&n, vec![text(from, wamid, "oi")])).await;
    }
    let up: Value = app
        .post(
            &format!("/v1/media?connection_id={conn}&filename=catalogo.pdf"),
            &key,
        )
        .header("content-type", "application/pdf")
        .body(b"catalogo-da-loja".to_vec())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let media_id: Uuid = up["id"].as_str().unwrap().parse().unwrap();
    for to in [CONTACT, OTHER] {
        let doc = json!({"connection_id": conn, "to": to, "type": "document",
                         "document": {"id": media_id, "filename": "catalogo.pdf"}});
        let (status, sent) = send(&app, &key, &doc).await;
        assert_eq!(status, 202, "{sent}");
    }
    settled(&app).await;
    let stored_file = || async {
        let path: Option<String> = app
            .pool()
            .get()
            .await
            .unwrap()
            .query_opt("SELECT storage_path FROM media WHERE id = $1", &[&media_id])
            .await
            .unwrap()
            .map(|r| r.get(0));
        path.map(|p| Path::new(&app.env["DATA_DIR"]).join(p).exists())
    };
    assert_eq!(stored_file().await, Some(true));

    // Act: the first contact is erased.
    let resp = app
        .delete("/v1/contacts/5511987654321", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let erased: Value = resp.json().await.unwrap();

    // Assert: the file stays for the other contact's message, and is in its export.
    assert_eq!(erased["media_files"], 0, "{erased}");
    assert_eq!(erased["media_files_kept_shared"], 1, "{erased}");
    assert_eq!(stored_file().await, Some(true));
    let export = app
        .get("/v1/contacts/5521999990000/export", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(export.status().as_u16(), 200);
    let zip = export.bytes().await.unwrap();
    let name = format!("media/{media_id}");
    assert!(
        zip.windows(name.len()).any(|w| w == name.as_bytes()),
        "the export names the shared file"
    );

    // Act + Assert: the last contact using it is erased, and the file goes with it.
    let resp = app
        .delete("/v1/contacts/5521999990000", &key)
        .send()
        .await
        .unwrap();
    let erased: Value = resp.json().await.unwrap();
    assert_eq!(erased["media_files"], 1, "{erased}");
    assert_eq!(erased["media_files_kept_shared"], 0, "{erased}");
    assert_eq!(stored_file().await, None);
}
