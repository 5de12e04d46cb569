//! The phone's side, driven through the control API: scanning a QR, pairing codes, incoming
//! messages and acks, sends from the phone, logout and conflict, pushed states, and the views
//! tests read (sent messages, QRs, a snapshot, media).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use serde_json::{Value, json};

use super::*;
use crate::web::error::SimError;

impl Sim {
    /// `POST /sim/scan`.
    pub fn scan(
        self: &Arc<Self>,
        qr: &str,
        phone: &str,
        name: Option<String>,
    ) -> Result<Value, SimError> {
        let phone = normalize_phone(phone)?;
        let qr = qr.trim();
        let mut inner = self.lock();
        let page_id = inner
            .pages
            .iter()
            .find(|(_, p)| p.phase == Phase::Unpaired && p.qr.as_deref() == Some(qr))
            .map(|(id, _)| *id)
            .ok_or(SimError::QrNotCurrent)?;
        Ok(self.link(&mut inner, page_id, phone, name))
    }

    /// `POST /sim/pair`.
    pub fn pair(
        self: &Arc<Self>,
        code: &str,
        phone: &str,
        name: Option<String>,
    ) -> Result<Value, SimError> {
        let phone = normalize_phone(phone)?;
        let code: String = code
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let mut inner = self.lock();
        let (page_id, wanted) = inner
            .pages
            .iter()
            .find_map(|(id, p)| match &p.pairing {
                Some((ph, c)) if *c == code => Some((*id, ph.clone())),
                _ => None,
            })
            .ok_or(SimError::UnknownPairingCode)?;
        if wanted != phone {
            return Err(SimError::PairingPhoneMismatch);
        }
        Ok(self.link(&mut inner, page_id, phone, name))
    }

    /// `POST /sim/messages`: a contact sends to a linked account.
    pub fn inbound(&self, req: Inbound) -> Result<Value, SimError> {
        let account = normalize_phone(&req.account)?;
        let from = normalize_phone(&req.from)?;
        let mut inner = self.lock();
        match inner.accounts.get(&account) {
            None => return Err(SimError::UnknownAccount(account)),
            Some(a) if a.devices.is_empty() => return Err(SimError::NoLinkedDevice(account)),
            _ => {}
        }
        let name = req.name.clone().unwrap_or_else(|| from.clone());
        let mut msg = json!({"t": now_secs(), "notifyName": name});
        match (&req.text, &req.media) {
            (_, Some(media)) => {
                let bytes = B64
                    .decode(media.data_base64.trim())
                    .map_err(|e| SimError::BadRequest(format!("media.data_base64: {e}")))?;
                if media.mimetype.trim().is_empty() {
                    return Err(SimError::BadRequest("media.mimetype is empty".into()));
                }
                let kind = media
                    .kind
                    .clone()
                    .unwrap_or_else(|| media_type(&media.mimetype).to_string());
                let entry = store_media(
                    &mut inner,
                    Bytes::from(bytes),
                    &media.mimetype,
                    media.filename.clone(),
                );
                msg["type"] = json!(kind);
                msg["body"] = json!("");
                msg["caption"] = json!(media.caption);
                msg["mimetype"] = json!(media.mimetype);
                msg["filename"] = json!(media.filename);
                for k in STORED_MEDIA_FIELDS {
                    msg[k] = entry[k].clone();
                }
            }
            (Some(text), None) => {
                msg["type"] = json!("chat");
                msg["body"] = json!(text);
            }
            (None, None) => return Err(SimError::BadRequest("give text or media".into())),
        }
        if let Some(ctwa) = &req.ctwa_context {
            msg["ctwaContext"] = ctwa_context(ctwa)?;
        }
        let id = incoming_id();
        let serialized = add_incoming(&mut inner, &account, &from, &id, msg);
        Ok(json!({"id": id, "serialized": serialized}))
    }

