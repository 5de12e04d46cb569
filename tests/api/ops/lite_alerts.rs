//! A Lite session logged out from the phone raises `lite_logged_out` (with an `alert` stream
//! event), and linking it again resolves it once the session is WORKING. Real Chromium
//! against the WhatsApp Web simulator.

use crate::helpers::eventually;
use crate::lite::{ACCOUNT, CHROMIUM, lite_app};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_logout_from_the_phone_raises_an_alert_that_working_again_resolves() {
    let _turn = CHROMIUM.lock().await;
    let Some(lite) = lite_app().await else { return };
    let id = lite.working_session(ACCOUNT).await;
    let alerts = |state: &'static str| {
        let lite = &lite;
        async move {
            let body: Value = lite
                .app
                .get(&format!("/v1/alerts?state={state}"), &lite.key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["alerts"].as_array().cloned().unwrap_or_default()
        }
    };
    assert!(
        alerts("all").await.is_empty(),
        "a linked session raises nothing"
    );

    let (status, body) = lite.sim_post("logout", json!({"account": ACCOUNT})).await;
    assert_eq!(status, 200, "{body}");
    lite.wait_status(&id, "STOPPED", WAIT).await;
    let raised = eventually(WAIT, || async {
        alerts("open")
            .await
            .into_iter()
            .find(|a| a["kind"] == "lite_logged_out")
    })
    .await
    .expect("an alert for the logout");
    assert_eq!(raised["connection_id"], id.as_str());
    assert_eq!(raised["severity"], "critical");
    assert!(
        lite.events("alert").await >= 1,
        "an alert event on the stream"
    );

    // Linked again: the condition has cleared.
    let restarted = lite
        .app
        .post("/v1/lite/sessions", &lite.key)
        .json(&json!({"id": id}))
        .send()
        .await
        .unwrap();
    assert!(restarted.status().is_success(), "{}", restarted.status());
    lite.link(&id, ACCOUNT).await;
    let resolved = eventually(WAIT, || async {
        alerts("resolved")
            .await
            .into_iter()
            .find(|a| a["id"] == raised["id"])
    })
    .await
    .expect("WORKING again resolves the alert");
    assert!(resolved["resolved_at"].is_string());
    assert!(alerts("open").await.is_empty());
    lite.finish().await;
}
