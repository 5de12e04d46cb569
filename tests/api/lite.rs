//! WhatsApp Lite end to end: the daemon drives real headless Chromium against the in-process
//! WhatsApp Web simulator (fast timings), over real HTTP and a real PostgreSQL.
//!
//! Chromium tests hold [`CHROMIUM`] so they run one at a time (two cores), and every test ends
//! by checking `/proc`: no Chromium of the test's DATA_DIR left, no zombie child of ours.
//! Skipped, with a notice, when no Chromium is installed (`scripts/test` installs it).

use crate::helpers::{TestApp, eventually, expect_error, spawn_app_with};
use serde_json::{Value, json};
use sincro_core::connection::{OutboundMessage, SendOutcome};
use sincro_core::lite::browser;
use sincro_sim::web::{self, WebSimConfig, WebSimHandle};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Chromium-heavy tests take turns.
pub static CHROMIUM: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub const ACCOUNT: &str = "5511999990001";
pub const CONTACT: &str = "5511988887777";

/// The browser the tests use, if installed.
pub fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("CHROMIUM_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    path.exists().then_some(path)
}

/// A daemon pointed at its own WhatsApp Web simulator, and a user with a key.
pub struct Lite {
    pub app: TestApp,
    pub sim: WebSimHandle,
    pub user: Uuid,
    pub key: String,
    pub data_dir: PathBuf,
}

/// The environment Lite tests add to the daemon's.
pub fn lite_env(env: &mut std::collections::HashMap<String, String>, sim: &WebSimHandle) {
    env.insert("WHATSAPP_WEB_URL".into(), sim.base_url());
    env.insert("LITE_SNAPSHOT_DELAY_MS".into(), "6000".into());
    env.insert("LITE_HEALTH_INTERVAL_MS".into(), "2000".into());
    if let Some(exe) = chromium() {
        env.insert("CHROMIUM_PATH".into(), exe.display().to_string());
    }
}

pub async fn lite_app() -> Option<Lite> {
    lite_app_with(|_| {}).await
}

