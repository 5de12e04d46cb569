//! The scenario, step by step on one simulator and one browser profile: boot and QR, inbound
//! text and media, outbound text and media, acks, conflict and takeover, restart on the same
//! profile, logout from the phone, pairing code.

use crate::browser::{
    ACCOUNT, CONTACT, Chromium, Res, eval, get, post, sha256_hex, wait_eval, wait_offline,
    wait_ready,
};
use crate::page_js::{BUILD_QR, RECORD, send_media_js, send_text_js};
use base64::Engine as _;
use serde_json::json;
use sincro_sim::web::WebSimHandle;
use std::path::Path;
use std::time::Duration;

pub async fn run(
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
