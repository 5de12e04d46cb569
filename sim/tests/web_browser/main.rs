//! The WhatsApp Web simulator driven by real headless Chromium (chromiumoxide), the way a
//! driver written against WhatsApp Web drives it: login by QR, inbound and outbound messages
//! (text and media), acks, conflict, restart on the same profile, logout from the phone,
//! pairing code.
//!
//! Needs Chromium: `CHROMIUM_PATH`, else `/usr/bin/chromium`; skipped (with a notice) if absent.

mod browser;
mod page_js;
mod scenario;

use browser::{Chromium, chromium_path};
use sincro_sim::web::{self, WebSimConfig};

#[tokio::test]
async fn web_browser_login_messages_restart_logout() {
    let Some(exe) = chromium_path() else {
        // CI installs Chromium (scripts/test): there a missing browser is a failure, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "web_browser: no Chromium in CI"
        );
        eprintln!("web_browser: no Chromium (set CHROMIUM_PATH); skipped");
        return;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = web::start(
        listener,
        WebSimConfig {
            first_ref_ms: 2_500,
            next_ref_ms: 1_500,
            refs_per_qr_cycle: 4,
            pairing_ms: 50,
            sync_ms: 50,
            ready_ms: 150,
            ..WebSimConfig::default()
        },
    )
    .await
    .unwrap();
    let profile = tempfile::tempdir().unwrap();

    let mut chromium = Some(Chromium::launch(&exe, profile.path()).await.unwrap());
    let result = scenario::run(&sim, &exe, profile.path(), &mut chromium).await;
    if let Some(c) = chromium.take() {
        c.close().await;
    }
    sim.shutdown().await;
    result.unwrap();
}