pub async fn lite_app_with(
    extra: impl FnOnce(&mut std::collections::HashMap<String, String>),
) -> Option<Lite> {
    if chromium().is_none() {
        // CI installs Chromium (scripts/test): there a missing browser is a failure, not a skip.
        assert!(std::env::var_os("CI").is_none(), "lite: no Chromium in CI");
        eprintln!("lite: no Chromium (set CHROMIUM_PATH); skipped");
        return None;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = web::start(listener, WebSimConfig::fast()).await.unwrap();
    let base = sim.base_url();
    let app = spawn_app_with(|env| {
        env.insert("WHATSAPP_WEB_URL".into(), base);
        env.insert("LITE_SNAPSHOT_DELAY_MS".into(), "6000".into());
        env.insert("LITE_HEALTH_INTERVAL_MS".into(), "2000".into());
        if let Some(exe) = chromium() {
            env.insert("CHROMIUM_PATH".into(), exe.display().to_string());
        }
        extra(env);
    })
    .await;
    let data_dir = PathBuf::from(&app.env["DATA_DIR"]);
    let (user, key) = app
        .user(&format!("lite-{}@example.com", Uuid::new_v4()), false)
        .await;
    Some(Lite {
        app,
        sim,
        user,
        key,
        data_dir,
    })
}

impl Lite {
    pub fn lite_dir(&self) -> PathBuf {
        sincro_core::lite::absolute(&self.data_dir).join("lite")
    }

    pub async fn create(&self) -> Value {
        let res = self
            .app
            .post("/v1/lite/sessions", &self.key)
            .json(&json!({"name": "test"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 201, "create session");
        res.json().await.unwrap()
    }

    pub async fn session(&self, id: &str) -> Value {
        self.app
            .get(&format!("/v1/lite/sessions/{id}"), &self.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until the session has `status`; panics with the last state otherwise.
    pub async fn wait_status(&self, id: &str, status: &str, limit: Duration) -> Value {
        let last = std::cell::RefCell::new(Value::Null);
        let got = eventually(limit, || {
            let f = self.session(id);
            let last = &last;
            async move {
                let s = f.await;
                let hit = s["status"] == status;
                *last.borrow_mut() = s.clone();
                hit.then_some(s)
            }
        })
        .await;
        got.unwrap_or_else(|| panic!("session never became {status}; last: {}", last.borrow()))
    }

    /// The QR the API serves now (None: 409).
    pub async fn qr(&self, id: &str) -> Option<String> {
        let res = self
            .app
            .get(&format!("/v1/lite/sessions/{id}/qr"), &self.key)
            .send()
            .await
            .unwrap();
        if res.status().as_u16() != 200 {
            return None;
        }
        let body: Value = res.json().await.unwrap();
        body["qr"].as_str().map(str::to_string)
    }

    pub async fn sim_post(&self, route: &str, body: Value) -> (u16, Value) {
        let res = reqwest::Client::new()
            .post(format!("{}sim/{route}", self.sim.base_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        (
            res.status().as_u16(),
            res.json().await.unwrap_or(Value::Null),
        )
    }

    pub async fn sim_get(&self, path: &str) -> Value {
        reqwest::get(format!("{}{path}", self.sim.base_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Scans the session's current QR with the simulated phone (re-reading it if it rotated
    /// in between), then waits for WORKING.
    pub async fn link(&self, id: &str, phone: &str) -> Value {
        let linked = eventually(Duration::from_secs(20), || async {
            let qr = self.qr(id).await?;
            let (status, _) = self
                .sim_post("scan", json!({"qr": qr, "phone": phone}))
                .await;
            (status == 200).then_some(())
        })
        .await;
        assert!(linked.is_some(), "the QR was never scannable");
        self.wait_status(id, "WORKING", Duration::from_secs(20))
            .await
    }

    /// A session created and linked.
    pub async fn working_session(&self, phone: &str) -> String {
        let created = self.create().await;
        let id = created["id"].as_str().unwrap().to_string();
        self.link(&id, phone).await;
        id
    }

    /// Waits for the first profile snapshot (taken after the login state reached the disk).
    pub async fn wait_snapshot(&self, id: &str) {
        let got = eventually(Duration::from_secs(30), || async {
            let s = self.session(id).await;
            s["profile_snapshot_at"].is_string().then_some(())
        })
        .await;
        assert!(got.is_some(), "no profile snapshot");
    }

    pub async fn events(&self, kind: &str) -> i64 {
        let client = self.app.pool().get().await.unwrap();
        client
            .query_one(
                "SELECT count(*) FROM events WHERE usuario_id = $1 AND type = $2",
                &[&self.user, &kind],
            )
            .await
            .unwrap()
            .get(0)
    }

    /// Main Chromium processes of this daemon (alive, not zombies).
    pub fn browsers(&self) -> Vec<i32> {
        live_under(&self.lite_dir())
    }

    /// Stops the daemon and the simulator, then checks nothing of Chromium is left.
    pub async fn finish(mut self) {
        let lite_dir = self.lite_dir();
        self.app.shutdown().await;
        self.sim.shutdown().await;
        assert_no_chromium(&lite_dir).await;
    }
}

/// Live (non-zombie) processes with a profile under `dir`.
pub fn live_under(dir: &std::path::Path) -> Vec<i32> {
    browser::processes_under(dir)
        .into_iter()
        .filter(|&p| browser::state_and_pgid(p).is_some_and(|(s, _)| s != 'Z'))
        .collect()
}

/// Zombie children of this process (whatever they were).
pub fn zombie_children() -> Vec<i32> {
    let me = std::process::id() as i32;
    browser::all_pids()
        .into_iter()
        .filter(|&p| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                return false;
            };
            let Some((_, after)) = stat.rsplit_once(')') else {
                return false;
            };
            let f: Vec<&str> = after.split_whitespace().collect();
            f.first() == Some(&"Z") && f.get(1).and_then(|pp| pp.parse::<i32>().ok()) == Some(me)
        })
        .collect()
}

/// Eventually no Chromium under `dir` and no zombie child of ours.
pub async fn assert_no_chromium(dir: &std::path::Path) {
    let clean = eventually(Duration::from_secs(10), || async {
        (browser::processes_under(dir).is_empty() && zombie_children().is_empty()).then_some(())
    })
    .await;
    assert!(
        clean.is_some(),
        "Chromium left behind: {:?}, zombies: {:?}",
        browser::processes_under(dir),
        zombie_children()
    );
}

/// Decodes a QR PNG.
fn decode_png(png: &[u8]) -> String {
    let img = image::load_from_memory(png).expect("PNG").to_luma8();
    let (w, h) = img.dimensions();
    let mut prepared =
        rqrr::PreparedImage::prepare_from_greyscale(w as usize, h as usize, |x, y| {
            img.get_pixel(x as u32, y as u32)[0]
        });
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR in the PNG");
    grids[0].decode().expect("QR decodes").1
}

#[tokio::test]
async fn lite_qr_png_rotation_refresh_scan_working() {
    let _turn = CHROMIUM.lock().await;
    let Some(lite) = lite_app().await else { return };
    let asked = Instant::now();
    let created = lite.create().await;
    assert_eq!(created["status"], "STARTING");
    let id = created["id"].as_str().unwrap().to_string();

    // The QR arrives; its PNG and the raw string are what the simulator shows.
    let first = eventually(Duration::from_secs(20), || lite.qr(&id))
        .await
        .expect("a QR");
    eprintln!(
        "lite: QR {} ms after the request",
        asked.elapsed().as_millis()
    );
    assert_eq!(first.split(',').count(), 5, "{first}");
    let shown = lite.sim_get("sim/qr").await;
    let res = lite
        .app
        .get(&format!("/v1/lite/sessions/{id}/qr.png"), &lite.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "image/png");
    let decoded = decode_png(&res.bytes().await.unwrap());
    let sim_now: Vec<String> = shown
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["qr"].as_str().unwrap().to_string())
        .collect();
    assert!(
        sim_now.contains(&decoded) || decoded == first,
        "PNG {decoded} not shown by the simulator {sim_now:?}"
    );
    let res = lite
        .app
        .get(&format!("/v1/lite/sessions/{id}/qr.svg"), &lite.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "image/svg+xml");
    assert!(res.text().await.unwrap().contains("<svg"));

    // Rotation, then the end of the cycle (UNPAIRED_IDLE) and refreshQR: the fast simulator
    // has 3 refs per cycle, so a 4th distinct QR means the daemon refreshed.
    let seen = std::cell::RefCell::new(vec![first.clone()]);
    let rotated = eventually(Duration::from_secs(20), || {
        let f = lite.qr(&id);
        let seen = &seen;
        async move {
            if let Some(q) = f.await
                && !seen.borrow().contains(&q)
            {
                seen.borrow_mut().push(q);
            }
            (seen.borrow().len() >= 4).then_some(())
        }
    })
    .await;
    assert!(rotated.is_some(), "QRs seen: {}", seen.borrow().len());
    assert!(lite.events("session.qr").await >= 4);

    // Scan → WORKING, with the phone number.
    let s = lite.link(&id, ACCOUNT).await;
    assert_eq!(s["phone"], format!("+{ACCOUNT}"));
    assert_eq!(s["qr_available"], false);
    expect_error(
        lite.app
            .get(&format!("/v1/lite/sessions/{id}/qr"), &lite.key)
            .send()
            .await
            .unwrap(),
        409,
        "qr_not_available",
    )
    .await;
    // Kept in configuracion_mensajeria_usuario too, and pushed as events.
    let client = lite.app.pool().get().await.unwrap();
    let conf: Value = client
        .query_one(
            "SELECT configuracion FROM configuracion_mensajeria_usuario WHERE id = $1",
            &[&id.parse::<Uuid>().unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(conf["connection_status"], "WORKING");
    assert_eq!(conf["tipo_conexion"], "lite");
    assert_eq!(conf["numero_telefono"], format!("+{ACCOUNT}"));
    assert!(lite.events("session.status").await >= 3);
    // The list shows it; another user does not see it.
    let list: Value = lite
        .app
        .get("/v1/lite/sessions", &lite.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (_, other) = lite.app.user("lite-other@example.com", false).await;
    expect_error(
        lite.app
            .get(&format!("/v1/lite/sessions/{id}"), &other)
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    lite.finish().await;
}

#[tokio::test]
async fn lite_pairing_code_links() {
    let _turn = CHROMIUM.lock().await;
    let Some(lite) = lite_app().await else { return };
    let id = lite.create().await["id"].as_str().unwrap().to_string();
    lite.wait_status(&id, "SCAN_QR_CODE", Duration::from_secs(20))
        .await;
    let path = format!("/v1/lite/sessions/{id}/pairing-code");
    expect_error(
        lite.app
            .post(&path, &lite.key)
            .json(&json!({"phone": "not a phone"}))
            .send()
            .await
            .unwrap(),
        422,
        "invalid_phone",
    )
    .await;
    expect_error(
        lite.app
            .post(&path, &lite.key)
            .json(&json!({"number": "+5511999990002"}))
            .send()
            .await
            .unwrap(),
        400,
        "invalid_body",
    )
    .await;
    let res = lite
        .app
        .post(&path, &lite.key)
        .json(&json!({"phone": "+55 11 99999-0002"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let body: Value = res.json().await.unwrap();
    let code = body["code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 8, "{body}");
    assert_eq!(body["phone"], "+5511999990002");
    let (status, answer) = lite
        .sim_post("pair", json!({"code": code, "phone": "5511999990002"}))
        .await;
    assert_eq!(status, 200, "{answer}");
    let s = lite
        .wait_status(&id, "WORKING", Duration::from_secs(20))
        .await;
    assert_eq!(s["phone"], "+5511999990002");
    lite.finish().await;
}

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
async fn lite_chromium_kill9_comes_back_working_without_qr() {
    let _turn = CHROMIUM.lock().await;
    let Some(lite) = lite_app().await else { return };
    let id = lite.working_session(ACCOUNT).await;
    lite.wait_snapshot(&id).await;
    let qrs = lite.events("session.qr").await;
    let before = lite.browsers();
    let main = *before
        .iter()
        .find(|&&p| browser::state_and_pgid(p).is_some_and(|(_, g)| g == p))
        .expect("the browser's main process");
    let killed_at = Instant::now();
    // SAFETY: killing the test daemon's own Chromium.
    assert_eq!(unsafe { libc::kill(main, libc::SIGKILL) }, 0);
    // It fails, is restarted and comes back WORKING from the same profile.
    let back = eventually(Duration::from_secs(30), || async {
        let s = lite.session(&id).await;
        let new = lite.browsers();
        (s["status"] == "WORKING"
            && s["last_disconnect_reason"] == "BROWSER_DIED"
            && !new.is_empty()
            && !new.contains(&main))
        .then_some(s)
    })
    .await
    .expect("WORKING again after kill -9");
    eprintln!(
        "lite: WORKING again {} ms after kill -9",
        killed_at.elapsed().as_millis()
    );
    assert_eq!(back["phone"], format!("+{ACCOUNT}"));
    assert_eq!(lite.events("session.qr").await, qrs, "no new QR");
    // The killed tree is gone and reaped.
    let gone = eventually(Duration::from_secs(10), || async {
        before
            .iter()
            .all(|p| browser::state_and_pgid(*p).is_none())
            .then_some(())
    })
    .await;
    assert!(gone.is_some(), "old Chromium processes remain");
    assert!(zombie_children().is_empty());
    lite.finish().await;
}

#[tokio::test]
async fn lite_profile_deleted_is_restored_from_snapshot() {
    let _turn = CHROMIUM.lock().await;
    let Some(lite) = lite_app().await else { return };
    let id = lite.working_session(ACCOUNT).await;
    lite.wait_snapshot(&id).await;
    let qrs = lite.events("session.qr").await;
    // Stop (the profile stays), then lose the disk.
    let res = lite
        .app
        .delete(&format!("/v1/lite/sessions/{id}"), &lite.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let s: Value = res.json().await.unwrap();
    assert_eq!(s["status"], "STOPPED");
    assert_eq!(s["last_disconnect_reason"], "STOPPED_BY_USER");
    assert!(lite.browsers().is_empty());
    let profile = lite.lite_dir().join(&id);
    std::fs::remove_dir_all(&profile).unwrap();
    // Started again: restored from the sealed snapshot, WORKING without a QR.
    let res = lite
        .app
        .post("/v1/lite/sessions", &lite.key)
        .json(&json!({"id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    lite.wait_status(&id, "WORKING", Duration::from_secs(30))
        .await;
    assert_eq!(lite.events("session.qr").await, qrs, "no new QR");
    assert!(profile.join("profile").exists());
    lite.finish().await;
}

#[tokio::test]
async fn lite_logout_from_phone_stops_and_wipes() {
    let _turn = CHROMIUM.lock().await;
    let Some(lite) = lite_app().await else { return };
    let id = lite.working_session(ACCOUNT).await;
    lite.wait_snapshot(&id).await;
    let (status, body) = lite.sim_post("logout", json!({"account": ACCOUNT})).await;
    assert_eq!(status, 200, "{body}");
    let s = lite
        .wait_status(&id, "STOPPED", Duration::from_secs(20))
        .await;
    assert_eq!(s["last_disconnect_reason"], "LOGOUT");
    assert!(s["profile_snapshot_at"].is_null(), "snapshot wiped");
    assert!(!lite.lite_dir().join(&id).exists(), "profile wiped");
    assert_no_chromium(&lite.lite_dir()).await;
    // The connection is no longer offered to the Dispatcher.
    assert!(
        lite.app
            .app()
            .context()
            .shared
            .connections
            .get(id.parse().unwrap())
            .is_none()
    );
    // Unlinking through the API (DELETE ?logout=true) on a second session.
    let id2 = lite.working_session("5511999990003").await;
    let res = lite
        .app
        .delete(&format!("/v1/lite/sessions/{id2}?logout=true"), &lite.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let s: Value = res.json().await.unwrap();
    assert_eq!(s["status"], "STOPPED");
    assert_eq!(s["last_disconnect_reason"], "LOGOUT");
    assert!(!lite.lite_dir().join(&id2).exists());
    let state = lite.sim_get("sim/state").await;
    let account = state["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["phone"] == "5511999990003" || a["account"] == "5511999990003")
        .cloned()
        .unwrap_or(Value::Null);
    assert!(
        account["devices"].as_array().is_none_or(|d| d.is_empty()),
        "device unlinked on the phone: {account}"
    );
    lite.finish().await;
}

#[tokio::test]
async fn lite_sixth_session_refused_and_bad_input() {
    let _turn = CHROMIUM.lock().await;
    let Some(lite) = lite_app().await else { return };
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(lite.create().await["id"].as_str().unwrap().to_string());
    }
    let body = expect_error(
        lite.app
            .post("/v1/lite/sessions", &lite.key)
            .send()
            .await
            .unwrap(),
        409,
        "too_many_sessions",
    )
    .await;
    assert!(body["error"]["message"].as_str().unwrap().contains('5'));
    let client = lite.app.pool().get().await.unwrap();
    assert_eq!(
        session_count(&client, lite.user).await,
        5,
        "nothing created by the refused request"
    );
    // Bad input: clear 4xx, nothing changed.
    expect_error(
        lite.app
            .post("/v1/lite/sessions", &lite.key)
            .json(&json!({"name": ""}))
            .send()
            .await
            .unwrap(),
        400,
        "invalid_name",
    )
    .await;
    expect_error(
        lite.app
            .post("/v1/lite/sessions", &lite.key)
            .json(&json!({"nmae": "x"}))
            .send()
            .await
            .unwrap(),
        400,
        "invalid_body",
    )
    .await;
    expect_error(
        lite.app
            .get(&format!("/v1/lite/sessions/{}", Uuid::new_v4()), &lite.key)
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    let res = lite
        .app
        .delete(
            &format!("/v1/lite/sessions/{}?logout=maybe", ids[0]),
            &lite.key,
        )
        .send()
        .await
        .unwrap();
    expect_error(res, 400, "invalid_query").await;
    assert_eq!(session_count(&client, lite.user).await, 5);
    // Stopping one makes room.
    let res = lite
        .app
        .delete(&format!("/v1/lite/sessions/{}", ids[0]), &lite.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    lite.create().await;
    lite.finish().await;
}

async fn session_count(c: &deadpool_postgres::Client, user: Uuid) -> i64 {
    c.query_one(
        "SELECT count(*) FROM whatsapp_lite_sessions WHERE usuario_id = $1",
        &[&user],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn lite_twenty_start_stop_cycles_leave_no_chromium() {
    let _turn = CHROMIUM.lock().await;
    let Some(lite) = lite_app().await else { return };
    for cycle in 0..20 {
        let id = lite.create().await["id"].as_str().unwrap().to_string();
        if cycle % 2 == 0 {
            // Let it get as far as the QR; odd cycles stop while it is still starting.
            lite.wait_status(&id, "SCAN_QR_CODE", Duration::from_secs(20))
                .await;
        }
        let res = lite
            .app
            .delete(&format!("/v1/lite/sessions/{id}"), &lite.key)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "cycle {cycle}");
        let s: Value = res.json().await.unwrap();
        assert_eq!(s["status"], "STOPPED", "cycle {cycle}");
        assert!(
            lite.browsers().is_empty(),
            "cycle {cycle}: Chromium still running after stop"
        );
    }
    assert_no_chromium(&lite.lite_dir()).await;
    lite.finish().await;
}

#[tokio::test]
async fn lite_reaper_kills_chromium_left_by_a_killed_daemon() {
    let _turn = CHROMIUM.lock().await;
    let Some(exe) = chromium() else { return };
    let data_dir = tempfile::tempdir().unwrap();
    let lite_dir = sincro_core::lite::absolute(data_dir.path()).join("lite");
    // A browser as a killed daemon would leave it: own group, no parent to stop it.
    let spec = browser::LaunchSpec::new(
        Some(exe),
        lite_dir.join(Uuid::new_v4().to_string()).join("profile"),
        &[],
        Duration::from_secs(30),
    );
    let mut orphan = std::process::Command::new(spec.exe.clone().unwrap());
    orphan
        .args(spec.args())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut orphan, 0);
    let child = orphan.spawn().unwrap();
    // Should the test fail before the daemon reaps it, do not leave it running.
    struct Orphan(std::process::Child);
    impl Drop for Orphan {
        fn drop(&mut self) {
            // SAFETY: the process group this test created.
            unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
            let _ = self.0.wait();
        }
    }
    let mut child = Orphan(child);
    let up = eventually(Duration::from_secs(20), || async {
        (!live_under(&lite_dir).is_empty()).then_some(())
    })
    .await;
    assert!(up.is_some(), "the leftover browser did not start");
    // A daemon starting on that DATA_DIR reaps it before any session starts.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = web::start(listener, WebSimConfig::fast()).await.unwrap();
    let dir = data_dir.path().display().to_string();
    let mut app = spawn_app_with(|env| {
        lite_env(env, &sim);
        env.insert("DATA_DIR".into(), dir);
    })
    .await;
    let _ = tokio::task::spawn_blocking(move || child.0.wait()).await;
    assert!(live_under(&lite_dir).is_empty(), "leftover Chromium killed");
    app.shutdown().await;
    sim.shutdown().await;
    assert_no_chromium(&lite_dir).await;
}

/// The real binary, `kill -9`ed with a linked session: its Chromium dies with it (parent-death
/// signal), and the next daemon on the same DATA_DIR brings the session back WORKING without
/// a QR.
#[tokio::test]
async fn lite_daemon_killed_and_restarted_comes_back_working_without_qr() {
    use crate::helpers::{base_env, connect, fresh_database};
    use crate::process::{command, serve};
    let _turn = CHROMIUM.lock().await;
    if chromium().is_none() {
        eprintln!("lite: no Chromium; skipped");
        return;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = web::start(listener, WebSimConfig::fast()).await.unwrap();
    let database_url = fresh_database().await;
    let data_dir = tempfile::tempdir().unwrap();
    let lite_dir = sincro_core::lite::absolute(data_dir.path()).join("lite");
    let mut env = base_env(&database_url, data_dir.path());
    lite_env(&mut env, &sim);
    env.insert("LOG_LEVEL".into(), "info".into());
    let out = command(
        &["user", "create", "--email", "lite-process@example.com"],
        &env,
    )
    .output()
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string();
    let http = reqwest::Client::new();
    let session = |base: String, id: String| {
        let http = http.clone();
        let key = key.clone();
        async move {
            http.get(format!("{base}/v1/lite/sessions/{id}"))
                .bearer_auth(&key)
                .send()
                .await
                .ok()?
                .json::<Value>()
                .await
                .ok()
        }
    };

    let mut first = serve(env.clone()).await;
    let base = format!("http://{}", first.addr);
    let created: Value = http
        .post(format!("{base}/v1/lite/sessions"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    let linked = eventually(Duration::from_secs(30), || async {
        let qr: Value = http
            .get(format!("{base}/v1/lite/sessions/{id}/qr"))
            .bearer_auth(&key)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let res = http
            .post(format!("{}sim/scan", sim.base_url()))
            .json(&json!({"qr": qr["qr"], "phone": ACCOUNT}))
            .send()
            .await
            .ok()?;
        res.status().is_success().then_some(())
    })
    .await;
    assert!(linked.is_some(), "scanned");
    let ready = eventually(Duration::from_secs(30), || {
        let f = session(base.clone(), id.clone());
        async move {
            let s = f.await?;
            (s["status"] == "WORKING" && s["profile_snapshot_at"].is_string()).then_some(())
        }
    })
    .await;
    assert!(ready.is_some(), "WORKING with a snapshot");
    let db = connect(&database_url).await;
    let qrs = qr_event_count(&db).await;
    assert!(!live_under(&lite_dir).is_empty());

    // kill -9: the browser goes with the daemon.
    first.signal(libc::SIGKILL);
    let _ = first.child.wait().await;
    let orphans = eventually(Duration::from_secs(10), || async {
        live_under(&lite_dir).is_empty().then_some(())
    })
    .await;
    assert!(
        orphans.is_some(),
        "Chromium outlived its daemon: {:?}",
        live_under(&lite_dir)
    );

    // The next daemon resumes it: WORKING, no new QR.
    let restarted = Instant::now();
    let mut second = serve(env.clone()).await;
    let base = format!("http://{}", second.addr);
    let back = eventually(Duration::from_secs(30), || {
        let f = session(base.clone(), id.clone());
        async move {
            let s = f.await?;
            (s["status"] == "WORKING").then_some(s)
        }
    })
    .await
    .expect("WORKING after the daemon restarted");
    eprintln!(
        "lite: WORKING {} ms after the daemon restarted",
        restarted.elapsed().as_millis()
    );
    assert_eq!(back["phone"], format!("+{ACCOUNT}"));
    assert_eq!(qr_event_count(&db).await, qrs, "no new QR");
    second.signal(libc::SIGTERM);
    let _ = tokio::time::timeout(Duration::from_secs(30), second.child.wait()).await;
    sim.shutdown().await;
    assert_no_chromium(&lite_dir).await;
}

async fn qr_event_count(db: &tokio_postgres::Client) -> i64 {
    db.query_one("SELECT count(*) FROM events WHERE type = 'session.qr'", &[])
        .await
        .unwrap()
        .get(0)
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
