//! WhatsApp Lite inbound durability end to end (real Chromium, simulator page, PostgreSQL):
//! messages survive `kill -9` of the browser at any moment and are stored exactly once,
//! messages sent while the browser is down arrive once it is back, a login survives a crash
//! right after the scan, and messages sent from the account's own phone are stored as
//! `saliente` without duplicating the daemon's own sends.

use crate::helpers::eventually;
use crate::lite::{ACCOUNT, CHROMIUM, CONTACT, Lite, lite_app, zombie_children};
use crate::queue::wait_estado;
use serde_json::{Value, json};
use sincro_core::lite::browser;
use std::time::Duration;
use uuid::Uuid;

/// The main process of the session's Chromium (its process group leader).
fn main_browser(lite: &Lite) -> i32 {
    *lite
        .browsers()
        .iter()
        .find(|&&p| browser::state_and_pgid(p).is_some_and(|(_, g)| g == p))
        .expect("the browser's main process")
}

fn kill9(pid: i32) {
    // SAFETY: killing the test daemon's own Chromium.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
}

/// A contact writes `text` to the account; returns the message id.
async fn contact_writes(lite: &Lite, text: &str) -> String {
    let (status, body) = lite
        .sim_post(
            "messages",
            json!({"account": ACCOUNT, "from": CONTACT, "name": "Ana", "text": text}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["id"].as_str().unwrap().to_string()
}

/// How many rows of the connection carry each of `ids` (waits until every id has one).
async fn stored_once(lite: &Lite, conn: Uuid, ids: &[String], limit: Duration) {
    let client = lite.app.pool().get().await.unwrap();
    let all = eventually(limit, || async {
        let n: i64 = client
            .query_one(
                "SELECT count(DISTINCT external_id) FROM mensajes_conversacion
                 WHERE connection_id = $1 AND external_id = ANY($2)",
                &[&conn, &ids],
            )
            .await
            .unwrap()
            .get(0);
        (n == ids.len() as i64).then_some(())
    })
    .await;
    let rows: i64 = client
        .query_one(
            "SELECT count(*) FROM mensajes_conversacion WHERE connection_id = $1 AND external_id = ANY($2)",
            &[&conn, &ids],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        all.is_some(),
        "only {rows} of {} messages stored",
        ids.len()
    );
    assert_eq!(rows, ids.len() as i64, "every message stored exactly once");
    let total: i64 = client
        .query_one(
            "SELECT count(*) FROM mensajes_conversacion WHERE connection_id = $1 AND direccion = 'entrante'",
            &[&conn],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, ids.len() as i64, "no other inbound row");
}

/// Kills the session's browser with SIGKILL; returns its main process and the session's last
/// disconnect time before the kill.
async fn kill_browser(lite: &Lite, id: &str) -> (i32, Value) {
    let before = lite.session(id).await["last_disconnect_at"].clone();
    let main = main_browser(lite);
    kill9(main);
    (main, before)
}

/// Waits until the session, after the kill, noticed the browser died and is WORKING again on
/// another browser.
async fn working_again(lite: &Lite, id: &str, (old, before): (i32, Value)) -> Value {
    eventually(Duration::from_secs(40), || async {
        let s = lite.session(id).await;
        let now = lite.browsers();
        (s["status"] == "WORKING"
            && s["last_disconnect_reason"] == "BROWSER_DIED"
            && s["last_disconnect_at"] != before
            && now
                .iter()
                .any(|&p| p != old && browser::state_and_pgid(p).is_some_and(|(_, g)| g == p)))
        .then_some(s)
    })
    .await
    .expect("WORKING again after kill -9")
}

#[tokio::test]
async fn lite_kill9_right_after_and_while_a_contact_writes_stores_every_message_once() {
    let _turn = CHROMIUM.lock().await;
    let Some(lite) = lite_app().await else { return };
    let id = lite.working_session(ACCOUNT).await;
    let conn: Uuid = id.parse().unwrap();
    let mut ids = Vec::new();

    // Right after a contact writes.
    ids.push(contact_writes(&lite, "antes do crash").await);
    let killed = kill_browser(&lite, &id).await;
    working_again(&lite, &id, killed).await;

    // While a contact writes: a stream of messages, the browser killed in the middle.
    let mut killed = None;
    for i in 0..30 {
        ids.push(contact_writes(&lite, &format!("mensagem {i}")).await);
        if i == 12 {
            killed = Some(kill_browser(&lite, &id).await);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    working_again(&lite, &id, killed.unwrap()).await;
    stored_once(&lite, conn, &ids, Duration::from_secs(60)).await;
    assert!(zombie_children().is_empty());
    lite.finish().await;
}

#[tokio::test]
async fn lite_messages_sent_while_the_browser_is_down_arrive_when_it_is_back() {
    let _turn = CHROMIUM.lock().await;
    let Some(lite) = lite_app().await else { return };
    let id = lite.working_session(ACCOUNT).await;
    let conn: Uuid = id.parse().unwrap();
    lite.wait_snapshot(&id).await;
    let res = lite
        .app
        .delete(&format!("/v1/lite/sessions/{id}"), &lite.key)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    lite.wait_status(&id, "STOPPED", Duration::from_secs(20))
        .await;

    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(contact_writes(&lite, &format!("enquanto fora {i}")).await);
    }
    let res = lite
        .app
        .post("/v1/lite/sessions", &lite.key)
        .json(&json!({"id": id}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    lite.wait_status(&id, "WORKING", Duration::from_secs(30))
        .await;
    stored_once(&lite, conn, &ids, Duration::from_secs(30)).await;
    lite.finish().await;
}

#[tokio::test]
async fn lite_kill9_right_after_working_comes_back_without_qr() {
    let _turn = CHROMIUM.lock().await;
    // No profile snapshot before the crash: the login must come back from the kept storage.
    let Some(lite) = crate::lite::lite_app_with(|env| {
        env.insert("LITE_SNAPSHOT_DELAY_MS".into(), "600000".into());
    })
    .await
    else {
        return;
    };
    let id = lite.working_session(ACCOUNT).await;
    let qrs = lite.events("session.qr").await;
    // Killed as soon as the login storage is kept (at WORKING), before Chromium may have
    // written its own copy to the profile.
    let kept = eventually(Duration::from_secs(20), || async {
        let n = lite
            .app
            .count(
                "SELECT count(*) FROM whatsapp_lite_sessions
                 WHERE id = $1 AND login_storage_at IS NOT NULL",
                &[&id.parse::<Uuid>().unwrap()],
            )
            .await;
        (n == 1).then_some(())
    })
    .await;
    assert!(kept.is_some(), "the login storage was never kept");
    let killed = kill_browser(&lite, &id).await;
    let back = working_again(&lite, &id, killed).await;
    assert_eq!(back["phone"], format!("+{ACCOUNT}"));
    assert!(
        back["profile_snapshot_at"].is_null(),
        "no profile snapshot was taken"
    );
    assert_eq!(lite.events("session.qr").await, qrs, "no new QR");
    lite.finish().await;
}

#[tokio::test]
async fn lite_phone_sent_messages_are_saliente_and_own_sends_are_not_duplicated() {
    let _turn = CHROMIUM.lock().await;
    let Some(lite) = lite_app().await else { return };
    let id = lite.working_session(ACCOUNT).await;
    let conn: Uuid = id.parse().unwrap();
    let client = lite.app.pool().get().await.unwrap();

    // The account's phone writes to the contact.
    let (status, body) = lite
        .sim_post(
            "phone-send",
            json!({"account": ACCOUNT, "to": CONTACT, "text": "mandei do celular"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let phone_id = body["id"].as_str().unwrap().to_string();

    // The daemon's own sends, through the queue.
    let mut own = Vec::new();
    for i in 0..3 {
        let resp = lite
            .app
            .post("/v1/messages", &lite.key)
            .json(
                &json!({"connection_id": id, "to": format!("+{CONTACT}"), "type": "text",
                          "text": {"body": format!("pela fila {i}")}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        own.push(
            resp.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    for mid in &own {
        let mid: Uuid = mid.parse().unwrap();
        wait_estado(&lite.app, &lite.key, mid, "sent", Duration::from_secs(60)).await;
    }

    // The phone's message is in the conversation as saliente; its ack moves it forward.
    let conversation: Uuid = eventually(Duration::from_secs(30), || async {
        client
            .query_opt(
                "SELECT conversacion_id FROM mensajes_conversacion
                 WHERE connection_id = $1 AND external_id = $2",
                &[&conn, &phone_id],
            )
            .await
            .unwrap()
            .map(|r| r.get(0))
    })
    .await
    .expect("phone-sent message stored");
    let (status, body) = lite
        .sim_post("acks", json!({"id": phone_id, "ack": 2}))
        .await;
    assert_eq!(status, 200, "{body}");
    let messages = eventually(Duration::from_secs(30), || async {
        let v: Value = lite
            .app
            .get(
                &format!("/v1/conversations/{conversation}/messages"),
                &lite.key,
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = v["items"].as_array().cloned().unwrap_or_default();
        items
            .iter()
            .any(|m| m["external_id"] == phone_id.as_str() && m["estado"] == "delivered")
            .then_some(items)
    })
    .await
    .expect("phone-sent message listed and acked");
    let phone = messages
        .iter()
        .find(|m| m["external_id"] == phone_id.as_str())
        .unwrap();
    assert_eq!(phone["direccion"], "saliente");
    assert_eq!(phone["contenido"], "mandei do celular");

    // Own sends: one row each, never a second one from the page's report. The page reports a
    // sent message before any ack of it, on one ordered channel: once the read acks of our
    // sends are stored, every report of those messages has been handled.
    for mid in &own {
        let external: String = client
            .query_one(
                "SELECT external_id FROM mensajes_conversacion WHERE id = $1",
                &[&mid.parse::<Uuid>().unwrap()],
            )
            .await
            .unwrap()
            .get(0);
        let (status, body) = lite
            .sim_post("acks", json!({"id": external, "ack": 3}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    for mid in &own {
        let mid: Uuid = mid.parse().unwrap();
        wait_estado(&lite.app, &lite.key, mid, "read", Duration::from_secs(30)).await;
    }
    let rows: i64 = client
        .query_one(
            "SELECT count(*) FROM mensajes_conversacion WHERE connection_id = $1 AND direccion = 'saliente'",
            &[&conn],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, own.len() as i64 + 1, "own sends not duplicated");
    lite.finish().await;
}
