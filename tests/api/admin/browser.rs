//! The admin panel end to end in real headless Chromium against a daemon with the WhatsApp
//! Web simulator: log in with a key, see the supervision tree, start a Lite session, see its
//! QR on the page, scan it with the simulated phone, see the session turn WORKING without a
//! reload, see a contact's message (and a name made of markup, shown as text) in the live
//! feed, requeue a dead letter, use it on a phone-sized screen. Throughout, no URL the page
//! requests carries the key and the browser refuses nothing under the panel's CSP.
//! Screenshots: `target/admin-screenshots/`.

use super::chrome::Chrome;
use crate::helpers::eventually;
use crate::lite::{ACCOUNT, CHROMIUM, CONTACT, Lite, chromium, lite_app_with};
use crate::queue::fake::{self, Script, accept};
use crate::queue::{open_window, send, text, wait_estado};
use serde_json::{Value, json};
use sincro_core::connection::{ConnectionKind, OutboundMessage, SendOutcome};
use std::time::Duration;
use uuid::Uuid;

/// A contact whose WhatsApp name is markup that would run script if rendered as HTML.
const HOSTILE_NAME: &str = "<img src=x onerror=\"window.__xss=1\">";

/// A daemon with its WhatsApp Web simulator, acting for an admin user (the panel's tree
/// needs one).
async fn admin_lite() -> Option<Lite> {
    let mut lite = lite_app_with(|env| {
        env.insert("RETRY_BASE_MS".into(), "50".into());
    })
    .await?;
    (lite.user, lite.key) = lite
        .app
        .user(&format!("admin-{}@example.com", Uuid::new_v4()), true)
        .await;
    Some(lite)
}

/// Chromium on the panel of `lite`'s daemon, after `prepare` set the page up.
async fn open_panel(lite: &Lite, prepare: impl AsyncFnOnce(&Chrome)) -> Chrome {
    let chrome = Chrome::launch(chromium().unwrap()).await;
    prepare(&chrome).await;
    chrome
        .page
        .goto(format!("{}/admin", lite.app.base))
        .await
        .expect("the panel loads");
    chrome
}

/// A message that failed for good (a dead letter) on a Business connection of `lite.user`
/// whose connection actor is a fake: it refuses until `accept()` is scripted.
async fn dead_letter(lite: &Lite) -> (Uuid, fake::Fake) {
    let conn = lite.app.connection(lite.user, "business").await;
    let to = "+5511912345679";
    open_window(&lite.app, lite.user, conn, to).await;
    let refuse: Script = Box::new(|_: &OutboundMessage| SendOutcome::Failed {
        code: Some(131026),
        error: "Message undeliverable".into(),
    });
    let shared = lite.app.app().context().shared.clone();
    let fake = fake::register(
        &shared,
        conn,
        ConnectionKind::Business,
        refuse,
        Duration::ZERO,
    )
    .await;
    let id = send(&lite.app, &lite.key, &text(conn, to, "hola")).await;
    wait_estado(&lite.app, &lite.key, id, "failed", Duration::from_secs(60)).await;
    (id, fake)
}

fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

