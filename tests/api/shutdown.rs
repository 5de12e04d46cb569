//! Graceful shutdown: in-process (the report), and as a process on SIGTERM and SIGINT (exit 0,
//! tree stopped children-first, JSON logs with the service field and no secrets).

use crate::helpers::{base_env, fresh_database, spawn_app};
use crate::process;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_shutdown_stops_everything() {
    let mut app = spawn_app().await;
    let daemon = app.app().context().actors.daemon.clone();
    let ingest = app.app().context().actors.children.ingest.get().unwrap();
    let base = app.base.clone();
    let report = app.shutdown().await;
    assert!(report.still_running.is_empty(), "{report:?}");
    assert!(report.http_drained);
    assert_eq!(daemon.get_status(), ractor::ActorStatus::Stopped);
    assert_eq!(ingest.get_status(), ractor::ActorStatus::Stopped);
    // The listener is closed.
    assert!(reqwest::get(format!("{base}/healthz")).await.is_err());
}

async fn sigterm_or_sigint(sig: i32) {
    // Arrange
    let url = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let env = base_env(&url, dir.path());
    let key = env["ENCRYPTION_KEY"].clone();
    let mut daemon = process::serve(env).await;
    let health = reqwest::get(format!("http://{}/healthz", daemon.addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    // Act
    daemon.signal(sig);
    let status = daemon.exited(Duration::from_secs(30)).await;
    // Assert
    assert!(status.success(), "exit status {status:?}");
    let log = daemon.log();
    assert!(
        log.iter().any(|l| l.contains("shutdown complete")),
        "{log:#?}"
    );
    assert!(!log.iter().any(|l| l.contains("still running")), "{log:#?}");
    let key_material = key.split(':').nth(1).unwrap();
    for line in &log {
        assert!(!line.contains(key_material), "secret in log: {line}");
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        let service = v["service"].as_str().unwrap_or_default();
        assert!(crate::ops::SERVICES.contains(&service), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_process_cleanly() {
    sigterm_or_sigint(libc::SIGTERM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_stops_the_process_cleanly() {
    sigterm_or_sigint(libc::SIGINT).await;
}
