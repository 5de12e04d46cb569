//! The browser side of the tests: launching and closing Chromium on a profile, evaluating the
//! page's JavaScript, the simulator's HTTP routes, and waits on its state.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chromiumoxide::{Browser, BrowserConfig, Page};
use futures::StreamExt;
use serde_json::{Value, json};
use sincro_sim::web::WebSimHandle;

pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

pub const ACCOUNT: &str = "5511999990001";

pub const CONTACT: &str = "5511888880001";

pub fn chromium_path() -> Option<PathBuf> {
    let path = std::env::var_os("CHROMIUM_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    path.exists().then_some(path)
}

pub struct Chromium {
    browser: Browser,
    handler: tokio::task::JoinHandle<()>,
}

impl Chromium {
    pub async fn launch(exe: &Path, profile: &Path) -> Res<Chromium> {
        let cfg = BrowserConfig::builder()
            .chrome_executable(exe)
            .no_sandbox()
            .user_data_dir(profile)
            .args([
                "disable-gpu",
                "disable-background-networking",
                "disable-component-update",
                "disable-sync",
                "no-first-run",
                "disable-quic",
            ])
            .build()?;
        let (browser, mut handler) = Browser::launch(cfg).await?;
        let handler = tokio::spawn(async move {
            while let Some(ev) = handler.next().await {
                if ev.is_err() {
                    break;
                }
            }
        });
        Ok(Chromium { browser, handler })
    }

    pub async fn open(&self, url: &str) -> Res<Page> {
        let page = self.browser.new_page("about:blank").await?;
        page.goto(url).await?;
        Ok(page)
    }

    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.browser.close()).await;
        if tokio::time::timeout(Duration::from_secs(10), self.browser.wait())
            .await
            .is_err()
        {
            let _ = self.browser.kill().await;
            let _ = self.browser.wait().await;
        }
        self.handler.abort();
    }
}

/// Evaluates an (async) JS expression and returns its value as JSON.
pub async fn eval(page: &Page, expr: &str) -> Res<Value> {
    let js = format!("(async () => JSON.stringify(await ({expr})))()");
    let res = page
        .evaluate(js)
        .await
        .map_err(|e| format!("evaluating {expr}: {e}"))?;
    match res.value() {
        Some(Value::String(s)) => Ok(serde_json::from_str(s)?),
        _ => Ok(Value::Null), // undefined
    }
}

/// Polls `expr` until it returns `want` (errors, e.g. during a navigation, are retried).
pub async fn wait_eval(page: &Page, expr: &str, want: Value) -> Res<()> {
    let mut last = Value::Null;
    for _ in 0..150 {
        match eval(page, expr).await {
            Ok(v) if v == want => return Ok(()),
            Ok(v) => last = v,
            Err(e) => last = json!(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("`{expr}` never became {want} (last: {last})").into())
}

pub async fn post(sim: &WebSimHandle, route: &str, body: Value) -> Res<(u16, Value)> {
    let res = reqwest::Client::new()
        .post(format!("{}sim/{route}", sim.base_url()))
        .json(&body)
        .send()
        .await?;
    let status = res.status().as_u16();
    Ok((status, res.json().await?))
}

pub async fn get(sim: &WebSimHandle, path: &str) -> Res<Value> {
    Ok(reqwest::get(format!("{}{path}", sim.base_url()))
        .await?
        .json()
        .await?)
}

/// Waits until the account's page is ready to receive messages.
pub async fn wait_ready(sim: &WebSimHandle) -> Res<()> {
    for _ in 0..100 {
        let state = get(sim, "sim/state").await?;
        if state["pages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["account"] == ACCOUNT && p["ready"] == true)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("page never became ready".into())
}

/// Waits until no page of the account is connected (the browser is gone).
pub async fn wait_offline(sim: &WebSimHandle) -> Res<()> {
    for _ in 0..100 {
        let state = get(sim, "sim/state").await?;
        if state["devices"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["account"] != ACCOUNT || d["online"] == false)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("device still online".into())
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
