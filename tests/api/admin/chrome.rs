//! A headless Chromium for the admin panel tests, started the way the Lite sessions start
//! theirs (`sincro_core::lite::browser`: its own process group, DevTools on a pipe, a fresh
//! profile) with images on, so the QR the page shows is really drawn. It records every URL
//! the page requests (WebSockets included) and every Content-Security-Policy refusal the
//! browser reports, and takes screenshots under `target/admin-screenshots/`.

use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::log::{self, EventEntryAdded};
use chromiumoxide::cdp::browser_protocol::network::{
    self, EventRequestWillBeSent, EventWebSocketCreated,
};
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, Page};
use futures::StreamExt;
use serde_json::Value;
use sincro_core::lite::browser::{Chromium, LaunchSpec};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long one condition on the page may take before the test fails.
pub const PAGE_WAIT: Duration = Duration::from_secs(90);

/// Where the screenshots go: `target/admin-screenshots/` of the checkout, whatever
/// `CARGO_TARGET_DIR` says (CI builds elsewhere), so a CI run keeps them beside its clone.
pub fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("admin-screenshots")
}

pub struct Chrome {
    chromium: Chromium,
    browser: Browser,
    pub page: Page,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Every URL the page asked for, in order.
    pub urls: Arc<Mutex<Vec<String>>>,
    /// What the browser logged about Content-Security-Policy refusals.
    pub csp_refusals: Arc<Mutex<Vec<String>>>,
    _profile: tempfile::TempDir,
}

impl Chrome {
    pub async fn launch(exe: PathBuf) -> Chrome {
        let profile = tempfile::tempdir().expect("profile dir");
        let spec = LaunchSpec::with_mode(
            Some(exe),
            profile.path().join("profile"),
            &["blink-settings=imagesEnabled=true".to_string()],
            Duration::from_secs(30),
            false,
        );
        let chromium = Chromium::launch(&spec).await.expect("Chromium starts");
        let (browser, mut handler) = chromium.connect().await.expect("attach to Chromium");
        let mut tasks = vec![tokio::spawn(async move {
            while let Some(r) = handler.next().await {
                if r.is_err() {
                    break;
                }
            }
        })];
        let page = browser.new_page("about:blank").await.expect("a page");
        page.execute(network::EnableParams::default())
            .await
            .expect("network events");
        page.execute(log::EnableParams::default())
            .await
            .expect("log events");
        let urls = Arc::new(Mutex::new(Vec::new()));
        let mut requests = page
            .event_listener::<EventRequestWillBeSent>()
            .await
            .unwrap();
        let seen = urls.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(ev) = requests.next().await {
                seen.lock().unwrap().push(ev.request.url.clone());
            }
        }));
        let mut sockets = page
            .event_listener::<EventWebSocketCreated>()
            .await
            .unwrap();
        let seen = urls.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(ev) = sockets.next().await {
                seen.lock().unwrap().push(ev.url.clone());
            }
        }));
        let csp_refusals = Arc::new(Mutex::new(Vec::new()));
        let mut entries = page.event_listener::<EventEntryAdded>().await.unwrap();
        let refusals = csp_refusals.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(ev) = entries.next().await {
                if ev.entry.text.contains("Content Security Policy") {
                    refusals.lock().unwrap().push(ev.entry.text.clone());
                }
            }
        }));
        Chrome {
            chromium,
            browser,
            page,
            tasks,
            urls,
            csp_refusals,
            _profile: profile,
        }
    }

    /// The value of a JavaScript expression; None for null, undefined or an error.
    pub async fn eval(&self, js: &str) -> Option<Value> {
        let expr = format!(
            "(() => {{ try {{ return ({js}) ?? null; }} catch (e) {{ return null; }} }})()"
        );
        let v = self.page.evaluate(expr).await.ok()?.value().cloned()?;
        (!v.is_null()).then_some(v)
    }

    /// Waits until `js` gives a value that is not null, false, 0 or empty; panics naming
    /// `what` after [`PAGE_WAIT`].
    pub async fn wait(&self, what: &str, js: &str) -> Value {
        let until = Instant::now() + PAGE_WAIT;
        loop {
            if let Some(v) = self.eval(js).await {
                let truthy = match &v {
                    Value::Bool(b) => *b,
                    Value::Number(n) => n.as_f64() != Some(0.0),
                    Value::String(s) => !s.is_empty(),
                    _ => true,
                };
                if truthy {
                    return v;
                }
            }
            if Instant::now() > until {
                let text = self.eval("document.body.innerText").await;
                panic!("the page never showed {what}; it shows: {text:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the element `selector` (through the DOM, as a tap would).
    pub async fn click(&self, selector: &str) {
        let js = format!(
            "(() => {{ const e = document.querySelector({}); if (!e) return false; e.click(); return true; }})()",
            serde_json::to_string(selector).unwrap()
        );
        self.wait(&format!("{selector} to click"), &js).await;
    }

    /// A screen the size of a phone's (390 × 844 CSS pixels).
    pub async fn phone_screen(&self) {
        self.page
            .execute(SetDeviceMetricsOverrideParams::new(390, 844, 2.0, true))
            .await
            .expect("phone metrics");
    }

    pub async fn screenshot(&self, name: &str) {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        self.page
            .save_screenshot(
                ScreenshotParams::builder().full_page(true).build(),
                dir.join(name),
            )
            .await
            .expect("screenshot");
    }

    pub async fn close(mut self) {
        let _ = self.browser.close().await;
        for t in &self.tasks {
            t.abort();
        }
        self.chromium.terminate(Duration::from_secs(5)).await;
    }
}
