//! A session survives what happens to its browser and daemon: Chromium killed, the profile lost
//! (restored from its snapshot), the daemon killed and restarted; logout from the phone wipes
//! it.

use super::{
    ACCOUNT, CHROMIUM, assert_no_chromium, chromium, lite_app, lite_env, live_under,
    zombie_children,
};
use crate::helpers::eventually;
use serde_json::{Value, json};
use sincro_core::lite::browser;
use sincro_sim::web::{self, WebSimConfig};
use std::time::{Duration, Instant};

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
    let s = lite.delete_session(&id, "").await;
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
    let s = lite.delete_session(&id2, "?logout=true").await;
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
