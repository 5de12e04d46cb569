//! The supervision tree: every child runs and is linked; a child that panics is restarted with
//! backoff and `/v1/status` shows it; one that keeps failing is marked failed with an alert.

use crate::helpers::{eventually, spawn_app};
use serde_json::Value;
use sincro_core::daemon::DaemonMessage;
use std::time::Duration;

const CHILDREN: &[&str] = &[
    "rate_limiter",
    "lead_sync",
    "hub",
    "ingest",
    "retention",
    "dispatcher",
    "business_supervisor",
    "lite_supervisor",
    "hook_dispatcher",
];

fn child<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["tree"]["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing from {status}"))
}

async fn status(app: &crate::helpers::TestApp, key: &str) -> Value {
    app.get("/v1/status", key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn crash(app: &crate::helpers::TestApp, name: &str) -> bool {
    let daemon = app.app().context().actors.daemon.clone();
    let child = name.to_string();
    match daemon
        .call(
            |reply| DaemonMessage::Crash { child, reply },
            Some(Duration::from_secs(5)),
        )
        .await
        .unwrap()
    {
        ractor::rpc::CallResult::Success(done) => done,
        other => panic!("crash call: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_runs_every_child() {
    let mut app = spawn_app().await;
    let (_, admin) = app.user("root@example.com", true).await;
    let s = status(&app, &admin).await;
    assert_eq!(s["tree"]["name"], "daemon");
    assert_eq!(s["tree"]["state"], "running");
    for name in CHILDREN {
        let c = child(&s, name);
        assert_eq!(c["state"], "running", "{name}");
        assert_eq!(c["restarts"], 0);
        assert!(c["uptime_secs"].as_f64().unwrap() >= 0.0);
        assert!(c["actor_id"].is_string());
    }
    assert_eq!(child(&s, "lite_supervisor")["kind"], "supervisor");
    assert_eq!(child(&s, "ingest")["kind"], "worker");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_child_is_restarted_and_status_shows_it() {
    // Arrange
    let mut app = spawn_app().await;
    let (_, admin) = app.user("root@example.com", true).await;
    let before = child(&status(&app, &admin).await, "ingest").clone();
    // Act
    assert!(crash(&app, "ingest").await);
    // Assert
    let after = eventually(Duration::from_secs(10), || async {
        let s = status(&app, &admin).await;
        let c = child(&s, "ingest").clone();
        (c["restarts"] == 1 && c["state"] == "running").then_some(c)
    })
    .await
    .expect("ingest restarted");
    assert_ne!(
        after["actor_id"], before["actor_id"],
        "a new incarnation runs"
    );
    assert!(
        after["last_error"]
            .as_str()
            .unwrap()
            .contains("fault injection")
    );
    // The typed slot points at the new incarnation: the limiter-backed API still works.
    assert!(crash(&app, "rate_limiter").await);
    eventually(Duration::from_secs(10), || async {
        let s = status(&app, &admin).await;
        (child(&s, "rate_limiter")["restarts"] == 1
            && child(&s, "rate_limiter")["state"] == "running")
            .then_some(())
    })
    .await
    .expect("rate limiter restarted");
    assert_eq!(
        app.get("/v1/leads", &admin).send().await.unwrap().status(),
        200
    );
    // A supervisor child is restarted the same way; its siblings are untouched.
    assert!(crash(&app, "lite_supervisor").await);
    let s = eventually(Duration::from_secs(10), || async {
        let s = status(&app, &admin).await;
        (child(&s, "lite_supervisor")["restarts"] == 1
            && child(&s, "lite_supervisor")["state"] == "running")
            .then_some(s)
    })
    .await
    .expect("lite supervisor restarted");
    assert_eq!(child(&s, "hub")["restarts"], 0);
    let report = app.shutdown().await;
    assert!(report.still_running.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_failing_too_often_is_marked_failed_with_an_alert() {
    let mut app = spawn_app().await;
    let (_, admin) = app.user("root@example.com", true).await;
    // fast_restarts(): 3 failures tolerated within the window; the 4th gives up.
    for round in 1..=4u64 {
        assert!(crash(&app, "dispatcher").await, "round {round}");
        let want = if round < 4 { "running" } else { "failed" };
        eventually(Duration::from_secs(10), || async {
            let s = status(&app, &admin).await;
            let c = child(&s, "dispatcher");
            (c["state"] == want && c["restarts"].as_u64() == Some(round.min(3))).then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("round {round}: dispatcher never became {want}"));
    }
    assert!(
        !crash(&app, "dispatcher").await,
        "a failed child is not running"
    );
    let alert = eventually(Duration::from_secs(5), || async {
        let client = app.pool().get().await.unwrap();
        client
            .query_opt(
                "SELECT severity, source, details FROM alerts WHERE kind = 'actor_failed'",
                &[],
            )
            .await
            .unwrap()
    })
    .await
    .expect("alert row");
    assert_eq!(alert.get::<_, String>(0), "critical");
    assert_eq!(alert.get::<_, String>(1), "daemon/dispatcher");
    let s = status(&app, &admin).await;
    assert_eq!(child(&s, "ingest")["state"], "running");
    app.shutdown().await;
}

#[tokio::test]
async fn fault_injection_is_off_by_default() {
    use sincro_whatsapp::app::{Application, Options};
    let url = crate::helpers::fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let config =
        sincro_whatsapp::config::Config::from_map(&crate::helpers::base_env(&url, dir.path()))
            .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = Application::build(config, listener, Options::default())
        .await
        .unwrap();
    let daemon = app.context().actors.daemon.clone();
    let done = daemon
        .call(
            |reply| DaemonMessage::Crash {
                child: "ingest".into(),
                reply,
            },
            Some(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert!(matches!(done, ractor::rpc::CallResult::Success(false)));
    app.shutdown().await;
}
