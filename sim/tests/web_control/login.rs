//! Linking: the page served self-contained, QR scans (current and stale refs), the end of a QR
//! cycle and its refresh, pairing codes.

use crate::fake_page::{FakePage, assert_error, fast, get, post, sim};
use serde_json::{Value, json};
use sincro_sim::web::WebSimConfig;
use std::time::Duration;

#[tokio::test]
async fn web_page_is_served_self_contained() {
    let sim = sim(fast()).await;
    let html = reqwest::get(sim.base_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("window.Debug.VERSION = VERSION"));
    assert!(html.contains("var VERSION = '2.3000."));
    // Modules are defined through the page's __d registry and served by require.
    assert!(html.contains("window.__d = defineModule"));
    assert!(html.contains("window.require = requireModule"));
    assert!(!html.contains("__WA_JS__") && !html.contains("__WA_VERSION__"));
    assert!(!html.contains("src=\"http"), "no external resources");
    let (status, body) = get(&sim, "sim/nope").await;
    assert_error(status, &body, 404, "not_found");
    sim.shutdown().await;
}

#[tokio::test]
async fn web_scan_current_qr_links_and_stale_qr_is_refused() {
    // Enough refs that the cycle does not end while the test scans.
    let sim = sim(WebSimConfig {
        refs_per_qr_cycle: 100,
        ..fast()
    })
    .await;
    let mut page = FakePage::open(&sim, None, None).await;
    let first = page.next_qr().await;

    let (_, qrs) = get(&sim, "sim/qr").await;
    assert_eq!(qrs[0]["qr"], first, "{qrs}");
    assert_eq!(qrs[0]["device"], page.device);

    // The first ref expires; scanning it now is refused.
    let second = page.next_qr().await;
    assert_ne!(first, second);
    let (status, body) = post(&sim, "scan", json!({"qr": first, "phone": "5511999990001"})).await;
    assert_error(status, &body, 409, "qr_not_current");
    let (status, body) = post(
        &sim,
        "scan",
        json!({"qr": "garbage", "phone": "5511999990001"}),
    )
    .await;
    assert_error(status, &body, 409, "qr_not_current");
    let (status, body) = post(&sim, "scan", json!({"qr": second, "phone": "abc"})).await;
    assert_error(status, &body, 400, "invalid_phone");
    let (status, body) = post(&sim, "scan", json!({"phone": "5511999990001"})).await;
    assert_error(status, &body, 400, "invalid_request");

    // The QR shown now links (the refs keep rotating every 250 ms meanwhile: on a busy machine
    // `second` may have expired too, so the one shown at the moment of the scan is used).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (scanned, body) = loop {
        let (_, qrs) = get(&sim, "sim/qr").await;
        let shown = qrs[0]["qr"].clone();
        let (status, body) = post(
            &sim,
            "scan",
            json!({"qr": shown, "phone": "+55 11 99999-0001"}),
        )
        .await;
        if status == 200 {
            break (shown, body);
        }
        assert_error(status, &body, 409, "qr_not_current");
        assert!(
            std::time::Instant::now() < deadline,
            "no QR could be scanned"
        );
    };
    assert_eq!(body["account"], "5511999990001");
    page.next("pairing").await;
    let linked = page.next("linked").await;
    assert_eq!(linked["account"], "5511999990001");
    assert!(linked["lid"].as_str().unwrap().ends_with("@lid"));
    page.next("synced").await;

    // Scanned QRs are no longer shown.
    let (status, body) = post(
        &sim,
        "scan",
        json!({"qr": scanned, "phone": "5511999990001"}),
    )
    .await;
    assert_error(status, &body, 409, "qr_not_current");
    let (_, qrs) = get(&sim, "sim/qr").await;
    assert_eq!(qrs, json!([]));
    let (_, state) = get(&sim, "sim/state").await;
    assert_eq!(state["accounts"][0]["phone"], "5511999990001");
    assert_eq!(state["pages"][0]["state"], "CONNECTED");
    sim.shutdown().await;
}

#[tokio::test]
async fn web_refs_run_out_then_refresh_gives_a_new_cycle() {
    let sim = sim(WebSimConfig {
        first_ref_ms: 100,
        next_ref_ms: 60,
        refs_per_qr_cycle: 2,
        ..fast()
    })
    .await;
    let mut page = FakePage::open(&sim, None, None).await;
    let a = page.next("ref").await;
    let b = page.next("ref").await;
    assert_eq!(a["ttl_ms"], 100);
    assert_eq!(b["ttl_ms"], 60);
    page.next("idle").await;
    let (_, qrs) = get(&sim, "sim/qr").await;
    assert_eq!(qrs, json!([]), "an idle page shows no scannable QR");
    let (_, state) = get(&sim, "sim/state").await;
    assert_eq!(state["pages"][0]["state"], "UNPAIRED_IDLE");
    page.send(json!({"t": "refresh_qr"})).await;
    let c = page.next("ref").await;
    assert_ne!(c["ref"], b["ref"]);
    assert!(c["ref"].as_str().unwrap().starts_with("2@"));
    sim.shutdown().await;
}

#[tokio::test]
async fn web_pairing_code() {
    let sim = sim(fast()).await;
    let mut page = FakePage::open(&sim, None, None).await;
    page.next("ref").await;
    page.send(json!({"t": "pair_request", "rid": 7, "phone": "+55 11 99999-0004"}))
        .await;
    let reply = page.next("pair_code").await;
    assert_eq!(reply["rid"], 7);
    let code = reply["code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 8);
    assert!(
        code.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    );

    let (status, body) = post(
        &sim,
        "pair",
        json!({"code": "ZZZZZZZZ", "phone": "5511999990004"}),
    )
    .await;
    assert_error(status, &body, 404, "unknown_pairing_code");
    let (status, body) = post(
        &sim,
        "pair",
        json!({"code": code, "phone": "5511999990005"}),
    )
    .await;
    assert_error(status, &body, 409, "pairing_phone_mismatch");
    let dashed = format!("{}-{}", &code[..4], code[4..].to_lowercase());
    let (status, body) = post(
        &sim,
        "pair",
        json!({"code": dashed, "phone": "5511999990004"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    page.next("pairing").await;
    assert_eq!(page.next("linked").await["account"], "5511999990004");

    // `Socket.logout()` on the page unlinks the device too.
    page.send(json!({"t": "logout"})).await;
    assert_eq!(page.next("logout").await["reason"], "self");
    let (_, state) = get(&sim, "sim/state").await;
    assert_eq!(state["accounts"][0]["devices"], json!([]), "{state}");
    assert_eq!(state["devices"][0]["account"], Value::Null, "{state}");
    sim.shutdown().await;
}
