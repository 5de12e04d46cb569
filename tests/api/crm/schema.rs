//! The original data model as the CRM reads it, with plain SQL after each lifecycle step:
//! Lite (connect, QR, working, a message, logout) and Business (connect, template approved).

use super::{WAIT, row_json};
use crate::helpers::{eventually, spawn_business_app};
use crate::lite::{ACCOUNT, CHROMIUM, CONTACT, lite_app};
use serde_json::{Value, json};
use sincro_sim::graph::GraphSimConfig;
use uuid::Uuid;

/// What the CRM reads of a Lite session: the table's original columns and the connection
/// row's JSON.
const LITE_SQL: &str = "SELECT s.session_id, s.connection_status, s.status, s.qr_code,
        s.last_activity, s.expires_at, s.expires_at > now() AS expires_later, s.metadata,
        c.configuracion->>'connection_status' AS config_status,
        c.configuracion->'session_data' AS session_data,
        c.configuracion->'settings' AS settings
     FROM whatsapp_lite_sessions s JOIN configuracion_mensajeria_usuario c ON c.id = s.id
     WHERE s.id = $1";

#[tokio::test]
async fn crm_original_schema_through_the_lite_lifecycle() {
    let _turn = CHROMIUM.lock().await;
    let Some(lite) = lite_app().await else { return };
    let created = lite.create().await;
    let id: Uuid = created["id"].as_str().unwrap().parse().unwrap();
    let read = || async { row_json(&lite.app, LITE_SQL, &[&id]).await };

    // Connect: the session row and its connection, in the original lowercase values.
    let r = read().await;
    assert_eq!(r["session_id"], id.to_string());
    assert_eq!(r["connection_status"], "connecting", "{r}");
    assert_eq!(r["config_status"], r["connection_status"]);
    assert_eq!(r["session_data"]["session_id"], id.to_string());
    assert_eq!(
        r["settings"],
        json!({"auto_reply": false, "notifications_enabled": true, "sync_contacts": true})
    );
    assert!(r["metadata"].is_object());

    // QR: session_data.qr_code is the QR being shown, still connecting.
    let qr = eventually(WAIT, || async {
        let r = read().await;
        let qr = r["session_data"]["qr_code"].as_str().map(String::from);
        qr.map(|q| (q, r))
    })
    .await
    .expect("a QR in session_data");
    assert_eq!(qr.1["qr_code"], qr.0.as_str());
    assert_eq!(qr.1["connection_status"], "connecting");
    assert_eq!(qr.1["config_status"], "connecting");

    // Working: connected, no QR, active now and expiring later.
    lite.link(&id.to_string(), ACCOUNT).await;
    let r = read().await;
    assert_eq!(r["connection_status"], "connected", "{r}");
    assert_eq!(r["config_status"], "connected");
    assert_eq!(r["session_data"]["qr_code"], Value::Null);
    assert!(r["last_activity"].is_string());
    assert_eq!(r["session_data"]["last_activity"], r["last_activity"]);
    assert_eq!(r["expires_later"], true);

    // Messages keep it active: a contact writes to a session idle for two days.
    lite.app
        .pool()
        .get()
        .await
        .unwrap()
        .execute(
            "UPDATE whatsapp_lite_sessions SET last_activity_at = now() - interval '2 days' WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let (status, sent) = lite
        .sim_post(
            "messages",
            json!({"account": ACCOUNT, "from": CONTACT, "text": "hola"}),
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    let active = eventually(WAIT, || async {
        let r = row_json(
            &lite.app,
            "SELECT last_activity > now() - interval '1 hour' AS recent,
                    expires_at > now() + interval '13 days' AS renewed,
                    (SELECT configuracion->'session_data'->'last_activity' FROM configuracion_mensajeria_usuario
                     WHERE id = $1) = to_jsonb(last_activity) AS in_session_data
             FROM whatsapp_lite_sessions WHERE id = $1",
            &[&id],
        )
        .await;
        (r["recent"] == true).then_some(r)
    })
    .await
    .expect("the message moved last_activity");
    assert_eq!(active["renewed"], true);
    assert_eq!(active["in_session_data"], true);

    // Logout: disconnected, no expiry.
    lite.delete_session(&id.to_string(), "?logout=true").await;
    let r = read().await;
    assert_eq!(r["connection_status"], "disconnected", "{r}");
    assert_eq!(r["config_status"], "disconnected");
    assert_eq!(r["expires_at"], Value::Null);
    assert_eq!(r["metadata"]["status"], "STOPPED");

    // The original model's indexes are there for the CRM's queries.
    let indexes = lite
        .app
        .count(
            "SELECT count(*) FROM pg_indexes WHERE indexname IN
                 ('whatsapp_lite_sessions_last_activity_idx', 'whatsapp_lite_sessions_session_id_idx',
                  'whatsapp_templates_status_idx')",
            &[],
        )
        .await;
    assert_eq!(indexes, 3);
    lite.finish().await;
}

#[tokio::test]
async fn crm_original_schema_through_the_business_lifecycle() {
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (_user, key) = app.user("crm-schema@example.com", false).await;

    // Connect.
    let n = app.business_number(&sim.base_url(), &key).await;
    let r = row_json(
        &app,
        "SELECT configuracion->>'tipo_conexion' AS tipo, configuracion->>'connection_status' AS status,
                configuracion->'settings' AS settings, configuracion->>'numero_telefono' AS numero
         FROM configuracion_mensajeria_usuario WHERE id = $1",
        &[&n.connection_id],
    )
    .await;
    assert_eq!(r["tipo"], "business");
    assert_eq!(r["status"], "connected");
    assert_eq!(
        r["settings"],
        json!({"auto_reply": false, "notifications_enabled": true, "sync_contacts": true})
    );
    assert!(r["numero"].as_str().is_some_and(|n| n.starts_with('+')));

    // A template, approved by Meta's review webhook.
    let created = app
        .post("/v1/templates", &key)
        .json(
            &json!({"name": "order_ready", "language": "es", "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Hola {{1}}, tu pedido {{2}} está listo",
                            "example": {"body_text": [["Ana", "42"]]}}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let sql = "SELECT template_name, template_content, variables, status, approved_at IS NOT NULL AS approved
               FROM whatsapp_templates WHERE connection_id = $1 AND template_name = 'order_ready'";
    let pending = row_json(&app, sql, &[&n.connection_id]).await;
    assert_eq!(
        pending["template_content"],
        "Hola {{1}}, tu pedido {{2}} está listo"
    );
    assert_eq!(pending["variables"], json!(["1", "2"]));
    let approved = eventually(WAIT, || async {
        let r = row_json(&app, sql, &[&n.connection_id]).await;
        (r["status"] == "APPROVED").then_some(r)
    })
    .await
    .expect("approved");
    assert_eq!(approved["approved"], true);
    assert_eq!(approved["template_name"], "order_ready");
}