    /// `POST /sim/phone-send`: the account's own phone sends a text to `to`. Its linked pages
    /// get it as a `fromMe` message (as WhatsApp Web shows what the phone sent); it is listed
    /// by `GET /sim/sent` (`"from_phone": true` in `message`) and takes acks like any sent
    /// message; a simulated account `to` receives it.
    pub fn phone_send(&self, account: &str, to: &str, text: &str) -> Result<Value, SimError> {
        let account = normalize_phone(account)?;
        let to_phone = normalize_phone(to)?;
        if text.is_empty() {
            return Err(SimError::BadRequest("text is empty".into()));
        }
        let mut inner = self.lock();
        match inner.accounts.get(&account) {
            None => return Err(SimError::UnknownAccount(account)),
            Some(a) if a.devices.is_empty() => return Err(SimError::NoLinkedDevice(account)),
            _ => {}
        }
        // Phones name their messages like this (not the `3EB0` of WhatsApp Web).
        let id = format!("3A{}", random_hex(9));
        let remote = format!("{to_phone}@c.us");
        let serialized = format!("true_{remote}_{id}");
        let t = now_secs();
        let msg = json!({
            "id": {"fromMe": true, "remote": remote, "id": id, "_serialized": serialized},
            "from": format!("{account}@c.us"),
            "to": remote,
            "type": "chat",
            "body": text,
            "t": t,
            "ack": 1,
            "isNewMsg": true,
        });
        inner.messages.insert(
            id.clone(),
            MsgRecord {
                account: account.clone(),
                direction: Direction::Out,
                serialized: serialized.clone(),
            },
        );
        let record = SentRecord {
            id: id.clone(),
            serialized: serialized.clone(),
            to: remote.clone(),
            to_phone: to_phone.clone(),
            kind: "chat".into(),
            body: text.to_string(),
            caption: None,
            sent_at: now_rfc3339(),
            ack: 1,
            media: None,
            message: json!({"from_phone": true, "body": text, "t": t}),
        };
        if let Some(acc) = inner.accounts.get_mut(&account) {
            acc.sent.push(record);
        }
        let devices = deliver(&mut inner, &account, &json!({"t": "msg", "msg": msg}));
        if to_phone != account
            && inner
                .accounts
                .get(&to_phone)
                .is_some_and(|a| !a.devices.is_empty())
        {
            let name = inner
                .accounts
                .get(&account)
                .and_then(|a| a.name.clone())
                .unwrap_or_else(|| account.clone());
            let incoming = json!({"type": "chat", "body": text, "t": t, "notifyName": name});
            add_incoming(&mut inner, &to_phone, &account, &incoming_id(), incoming);
        }
        Ok(json!({"id": id, "serialized": serialized, "devices": devices}))
    }

    /// `GET /sim/sent?account=`.
    pub fn sent(&self, account: &str) -> Result<Vec<SentRecord>, SimError> {
        let account = normalize_phone(account)?;
        let inner = self.lock();
        inner
            .accounts
            .get(&account)
            .map(|a| a.sent.clone())
            .ok_or(SimError::UnknownAccount(account))
    }

    /// `POST /sim/acks`: the recipient's phone acknowledges a sent message.
    pub fn ack(&self, id: &str, ack: i64) -> Result<Value, SimError> {
        if !(-1..=4).contains(&ack) {
            return Err(SimError::BadRequest(format!(
                "ack {ack}: expected -1 (error), 1 (server), 2 (device), 3 (read) or 4 (played)"
            )));
        }
        // Accept the raw key id or `_serialized`.
        let raw = id.rsplit('_').next().unwrap_or(id).to_string();
        let mut inner = self.lock();
        let rec = inner
            .messages
            .get(&raw)
            .ok_or_else(|| SimError::UnknownMessage(id.to_string()))?;
        if rec.direction != Direction::Out {
            return Err(SimError::NotOutgoing(id.to_string()));
        }
        let (account, serialized) = (rec.account.clone(), rec.serialized.clone());
        if let Some(sent) = inner
            .accounts
            .get_mut(&account)
            .and_then(|a| a.sent.iter_mut().find(|s| s.id == raw))
        {
            sent.ack = ack;
        }
        let devices = deliver(
            &mut inner,
            &account,
            &json!({"t": "ack", "id": serialized, "ack": ack}),
        );
        Ok(json!({"id": raw, "ack": ack, "devices": devices}))
    }

    /// `POST /sim/logout`: the phone unlinks every device of `account`.
    pub fn logout(&self, account: &str) -> Result<Value, SimError> {
        let account = normalize_phone(account)?;
        let mut inner = self.lock();
        let devices: Vec<String> = inner
            .accounts
            .get(&account)
            .ok_or_else(|| SimError::UnknownAccount(account.clone()))?
            .devices
            .iter()
            .cloned()
            .collect();
        for d in &devices {
            unlink_device(&mut inner, d, "phone");
        }
        Ok(json!({"account": account, "devices": devices.len()}))
    }

    /// `POST /sim/conflict`: WhatsApp is opened elsewhere; the account's pages go CONFLICT.
    pub fn conflict(&self, account: &str) -> Result<Value, SimError> {
        self.push_state(account, "CONFLICT")
    }

    /// `POST /sim/socket-state`: pushes a Socket state to the account's connected pages.
    pub fn push_state(&self, account: &str, state: &str) -> Result<Value, SimError> {
        if !PUSHABLE_STATES.contains(&state) {
            return Err(SimError::BadRequest(format!(
                "state {state:?}: expected one of {PUSHABLE_STATES:?}"
            )));
        }
        let account = normalize_phone(account)?;
        let mut inner = self.lock();
        let (accounts, devices, pages) = inner.links();
        let acc = accounts
            .get(&account)
            .ok_or_else(|| SimError::UnknownAccount(account.clone()))?;
        let mut n = 0;
        let mut ready = Vec::new();
        for token in &acc.devices {
            let Some(page_id) = devices.get(token).and_then(|d| d.page) else {
                continue;
            };
            let Some(page) = pages.get_mut(&page_id) else {
                continue;
            };
            if matches!(page.phase, Phase::Opening | Phase::Pairing) {
                continue;
            }
            page.epoch += 1;
            page.phase = match state {
                "CONFLICT" => Phase::Conflict,
                "CONNECTED" => Phase::Connected,
                other => Phase::Other(other.to_string()),
            };
            page.deliverable = state == "CONNECTED";
            if page.deliverable {
                ready.push(page_id);
            }
            page.push(json!({"t": "state", "state": state}));
            n += 1;
        }
        for page_id in ready {
            flush(&mut inner, page_id);
        }
        Ok(json!({"account": account, "state": state, "pages": n}))
    }

