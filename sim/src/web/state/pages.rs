//! The page channel: a page's hello, its messages (sends, acks, QR refresh, logout) and its
//! timed sequences (QR rotation, PAIRING → CONNECTED → hasSynced), each re-checking the page's
//! epoch under the lock before acting.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::*;

impl Sim {
    /// Registers a page that said hello; answers `welcome` and starts its login or QR sequence.
    pub fn hello(self: &Arc<Self>, tx: mpsc::UnboundedSender<String>, hello: Hello) -> PageId {
        let mut inner = self.lock();
        inner.next_page += 1;
        let page_id = inner.next_page;

        // The device: known token, a token the server forgot (adopted, with its stored login),
        // or a new one.
        let token = match hello.device.filter(|t| !t.is_empty() && t.len() <= 100) {
            Some(t) => t,
            None => uuid::Uuid::new_v4().simple().to_string(),
        };
        if !inner.devices.contains_key(&token) {
            let adopted = hello
                .login
                .as_ref()
                .and_then(|l| normalize_phone(&l.account).ok());
            if let Some(phone) = &adopted {
                let acc = inner
                    .accounts
                    .entry(phone.clone())
                    .or_insert_with(new_account);
                acc.devices.insert(token.clone());
            }
            inner.devices.insert(
                token.clone(),
                Device {
                    account: adopted,
                    keys: Keys::default(),
                    page: None,
                    pending: BTreeMap::new(),
                    browser: Value::Null,
                },
            );
        }
        let old_page = {
            let device = inner.devices.get_mut(&token).expect("device just ensured");
            device.keys = hello.keys.clone();
            device.browser = hello.browser.clone();
            device.page.replace(page_id)
        };
        // A reloaded page replaces its previous connection.
        if let Some(old) = old_page {
            inner.pages.remove(&old);
        }
        let linked = inner.devices[&token].account.clone();
        let page = Page {
            device: token.clone(),
            tx,
            phase: Phase::Opening,
            current_ref: None,
            qr: None,
            pairing: None,
            deliverable: false,
            epoch: 0,
            platform: hello.platform.clone(),
            url: hello.url.clone(),
        };
        let status = match (&linked, &hello.login) {
            (Some(_), _) => "linked",
            (None, Some(_)) => "revoked",
            (None, None) => "unpaired",
        };
        page.push(json!({"t": "welcome", "device": token, "status": status}));
        inner.pages.insert(page_id, page);
        match status {
            "linked" => self.spawn_connect(page_id, 0, false),
            "unpaired" => self.start_qr_cycle(&mut inner, page_id),
            _ => {}
        }
        page_id
    }

    /// The page's channel closed.
    pub fn page_closed(&self, page_id: PageId) {
        let mut inner = self.lock();
        if let Some(page) = inner.pages.remove(&page_id)
            && let Some(device) = inner.devices.get_mut(&page.device)
            && device.page == Some(page_id)
        {
            device.page = None;
        }
    }

