//! Sessions' limits and lifecycle: at most five per user, bad input refused, start/stop cycles
//! and a killed daemon's leftover Chromium leave no process behind.

use super::{CHROMIUM, assert_no_chromium, chromium, lite_app, lite_env, live_under};
use crate::helpers::{eventually, expect_error, spawn_app_with};
use serde_json::json;
use sincro_core::lite::browser;
use sincro_sim::web::{self, WebSimConfig};
use std::time::Duration;
use uuid::Uuid;

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
    lite.delete_session(&ids[0], "").await;
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
        let s = lite.delete_session(&id, "").await;
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
