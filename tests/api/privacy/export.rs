//! Export: `GET /v1/contacts/{phone}/export` under any spelling of the number is a zip with
//! `contact.json` (the lead and the lead merged into it, conversations, messages with their
//! bodies opened and statuses, consent history) and the media files opened; nothing of another
//! contact or another user is in it.

use super::{body, business_user, receive, send, text};
use crate::helpers::expect_error;
use serde_json::{Value, json};
use std::io::Read;

const CONTACT: &str = "5511987654321";
const OTHER: &str = "5521999990000";

#[tokio::test]
async fn export_holds_exactly_the_contacts_data() {
    let (app, _sim, user, key, n) = business_user("export@example.com").await;
    let conn = n.connection_id;
    let client = app.pool().get().await.unwrap();
    // The CRM typed the number twice, its own ways: WhatsApp's first message merges them.
    for (telefono, email) in [
        ("+55 (11) 98765-4321", "ana@example.com"),
        ("55 11 98765 4321", "ana@work.example"),
    ] {
        client
            .execute(
                "INSERT INTO leads (usuario_id, nombre, telefono, email, created_at)
                 VALUES ($1, 'Ana Souza', $2, $3, now() - make_interval(mins => length($3::text)))",
                &[&user, &telefono, &email],
            )
            .await
            .unwrap();
    }
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
    receive(&app, &n, &body(&n, vec![text(CONTACT, "wamid.a2", "sair")])).await;
    let file = b"arquivo-da-ana-bytes".to_vec();
    let up: Value = app
        .post(
            &format!("/v1/media?connection_id={conn}&filename=contrato.pdf"),
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
    let doc = json!({"connection_id": conn, "to": CONTACT, "type": "document", "document": {"id": media_id, "filename": "contrato.pdf"}});
    assert_eq!(send(&app, &key, &doc).await.0, 202);
    // Another user with the same contact.
    let (_, other_key) = app.user("export-other@example.com", false).await;
    expect_error(
        app.get("/v1/contacts/5511987654321/export", &other_key)
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;

    // Any spelling: the old form without the ninth digit, a national one in the user's region.
    let old = app
        .get("/v1/contacts/%2B551187654321/export", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(old.status().as_u16(), 200);
    let region = app
        .patch("/v1/me", &key)
        .json(&json!({"default_region": "BR"}))
        .send()
        .await
        .unwrap();
    assert_eq!(region.status().as_u16(), 200);
    let resp = app
        .get("/v1/contacts/(11)%2098765-4321/export", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/zip");
    let bytes = resp.bytes().await.unwrap().to_vec();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a valid zip");
    let mut names: Vec<String> = zip.file_names().map(String::from).collect();
    names.sort();
    assert_eq!(
        names,
        ["contact.json".to_string(), format!("media/{media_id}")]
    );
    let mut media = Vec::new();
    zip.by_name(&format!("media/{media_id}"))
        .unwrap()
        .read_to_end(&mut media)
        .unwrap();
    assert_eq!(media, file);
    let mut text_json = String::new();
    zip.by_name("contact.json")
        .unwrap()
        .read_to_string(&mut text_json)
        .unwrap();
    let doc: Value = serde_json::from_str(&text_json).unwrap();
    assert_eq!(doc["contact"], "+5511987654321");
    let leads = doc["leads"].as_array().unwrap();
    assert_eq!(
        leads.len(),
        2,
        "the lead and the CRM's lead merged into it: {leads:?}"
    );
    assert!(
        leads.iter().any(|l| l["merged_into"].is_string()),
        "{leads:?}"
    );
    for email in ["ana@example.com", "ana@work.example"] {
        assert!(leads.iter().any(|l| l["email"] == email), "{email}");
    }
    let messages: Vec<&Value> = doc["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["messages"].as_array().unwrap())
        .collect();
    let bodies: Vec<&str> = messages.iter().filter_map(|m| m["text"].as_str()).collect();
    assert!(
        bodies.contains(&"segredo-da-ana") && bodies.contains(&"sair"),
        "{bodies:?}"
    );
    assert!(messages.iter().all(|m| m["status"].is_string()));
    assert!(
        messages
            .iter()
            .any(|m| m["payload"]["document"]["id"] == json!(media_id))
    );
    assert_eq!(doc["consent"][0]["opted_out"], true);
    assert_eq!(doc["consent"][0]["source"], "keyword");
    assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_log WHERE action = 'contact.export'",
            &[]
        )
        .await,
        2
    );
    // Nothing of the other contact.
    for foreign in ["recado-do-bruno", "5521999990000", "Nome 5521999990000"] {
        assert!(!text_json.contains(foreign), "{foreign} in the export");
    }
}