    /// A message from a page (anything after hello).
    pub fn page_message(self: &Arc<Self>, page_id: PageId, msg: Value) {
        let kind = msg.get("t").and_then(Value::as_str).unwrap_or_default();
        let mut inner = self.lock();
        if !inner.pages.contains_key(&page_id) {
            return;
        }
        match kind {
            "refresh_qr" => {
                let page = &inner.pages[&page_id];
                if matches!(page.phase, Phase::Unpaired | Phase::UnpairedIdle) {
                    self.start_qr_cycle(&mut inner, page_id);
                }
            }
            "pair_request" => {
                let rid = msg.get("rid").cloned().unwrap_or(Value::Null);
                let phone = msg.get("phone").and_then(Value::as_str).unwrap_or_default();
                let page = inner.pages.get_mut(&page_id).expect("checked");
                if !matches!(page.phase, Phase::Unpaired | Phase::UnpairedIdle) {
                    page.push(json!({"t": "pair_error", "rid": rid,
                        "message": "the page is not waiting for a login"}));
                    return;
                }
                match normalize_phone(phone) {
                    Ok(phone) => {
                        let code = new_pairing_code();
                        page.pairing = Some((phone, code.clone()));
                        page.push(json!({"t": "pair_code", "rid": rid, "code": code}));
                    }
                    Err(e) => page.push(json!({"t": "pair_error", "rid": rid,
                        "message": e.to_string()})),
                }
            }
            // The "is this number on WhatsApp" query (the real page's usync query behind
            // WAWebQueryExistsJob): every well-formed phone number is an account here.
            "exists" => {
                let rid = msg.get("rid").cloned().unwrap_or(Value::Null);
                let wid = msg.get("wid").and_then(Value::as_str).unwrap_or_default();
                let (user, server) = wid.split_once('@').unwrap_or((wid, "c.us"));
                let known =
                    matches!(server, "c.us" | "s.whatsapp.net") && normalize_phone(user).is_ok();
                let page = inner.pages.get_mut(&page_id).expect("checked");
                page.push(json!({"t": "exists_result", "rid": rid, "exists": known,
                    "wid": known.then(|| format!("{user}@c.us"))}));
            }
            "profile_pic" => super::pictures::lookup(&mut inner, page_id, &msg),
            "send" => {
                let m = msg.get("msg").cloned().unwrap_or(Value::Null);
                self.page_send(&mut inner, page_id, m);
            }
            "seen" => {
                let chat = msg.get("chat").cloned().unwrap_or(Value::Null);
                let device = inner.pages[&page_id].device.clone();
                if let Some(acc) = inner.devices[&device].account.clone()
                    && let Some(acc) = inner.accounts.get_mut(&acc)
                {
                    acc.seen.push(json!({"chat": chat, "at": now_rfc3339()}));
                }
            }
            "receipt" => {
                // The page has these pushes in its own store: the server forgets them.
                let device = inner.pages[&page_id].device.clone();
                if let Some(device) = inner.devices.get_mut(&device) {
                    for sid in msg
                        .get("sids")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_u64)
                    {
                        device.pending.remove(&sid);
                    }
                }
            }
            "logout" => {
                let device = inner.pages[&page_id].device.clone();
                unlink_device(&mut inner, &device, "self");
            }
            "takeover" => {
                let page = inner.pages.get_mut(&page_id).expect("checked");
                let linked = page.phase == Phase::Conflict;
                if linked {
                    page.epoch += 1;
                    page.phase = Phase::Connected;
                    page.deliverable = true;
                    page.push(json!({"t": "state", "state": "CONNECTED"}));
                    flush(&mut inner, page_id);
                }
            }
            _ => {}
        }
    }

    /// Starts a new cycle of QR refs on an unlinked page.
    pub(super) fn start_qr_cycle(self: &Arc<Self>, inner: &mut Inner, page_id: PageId) {
        let Some(page) = inner.pages.get_mut(&page_id) else {
            return;
        };
        page.epoch += 1;
        page.phase = Phase::Unpaired;
        let epoch = page.epoch;
        let n = self.config.refs_per_qr_cycle.max(1) as usize;
        let refs: Vec<String> = (0..n).map(|_| new_ref()).collect();
        let sim = self.clone();
        tokio::spawn(async move {
            for (i, r) in refs.into_iter().enumerate() {
                let hold = if i == 0 {
                    sim.config.first_ref_ms
                } else {
                    sim.config.next_ref_ms
                };
                {
                    let mut inner = sim.lock();
                    let Inner { pages, devices, .. } = &mut *inner;
                    let Some(page) = pages.get_mut(&page_id) else {
                        return;
                    };
                    if page.epoch != epoch {
                        return;
                    }
                    let keys = devices
                        .get(&page.device)
                        .map(|d| d.keys.clone())
                        .unwrap_or_default();
                    page.qr = Some(qr_string(&r, &keys, &page.platform));
                    page.current_ref = Some(r.clone());
                    page.push(json!({"t": "ref", "ref": r, "ttl_ms": hold}));
                }
                if !sim.sleep(hold).await {
                    return;
                }
            }
            let mut inner = sim.lock();
            if let Some(page) = inner.pages.get_mut(&page_id)
                && page.epoch == epoch
            {
                page.phase = Phase::UnpairedIdle;
                page.qr = None;
                page.push(json!({"t": "idle"}));
            }
        });
    }

    /// PAIRING (fresh link only) → CONNECTED → hasSynced → ready to receive.
    pub(super) fn spawn_connect(self: &Arc<Self>, page_id: PageId, epoch: u64, fresh: bool) {
        let sim = self.clone();
        tokio::spawn(async move {
            if fresh && !sim.sleep(sim.config.pairing_ms).await {
                return;
            }
            {
                let mut inner = sim.lock();
                let (accounts, devices, pages) = inner.links();
                let Some(page) = pages.get_mut(&page_id) else {
                    return;
                };
                if page.epoch != epoch {
                    return;
                }
                let Some(phone) = devices.get(&page.device).and_then(|d| d.account.clone()) else {
                    return;
                };
                let acc = accounts.get(&phone);
                page.phase = Phase::Connected;
                page.push(json!({
                    "t": "linked",
                    "account": phone,
                    "wid": format!("{phone}@c.us"),
                    "lid": acc.map(|a| format!("{}@lid", a.lid)),
                    "pushname": acc.and_then(|a| a.name.clone()).unwrap_or_else(|| phone.clone()),
                    "fresh": fresh,
                }));
            }
            if !sim.sleep(sim.config.sync_ms).await {
                return;
            }
            {
                let inner = sim.lock();
                match inner.pages.get(&page_id) {
                    Some(page) if page.epoch == epoch => page.push(json!({"t": "synced"})),
                    _ => return,
                }
            }
            if !sim.sleep(sim.config.ready_ms).await {
                return;
            }
            let mut inner = sim.lock();
            match inner.pages.get_mut(&page_id) {
                Some(page) if page.epoch == epoch => page.deliverable = true,
                _ => return,
            }
            flush(&mut inner, page_id);
        });
    }

    /// Links the page's device to `phone` (after a scan or a pairing code).
    pub(super) fn link(
        self: &Arc<Self>,
        inner: &mut Inner,
        page_id: PageId,
        phone: String,
        name: Option<String>,
    ) -> Value {
        let page = inner
            .pages
            .get_mut(&page_id)
            .expect("caller found the page");
        page.epoch += 1;
        page.phase = Phase::Pairing;
        page.qr = None;
        page.pairing = None;
        page.push(json!({"t": "pairing"}));
        let epoch = page.epoch;
        let token = page.device.clone();
        let acc = inner
            .accounts
            .entry(phone.clone())
            .or_insert_with(new_account);
        if name.is_some() {
            acc.name = name;
        }
        acc.devices.insert(token.clone());
        if let Some(device) = inner.devices.get_mut(&token) {
            device.account = Some(phone.clone());
            device.pending.clear();
        }
        self.spawn_connect(page_id, epoch, true);
        json!({"account": phone, "device": token, "page": page_id})
    }

    /// Records a message a page sends and acknowledges it (ack 1).
    pub(super) fn page_send(self: &Arc<Self>, inner: &mut Inner, page_id: PageId, m: Value) {
        let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
        let raw_id = s("id").unwrap_or_default();
        let serialized = s("serialized").unwrap_or_else(|| raw_id.clone());
        let page = &inner.pages[&page_id];
        let account = inner
            .devices
            .get(&page.device)
            .and_then(|d| d.account.clone());
        let refuse = |why: &str| {
            page.push(json!({"t": "ack", "id": serialized, "ack": -1, "error": why}));
        };
        let Some(account) = account else {
            refuse("not_linked");
            return;
        };
        if page.phase != Phase::Connected {
            refuse("not_connected");
            return;
        }
        let to = s("to").unwrap_or_default();
        let Ok(to_phone) = normalize_phone(&to) else {
            refuse("invalid_recipient");
            return;
        };
        if raw_id.is_empty() || inner.messages.contains_key(&raw_id) {
            refuse("invalid_or_duplicate_id");
            return;
        }
        let kind = s("type").unwrap_or_else(|| "chat".into());
        let media = s("directPath").map(|direct_path| {
            let blob = inner.media.get(&direct_path);
            MediaInfo {
                mimetype: s("mimetype")
                    .or_else(|| blob.map(|b| b.mimetype.clone()))
                    .unwrap_or_default(),
                filename: s("filename").or_else(|| blob.and_then(|b| b.filename.clone())),
                size: blob.map(|b| b.bytes.len()),
                sha256: blob.map(|b| sha256_hex(&b.bytes)),
                direct_path,
            }
        });
        let record = SentRecord {
            id: raw_id.clone(),
            serialized: serialized.clone(),
            to: format!("{to_phone}@c.us"),
            to_phone: to_phone.clone(),
            kind: kind.clone(),
            body: if media.is_some() {
                String::new()
            } else {
                s("body").unwrap_or_default()
            },
            caption: s("caption"),
            sent_at: now_rfc3339(),
            ack: 1,
            media,
            message: m.clone(),
        };
        page.push(json!({"t": "ack", "id": serialized, "ack": 1}));
        inner.messages.insert(
            raw_id.clone(),
            MsgRecord {
                account: account.clone(),
                direction: Direction::Out,
                serialized,
            },
        );
        if let Some(acc) = inner.accounts.get_mut(&account) {
            acc.sent.push(record.clone());
        }
        // Another simulated account receives it as an inbound message.
        if to_phone != account
            && inner
                .accounts
                .get(&to_phone)
                .is_some_and(|a| !a.devices.is_empty())
        {
            let mut msg = json!({
                "type": kind,
                "body": record.body,
                "t": now_secs(),
                "notifyName": inner.accounts.get(&account).and_then(|a| a.name.clone()).unwrap_or_else(|| account.clone()),
            });
            for k in ["caption", "mimetype", "filename"]
                .iter()
                .chain(STORED_MEDIA_FIELDS)
            {
                if let Some(v) = m.get(k) {
                    msg[k] = v.clone();
                }
            }
            let id = incoming_id();
            add_incoming(inner, &to_phone, &account, &id, msg);
        }
    }

    // ----- control routes -----
}
