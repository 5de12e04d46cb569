//! Personal data: opt-out keywords and consent against sends (`consent`), a contact's export
//! (`export`) and erasure searched for in the whole database and `DATA_DIR` (`erasure`), a
//! user's erasure (`users`), retention purging only what is older (`retention`), and re-sealing
//! under a new key so the old one can go (`reseal`). Business numbers on the Graph simulator,
//! its webhooks signed and posted like Meta's.

mod consent;
mod erasure;
mod export;
mod reseal;
mod retention;
mod users;

use crate::helpers::{BusinessNumber, TestApp, eventually, spawn_business_app};
use serde_json::{Value, json};
use sincro_core::seal::{Purpose, Sealer};
use sincro_sim::graph::{GraphSimConfig, GraphSimHandle};
use std::path::Path;
use std::time::Duration;
use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(20);

/// A daemon on the Graph simulator with one user and one connected number.
pub async fn business_user(email: &str) -> (TestApp, GraphSimHandle, Uuid, String, BusinessNumber) {
    business_user_with(GraphSimConfig::default(), email).await
}

/// [`business_user`] on a simulator configured by `config`.
pub async fn business_user_with(
    config: GraphSimConfig,
    email: &str,
) -> (TestApp, GraphSimHandle, Uuid, String, BusinessNumber) {
    let (app, sim) = spawn_business_app(config).await;
    let (user, key) = app.user(email, false).await;
    let n = app.business_number(&sim.base_url(), &key).await;
    (app, sim, user, key, n)
}

/// One text message of a webhook body, sent now.
pub fn text(from: &str, wamid: &str, body: &str) -> Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    json!({"from": from, "id": wamid, "timestamp": now, "type": "text", "text": {"body": body}})
}

/// A webhook body for `n` with these messages, each sender named in `contacts`.
pub fn body(n: &BusinessNumber, messages: Vec<Value>) -> Value {
    let contacts: Vec<Value> = messages
        .iter()
        .map(|m| json!({"wa_id": m["from"], "profile": {"name": format!("Nome {}", m["from"].as_str().unwrap())}}))
        .collect();
    json!({"object": "whatsapp_business_account", "entry": [{"id": n.waba_id, "changes": [{
        "field": "messages",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": n.display_phone_number, "phone_number_id": n.phone_number_id},
                  "contacts": contacts, "messages": messages}}]}]})
}

