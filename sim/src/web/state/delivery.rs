//! Delivery to linked devices: what a device has not acknowledged is kept and delivered again
//! when it comes back; incoming messages and media are stored; unlinking drops a device.

use bytes::Bytes;
use serde_json::{Value, json};

use super::*;

/// Delivers a push to every device of `account`: kept for each device until it acknowledges
/// receiving it, and sent at once to a page that is ready. Returns how many devices it went to.
pub(super) fn deliver(inner: &mut Inner, account: &str, payload: &Value) -> usize {
    let Inner {
        accounts,
        devices,
        pages,
        next_sid,
        ..
    } = inner;
    let Some(acc) = accounts.get(account) else {
        return 0;
    };
    for token in &acc.devices {
        let Some(device) = devices.get_mut(token) else {
            continue;
        };
        *next_sid += 1;
        let mut push = payload.clone();
        push["sid"] = json!(*next_sid);
        let text = push.to_string();
        if let Some(page) = device.page.and_then(|p| pages.get(&p))
            && page.deliverable
            && page.phase == Phase::Connected
        {
            let _ = page.tx.send(text.clone());
        }
        device.pending.insert(*next_sid, text);
    }
    acc.devices.len()
}

/// Sends a page that became ready everything its device has not acknowledged receiving: what
/// arrived while it was away, and what an earlier page of the device got but never confirmed
/// (it crashed or was closed first).
pub(super) fn flush(inner: &mut Inner, page_id: PageId) {
    let Some(page) = inner.pages.get(&page_id) else {
        return;
    };
    let Some(device) = inner.devices.get(&page.device) else {
        return;
    };
    if device.pending.is_empty() {
        return;
    }
    page.push(json!({"t": "offline", "count": device.pending.len()}));
    for item in device.pending.values() {
        let _ = page.tx.send(item.clone());
    }
    page.push(json!({"t": "offline_done"}));
}

/// Records an inbound message `id` from `from` to `account` and delivers it. Returns the
/// serialized key.
pub(super) fn add_incoming(
    inner: &mut Inner,
    account: &str,
    from: &str,
    id: &str,
    mut msg: Value,
) -> String {
    let remote = format!("{from}@c.us");
    let serialized = format!("false_{remote}_{id}");
    msg["id"] = json!({"fromMe": false, "remote": remote, "id": id, "_serialized": serialized});
    msg["from"] = json!(remote);
    if msg.get("to").is_none() {
        msg["to"] = json!(format!("{account}@c.us")); // a notice says whom it is about
    }
    msg["ack"] = json!(1);
    msg["isNewMsg"] = json!(true);
    inner.messages.insert(
        id.to_string(),
        MsgRecord {
            account: account.to_string(),
            direction: Direction::In,
            serialized: serialized.clone(),
        },
    );
    deliver(inner, account, &json!({"t": "msg", "msg": msg}));
    serialized
}

/// Stores media bytes and returns the media entry fields (camelCase, as the page uses them).
pub(super) fn store_media(
    inner: &mut Inner,
    bytes: Bytes,
    mimetype: &str,
    filename: Option<String>,
) -> Value {
    let direct_path = format!("/v/t62.7118-24/{}.enc", uuid::Uuid::new_v4().simple());
    let media_key = random_b64(32);
    let entry = json!({
        "directPath": direct_path,
        "mediaKey": media_key,
        "mediaKeyTimestamp": now_secs(),
        "filehash": sha256_b64(&bytes),
        "encFilehash": sha256_b64(&bytes),
        "size": bytes.len(),
        "mimetype": mimetype,
        "filename": filename,
        "type": media_type(mimetype),
    });
    inner.media.insert(
        direct_path,
        MediaBlob {
            bytes,
            mimetype: mimetype.to_string(),
            filename,
            media_key,
        },
    );
    entry
}

/// Unlinks a device: its account forgets it, and its page (if open) is told to log out.
pub(super) fn unlink_device(inner: &mut Inner, token: &str, reason: &str) {
    let Some(device) = inner.devices.get_mut(token) else {
        return;
    };
    if let Some(acc) = device
        .account
        .take()
        .and_then(|a| inner.accounts.get_mut(&a))
    {
        acc.devices.remove(token);
    }
    device.pending.clear();
    if let Some(page) = device.page.and_then(|p| inner.pages.get_mut(&p)) {
        page.epoch += 1;
        page.deliverable = false;
        page.phase = Phase::Unpaired;
        page.qr = None;
        page.push(json!({"t": "logout", "reason": reason}));
    }
}
