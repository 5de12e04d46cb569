//! WhatsApp Lite end to end: the daemon drives real headless Chromium against the in-process
//! WhatsApp Web simulator (fast timings), over real HTTP and a real PostgreSQL.
//!
//! Chromium tests hold [`CHROMIUM`] so they run one at a time (two cores), and every test ends
//! by checking `/proc`: no Chromium of the test's DATA_DIR left, no zombie child of ours.
//! Skipped, with a notice, when no Chromium is installed (`scripts/test` installs it).

mod lifecycle;
mod linking;
mod messages;
mod recovery;

use crate::helpers::{TestApp, eventually, spawn_app_with};
use serde_json::{Value, json};
use sincro_core::lite::browser;
use sincro_sim::web::{self, WebSimConfig, WebSimHandle};
use std::path::PathBuf;
use std::time::Duration;
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
    let app = spawn_app_with(|env| {
        lite_env(env, &sim);
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

    /// `DELETE /v1/lite/sessions/{id}{query}`, answered 200; its body (the session as stopped).
    /// The daemon bounds a stop by `SESSION_STOP_TIMEOUT` (a session still launching its
    /// browser stops once the launch step returns), so the request may take that long on a
    /// busy machine: longer than the test client's usual 20 s.
    pub async fn delete_session(&self, id: &str, query: &str) -> Value {
        let res = self
            .app
            .delete(&format!("/v1/lite/sessions/{id}{query}"), &self.key)
            .timeout(
                sincro_core::lite::session::handle::SESSION_STOP_TIMEOUT + Duration::from_secs(15),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "DELETE session {id}{query}");
        res.json().await.unwrap()
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