/// Posts a signed body and waits until each of its messages is stored.
pub async fn receive(app: &TestApp, n: &BusinessNumber, body: &Value) {
    let resp = app
        .post_webhook(&serde_json::to_vec(body).unwrap(), Some(&n.app_secret))
        .await;
    assert_eq!(
        resp.status().as_u16(),
        200,
        "{}",
        resp.text().await.unwrap()
    );
    let ids: Vec<String> = body["entry"][0]["changes"][0]["value"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    let stored = eventually(WAIT, || async {
        let n = app
            .count(
                "SELECT count(*) FROM mensajes_conversacion WHERE external_id = ANY($1)",
                &[&ids],
            )
            .await;
        (n == ids.len() as i64).then_some(())
    })
    .await;
    assert!(stored.is_some(), "messages {ids:?} were not stored");
}

/// A contact writes through the simulator (which opens its 24 h window there too, as Meta
/// does); waits until the message is stored.
pub async fn sim_inbound(
    app: &TestApp,
    sim: &GraphSimHandle,
    n: &BusinessNumber,
    from: &str,
    body: &str,
) {
    let before = app
        .count("SELECT count(*) FROM mensajes_conversacion", &[])
        .await;
    let resp = app
        .http
        .post(format!("{}/sim/inbound", sim.base_url()))
        .json(&json!({"phone_number_id": n.phone_number_id, "from": from,
                      "message": {"type": "text", "text": {"body": body}}}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    let stored = eventually(WAIT, || async {
        let now = app
            .count("SELECT count(*) FROM mensajes_conversacion", &[])
            .await;
        (now > before).then_some(())
    })
    .await;
    assert!(stored.is_some(), "the simulator's message was not stored");
}

/// Waits until every queued message has left (no outbox row pending or sending).
pub async fn settled(app: &TestApp) {
    let done = eventually(WAIT, || async {
        let busy = app
            .count(
                "SELECT count(*) FROM outbox WHERE state IN ('pending', 'sending')",
                &[],
            )
            .await;
        (busy == 0).then_some(())
    })
    .await;
    assert!(done.is_some(), "sends did not settle");
}

/// Queues a message; its status code and body.
pub async fn send(app: &TestApp, key: &str, body: &Value) -> (u16, Value) {
    let resp = app
        .post("/v1/messages", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The sealed value opened with whichever purpose it was sealed for (None: not sealed, or no
/// configured key opens it).
fn open_any(sealer: &Sealer, value: &str) -> Option<Vec<u8>> {
    Purpose::ALL
        .into_iter()
        .find_map(|p| sealer.open(p, value).ok())
}

/// Every string inside `v`, sealed ones opened.
fn texts(sealer: &Sealer, v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
            if let Some(plain) = open_any(sealer, s) {
                let plain = String::from_utf8_lossy(&plain).to_string();
                match serde_json::from_str::<Value>(&plain) {
                    Ok(inner) => texts(sealer, &inner, out),
                    Err(_) => out.push_str(&plain),
                }
                out.push('\n');
            }
        }
        Value::Array(a) => a.iter().for_each(|x| texts(sealer, x, out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push_str(k);
            out.push('\n');
            texts(sealer, x, out);
        }),
        _ => out.push_str(&v.to_string()),
    }
}

/// Where any of `needles` appears: every text, jsonb and bytea column of every table (sealed
/// values opened, JSON inside them walked), and every file under `data_dir` (sealed files
/// opened). One line per place found.
pub async fn find_anywhere(app: &TestApp, data_dir: &Path, needles: &[&str]) -> Vec<String> {
    let sealer = &app.app().context().shared.sealer;
    let client = app.pool().get().await.unwrap();
    let columns = client
        .query(
            "SELECT c.table_name::text, c.column_name::text, c.data_type::text
             FROM information_schema.columns c JOIN information_schema.tables t
               ON t.table_schema = c.table_schema AND t.table_name = c.table_name
             WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
               AND c.data_type IN ('text', 'jsonb', 'bytea', 'character varying', 'ARRAY')",
            &[],
        )
        .await
        .unwrap();
    let mut found = Vec::new();
    for col in &columns {
        let (table, column, kind): (String, String, String) = (col.get(0), col.get(1), col.get(2));
        let expr = match kind.as_str() {
            "bytea" => format!("encode(\"{column}\", 'escape')"),
            "jsonb" => format!("\"{column}\"::text"),
            _ => format!("\"{column}\"::text"),
        };
        let rows = client
            .query(
                &format!("SELECT {expr} FROM \"{table}\" WHERE \"{column}\" IS NOT NULL"),
                &[],
            )
            .await
            .unwrap();
        for row in rows {
            let raw: String = row.get(0);
            let mut all = String::new();
            match serde_json::from_str::<Value>(&raw) {
                Ok(v) if kind == "jsonb" => texts(sealer, &v, &mut all),
                _ => texts(sealer, &Value::String(raw.clone()), &mut all),
            }
            for needle in needles {
                if all.contains(needle) {
                    found.push(format!("{table}.{column} holds {needle:?}"));
                }
            }
        }
    }
    let mut dirs = vec![data_dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes).to_string();
            let opened = open_any(sealer, text.trim())
                .map(|p| String::from_utf8_lossy(&p).to_string())
                .unwrap_or_default();
            for needle in needles {
                if text.contains(needle) || opened.contains(needle) {
                    found.push(format!("file {} holds {needle:?}", path.display()));
                }
            }
        }
    }
    found
}
