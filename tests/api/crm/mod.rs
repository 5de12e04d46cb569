//! The CRM's side of the contract, end to end: the original data model's fields read with
//! plain SQL after each lifecycle step (`schema.rs`), lead sources (`sources.rs`), a contact
//! changing number (`number_change.rs`), Lite profile pictures (`pictures.rs`), automatic answers (`auto_reply.rs`) and connections
//! with notifications or contact sync off (`settings.rs`). Business numbers run against the
//! in-process Graph simulator, Lite sessions against real Chromium and the WhatsApp Web one.

mod auto_reply;
mod number_change;
mod pictures;
mod schema;
mod settings;
mod sources;

use crate::helpers::{BusinessNumber, TestApp, eventually};
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

/// How long anything the daemon does in these tests may take.
const WAIT: Duration = Duration::from_secs(20);

/// Merges `settings` into the connection's `configuracion.settings`, as the CRM writes them.
async fn set_settings(app: &TestApp, connection_id: Uuid, settings: Value) {
    app.pool()
        .get()
        .await
        .unwrap()
        .execute(
            "UPDATE configuracion_mensajeria_usuario SET configuracion = jsonb_set(configuracion,
                 '{settings}', COALESCE(configuracion->'settings', '{}'::jsonb) || $2::jsonb)
             WHERE id = $1",
            &[&connection_id, &settings],
        )
        .await
        .unwrap();
}

/// Contact `from` sends `message` to the number through the simulator (a signed webhook);
/// returns the stored message's id once the daemon has it.
async fn contact_writes(
    app: &TestApp,
    sim: &str,
    n: &BusinessNumber,
    from: &str,
    message: Value,
) -> Uuid {
    let resp: Value = app
        .http
        .post(format!("{sim}/sim/inbound"))
        .json(
            &json!({"phone_number_id": n.phone_number_id, "from": from, "name": "Ana Ruiz",
                      "message": message}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let wamid = resp["id"].as_str().expect("simulator id").to_string();
    stored(app, &wamid).await
}

/// The id of the message with external id `wamid`, once stored.
async fn stored(app: &TestApp, wamid: &str) -> Uuid {
    eventually(WAIT, || async {
        app.pool()
            .get()
            .await
            .unwrap()
            .query_opt(
                "SELECT id FROM mensajes_conversacion WHERE external_id = $1",
                &[&wamid],
            )
            .await
            .unwrap()
            .map(|r| r.get(0))
    })
    .await
    .unwrap_or_else(|| panic!("message {wamid} stored"))
}

fn text(body: &str) -> Value {
    json!({"type": "text", "text": {"body": body}})
}

/// One row of plain SQL as JSON (`SELECT to_jsonb(x) FROM (...) x`).
async fn row_json(
    app: &TestApp,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Value {
    app.pool()
        .get()
        .await
        .unwrap()
        .query_one(&format!("SELECT to_jsonb(x) FROM ({sql}) x"), params)
        .await
        .unwrap()
        .get(0)
}
