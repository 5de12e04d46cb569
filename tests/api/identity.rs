//! Who a contact is: real-world WhatsApp ids through signed webhooks (Mexico's `521…`,
//! Argentina's `549…`, Brazil with and without the ninth digit, US/Canada, Portugal, Spain, a
//! number libphonenumber cannot place), each stored once and matched to the lead the CRM typed
//! in another spelling; a send whose answer names a Brazilian account without the ninth digit
//! joining the contact's one conversation; NUL in contact-controlled text; Business app echoes.

use crate::helpers::{BusinessNumber, TestApp, eventually, spawn_business_app};
use serde_json::{Value, json};
use sincro_core::ingest::{InboundItem, InboundMessage, MessageKind};
use sincro_sim::graph::GraphSimConfig;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(15);

/// A `messages` webhook exactly as Meta shapes it: one text from `wa_id`.
fn inbound_envelope(n: &BusinessNumber, wa_id: &str, wamid: &str, name: &str, body: &str) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": n.waba_id, "changes": [{
    "field": "messages",
    "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": n.display_phone_number, "phone_number_id": n.phone_number_id},
        "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
        "messages": [{"from": wa_id, "id": wamid, "timestamp": OffsetDateTime::now_utc().unix_timestamp().to_string(),
                      "type": "text", "text": {"body": body}}],
    }}]}]})
}

async fn post_signed(app: &TestApp, n: &BusinessNumber, envelope: &Value) {
    let body = serde_json::to_vec(envelope).unwrap();
    let resp = app.post_webhook(&body, Some(&n.app_secret)).await;
    assert_eq!(
        resp.status().as_u16(),
        200,
        "{}",
        resp.text().await.unwrap()
    );
}

async fn lead_typed(app: &TestApp, user: Uuid, telefono: &str, nombre: &str) -> Uuid {
    let client = app.pool().get().await.unwrap();
    client
        .query_one(
            "INSERT INTO leads (usuario_id, telefono, nombre, origen) VALUES ($1, $2, $3, 'CRM') RETURNING id",
            &[&user, &telefono, &nombre],
        )
        .await
        .unwrap()
        .get(0)
}

/// `(lead_id, conversation remitente, message metadata)` of a stored message, once stored.
async fn stored(app: &TestApp, conn: Uuid, wamid: &str) -> Option<(Option<Uuid>, String, Value)> {
    let client = app.pool().get().await.unwrap();
    client
        .query_opt(
            "SELECT c.lead_id, c.remitente, m.metadata FROM mensajes_conversacion m
             JOIN conversaciones c ON c.id = m.conversacion_id
             WHERE m.connection_id = $1 AND m.external_id = $2",
            &[&conn, &wamid],
        )
        .await
        .unwrap()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
}