#[tokio::test]
async fn admin_panel_in_chromium_links_a_session_and_requeues_a_dead_letter() {
    let _turn = CHROMIUM.lock().await;
    let Some(lite) = admin_lite().await else {
        return;
    };
    let chrome = open_panel(&lite, async |_| {}).await;

    // Log in by typing the key.
    chrome
        .wait("the login form", "document.querySelector('#login-key')")
        .await;
    chrome
        .page
        .find_element("#login-key")
        .await
        .unwrap()
        .click()
        .await
        .unwrap()
        .type_str(&lite.key)
        .await
        .unwrap();
    chrome.click("#login-form button[type=submit]").await;

    // The supervision tree, and the stream live.
    chrome
        .wait(
            "the supervision tree",
            "document.querySelectorAll('#tree li[data-node]').length > 3 \
             && document.querySelector('#tree li[data-node]').dataset.state === 'running'",
        )
        .await;
    chrome
        .wait(
            "the stream live",
            "document.querySelector('#stream-state').dataset.state === 'live'",
        )
        .await;
    // Marks this document: a reload would lose it.
    chrome.eval("window.__panel = 'no reload'").await;
    chrome.screenshot("1-tree.png").await;

    // Start a Lite session; its QR appears, drawn.
    chrome.click("#nav-lite").await;
    chrome.click("#lite-start").await;
    let id = chrome
        .wait(
            "a new session",
            "document.querySelector('#lite-sessions article[data-session]')?.dataset.session",
        )
        .await;
    let id = id.as_str().unwrap().to_string();
    let card = format!("#lite-sessions article[data-session={}]", js(&id));
    let qr_js = format!(
        "(() => {{ const i = document.querySelector({}); \
         return i && i.complete && i.naturalWidth > 0 ? i.dataset.qr : null; }})()",
        js(&format!("{card} img.qr"))
    );
    chrome.wait("the session's QR drawn", &qr_js).await;
    chrome.screenshot("2-qr.png").await;

    // Scan what the page shows (again if it rotated in between).
    let scanned = eventually(Duration::from_secs(60), || async {
        let qr = chrome.eval(&qr_js).await?;
        let (status, _) = lite
            .sim_post("scan", json!({"qr": qr, "phone": ACCOUNT}))
            .await;
        (status == 200).then_some(())
    })
    .await;
    assert!(scanned.is_some(), "the QR on the page was never scannable");
    chrome
        .wait(
            "the session WORKING",
            &format!(
                "document.querySelector({})?.dataset.status === 'WORKING'",
                js(&card)
            ),
        )
        .await;
    chrome
        .wait(
            "the browser's memory",
            &format!(
                "document.querySelector({})?.textContent.endsWith('MiB')",
                js(&format!("{card} .mem"))
            ),
        )
        .await;
    assert_eq!(
        chrome.eval("window.__panel").await,
        Some(json!("no reload")),
        "the page reloaded"
    );
    chrome.screenshot("3-working.png").await;

    // A contact writes: the message and its lead in the live feed, the name as text.
    chrome.click("#nav-events").await;
    let (status, body) = lite
        .sim_post(
            "messages",
            json!({"account": ACCOUNT, "from": CONTACT, "name": HOSTILE_NAME, "text": "hola, ¿precio?"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    chrome
        .wait(
            "the message in the feed",
            "document.querySelector('#feed li[data-type=\"message.received\"]')",
        )
        .await;
    chrome
        .wait(
            "the lead, named with its markup as text",
            &format!(
                "[...document.querySelectorAll('#feed li[data-type=\"lead.created\"]')]\
                 .some(li => li.textContent.includes({}))",
                js(HOSTILE_NAME)
            ),
        )
        .await;
    assert_eq!(
        chrome.eval("document.querySelector('#feed img')").await,
        None
    );
    assert_eq!(chrome.eval("window.__xss").await, None, "the name ran");
    chrome.screenshot("4-feed.png").await;

    // A dead letter, requeued from the queue view.
    let (message, fake) = dead_letter(&lite).await;
    chrome.click("#nav-queue").await;
    let row = format!("#dead-letters tr[data-dead={}]", js(&message.to_string()));
    chrome
        .wait(
            "the dead letter",
            &format!(
                "document.querySelector({})",
                js(&format!("{row} button.requeue"))
            ),
        )
        .await;
    chrome.screenshot("5-queue.png").await;
    fake.set_script(accept());
    chrome.click(&format!("{row} button.requeue")).await;
    wait_estado(
        &lite.app,
        &lite.key,
        message,
        "sent",
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(fake.sends_of(message), 2);
    chrome
        .wait(
            "the dead letter gone",
            &format!("document.querySelector({}) === null", js(&row)),
        )
        .await;

    // Alerts: shown, or said to be unavailable; never an error.
    chrome.click("#nav-alerts").await;
    chrome
        .wait(
            "the alerts view",
            "document.querySelector('#alerts-unavailable') || \
             document.querySelector('#alerts article, #alerts p.muted')",
        )
        .await;
    assert_eq!(
        chrome
            .eval("document.querySelector('#alerts p.error')")
            .await,
        None
    );

    // On a phone: nothing wider than the screen.
    chrome.phone_screen().await;
    for view in ["lite", "queue", "tree", "events"] {
        chrome.click(&format!("#nav-{view}")).await;
        chrome
            .wait(
                &format!("the {view} view on a phone screen"),
                &format!(
                    "document.querySelector('#view').dataset.view === {} \
                     && document.documentElement.scrollWidth <= window.innerWidth",
                    js(view)
                ),
            )
            .await;
    }
    chrome.click("#nav-lite").await;
    chrome.screenshot("6-phone.png").await;

    // The key never went into a URL; the stream was reached all the same.
    let urls = chrome.urls.lock().unwrap().clone();
    assert!(
        urls.iter().any(|u| u.contains("/v1/stream")),
        "no stream connection among {urls:?}"
    );
    assert!(urls.iter().any(|u| u.contains("/qr.svg")), "{urls:?}");
    let secret = crate::helpers::key_secret(&lite.key);
    for u in &urls {
        assert!(!u.contains(secret), "the key is in a URL: {u}");
    }
    let refusals = chrome.csp_refusals.lock().unwrap().clone();
    assert!(refusals.is_empty(), "refused by the CSP: {refusals:?}");

    // The key revoked meanwhile: the page forgets it and asks for another.
    let keys: Value = lite
        .app
        .get("/v1/keys", &lite.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key_id = keys["items"][0]["id"].as_str().unwrap().to_string();
    let resp = lite
        .app
        .delete(&format!("/v1/keys/{key_id}"), &lite.key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    chrome
        .wait(
            "the login form again, the key forgotten",
            "document.querySelector('#login-form .error') \
             && sessionStorage.getItem('sincro.apiKey') === null",
        )
        .await;

    chrome.close().await;
    lite.finish().await;
}

/// The page speaks Spanish to a browser that asks for it.
#[tokio::test]
async fn admin_panel_follows_the_browser_language() {
    let _turn = CHROMIUM.lock().await;
    let Some(lite) = admin_lite().await else {
        return;
    };
    let chrome = open_panel(&lite, async |chrome| {
        chrome
            .page
            .execute(
                chromiumoxide::cdp::browser_protocol::network::SetUserAgentOverrideParams::builder(
                )
                .user_agent(sincro_core::lite::browser::USER_AGENT)
                .accept_language("es-ES,es")
                .build()
                .unwrap(),
            )
            .await
            .expect("language");
    })
    .await;
    let label: Value = chrome
        .wait(
            "the login button",
            "document.querySelector('#login-form button')?.textContent",
        )
        .await;
    assert_eq!(label, json!("Entrar"));
    chrome.close().await;
    lite.finish().await;
}
