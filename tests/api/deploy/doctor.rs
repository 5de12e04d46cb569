//! `doctor` as a process against the test database (its PostgreSQL checks pass) and against a
//! database that does not answer (it fails, exit code non-zero); and a daemon whose Chromium
//! is missing refuses Lite sessions with `chromium_missing`.

use crate::helpers::{base_env, expect_error, spawn_app, spawn_app_with};
use crate::process;
use std::time::Duration;

async fn doctor(env: &std::collections::HashMap<String, String>) -> (bool, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        process::command(&["doctor"], env).output(),
    )
    .await
    .expect("doctor finishes")
    .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn line<'a>(report: &'a str, check: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(check))
        .unwrap_or_else(|| panic!("no {check} line in:\n{report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_its_postgres_checks_on_the_test_database() {
    // Arrange: a migrated database (a daemon ran on it).
    let mut app = spawn_app().await;
    let mut env = app.env.clone();
    app.shutdown().await;
    env.insert("GRAPH_API_BASE".into(), "http://127.0.0.1:9".into());

    // Act
    let (_, report) = doctor(&env).await;

    // Assert
    for check in [
        "configuration",
        "data_dir",
        "postgres.reachable",
        "postgres.tls",
        "postgres.version",
        "postgres.migrations",
        "postgres.listen",
    ] {
        assert!(
            line(&report, check).starts_with("ok "),
            "{check}:\n{report}"
        );
    }
    assert!(
        line(&report, "postgres.migrations").contains(&format!(
            "version {}",
            sincro_core::store::migrate::latest_version()
        )),
        "{report}"
    );
    assert!(
        line(&report, "graph.reachable").starts_with("FAIL"),
        "{report}"
    );
    assert!(line(&report, "public_url").starts_with("skip"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_fails_on_an_unreachable_database() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let env = base_env(
        &format!("postgres://postgres@127.0.0.1:{port}/x"),
        dir.path(),
    );

    let (success, report) = doctor(&env).await;

    assert!(!success, "{report}");
    let reachable = line(&report, "postgres.reachable");
    assert!(reachable.starts_with("FAIL"), "{report}");
    assert!(reachable.contains("refused"), "{report}");
    assert!(report.contains("check(s) failed"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_without_chromium_refuses_lite_sessions() {
    // Arrange
    let app = spawn_app_with(|env| {
        env.insert("CHROMIUM_PATH".into(), "/nonexistent/chromium".into());
    })
    .await;
    let (_, key) = app.user("nochromium@deploy.test", false).await;

    // Act
    let resp = app
        .post("/v1/lite/sessions", &key)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();

    // Assert
    let body = expect_error(resp, 409, "chromium_missing").await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("apt-get install chromium"), "{message}");
    // Nothing was created.
    let list: serde_json::Value = app
        .get("/v1/lite/sessions", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"], serde_json::json!([]), "{list}");
}
