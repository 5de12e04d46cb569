//! The WhatsApp Web simulator driven by real headless Chromium (chromiumoxide), the way a
//! driver written against WhatsApp Web (reference §3A) drives it: login by QR, inbound and
//! outbound messages (text and media), acks, conflict, restart on the same profile, logout from
//! the phone, pairing code.
//!
//! Needs Chromium: `CHROMIUM_PATH`, else `/usr/bin/chromium`; skipped (with a notice) if absent.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use chromiumoxide::{Browser, BrowserConfig, Page};
use futures::StreamExt;
use serde_json::{Value, json};
use sincro_sim::web::{self, WebSimConfig, WebSimHandle};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const ACCOUNT: &str = "5511999990001";
const CONTACT: &str = "5511888880001";

fn chromium_path() -> Option<PathBuf> {
    let path = std::env::var_os("CHROMIUM_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    path.exists().then_some(path)
}

struct Chromium {
    browser: Browser,
    handler: tokio::task::JoinHandle<()>,
}

impl Chromium {
    async fn launch(exe: &Path, profile: &Path) -> Res<Chromium> {
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

    async fn open(&self, url: &str) -> Res<Page> {
        let page = self.browser.new_page("about:blank").await?;
        page.goto(url).await?;
        Ok(page)
    }

    async fn close(mut self) {
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
async fn eval(page: &Page, expr: &str) -> Res<Value> {
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
async fn wait_eval(page: &Page, expr: &str, want: Value) -> Res<()> {
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

async fn post(sim: &WebSimHandle, route: &str, body: Value) -> Res<(u16, Value)> {
    let res = reqwest::Client::new()
        .post(format!("{}sim/{route}", sim.base_url()))
        .json(&body)
        .send()
        .await?;
    let status = res.status().as_u16();
    Ok((status, res.json().await?))
}

async fn get(sim: &WebSimHandle, path: &str) -> Res<Value> {
    Ok(reqwest::get(format!("{}{path}", sim.base_url()))
        .await?
        .json()
        .await?)
}

/// The QR string exactly as whatsapp-web.js's AuthStore builds it from the modules.
const BUILD_QR: &str = r#"(async () => {
    const R = (n) => window.require(n);
    const reg = { ...R('WAWebCompanionRegClientUtils'), ...R('WAWebAdvSignatureApi'),
                  ...R('WAWebUserPrefsInfoStore'), ...R('WAWebSignalStoreApi') };
    const info = await reg.waSignalStore.getRegistrationInfo();
    const noise = await reg.waNoiseInfo.get();
    const b64 = R('WABase64');
    const adv = R('WAWebUserPrefsMultiDevice').getADVSecretKey();
    const ref = R('WAWebConnModel').Conn.ref;
    return ref + ',' + b64.encodeB64(noise.staticKeyPair.pubKey) + ',' +
        b64.encodeB64(info.identityKeyPair.pubKey) + ',' + adv + ',' + reg.DEVICE_PLATFORM;
})()"#;

/// Records the events a driver listens to into `window.__ev`.
const RECORD: &str = r#"(() => {
    window.__ev = [];
    const R = (n) => window.require(n);
    const rec = (e) => window.__ev.push(e);
    R('WAWebSocketModel').Socket.on('change:state', (m, s) => rec('state:' + s));
    R('WAWebSocketModel').Socket.on('change:hasSynced', () => rec('hasSynced'));
    R('WAWebConnModel').Conn.on('change:ref', (m, r) => rec('ref'));
    const Msg = R('WAWebCollections').Msg;
    Msg.on('add', (msg) => { if (msg.isNewMsg) rec('add:' + msg.id._serialized); });
    Msg.on('change:ack', (msg, ack) => rec('ack:' + msg.id._serialized + ':' + ack));
    R('WAWebCmd').Cmd.on('logout', () => sessionStorage.setItem('cmdLogout', '1'));
    return true;
})()"#;

/// Sends a text the way whatsapp-web.js's `sendMessage` does; resolves to the message's ack.
fn send_text_js(to: &str, body: &str) -> String {
    format!(
        r#"(async () => {{
    const R = (n) => window.require(n);
    const chatWid = R('WAWebWidFactory').createWid('{to}@c.us');
    let chat = R('WAWebCollections').Chat.get(chatWid);
    if (!chat) chat = (await R('WAWebFindChatAction').findOrCreateLatestChat(chatWid)).chat;
    const Stream = R('WAWebStreamModel').Stream;
    await Stream.markAvailable();
    await R('WAWebUpdateUnreadChatAction').sendSeen({{ chat, threadId: undefined }});
    await Stream.markUnavailable();
    const meUser = R('WAWebUserPrefsMeUser').getMaybeMePnUser();
    const MsgKey = R('WAWebMsgKey');
    const newId = await MsgKey.newId();
    const key = new MsgKey({{ from: meUser, to: chat.id, id: newId, participant: undefined, selfDir: 'out' }});
    const message = {{ id: key, ack: 0, body: {body}, from: meUser, to: chat.id, local: true,
        self: 'out', t: Math.floor(Date.now() / 1000), isNewMsg: true, type: 'chat',
        ...R('WAWebGetEphemeralFieldsMsgActionsUtils').getEphemeralFields(chat) }};
    const [addP, sendP] = R('WAWebSendMsgChatAction').addAndSendMsgToChat(chat, message);
    await addP;
    const result = await sendP;
    const msg = R('WAWebCollections').Msg.get(key._serialized);
    return {{ id: key.id, serialized: key._serialized, ack: msg.ack, result }};
}})()"#,
        body = serde_json::to_string(body).unwrap()
    )
}