    /// `GET /sim/qr`: the QR strings pages show right now.
    pub fn qrs(&self) -> Value {
        let inner = self.lock();
        Value::Array(
            inner
                .pages
                .iter()
                .filter_map(|(id, p)| {
                    p.qr.as_ref().map(|qr| {
                        json!({"page": id, "device": p.device, "ref": p.current_ref, "qr": qr})
                    })
                })
                .collect(),
        )
    }

    /// `GET /sim/state`: accounts, devices and pages.
    pub fn snapshot(&self) -> Value {
        let inner = self.lock();
        let accounts: Vec<Value> = inner
            .accounts
            .iter()
            .map(|(phone, a)| {
                json!({
                    "phone": phone,
                    "wid": format!("{phone}@c.us"),
                    "lid": format!("{}@lid", a.lid),
                    "name": a.name,
                    "devices": a.devices,
                    "sent": a.sent.len(),
                    "seen": a.seen,
                })
            })
            .collect();
        let mut devices: Vec<Value> = inner
            .devices
            .iter()
            .map(|(token, d)| {
                json!({
                    "device": token,
                    "account": d.account,
                    "online": d.page.is_some(),
                    "page": d.page,
                    "queued": d.pending.len(),
                    "browser": d.browser,
                })
            })
            .collect();
        devices.sort_by(|a, b| a["device"].as_str().cmp(&b["device"].as_str()));
        let pages: Vec<Value> = inner
            .pages
            .iter()
            .map(|(id, p)| {
                json!({
                    "page": id,
                    "device": p.device,
                    "account": inner.devices.get(&p.device).and_then(|d| d.account.clone()),
                    "state": p.phase.name(),
                    "ref": p.current_ref,
                    "qr": p.qr,
                    "pairing_phone": p.pairing.as_ref().map(|(ph, _)| ph),
                    "ready": p.deliverable,
                    "url": p.url,
                })
            })
            .collect();
        json!({"accounts": accounts, "devices": devices, "pages": pages})
    }

    /// `POST /sim/upload` (used by the page's `WAWebMediaMmsV4Upload.uploadMedia`).
    pub fn upload(&self, bytes: Bytes, mimetype: &str, filename: Option<String>) -> Value {
        let mut inner = self.lock();
        store_media(&mut inner, bytes, mimetype, filename)
    }

    /// `GET /sim/media?direct_path=&media_key=`: the bytes of an uploaded or inbound file.
    pub fn media(
        &self,
        direct_path: &str,
        media_key: Option<&str>,
    ) -> Result<(Bytes, String), SimError> {
        let inner = self.lock();
        let blob = inner.media.get(direct_path).ok_or(SimError::NotFound)?;
        if media_key.is_some_and(|k| !k.is_empty() && k != blob.media_key) {
            return Err(SimError::NotFound);
        }
        Ok((blob.bytes.clone(), blob.mimetype.clone()))
    }
}

/// A Click-to-WhatsApp context as the page's message model holds it: strings only, the
/// source's URL, id and type (`ad` or `post`) always there.
fn ctwa_context(v: &Value) -> Result<Value, SimError> {
    const FIELDS: &[&str] = &[
        "sourceUrl",
        "sourceId",
        "sourceType",
        "title",
        "description",
        "mediaType",
        "thumbnailUrl",
        "ctwaClid",
    ];
    let o = v
        .as_object()
        .ok_or_else(|| SimError::BadRequest("ctwa_context must be an object".into()))?;
    for (k, v) in o {
        if !FIELDS.contains(&k.as_str()) || !v.is_string() {
            return Err(SimError::BadRequest(format!(
                "ctwa_context.{k} is not a string field of the page's ctwaContext"
            )));
        }
    }
    for k in ["sourceUrl", "sourceId"] {
        if !o.contains_key(k) {
            return Err(SimError::BadRequest(format!(
                "ctwa_context.{k} is required"
            )));
        }
    }
    if !matches!(
        o.get("sourceType").and_then(Value::as_str),
        Some("ad" | "post")
    ) {
        return Err(SimError::BadRequest(
            "ctwa_context.sourceType must be ad or post".into(),
        ));
    }
    Ok(v.clone())
}
