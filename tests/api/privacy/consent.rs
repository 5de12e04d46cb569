//! Opt-out and opt-in: a contact's message that is exactly a keyword (any case, accents,
//! spaces) opts it out, with the lead's change, its event and an audit row; then bulk sends
//! and MARKETING templates to it are refused with 422 `contact_opted_out` while service
//! replies still go; an opt-in recorded through the API with its source lifts it.

use super::{WAIT, body, business_user, receive, send, text};
use crate::helpers::{eventually, expect_error};
use crate::ingest::events;
use serde_json::{Value, json};
use sincro_core::privacy::consent::{self, ContactRef};

const CONTACT: &str = "5511987654321";
const OTHER: &str = "5521999990000";

#[tokio::test]
async fn opt_out_blocks_bulk_and_marketing_sends_but_not_service_replies() {
    let (app, _sim, user, key, n) = business_user("optout@example.com").await;
    let conn = n.connection_id;
    receive(
        &app,
        &n,
        &body(
            &n,
            vec![
                text(CONTACT, "wamid.c1", "Olá, quero saber o preço"),
                text(OTHER, "wamid.o1", "oi"),
            ],
        ),
    )
    .await;
    let msg = |to: &str, priority: &str| json!({"connection_id": conn, "to": to, "type": "text", "text": {"body": "Promoção!"}, "priority": priority});
    // Not opted out yet: a bulk send goes.
    assert_eq!(send(&app, &key, &msg(CONTACT, "bulk")).await.0, 202);
    // A message that only contains a keyword is not one.
    receive(
        &app,
        &n,
        &body(&n, vec![text(CONTACT, "wamid.c2", "pode parar de mandar?")]),
    )
    .await;
    assert!(
        !consent::opted_out(app.pool(), user, ContactRef::Phone(CONTACT))
            .await
            .unwrap()
    );

    // The keyword, with accents, case and spaces of its own.
    receive(
        &app,
        &n,
        &body(&n, vec![text(CONTACT, "wamid.c3", "  Párar \n")]),
    )
    .await;
    let pool = app.pool();
    for spelling in ["+55 11 98765-4321", "5511987654321", "+551187654321"] {
        assert!(
            consent::opted_out(pool, user, ContactRef::Phone(spelling))
                .await
                .unwrap(),
            "{spelling}"
        );
    }
    let lead: uuid::Uuid = app
        .pool()
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT id FROM leads WHERE telefono = '+5511987654321'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        consent::opted_out(pool, user, ContactRef::Lead(lead))
            .await
            .unwrap()
    );
    assert!(
        !consent::opted_out(pool, user, ContactRef::Phone(OTHER))
            .await
            .unwrap()
    );
    let audited = app
        .count(
            "SELECT count(*) FROM audit_log WHERE action = 'contact.opted_out' AND target = $1",
            &[&lead.to_string()],
        )
        .await;
    assert_eq!(audited, 1);
    let evs = events(&app, user).await;
    assert!(
        evs.iter().any(|(_, kind, data)| kind == "lead.updated"
            && data["lead_id"] == json!(lead)
            && data["changes"]["opted_out"] == json!(true)),
        "{evs:?}"
    );
    // A second keyword changes nothing more.
    receive(&app, &n, &body(&n, vec![text(CONTACT, "wamid.c4", "STOP")])).await;
    assert_eq!(
        app.count("SELECT count(*) FROM contact_consent", &[]).await,
        1
    );

    // Bulk and marketing: refused, nothing queued.
    let queued = app.count("SELECT count(*) FROM outbox", &[]).await;
    let (status, err) = send(&app, &key, &msg("+55 (11) 98765-4321", "bulk")).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (422, Some("contact_opted_out")),
        "{err}"
    );
    let client = app.pool().get().await.unwrap();
    for (name, category) in [("promo", "MARKETING"), ("pedido", "UTILITY")] {
        client
            .execute(
                "INSERT INTO whatsapp_templates (usuario_id, connection_id, name, language, category, status)
                 VALUES ($1, $2, $3, 'pt_BR', $4, 'APPROVED')",
                &[&user, &conn, &name, &category],
            )
            .await
            .unwrap();
    }
    let template = |name: &str| {
        json!({"connection_id": conn, "to": CONTACT, "type": "template",
               "template": {"name": name, "language": {"code": "pt_BR"}}})
    };
    let (status, err) = send(&app, &key, &template("promo")).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (422, Some("contact_opted_out")),
        "{err}"
    );
    assert_eq!(app.count("SELECT count(*) FROM outbox", &[]).await, queued);
    // Service replies go: normal and high priority, a utility template.
    for body in [
        msg(CONTACT, "normal"),
        msg(CONTACT, "high"),
        template("pedido"),
    ] {
        let (status, resp) = send(&app, &key, &body).await;
        assert_eq!(status, 202, "{body}: {resp}");
    }
    // Another contact is not affected.
    assert_eq!(send(&app, &key, &msg(OTHER, "bulk")).await.0, 202);

    // The CRM records an opt-in given on its web form.
    let resp = app
        .post("/v1/contacts/%2B5511987654321/consent", &key)
        .json(&json!({"consent": "maybe", "source": "web_form"}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "invalid_consent").await;
    let resp = app
        .post("/v1/contacts/%2B5511987654321/consent", &key)
        .json(&json!({"consent": "opt_in", "source": "web_form"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let status: Value = resp.json().await.unwrap();
    assert_eq!(status["opted_out"], false);
    let sources: Vec<&str> = status["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["keyword", "web_form"]);
    assert_eq!(send(&app, &key, &msg(CONTACT, "bulk")).await.0, 202);
    let got: Value = app
        .get("/v1/contacts/5511987654321/consent", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["opted_out"], false);
    // Another user's view of the number is its own.
    let (_, other_key) = app.user("optout-other@example.com", false).await;
    let theirs: Value = app
        .get("/v1/contacts/5511987654321/consent", &other_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["history"], json!([]));
    let audited = eventually(WAIT, || async {
        let n = app
            .count(
                "SELECT count(*) FROM audit_log WHERE action = 'contact.consent' AND outcome = 'ok'",
                &[],
            )
            .await;
        (n == 1).then_some(())
    })
    .await;
    assert!(audited.is_some());
}