/// Sends a file through the processMediaData module chain; resolves to the message key.
fn send_media_js(to: &str, data_b64: &str, mimetype: &str, filename: &str) -> String {
    format!(
        r#"(async () => {{
    const R = (n) => window.require(n);
    const bin = atob('{data_b64}');
    const buf = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) buf[i] = bin.charCodeAt(i);
    const file = new File([new Blob([buf], {{ type: '{mimetype}' }})], '{filename}', {{ type: '{mimetype}' }});
    const opaqueData = await R('WAWebMediaOpaqueData').createFromData(file, file.type);
    const mediaPrep = R('WAWebPrepRawMedia').prepRawMedia(opaqueData, {{ asDocument: true }});
    const mediaData = await mediaPrep.waitForPrep();
    const mediaObject = R('WAWebMediaStorage').getOrCreateMediaObject(mediaData.filehash);
    const mediaType = R('WAWebMmsMediaTypes').msgToMediaType({{ type: mediaData.type, isGif: mediaData.isGif }});
    if (!mediaData.filehash) throw new Error('no filehash');
    mediaData.renderableUrl = mediaData.mediaBlob.url();
    mediaObject.consolidate(mediaData.toJSON());
    mediaData.mediaBlob.autorelease();
    const uploaded = await R('WAWebMediaMmsV4Upload').uploadMedia({{ mimetype: mediaData.mimetype, mediaObject, mediaType }});
    const e = uploaded.mediaEntry;
    mediaData.set({{ clientUrl: e.mmsUrl, directPath: e.directPath, mediaKey: e.mediaKey,
        mediaKeyTimestamp: e.mediaKeyTimestamp, filehash: mediaObject.filehash,
        encFilehash: e.encFilehash, uploadhash: e.uploadHash, size: mediaObject.size }});
    const chat = (await R('WAWebFindChatAction').findOrCreateLatestChat(R('WAWebWidFactory').createWid('{to}@c.us'))).chat;
    const meUser = R('WAWebUserPrefsMeUser').getMaybeMePnUser();
    const MsgKey = R('WAWebMsgKey');
    const key = new MsgKey({{ from: meUser, to: chat.id, id: await MsgKey.newId(), selfDir: 'out' }});
    const message = {{ id: key, ack: 0, body: undefined, caption: 'the doc', from: meUser, to: chat.id,
        local: true, self: 'out', t: Math.floor(Date.now() / 1000), isNewMsg: true, type: 'chat', ...mediaData }};
    const [, sendP] = R('WAWebSendMsgChatAction').addAndSendMsgToChat(chat, message);
    await sendP;
    return {{ id: key.id, type: R('WAWebCollections').Msg.get(key._serialized).type }};
}})()"#
    )
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

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
    let result = scenario(&sim, &exe, profile.path(), &mut chromium).await;
    if let Some(c) = chromium.take() {
        c.close().await;
    }
    sim.shutdown().await;
    result.unwrap();
}

