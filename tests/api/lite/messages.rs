//! Messages through a linked session: inbound text and media, outbound text and documents
//! through the connection contract, acks, and a message through the public queue.

use super::{ACCOUNT, CHROMIUM, CONTACT, Lite, lite_app};
use crate::helpers::eventually;
use serde_json::{Value, json};
use sincro_core::connection::{OutboundMessage, SendOutcome};
use std::time::Duration;
use uuid::Uuid;

fn outbound(lite: &Lite, id: &str, kind: &str, body: Value) -> OutboundMessage {
    OutboundMessage {
        message_id: Uuid::now_v7(),
        usuario_id: lite.user,
        connection_id: id.parse().unwrap(),
        to: format!("+{CONTACT}"),
        kind: kind.into(),
        body,
        attempt: 1,
        departure: None,
    }
}

#[tokio::test]
async fn lite_inbound_outbound_media_and_acks() {
    use base64::Engine as _;
    let _turn = CHROMIUM.lock().await;
    let Some(lite) = lite_app().await else { return };
    let id = lite.working_session(ACCOUNT).await;
    let conn: Uuid = id.parse().unwrap();
    let client = lite.app.pool().get().await.unwrap();

    // Inbound text → a lead, a conversation, a message.
    let (status, body) = lite
        .sim_post(
            "messages",
            json!({"account": ACCOUNT, "from": CONTACT, "name": "Ana", "text": "oi, quero um orçamento"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let text_id = body["id"].as_str().unwrap().to_string();
    let row = eventually(Duration::from_secs(20), || async {
        client
            .query_opt(
                "SELECT tipo, direccion, remitente FROM mensajes_conversacion
                 WHERE external_id = $1",
                &[&text_id],
            )
            .await
            .unwrap()
    })
    .await
    .expect("inbound text stored");
    assert_eq!(row.get::<_, String>(0), "texto");
    assert_eq!(row.get::<_, String>(1), "entrante");
    let lead: String = client
        .query_one(
            "SELECT telefono FROM leads WHERE usuario_id = $1",
            &[&lite.user],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(lead, format!("+{CONTACT}"));

    // Inbound media → sealed file + media row, message typed imagen.
    let jpeg = b"\xff\xd8\xff\xe0 sincro lite test image".repeat(50_000);
    let (status, body) = lite
        .sim_post(
            "messages",
            json!({"account": ACCOUNT, "from": CONTACT, "name": "Ana",
                   "media": {"mimetype": "image/jpeg", "caption": "foto",
                             "data_base64": base64::engine::general_purpose::STANDARD.encode(&jpeg)}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let media_msg = body["id"].as_str().unwrap().to_string();
    let row = eventually(Duration::from_secs(30), || async {
        client
            .query_opt(
                "SELECT tipo FROM mensajes_conversacion WHERE external_id = $1",
                &[&media_msg],
            )
            .await
            .unwrap()
    })
    .await
    .expect("inbound media stored");
    assert_eq!(row.get::<_, String>(0), "imagen");
    // The media is fetched from the page after the message is stored, and linked to it.
    let media = eventually(Duration::from_secs(30), || async {
        client
            .query_opt(
                "SELECT m.id, m.size_bytes, m.sha256, m.storage_path, m.mime_type FROM media m
                 JOIN mensajes_conversacion c ON c.id = m.message_id
                 WHERE m.provider_id = $1 AND m.connection_id = $2
                   AND c.metadata->>'media_id' = m.id::text",
                &[&media_msg, &conn],
            )
            .await
            .unwrap()
    })
    .await
    .expect("inbound media linked to its message");
    assert_eq!(media.get::<_, i64>(1), jpeg.len() as i64);
    assert_eq!(media.get::<_, String>(4), "image/jpeg");
    let on_disk = std::fs::read_to_string(lite.data_dir.join(media.get::<_, String>(3))).unwrap();
    assert!(
        !on_disk.contains("sincro lite test image"),
        "media is sealed at rest"
    );

    // Outbound text through the connection contract → the simulator got it.
    let conn_ref = lite
        .app
        .app()
        .context()
        .shared
        .connections
        .get(conn)
        .expect("registered");
    let outcome = conn_ref
        .send(
            outbound(
                &lite,
                &id,
                "text",
                json!({"type": "text", "text": {"body": "olá, segue o orçamento"}}),
            ),
            Duration::from_secs(40),
        )
        .await;
    let SendOutcome::Sent { external_id } = outcome else {
        panic!("text send: {outcome:?}")
    };
    let sent = lite.sim_get(&format!("sim/sent?account={ACCOUNT}")).await;
    let item = sent
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == external_id.as_str())
        .expect("the simulator received it")
        .clone();
    assert_eq!(item["body"], "olá, segue o orçamento");
    assert_eq!(item["to"], format!("{CONTACT}@c.us"));

    // Outbound document by media id.
    let pdf = b"%PDF-1.4 sincro lite document".to_vec();
    let stored = sincro_core::media_store::store(
        &lite.app.pool().get().await.unwrap(),
        &lite.app.app().context().sealer,
        &lite.data_dir,
        sincro_core::media_store::NewMedia {
            usuario_id: lite.user,
            connection_id: Some(conn),
            direction: "inbound",
            mime_type: "application/pdf",
            filename: Some("orcamento.pdf"),
            provider_id: None,
            message_id: None,
        },
        &pdf,
    )
    .await
    .unwrap();
    let outcome = conn_ref
        .send(
            outbound(
                &lite,
                &id,
                "document",
                json!({"type": "document", "document": {"id": stored.id, "filename": "orcamento.pdf", "caption": "o pdf"}}),
            ),
            Duration::from_secs(40),
        )
        .await;
    let SendOutcome::Sent {
        external_id: doc_id,
    } = outcome
    else {
        panic!("document send: {outcome:?}")
    };
    let sent = lite.sim_get(&format!("sim/sent?account={ACCOUNT}")).await;
    let doc = sent
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == doc_id.as_str())
        .expect("document received")
        .clone();
    assert_eq!(doc["type"], "document");
    assert_eq!(doc["caption"], "o pdf");
    assert_eq!(doc["media"]["filename"], "orcamento.pdf");
    assert_eq!(doc["media"]["sha256"], stored.sha256);

    // Types Lite cannot send fail at once; a bad body too.
    let outcome = conn_ref
        .send(
            outbound(
                &lite,
                &id,
                "template",
                json!({"type": "template", "template": {"name": "x"}}),
            ),
            Duration::from_secs(10),
        )
        .await;
    assert!(matches!(outcome, SendOutcome::Failed { .. }), "{outcome:?}");

    // Acks → statuses (the message row is the Dispatcher's; without it they wait in
    // pending_statuses, forward only).
    for ack in [2, 3] {
        let (status, body) = lite
            .sim_post("acks", json!({"id": external_id, "ack": ack}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let estado = eventually(Duration::from_secs(20), || async {
        let row = client
            .query_opt(
                "SELECT estado FROM pending_statuses WHERE connection_id = $1 AND external_id = $2",
                &[&conn, &external_id],
            )
            .await
            .unwrap()?;
        let e: String = row.get(0);
        (e == "read").then_some(e)
    })
    .await;
    assert_eq!(estado.as_deref(), Some("read"));
    lite.finish().await;
}

#[tokio::test]
async fn lite_message_through_the_queue_is_sent_once_and_acked() {
    // Arrange
    let _turn = CHROMIUM.lock().await;
    let Some(lite) = lite_app().await else { return };
    let id = lite.working_session(ACCOUNT).await;
    // Act: the public path, POST /v1/messages → outbox → Dispatcher → LiteSession → page.
    let resp = lite
        .app
        .post("/v1/messages", &lite.key)
        .json(
            &json!({"connection_id": id, "to": format!("+{CONTACT}"), "type": "text",
                      "text": {"body": "pela fila"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let mid = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let view = |mid: String| {
        let app = &lite.app;
        let key = lite.key.clone();
        async move {
            app.get(&format!("/v1/messages/{mid}"), &key)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    // Assert: sent once, with the page's id, then the read ack moves it forward.
    let sent = eventually(Duration::from_secs(60), || async {
        let v = view(mid.clone()).await;
        crate::queue::reached(v["estado"].as_str().unwrap_or(""), "sent").then_some(v)
    })
    .await
    .expect("sent through the queue");
    let external = sent["external_id"].as_str().unwrap().to_string();
    let on_sim = lite.sim_get(&format!("sim/sent?account={ACCOUNT}")).await;
    let copies: Vec<&Value> = on_sim
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["body"] == "pela fila")
        .collect();
    assert_eq!(copies.len(), 1, "sent exactly once");
    assert_eq!(copies[0]["id"], external.as_str());
    let (code, _) = lite
        .sim_post("acks", json!({"id": external, "ack": 3}))
        .await;
    assert_eq!(code, 200);
    eventually(Duration::from_secs(30), || async {
        (view(mid.clone()).await["estado"] == "read").then_some(())
    })
    .await
    .expect("read ack applied");
    lite.finish().await;
}
