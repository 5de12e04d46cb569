//! Sending through the BusinessNumber actor as the Dispatcher does (`shared.connections`),
//! against the simulator: every message type, the 24 h window and template approval checked
//! first, and each error class of the reference table (faults injected with `/sim/faults`)
//! giving the right outcome; 190 halts the number with a status event and an alert.

use crate::helpers::{BusinessNumber, TestApp, eventually, spawn_business_app};
use serde_json::{Value, json};
use sincro_core::connection::SendOutcome;
use sincro_sim::graph::GraphSimConfig;
use std::time::Duration;
use uuid::Uuid;

const CONTACT: &str = "+5511987654321";

/// The contact writes to the number through the simulator (a real signed webhook to the
/// daemon); returns the inbound wamid once the daemon stored it.
async fn contact_writes(app: &TestApp, sim: &str, n: &BusinessNumber, message: Value) -> String {
    let resp: Value = app
        .http
        .post(format!("{sim}/sim/inbound"))
        .json(&json!({"phone_number_id": n.phone_number_id, "from": CONTACT, "name": "Ana", "message": message}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let wamid = resp["id"].as_str().unwrap().to_string();
    let stored = eventually(Duration::from_secs(10), || async {
        let n = app
            .count(
                "SELECT count(*) FROM mensajes_conversacion WHERE external_id = $1",
                &[&wamid],
            )
            .await;
        (n == 1).then_some(())
    })
    .await;
    assert!(stored.is_some(), "inbound message stored");
    wamid
}

async fn fault(app: &TestApp, sim: &str, body: Value) {
    let r = app
        .http
        .post(format!("{sim}/sim/faults"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
}

fn sent_id(o: &SendOutcome) -> String {
    match o {
        SendOutcome::Sent { external_id } | SendOutcome::SentTo { external_id, .. } => {
            external_id.clone()
        }
        other => panic!("not sent: {other:?}"),
    }
}

#[tokio::test]
async fn business_sends_every_type_inside_the_window() {
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (user, key) = app.user("send@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;

    // Outside the window: refused before Meta, suggesting a template.
    let o = app
        .business_send(
            &n,
            user,
            CONTACT,
            json!({"type":"text","text":{"body":"hi"}}),
            1,
        )
        .await;
    match o {
        SendOutcome::Failed {
            code: Some(131047),
            error,
        } => assert!(error.contains("template"), "{error}"),
        other => panic!("{other:?}"),
    }
    assert!(sim.sent(Some(&n.phone_number_id)).is_empty());

    let inbound = contact_writes(
        &app,
        &sim.base_url(),
        &n,
        json!({"type":"text","text":{"body":"hello"}}),
    )
    .await;
    let bodies = [
        json!({"type":"text","text":{"body":"hi there","preview_url":false},"context":{"message_id": inbound}}),
        json!({"type":"interactive","interactive":{"type":"button","body":{"text":"Pick"},
            "action":{"buttons":[{"type":"reply","reply":{"id":"y","title":"Yes"}},{"type":"reply","reply":{"id":"n","title":"No"}}]}}}),
        json!({"type":"interactive","interactive":{"type":"list","body":{"text":"Choose"},
            "action":{"button":"Options","sections":[{"title":"A","rows":[{"id":"r1","title":"Row 1"}]}]}}}),
        json!({"type":"interactive","interactive":{"type":"cta_url","body":{"text":"See"},
            "action":{"name":"cta_url","parameters":{"display_text":"Open","url":"https://example.com"}}}}),
        json!({"type":"location","location":{"latitude":-23.55,"longitude":-46.63,"name":"SP"}}),
        json!({"type":"contacts","contacts":[{"name":{"formatted_name":"Ana Ruiz","first_name":"Ana"},"phones":[{"phone":"+5511999990000","type":"WORK"}]}]}),
        json!({"type":"reaction","reaction":{"message_id": inbound, "emoji":"👍"}}),
        json!({"type":"image","image":{"link":"https://example.com/a.jpg","caption":"pic"}}),
    ];
    for body in &bodies {
        let o = app.business_send(&n, user, CONTACT, body.clone(), 1).await;
        assert!(sent_id(&o).starts_with("wamid."), "{body}");
    }
    let sent = sim.sent(Some(&n.phone_number_id));
    let kinds: Vec<&str> = sent.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "text",
            "interactive",
            "interactive",
            "interactive",
            "location",
            "contacts",
            "reaction",
            "image"
        ]
    );
    assert_eq!(sent[0].request["to"], CONTACT);
    assert_eq!(sent[0].request["context"]["message_id"], inbound.as_str());

    // Mark as read.
    let o = app
        .business_send(
            &n,
            user,
            CONTACT,
            json!({"status":"read","message_id": inbound}),
            1,
        )
        .await;
    assert_eq!(sent_id(&o), inbound);

    // Not E.164, or no object for the type: failed without calling Meta.
    let o = app
        .business_send(
            &n,
            user,
            "11987654321",
            json!({"type":"text","text":{"body":"x"}}),
            1,
        )
        .await;
    assert!(matches!(o, SendOutcome::Failed { code: None, .. }), "{o:?}");
    let o = app
        .business_send(&n, user, CONTACT, json!({"type":"image"}), 1)
        .await;
    assert!(matches!(o, SendOutcome::Failed { code: None, .. }), "{o:?}");
    assert_eq!(sim.sent(Some(&n.phone_number_id)).len(), bodies.len());

    // The simulator's status webhooks come back for the sent messages (kept until their
    // message row has the wamid).
    let last = sent.last().unwrap().id.clone();
    let read = eventually(Duration::from_secs(10), || async {
        let c = app
            .count(
                "SELECT count(*) FROM pending_statuses WHERE external_id = $1 AND estado = 'read'",
                &[&last],
            )
            .await;
        (c == 1).then_some(())
    })
    .await;
    assert!(read.is_some());
}

#[tokio::test]
async fn business_templates_must_be_approved_to_send() {
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (user, key) = app.user("tplsend@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;
    let tpl = json!({"type":"template","template":{"name":"order_update","language":{"code":"en_US"},
        "components":[{"type":"body","parameters":[{"type":"text","text":"Ana"}]}]}});

    let o = app.business_send(&n, user, CONTACT, tpl.clone(), 1).await;
    assert!(
        matches!(&o, SendOutcome::Failed { error, .. } if error.contains("not known")),
        "{o:?}"
    );

    let created = app
        .post("/v1/templates", &key)
        .json(&json!({"connection_id": n.connection_id, "name": "order_update", "language": "en_US", "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Hi {{1}}, your order shipped", "example": {"body_text": [["Ana"]]}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        created.status().as_u16(),
        201,
        "{}",
        created.text().await.unwrap()
    );
    let o = app.business_send(&n, user, CONTACT, tpl.clone(), 1).await;
    assert!(
        matches!(&o, SendOutcome::Failed { error, .. } if error.contains("PENDING")),
        "{o:?}"
    );

    let approved = eventually(Duration::from_secs(10), || async {
        let c = app.count("SELECT count(*) FROM whatsapp_templates WHERE name = 'order_update' AND status = 'APPROVED'", &[]).await;
        (c == 1).then_some(())
    })
    .await;
    assert!(approved.is_some(), "approval webhook applied");
    // Approved templates go out even outside the 24 h window.
    let o = app.business_send(&n, user, CONTACT, tpl.clone(), 1).await;
    sent_id(&o);
    // A parameter count Meta refuses: permanent, with Meta's code.
    let mut wrong = tpl.clone();
    wrong["template"]["components"][0]["parameters"] = json!([]);
    let o = app.business_send(&n, user, CONTACT, wrong, 1).await;
    assert!(
        matches!(
            o,
            SendOutcome::Failed {
                code: Some(132000),
                ..
            }
        ),
        "{o:?}"
    );
}

#[tokio::test]
async fn business_error_classes_from_simulator_faults() {
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let base = sim.base_url();
    let (user, key) = app.user("faults@example.com", false).await;
    let n = app.business_number(&base, &key).await;
    contact_writes(
        &app,
        &base,
        &n,
        json!({"type":"text","text":{"body":"hello"}}),
    )
    .await;
    let text = json!({"type":"text","text":{"body":"hi"}});
    let pn = n.phone_number_id.clone();
    let send = |attempt| app.business_send(&n, user, CONTACT, text.clone(), attempt);

    // Throughput: retry soon, with jitter.
    fault(&app, &base, json!({"phone_number_id": pn, "code": 130429})).await;
    match send(1).await {
        SendOutcome::Retry {
            code: Some(130429),
            after: Some(a),
            ..
        } => assert!(a <= Duration::from_secs(2)),
        other => panic!("{other:?}"),
    }
    // Pair rate: 4^X per recipient (1 s, then 4 s), reset after a success.
    fault(
        &app,
        &base,
        json!({"phone_number_id": pn, "code": 131056, "count": 2}),
    )
    .await;
    for want in [1, 4] {
        match send(1).await {
            SendOutcome::Retry {
                code: Some(131056),
                after: Some(a),
                ..
            } => assert_eq!(a, Duration::from_secs(want)),
            other => panic!("{other:?}"),
        }
    }
    sent_id(&send(2).await);
    fault(&app, &base, json!({"phone_number_id": pn, "code": 131056})).await;
    assert!(
        matches!(send(1).await, SendOutcome::Retry { after: Some(a), .. } if a == Duration::from_secs(1))
    );
    // Generic error: a bounded number of retries, then failed.
    fault(
        &app,
        &base,
        json!({"phone_number_id": pn, "code": 131000, "count": 2}),
    )
    .await;
    assert!(matches!(
        send(1).await,
        SendOutcome::Retry {
            code: Some(131000),
            ..
        }
    ));
    assert!(matches!(
        send(3).await,
        SendOutcome::Failed {
            code: Some(131000),
            ..
        }
    ));
    // A bare 5xx without Meta's body: retry.
    fault(
        &app,
        &base,
        json!({"phone_number_id": pn, "http_status": 503}),
    )
    .await;
    assert!(matches!(
        send(1).await,
        SendOutcome::Retry { code: None, .. }
    ));
    // Maintenance: about a minute. Marketing limit: much later.
    fault(&app, &base, json!({"phone_number_id": pn, "code": 131057})).await;
    assert!(
        matches!(send(1).await, SendOutcome::Retry { after: Some(a), .. } if a == Duration::from_secs(60))
    );
    fault(&app, &base, json!({"phone_number_id": pn, "code": 131049})).await;
    assert!(
        matches!(send(1).await, SendOutcome::Retry { after: Some(a), .. } if a >= Duration::from_secs(1800))
    );
    // Permanent ones fail with Meta's code and details.
    for code in [131026, 131050, 130472, 131048, 131053, 100, 10] {
        fault(
            &app,
            &base,
            json!({"phone_number_id": pn, "code": code, "details": format!("details of {code}")}),
        )
        .await;
        match send(1).await {
            SendOutcome::Failed {
                code: Some(c),
                error,
            } => {
                assert_eq!(c, code);
                assert!(error.contains(&format!("details of {code}")), "{error}");
            }
            other => panic!("{code}: {other:?}"),
        }
    }
    // Latency below the timeout is just slow.
    fault(
        &app,
        &base,
        json!({"phone_number_id": pn, "latency_ms": 300}),
    )
    .await;
    sent_id(&send(1).await);
    // Asynchronous failure: accepted, then a failed status webhook.
    fault(
        &app,
        &base,
        json!({"phone_number_id": pn, "code": 131026, "async": true}),
    )
    .await;
    let id = sent_id(&send(1).await);
    let failed = eventually(Duration::from_secs(10), || async {
        let c = app.count("SELECT count(*) FROM pending_statuses WHERE external_id = $1 AND estado = 'failed' AND error LIKE '%131026%'", &[&id]).await;
        (c == 1).then_some(())
    })
    .await;
    assert!(failed.is_some());
    assert_eq!(app.count("SELECT count(*) FROM alerts", &[]).await, 0);
}

async fn number_status(app: &TestApp, key: &str, id: Uuid) -> String {
    let v: Value = app
        .get(&format!("/v1/business/numbers/{id}"), key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["status"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn business_dead_token_halts_the_number_and_alerts() {
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let base = sim.base_url();
    let (user, key) = app.user("halt@example.com", false).await;
    let n = app.business_number(&base, &key).await;
    let r = app.business_number(&base, &key).await;
    contact_writes(
        &app,
        &base,
        &n,
        json!({"type":"text","text":{"body":"hello"}}),
    )
    .await;
    contact_writes(
        &app,
        &base,
        &r,
        json!({"type":"text","text":{"body":"hello"}}),
    )
    .await;
    let text = json!({"type":"text","text":{"body":"hi"}});

    fault(
        &app,
        &base,
        json!({"phone_number_id": n.phone_number_id, "code": 190, "http_status": 400}),
    )
    .await;
    assert!(matches!(
        app.business_send(&n, user, CONTACT, text.clone(), 1).await,
        SendOutcome::Unavailable { .. }
    ));
    let before = sim.sent(Some(&n.phone_number_id)).len();
    // Halted: no more calls to Meta, the message stays queued.
    assert!(matches!(
        app.business_send(&n, user, CONTACT, text.clone(), 1).await,
        SendOutcome::Unavailable { .. }
    ));
    assert_eq!(sim.sent(Some(&n.phone_number_id)).len(), before);
    assert!(
        eventually(Duration::from_secs(10), || async {
            (number_status(&app, &key, n.connection_id).await == "needs_credentials").then_some(())
        })
        .await
        .is_some()
    );
    assert!(eventually(Duration::from_secs(10), || async {
        (app.count("SELECT count(*) FROM alerts WHERE usuario_id = $1 AND kind = 'business_needs_credentials'", &[&user]).await == 1).then_some(())
    }).await.is_some());
    assert_eq!(
        app.count(
            "SELECT count(*) FROM events WHERE usuario_id = $1 AND type = 'business.status'",
            &[&user]
        )
        .await,
        1
    );

    // Restricted account (368): halted too.
    fault(
        &app,
        &base,
        json!({"phone_number_id": r.phone_number_id, "code": 368}),
    )
    .await;
    assert!(matches!(
        app.business_send(&r, user, CONTACT, text.clone(), 1).await,
        SendOutcome::Unavailable { .. }
    ));
    assert!(
        eventually(Duration::from_secs(10), || async {
            (number_status(&app, &key, r.connection_id).await == "restricted").then_some(())
        })
        .await
        .is_some()
    );

    // New credentials bring it back.
    let patched = app
        .http
        .patch(format!(
            "{}/v1/business/numbers/{}",
            app.base, n.connection_id
        ))
        .bearer_auth(&key)
        .json(&json!({"access_token": n.access_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status().as_u16(), 200);
    assert_eq!(
        number_status(&app, &key, n.connection_id).await,
        "connected"
    );
    let o = app.business_send(&n, user, CONTACT, text.clone(), 1).await;
    sent_id(&o);
}