async fn scenario(
    sim: &WebSimHandle,
    exe: &Path,
    profile: &Path,
    chromium: &mut Option<Chromium>,
) -> Res<()> {
    let url = sim.base_url();
    let page = chromium.as_ref().unwrap().open(&url).await?;

    // --- boot and QR ---
    let version = eval(&page, "window.Debug.VERSION").await?;
    assert!(
        version.as_str().unwrap().starts_with("2.3000."),
        "{version}"
    );
    // The module registry behaves like the real page's: modules defined through __d are served
    // by require (factory run once, on first use), and an unknown name throws.
    let registry = eval(
        &page,
        r#"(() => {
        let runs = 0;
        window.__d('SincroProbe', ['WAWebWidFactory'], (g, r, iD, iN, rL, module, exports, W) => {
            runs++; module.exports = { wid: W.createWid('1@c.us')._serialized };
        }, 1);
        const a = window.require('SincroProbe'), b = window.require('SincroProbe');
        let unknown = null;
        try { window.require('WAWebNoSuchModule'); } catch (e) { unknown = e.message; }
        return { wid: a.wid, same: a === b, runs, unknown,
                 adv: typeof window.require('WAWebUserPrefsMultiDevice').getADVSecretKey() };
    })()"#,
    )
    .await?;
    assert_eq!(
        registry,
        json!({"wid": "1@c.us", "same": true, "runs": 1,
               "unknown": "Requiring unknown module \"WAWebNoSuchModule\"", "adv": "string"})
    );
    eval(&page, RECORD).await?;
    wait_eval(
        &page,
        "window.require('WAWebSocketModel').Socket.state",
        json!("UNPAIRED"),
    )
    .await?;
    let first = eval(&page, BUILD_QR).await?;
    let first = first.as_str().unwrap().to_string();
    assert_eq!(first.split(',').count(), 5, "{first}");
    assert!(first.starts_with("2@"));
    // Legacy DOM: div[data-ref] with the same payload and a canvas child.
    let legacy = eval(
        &page,
        "({ref: document.querySelector('div[data-ref]').dataset.ref, \
           canvas: !!document.querySelector('div[data-ref] canvas')})",
    )
    .await?;
    assert_eq!(legacy, json!({"ref": first, "canvas": true}));
    assert_eq!(get(sim, "sim/qr").await?[0]["qr"], json!(first));

    // The ref rotates; the old QR can no longer be scanned.
    wait_eval(
        &page,
        &format!(
            "window.require('WAWebConnModel').Conn.ref !== {:?}",
            first.split(',').next().unwrap()
        ),
        json!(true),
    )
    .await?;
    let (status, body) = post(sim, "scan", json!({"qr": first, "phone": ACCOUNT})).await?;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "qr_not_current");

    // Scan the current one (re-read if it rotated in between).
    let mut linked = false;
    for _ in 0..3 {
        let qr = eval(&page, BUILD_QR).await?;
        let (status, _) = post(sim, "scan", json!({"qr": qr, "phone": ACCOUNT})).await?;
        if status == 200 {
            linked = true;
            break;
        }
    }
    assert!(linked, "scan of the current QR failed");
    wait_eval(
        &page,
        "window.require('WAWebSocketModel').Socket.hasSynced",
        json!(true),
    )
    .await?;
    // (UNPAIRED may have come before the recorder was installed.)
    let ev = eval(
        &page,
        "window.__ev.filter(e => !e.startsWith('ref') && e !== 'state:UNPAIRED')",
    )
    .await?;
    let ev: Vec<String> = serde_json::from_value(ev)?;
    assert_eq!(
        ev,
        ["state:PAIRING", "state:CONNECTED", "hasSynced"],
        "state sequence"
    );
    let me = eval(
        &page,
        "[window.require('WAWebUserPrefsMeUser').getMaybeMePnUser()._serialized, \
          window.require('WAWebConnModel').Conn.serialize().wid._serialized, \
          !!document.querySelector(\"[data-icon='chat']\"), !!document.querySelector('div[data-ref]')]",
    )
    .await?;
    assert_eq!(
        me,
        json!([
            format!("{ACCOUNT}@c.us"),
            format!("{ACCOUNT}@c.us"),
            true,
            false
        ])
    );
    wait_ready(sim).await?;

    // --- inbound text ---
    let (status, body) = post(
        sim,
        "messages",
        json!({"account": ACCOUNT, "from": CONTACT, "name": "Ana", "text": "oi"}),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let serialized = body["serialized"].as_str().unwrap().to_string();
    wait_eval(
        &page,
        &format!("window.__ev.includes('add:{serialized}')"),
        json!(true),
    )
    .await?;
    let m = eval(
        &page,
        &format!(
            "(() => {{ const m = window.require('WAWebCollections').Msg.get('{serialized}'); \
             return {{body: m.body, type: m.type, from: m.from._serialized, fromMe: m.id.fromMe, \
             isNewMsg: m.isNewMsg, chat: !!window.require('WAWebCollections').Chat.get(m.id.remote), \
             unread: window.require('WAWebCollections').Chat.get(m.id.remote).unreadCount}}; }})()"
        ),
    )
    .await?;
    assert_eq!(
        m,
        json!({"body": "oi", "type": "chat", "from": format!("{CONTACT}@c.us"), "fromMe": false,
               "isNewMsg": true, "chat": true, "unread": 1})
    );

    // --- inbound media, downloaded through the download manager ---
    let jpeg = b"\xff\xd8\xff\xe0 not really a jpeg".to_vec();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&jpeg);
    let (status, body) = post(
        sim,
        "messages",
        json!({"account": ACCOUNT, "from": CONTACT, "name": "Ana",
               "media": {"mimetype": "image/jpeg", "data_base64": b64, "caption": "foto"}}),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let ser = body["serialized"].as_str().unwrap().to_string();
    wait_eval(
        &page,
        &format!("window.__ev.includes('add:{ser}')"),
        json!(true),
    )
    .await?;
    let downloaded = eval(
        &page,
        &format!(
            "(async () => {{ const m = window.require('WAWebCollections').Msg.get('{ser}'); \
             const buf = await window.require('WAWebDownloadManager').downloadManager.downloadAndMaybeDecrypt(\
               {{directPath: m.directPath, encFilehash: m.encFilehash, filehash: m.filehash, mediaKey: m.mediaKey, \
                 mediaKeyTimestamp: m.mediaKeyTimestamp, type: m.type, signal: (new AbortController).signal}}); \
             return [m.type, m.caption, m.mimetype, m.mediaData.mediaStage, window.require('WABase64').encodeB64(buf)]; }})()"
        ),
    )
    .await?;
    assert_eq!(
        downloaded,
        json!(["image", "foto", "image/jpeg", "RESOLVED", b64])
    );

    // --- outbound text ---
    let sent = eval(&page, &send_text_js(CONTACT, "olá from the driver")).await?;
    assert_eq!(sent["ack"], 1, "{sent}");
    assert_eq!(sent["result"]["messageSendResult"], "OK");
    let list = get(sim, &format!("sim/sent?account={ACCOUNT}")).await?;
    assert_eq!(list[0]["id"], sent["id"]);
    assert_eq!(list[0]["to"], format!("{CONTACT}@c.us"));
    assert_eq!(list[0]["type"], "chat");
    assert_eq!(list[0]["body"], "olá from the driver");
    let out_ser = sent["serialized"].as_str().unwrap().to_string();
    assert!(
        eval(&page, &format!("window.__ev.includes('add:{out_ser}')"))
            .await?
            .as_bool()
            .unwrap()
    );
    let state = get(sim, "sim/state").await?;
    assert_eq!(
        state["accounts"][0]["seen"][0]["chat"],
        format!("{CONTACT}@c.us")
    );

    // --- outbound media through the processMediaData chain ---
    let pdf = b"%PDF-1.4 sincro test document".to_vec();
    let pdf_b64 = base64::engine::general_purpose::STANDARD.encode(&pdf);
    let media = eval(
        &page,
        &send_media_js(CONTACT, &pdf_b64, "application/pdf", "doc.pdf"),
    )
    .await?;
    assert_eq!(media["type"], "document", "{media}");
    let list = get(sim, &format!("sim/sent?account={ACCOUNT}")).await?;
    let item = &list[1];
    assert_eq!(item["id"], media["id"]);
    assert_eq!(item["type"], "document");
    assert_eq!(item["caption"], "the doc");
    assert_eq!(item["media"]["mimetype"], "application/pdf");
    assert_eq!(item["media"]["filename"], "doc.pdf");
    assert_eq!(item["media"]["size"], pdf.len());
    assert_eq!(item["media"]["sha256"], sha256_hex(&pdf));

    // --- acks ---
    let (status, body) = post(sim, "acks", json!({"id": sent["id"], "ack": 3})).await?;
    assert_eq!(status, 200, "{body}");
    wait_eval(
        &page,
        &format!("window.__ev.includes('ack:{out_ser}:3')"),
        json!(true),
    )
    .await?;

    // --- conflict and takeover ---
    post(sim, "conflict", json!({"account": ACCOUNT})).await?;
    wait_eval(
        &page,
        "window.require('WAWebSocketModel').Socket.state",
        json!("CONFLICT"),
    )
    .await?;
    eval(
        &page,
        "window.require('WAWebSocketModel').Socket.takeover()",
    )
    .await?;
    wait_eval(
        &page,
        "window.require('WAWebSocketModel').Socket.state",
        json!("CONNECTED"),
    )
    .await?;

    // --- restart the browser on the same profile; a message arrives meanwhile ---
    drop(page);
    chromium.take().unwrap().close().await;
    wait_offline(sim).await?;
    let (status, body) = post(
        sim,
        "messages",
        json!({"account": ACCOUNT, "from": CONTACT, "name": "Ana", "text": "while you were away"}),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let away = body["serialized"].as_str().unwrap().to_string();
    *chromium = Some(Chromium::launch(exe, profile).await?);
    let page = chromium.as_ref().unwrap().open(&url).await?;
    wait_eval(
        &page,
        "window.require('WAWebSocketModel').Socket.hasSynced",
        json!(true),
    )
    .await?;
    // Restored: never shown a QR.
    let restored = eval(
        &page,
        "[window.require('WAWebSocketModel').Socket.state, window.require('WAWebConnModel').Conn.ref, \
          !!document.querySelector('div[data-ref]')]",
    )
    .await?;
    assert_eq!(restored, json!(["CONNECTED", null, false]));
    assert_eq!(get(sim, "sim/qr").await?, json!([]));
    wait_eval(
        &page,
        &format!(
            "(() => {{ const m = window.require('WAWebCollections').Msg.get('{away}'); \
             return !!m && m.isNewMsg && m.body; }})()"
        ),
        json!("while you were away"),
    )
    .await?;

    // --- logout from the phone ---
    eval(&page, RECORD).await?;
    let (status, body) = post(sim, "logout", json!({"account": ACCOUNT})).await?;
    assert_eq!(status, 200, "{body}");
    let mut navigated = false;
    for _ in 0..100 {
        if page
            .url()
            .await?
            .is_some_and(|u| u.contains("post_logout=1"))
        {
            navigated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(navigated, "no post_logout=1 navigation");
    wait_eval(
        &page,
        "window.require('WAWebSocketModel').Socket.state",
        json!("UNPAIRED"),
    )
    .await?;
    let after = eval(
        &page,
        "[sessionStorage.getItem('cmdLogout'), \
          (JSON.parse(localStorage.getItem('sincro-sim-wa-profile')) || {}).login || null, \
          window.require('WAWebUserPrefsMeUser').getMaybeMePnUser() || null]",
    )
    .await?;
    assert_eq!(after, json!(["1", null, null]));

    // --- pairing code on the fresh page ---
    let code = eval(
        &page,
        &format!(
            "(async () => {{ const A = window.require('WAWebAltDeviceLinkingApi'); \
             await A.setPairingType('ALT_DEVICE_LINKING'); await A.initializeAltDeviceLinking(); \
             return await A.startAltLinkingFlow('{ACCOUNT}', true); }})()"
        ),
    )
    .await?;
    let code = code.as_str().unwrap().to_string();
    assert_eq!(code.len(), 8, "{code}");
    let (status, body) = post(sim, "pair", json!({"code": code, "phone": ACCOUNT})).await?;
    assert_eq!(status, 200, "{body}");
    wait_eval(
        &page,
        "window.require('WAWebSocketModel').Socket.hasSynced",
        json!(true),
    )
    .await?;
    Ok(())
}

/// Waits until the account's page is ready to receive messages.
async fn wait_ready(sim: &WebSimHandle) -> Res<()> {
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
async fn wait_offline(sim: &WebSimHandle) -> Res<()> {
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
