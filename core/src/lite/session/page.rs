//! The session's browser page: attaching to Chromium, installing the bridge and the kept login
//! storage, blocking resources the page never needs, and the tasks that forward the page's
//! reports and deaths to the session actor.

use super::LiteSessionMessage;
use crate::lite::LiteError;
use crate::lite::bridge;
use crate::lite::browser::Chromium;
use crate::lite::login_storage::{self, LoginStorage};
use chromiumoxide::cdp::browser_protocol::inspector::EventTargetCrashed;
use chromiumoxide::cdp::browser_protocol::network::{BlockPattern, SetBlockedUrLsParams};
use chromiumoxide::cdp::browser_protocol::page::AddScriptToEvaluateOnNewDocumentParams;
use chromiumoxide::cdp::browser_protocol::target::{CloseTargetParams, GetTargetsParams};
use chromiumoxide::cdp::js_protocol::runtime::{AddBindingParams, EventBindingCalled};
use chromiumoxide::{Browser, Page};
use futures::StreamExt;
use ractor::ActorRef;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Resources the page never needs (images are off through blink-settings).
const BLOCKED: &[&str] = &[
    "*://*:*/*.woff2",
    "*://*:*/*.woff",
    "*://*:*/*.ttf",
    "*://*:*/*.otf",
    "*://*:*/*.mp4",
    "*://*:*/*.webm",
    "*://pps.whatsapp.net/*",
];

/// The running browser with its CDP connection and page; the tasks that forward its events.
pub(super) struct Running {
    pub(super) chromium: Chromium,
    pub(super) browser: Browser,
    pub(super) page: Page,
    pub(super) tasks: Vec<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Attaches to the browser, keeps one page with the bridge installed, and loads WhatsApp Web.
pub(super) async fn open_page(
    chromium: Chromium,
    myself: ActorRef<LiteSessionMessage>,
    boot: u64,
    url: &str,
    kept: Option<&LoginStorage>,
) -> Result<Running, LiteError> {
    let (browser, mut handler) = chromium.connect().await?;
    let mut tasks = Vec::new();
    let gone = myself.clone();
    tasks.push(tokio::spawn(async move {
        let why = loop {
            match handler.next().await {
                Some(Ok(())) => {}
                Some(Err(e)) => break format!("CDP connection: {e}"),
                None => break "CDP connection closed".to_string(),
            }
        };
        let _ = gone.cast(LiteSessionMessage::BrowserGone(boot, why));
    }));
    // From here the Running value owns everything: an error drops it, which kills the tree.
    let mut running = Running {
        page: match browser.new_page("about:blank").await {
            Ok(p) => p,
            Err(e) => {
                let mut chromium = chromium;
                for t in &tasks {
                    t.abort();
                }
                chromium.terminate(Duration::ZERO).await;
                return Err(LiteError::Page(format!("new page: {e}")));
            }
        },
        chromium,
        browser,
        tasks,
    };
    let page = running.page.clone();
    let page_err = |e: chromiumoxide::error::CdpError| LiteError::Page(e.to_string());
    // Headless opens a tab of its own: close it (one renderer less).
    if let Ok(targets) = running.browser.execute(GetTargetsParams::default()).await {
        for t in &targets.result.target_infos {
            if t.r#type == "page" && &t.target_id != page.target_id() {
                let _ = running
                    .browser
                    .execute(CloseTargetParams::new(t.target_id.clone()))
                    .await;
            }
        }
    }
    let mut bindings = page
        .event_listener::<EventBindingCalled>()
        .await
        .map_err(page_err)?;
    let to = myself.clone();
    running.tasks.push(tokio::spawn(async move {
        while let Some(ev) = bindings.next().await {
            if ev.name == bridge::BINDING
                && to
                    .cast(LiteSessionMessage::Bridge(ev.payload.clone()))
                    .is_err()
            {
                break;
            }
        }
    }));
    let mut crashes = page
        .event_listener::<EventTargetCrashed>()
        .await
        .map_err(page_err)?;
    let to = myself;
    running.tasks.push(tokio::spawn(async move {
        if crashes.next().await.is_some() {
            let _ = to.cast(LiteSessionMessage::BrowserGone(boot, "page crashed".into()));
        }
    }));
    page.execute(AddBindingParams::new(bridge::BINDING))
        .await
        .map_err(page_err)?;
    // The kept login storage goes back first, before the page's scripts read it.
    if let Some(kept) = kept {
        page.execute(AddScriptToEvaluateOnNewDocumentParams::new(
            login_storage::restore_script(kept),
        ))
        .await
        .map_err(page_err)?;
    }
    page.execute(AddScriptToEvaluateOnNewDocumentParams::new(bridge::script()))
        .await
        .map_err(page_err)?;
    let mut block = SetBlockedUrLsParams::builder();
    for p in BLOCKED {
        block = block.url_pattern(BlockPattern::new(*p, true));
    }
    if let Err(e) = page.execute(block.build()).await {
        tracing::debug!(error = %e, "resource blocking unavailable");
    }
    page.goto(url).await.map_err(page_err)?;
    Ok(running)
}
