//! Lite sessions across two nodes on one database (docs/ARCHITECTURE.md §5), with real Chromium:
//! one browser per session, on the node holding its lease; a stop asked on the other node is
//! carried out by the one running it; a session started again elsewhere comes back from its
//! sealed profile snapshot without a QR; a node that stops hands its sessions to the other; a
//! pairing code is refused (409) by a node that does not run the session.

use crate::helpers::{TestApp, expect_error, spawn_app_sharing};
use crate::lite::{ACCOUNT, CHROMIUM, assert_no_chromium, lite_app_with, live_under};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

fn lite_dir(app: &TestApp) -> PathBuf {
    sincro_core::lite::absolute(std::path::Path::new(&app.env["DATA_DIR"])).join("lite")
}

#[tokio::test]
async fn lite_two_nodes_one_browser_forwarded_stop_and_takeover() {
    // Arrange: node A runs a linked session; node B shares the database.
    let _turn = CHROMIUM.lock().await;
    let Some(lite) = lite_app_with(|env| {
        env.insert("NODE_LEASE_SECS".into(), "3".into());
    })
    .await
    else {
        return;
    };
    let mut b = spawn_app_sharing(&lite.app).await;
    let b_dir = lite_dir(&b);
    let id = lite.create().await["id"].as_str().unwrap().to_string();
    lite.wait_status(&id, "SCAN_QR_CODE", Duration::from_secs(20))
        .await;
    // A pairing code must come from the node running the browser.
    expect_error(
        b.post(&format!("/v1/lite/sessions/{id}/pairing-code"), &lite.key)
            .json(&json!({"phone": "+5511999990001"}))
            .send()
            .await
            .unwrap(),
        409,
        "runs_on_another_node",
    )
    .await;
    lite.link(&id, ACCOUNT).await;
    lite.wait_snapshot(&id).await;
    let qrs = lite.events("session.qr").await;
    b.heartbeat_rounds(2).await; // B's reconcile rounds pass
    assert!(!lite.browsers().is_empty(), "A runs the browser");
    assert!(live_under(&b_dir).is_empty(), "B runs none");

    // Act: stop it through B.
    let res = b
        .delete(&format!("/v1/lite/sessions/{id}"), &lite.key)
        .send()
        .await
        .unwrap();

    // Assert: A closed its browser; the session is STOPPED.
    assert_eq!(res.status().as_u16(), 200);
    let s: Value = res.json().await.unwrap();
    assert_eq!(s["status"], "STOPPED", "{s}");
    assert!(lite.browsers().is_empty(), "A's browser is gone");

    // Act: start it again through B.
    let res = b
        .post("/v1/lite/sessions", &lite.key)
        .json(&json!({"id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);

    // Assert: it runs on B, from the sealed snapshot (B's disk never had the profile).
    lite.wait_status(&id, "WORKING", Duration::from_secs(30))
        .await;
    assert!(!live_under(&b_dir).is_empty(), "B runs the browser");
    assert!(lite.browsers().is_empty(), "A runs none");
    assert_eq!(lite.events("session.qr").await, qrs, "no new QR");

    // Act: B stops gracefully.
    b.shutdown().await;

    // Assert: A takes the session over within a few renewals, WORKING without a QR.
    assert_no_chromium(&b_dir).await;
    let back = crate::helpers::eventually(Duration::from_secs(30), || async {
        let s = lite.session(&id).await;
        (s["status"] == "WORKING" && !lite.browsers().is_empty()).then_some(())
    })
    .await;
    assert!(
        back.is_some(),
        "A did not take over: {}",
        lite.session(&id).await
    );
    assert_eq!(lite.events("session.qr").await, qrs, "no new QR");
    lite.finish().await;
}