#[tokio::test]
async fn real_world_senders_are_each_stored_once_on_the_right_lead() {
    // Arrange: a Business number; the CRM typed some contacts beforehand, in other spellings
    // than WhatsApp's (the user's region is Argentina, for the national spelling).
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (user, key) = app.user("corpus@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;
    app.pool()
        .get()
        .await
        .unwrap()
        .execute(
            "UPDATE usuarios SET default_region = 'AR' WHERE id = $1",
            &[&user],
        )
        .await
        .unwrap();
    // (wa_id as Meta sends it, the lead's key, the spelling the CRM typed if any)
    let corpus: &[(&str, &str, Option<&str>)] = &[
        ("5215512345678", "+525512345678", Some("+52 55 1234 5678")),
        ("5491123456789", "+5491123456789", Some("011 15-2345-6789")),
        ("5493514567890", "+5493514567890", Some("+54 351 456-7890")),
        ("551187654321", "+5511987654321", Some("+55 11 98765-4321")),
        ("5521998765432", "+5521998765432", Some("+55 21 9876-5432")),
        ("16502530000", "+16502530000", None),
        ("14165550199", "+14165550199", None),
        ("351912345678", "+351912345678", None),
        ("34612345678", "+34612345678", None),
        ("999123456789", "+999123456789", None),
    ];
    let mut typed = Vec::new();
    for (i, (_, _, spelling)) in corpus.iter().enumerate() {
        typed.push(match spelling {
            Some(s) => Some(lead_typed(&app, user, s, &format!("CRM {i}")).await),
            None => None,
        });
    }

    // Act: each sender writes; Meta delivers every webhook twice.
    for (i, (wa_id, _, _)) in corpus.iter().enumerate() {
        let env = inbound_envelope(
            &n,
            wa_id,
            &format!("wamid.corpus{i}"),
            &format!("WA {i}"),
            "hola",
        );
        post_signed(&app, &n, &env).await;
        post_signed(&app, &n, &env).await;
    }

    // Assert: every message stored once, on its key, with its wa_id as given, on the lead the
    // CRM typed when there was one.
    for (i, (wa_id, lead_key, _)) in corpus.iter().enumerate() {
        let wamid = format!("wamid.corpus{i}");
        let (lead, remitente, meta) = eventually(WAIT, || stored(&app, n.connection_id, &wamid))
            .await
            .unwrap_or_else(|| panic!("{wa_id} stored"));
        assert_eq!(remitente, *lead_key, "{wa_id}");
        assert_eq!(meta["wa_id"], *wa_id, "{wa_id}");
        if let Some(t) = typed[i] {
            assert_eq!(lead, Some(t), "{wa_id} matched the CRM's lead");
        }
        let lead = lead.unwrap();
        let (telefono, lead_wa): (String, Option<String>) = {
            let r = app
                .pool()
                .get()
                .await
                .unwrap()
                .query_one(
                    "SELECT telefono, metadata->>'wa_id' FROM leads WHERE id = $1",
                    &[&lead],
                )
                .await
                .unwrap();
            (r.get(0), r.get(1))
        };
        assert_eq!(telefono, *lead_key, "{wa_id}: the lead takes the key");
        assert_eq!(lead_wa.as_deref(), Some(*wa_id));
    }
    let wait_all = eventually(WAIT, || async {
        let c = app
            .count(
                "SELECT count(*) FROM mensajes_conversacion WHERE connection_id = $1",
                &[&n.connection_id],
            )
            .await;
        (c == corpus.len() as i64).then_some(())
    })
    .await;
    assert!(wait_all.is_some());
    // Let any replayed delivery finish: the inbox is empty once both copies were drained.
    assert!(app.inbox_drained(WAIT).await);
    let (messages, conversations, leads) = (
        app.count(
            "SELECT count(*) FROM mensajes_conversacion WHERE connection_id = $1",
            &[&n.connection_id],
        )
        .await,
        app.count(
            "SELECT count(*) FROM conversaciones WHERE connection_id = $1",
            &[&n.connection_id],
        )
        .await,
        app.count(
            "SELECT count(*) FROM leads WHERE usuario_id = $1 AND merged_into IS NULL",
            &[&user],
        )
        .await,
    );
    assert_eq!(
        (messages, conversations, leads),
        (10, 10, 10),
        "one message, conversation and lead per person"
    );

    // The other spelling of the Mexican number finds the same lead through the API.
    let found: Value = app
        .get("/v1/leads?phone=%2B5215512345678", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["items"][0]["id"], json!(typed[0].unwrap()));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_brazilian_account_without_the_ninth_digit_is_one_conversation() {
    // Arrange: the contact's WhatsApp account predates the ninth digit.
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (user, key) = app.user("ninth@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;
    let base = sim.base_url();
    let r = app
        .http
        .post(format!("{base}/sim/contacts"))
        .json(&json!({"phone": "+5511987654321", "wa_id": "551187654321"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let contact_writes = |body: &'static str| {
        let app = &app;
        let base = base.clone();
        let pnid = n.phone_number_id.clone();
        async move {
            let v: Value = app
                .http
                .post(format!("{base}/sim/inbound"))
                .json(
                    &json!({"phone_number_id": pnid, "from": "551187654321", "name": "Ana",
                              "message": {"type": "text", "text": {"body": body}}}),
                )
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["id"].as_str().unwrap().to_string()
        }
    };
    let first = contact_writes("oi").await;
    assert!(
        eventually(WAIT, || stored(&app, n.connection_id, &first))
            .await
            .is_some()
    );

    // Act: the CRM answers the number as people write it; the contact replies.
    let resp = app
        .post("/v1/messages", &key)
        .json(
            &json!({"connection_id": n.connection_id, "to": "+55 11 98765-4321", "type": "text",
                      "text": {"body": "olá"}}),
        )
        .send()
        .await
        .unwrap();
    let sent: Value = resp.json().await.unwrap();
    let sent_id: Uuid = sent["id"].as_str().expect("queued").parse().unwrap();
    let read = eventually(WAIT, || async {
        let e: Value = app
            .get(&format!("/v1/messages/{sent_id}"), &key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (e["estado"] == "read").then_some(())
    })
    .await;
    assert!(
        read.is_some(),
        "the statuses (recipient 551187654321) reached the message"
    );
    let reply = contact_writes("obrigado").await;
    assert!(
        eventually(WAIT, || stored(&app, n.connection_id, &reply))
            .await
            .is_some()
    );

    // Assert: one conversation and one lead hold all three; the answer's wa_id is kept.
    let client = app.pool().get().await.unwrap();
    let rows = client
        .query(
            "SELECT c.id, c.lead_id, c.remitente, c.metadata->>'wa_id' FROM conversaciones c WHERE c.usuario_id = $1",
            &[&user],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "one conversation");
    let conv: Uuid = rows[0].get(0);
    let lead: Uuid = rows[0].get(1);
    assert_eq!(rows[0].get::<_, String>(2), "+5511987654321");
    assert_eq!(
        rows[0].get::<_, Option<String>>(3).as_deref(),
        Some("551187654321")
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM mensajes_conversacion WHERE conversacion_id = $1",
            &[&conv]
        )
        .await,
        3
    );
    assert_eq!(
        app.count("SELECT count(*) FROM leads WHERE usuario_id = $1", &[&user])
            .await,
        1
    );
    let (meta, lead_meta): (Value, Value) = {
        let m = client
            .query_one(
                "SELECT metadata FROM mensajes_conversacion WHERE id = $1",
                &[&sent_id],
            )
            .await
            .unwrap();
        let l = client
            .query_one("SELECT metadata FROM leads WHERE id = $1", &[&lead])
            .await
            .unwrap();
        (m.get(0), l.get(0))
    };
    assert_eq!(meta["wa_id"], "551187654321", "the send answer's wa_id");
    assert_eq!(lead_meta["wa_id"], "551187654321");
    let sent_to: Value = app
        .http
        .get(format!(
            "{base}/sim/sent?phone_number_id={}",
            n.phone_number_id
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sent_to[0]["wa_id"], "551187654321");
    drop(client);
    sim.shutdown().await;
}

fn with_nul(user: Uuid, conn: Uuid, id: &str, from: &str) -> InboundItem {
    InboundItem::Message(InboundMessage {
        usuario_id: user,
        connection_id: conn,
        external_id: id.to_string(),
        from: from.to_string(),
        outgoing: false,
        profile_name: Some("Ana\0Nul".into()),
        profile_picture_url: None,
        kind: MessageKind::Documento,
        text: Some("see\0this".into()),
        payload: json!({"id": "m1", "caption": "see\0this", "filename": "a\0b.pdf"}),
        details: json!({"provider": "whatsapp_cloud", "type": "document\0", "media_filename": "a\0b.pdf",
                        "media_mime_type": "application/pdf"}),
        timestamp: OffsetDateTime::now_utc(),
    })
}

#[tokio::test]
async fn nul_in_contact_text_is_stored_and_the_batch_goes_on() {
    // Arrange: two users' connections; one contact puts NUL in name, body, caption, filename.
    let (mut app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (a, key_a) = app.user("nul-a@example.com", false).await;
    let (b, _) = app.user("nul-b@example.com", false).await;
    let conn_a = app.connection(a, "lite").await;
    let conn_b = app.connection(b, "lite").await;
    let mut other = match with_nul(b, conn_b, "n2", "+5511987654321") {
        InboundItem::Message(m) => m,
        _ => unreachable!(),
    };
    other.profile_name = Some("Bia".into());
    other.text = Some("fine".into());
    other.details = json!({"provider": "lite"});

    // Act: one batch.
    let report = app
        .ingest(vec![
            with_nul(a, conn_a, "n1", "+5215512345678"),
            InboundItem::Message(other),
        ])
        .await;

    // Assert: both stored; clear copies replaced, the sealed body opens to the original.
    assert_eq!(report.messages_inserted, 2);
    let client = app.pool().get().await.unwrap();
    let row = client
        .query_one(
            "SELECT l.nombre, m.metadata, m.conversacion_id FROM mensajes_conversacion m
             JOIN conversaciones c ON c.id = m.conversacion_id JOIN leads l ON l.id = c.lead_id
             WHERE m.external_id = 'n1'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, Option<String>>(0).as_deref(),
        Some("Ana\u{FFFD}Nul")
    );
    let meta: Value = row.get(1);
    assert_eq!(meta["details"]["media_filename"], "a\u{FFFD}b.pdf");
    assert_eq!(meta["details"]["type"], "document\u{FFFD}");
    let conv: Uuid = row.get(2);
    let page: Value = app
        .get(&format!("/v1/conversations/{conv}/messages"), &key_a)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"][0]["contenido"], "see\0this", "{page}");
    assert_eq!(
        app.count(
            "SELECT count(*) FROM mensajes_conversacion WHERE external_id = 'n2'",
            &[]
        )
        .await,
        1
    );

    // A document's file name with NUL is stored in clear too.
    let row = sincro_core::media_store::store(
        &client,
        &app.app().context().shared.sealer,
        &app.app().context().shared.settings.data_dir,
        sincro_core::media_store::NewMedia {
            usuario_id: a,
            connection_id: Some(conn_a),
            direction: "inbound",
            mime_type: "application/pdf",
            filename: Some("a\0b.pdf"),
            provider_id: None,
            message_id: None,
        },
        b"%PDF-1.4",
    )
    .await
    .expect("stored");
    let name: Option<String> = client
        .query_one("SELECT filename FROM media WHERE id = $1", &[&row.id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name.as_deref(), Some("a\u{FFFD}b.pdf"));
    drop(client);
    app.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn business_app_echoes_join_the_conversation_as_sent_messages() {
    // Arrange: a coexistence number; a Mexican contact wrote first.
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (_, key) = app.user("echo@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;
    let base = sim.base_url();
    let first: Value = app
        .http
        .post(format!("{base}/sim/inbound"))
        .json(
            &json!({"phone_number_id": n.phone_number_id, "from": "+52 55 1234 5678", "name": "Luz",
                      "message": {"type": "text", "text": {"body": "hola"}}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first = first["id"].as_str().unwrap().to_string();
    assert!(
        eventually(WAIT, || stored(&app, n.connection_id, &first))
            .await
            .is_some()
    );

    // Act: the user answers from the WhatsApp Business app (signed smb_message_echoes
    // webhook), then Meta reports its statuses.
    let echo: Value = app
        .http
        .post(format!("{base}/sim/echo"))
        .json(
            &json!({"phone_number_id": n.phone_number_id, "to": "+525512345678",
                      "message": {"type": "text", "text": {"body": "¡buenas!"}}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let echo_id = echo["id"].as_str().unwrap().to_string();
    assert!(
        eventually(WAIT, || stored(&app, n.connection_id, &echo_id))
            .await
            .is_some()
    );
    let r = app
        .http
        .post(format!("{base}/sim/statuses"))
        .json(&json!({"id": echo_id, "status": "delivered"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    // Meta delivers the echo again: it is not stored twice.
    let again = json!({"object": "whatsapp_business_account", "entry": [{"id": n.waba_id, "changes": [{
        "field": "smb_message_echoes",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": n.display_phone_number, "phone_number_id": n.phone_number_id},
                  "message_echoes": [{"from": n.display_phone_number, "to": "5215512345678", "id": echo_id,
                                      "timestamp": "1700000000", "type": "text", "text": {"body": "¡buenas!"}}]}}]}]});
    post_signed(&app, &n, &again).await;

    // Assert: saliente, delivered, in the contact's one conversation; the window still
    // counts only the contact's message.
    let delivered = eventually(WAIT, || async {
        let client = app.pool().get().await.unwrap();
        let r = client
            .query_one(
                "SELECT direccion, estado, conversacion_id FROM mensajes_conversacion
                 WHERE connection_id = $1 AND external_id = $2",
                &[&n.connection_id, &echo_id],
            )
            .await
            .unwrap();
        let (d, e, c): (String, String, Uuid) = (r.get(0), r.get(1), r.get(2));
        (e == "delivered").then_some((d, c))
    })
    .await;
    let (direccion, conv) = delivered.expect("the status reached the echo");
    assert_eq!(direccion, "saliente");
    assert!(app.inbox_drained(WAIT).await);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM mensajes_conversacion WHERE conversacion_id = $1",
            &[&conv]
        )
        .await,
        2,
        "the contact's message and the echo, once"
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM conversaciones WHERE connection_id = $1",
            &[&n.connection_id]
        )
        .await,
        1
    );
    let client = app.pool().get().await.unwrap();
    let (inbound_at, inbound_ts): (OffsetDateTime, OffsetDateTime) = {
        let r = client
            .query_one(
                "SELECT c.last_inbound_at, m.created_at FROM conversaciones c
                 JOIN mensajes_conversacion m ON m.conversacion_id = c.id
                 WHERE c.id = $1 AND m.external_id = $2",
                &[&conv, &first],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert!(
        (inbound_at - inbound_ts).abs() < time::Duration::seconds(5),
        "the echo did not move the window"
    );
    drop(client);
    sim.shutdown().await;
}
