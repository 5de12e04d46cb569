//! The "phone and WhatsApp server" side of the WhatsApp Web simulator: accounts (phone
//! numbers), linked devices (a token each page keeps in its browser profile), the pages connected
//! right now (their Socket phase, QR ref rotation, pairing codes), the messages and acks each
//! linked device has not acknowledged receiving yet (kept and delivered again when it comes back,
//! as WhatsApp's offline delivery does), sent messages and acks, and uploaded/inbound media.
//!
//! Everything lives behind one `std::sync::Mutex` that is never held across an `.await`. Timed
//! sequences (QR rotation, PAIRING → CONNECTED → hasSynced) run as small tasks that re-check a
//! per-page `epoch` under the lock before acting, so any state change cancels them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use rand::RngExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};

use super::WebSimConfig;
use super::error::SimError;

/// Identifier of one page connection (one WebSocket on `/sim/ws`).
pub type PageId = u64;

/// Keys a page generated for its profile; they make up parts 2 to 4 of its QR string.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Keys {
    /// base64 of the noise static public key.
    pub noise: String,
    /// base64 of the identity public key.
    pub identity: String,
    /// The ADV secret key (base64).
    pub adv: String,
}

/// The login a page has stored in its profile.
#[derive(Debug, Clone, Deserialize)]
pub struct StoredLogin {
    pub account: String,
}

/// The first message a page sends on its channel.
#[derive(Debug, Clone, Deserialize)]
pub struct Hello {
    pub device: Option<String>,
    #[serde(default)]
    pub keys: Keys,
    #[serde(default)]
    pub platform: String,
    pub login: Option<StoredLogin>,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub browser: Value,
}

/// Socket phase of a page as the server sees it (mirrors `Socket.state` on the page).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Opening,
    Unpaired,
    UnpairedIdle,
    Pairing,
    Connected,
    Conflict,
    /// Any other state pushed with `POST /sim/socket-state` (TIMEOUT, TOS_BLOCK, ...).
    Other(String),
}

impl Phase {
    fn name(&self) -> &str {
        match self {
            Phase::Opening => "OPENING",
            Phase::Unpaired => "UNPAIRED",
            Phase::UnpairedIdle => "UNPAIRED_IDLE",
            Phase::Pairing => "PAIRING",
            Phase::Connected => "CONNECTED",
            Phase::Conflict => "CONFLICT",
            Phase::Other(s) => s,
        }
    }
}

/// Socket states `POST /sim/socket-state` may push.
pub const PUSHABLE_STATES: &[&str] = &[
    "CONNECTED",
    "CONFLICT",
    "TIMEOUT",
    "OPENING",
    "PROXYBLOCK",
    "SMB_TOS_BLOCK",
    "TOS_BLOCK",
    "DEPRECATED_VERSION",
];

struct Account {
    lid: String,
    name: Option<String>,
    devices: BTreeSet<String>,
    sent: Vec<SentRecord>,
    seen: Vec<Value>,
}

/// One message a linked account sent from its page, as `GET /sim/sent` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct SentRecord {
    /// The message key id (`WAWebMsgKey.newId()`), also accepted by `POST /sim/acks`.
    pub id: String,
    /// `id._serialized` (`true_<to>_<id>`).
    pub serialized: String,
    /// The chat id it was sent to (`<digits>@c.us`).
    pub to: String,
    /// The digits of `to`.
    pub to_phone: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub body: String,
    pub caption: Option<String>,
    /// RFC 3339 with milliseconds.
    pub sent_at: String,
    /// Latest ack (1 server, 2 device, 3 read, 4 played, -1 error).
    pub ack: i64,
    /// For media messages: what the server holds for its `directPath`.
    pub media: Option<MediaInfo>,
    /// The message fields as the page sent them.
    pub message: Value,
}

/// Media of a sent message.
#[derive(Debug, Clone, Serialize)]
pub struct MediaInfo {
    pub mimetype: String,
    pub filename: Option<String>,
    /// Byte size of the uploaded file, when the server has it.
    pub size: Option<usize>,
    /// Lowercase hex SHA-256 of the uploaded bytes, when the server has them.
    pub sha256: Option<String>,
    pub direct_path: String,
}

struct Device {
    account: Option<String>,
    keys: Keys,
    page: Option<PageId>,
    /// Pushes (serialized JSON, each with its `sid`) the device has not acknowledged receiving
    /// (`receipt`): sent at once to a ready page, and again each time a page of the device
    /// becomes ready, until it confirms them.
    pending: BTreeMap<u64, String>,
    browser: Value,
}

struct Page {
    device: String,
    tx: mpsc::UnboundedSender<String>,
    phase: Phase,
    current_ref: Option<String>,
    qr: Option<String>,
    pairing: Option<(String, String)>,
    /// The page is ready: messages and acks are sent to it at once (still kept for its device
    /// until it confirms them).
    deliverable: bool,
    epoch: u64,
    platform: String,
    url: String,
}

impl Page {
    fn push(&self, v: Value) {
        let _ = self.tx.send(v.to_string());
    }
}

#[derive(PartialEq, Eq)]
enum Direction {
    In,
    Out,
}

struct MsgRecord {
    account: String,
    direction: Direction,
    serialized: String,
}

struct MediaBlob {
    bytes: Bytes,
    mimetype: String,
    filename: Option<String>,
    media_key: String,
}

#[derive(Default)]
struct Inner {
    accounts: BTreeMap<String, Account>,
    devices: HashMap<String, Device>,
    pages: BTreeMap<PageId, Page>,
    messages: HashMap<String, MsgRecord>,
    media: HashMap<String, MediaBlob>,
    next_page: PageId,
    /// Sequence of pushes kept for devices (`sid`).
    next_sid: u64,
}

/// Inbound media of `POST /sim/messages`.
#[derive(Debug, Clone, Deserialize)]
pub struct InboundMedia {
    pub mimetype: String,
    pub filename: Option<String>,
    pub data_base64: String,
    pub caption: Option<String>,
    /// Optional message type override (`ptt`, `sticker`, `document`, ...).
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// Body of `POST /sim/messages`.
#[derive(Debug, Clone, Deserialize)]
pub struct Inbound {
    pub account: String,
    pub from: String,
    pub name: Option<String>,
    pub text: Option<String>,
    pub media: Option<InboundMedia>,
}

/// The shared simulator state.
pub struct Sim {
    pub config: WebSimConfig,
    inner: Mutex<Inner>,
    shutdown: watch::Receiver<bool>,
}

/// Keeps the digits of a phone number; 5 to 20 of them are required.
pub fn normalize_phone(raw: &str) -> Result<String, SimError> {
    let raw_user = raw.split('@').next().unwrap_or(raw);
    let digits: String = raw_user.chars().filter(char::is_ascii_digit).collect();
    let junk = raw_user
        .chars()
        .any(|c| !(c.is_ascii_digit() || " +-().".contains(c)));
    if junk || !(5..=20).contains(&digits.len()) {
        return Err(SimError::InvalidPhone(raw.to_string()));
    }
    Ok(digits)
}

fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn random_hex(bytes: usize) -> String {
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02X}", rng.random::<u8>()))
        .collect()
}

fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(&mut buf[..]);
    B64.encode(buf)
}

fn new_ref() -> String {
    format!("2@{}", random_b64(48))
}

fn new_pairing_code() -> String {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTVWXYZ";
    let mut rng = rand::rng();
    (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Its own copy, not the daemon's `sincro_core::digest`: the simulator checks the daemon
/// independently.
fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sha256_b64(data: &[u8]) -> String {
    B64.encode(Sha256::digest(data).as_slice())
}

/// WhatsApp message type for an inbound file.
fn media_type(mimetype: &str) -> &'static str {
    let m = mimetype.to_ascii_lowercase();
    if m == "image/webp" {
        "sticker"
    } else if m.starts_with("image/") {
        "image"
    } else if m.starts_with("video/") {
        "video"
    } else if m.starts_with("audio/ogg") {
        "ptt"
    } else if m.starts_with("audio/") {
        "audio"
    } else {
        "document"
    }
}

fn qr_string(r: &str, keys: &Keys, platform: &str) -> String {
    format!(
        "{r},{},{},{},{platform}",
        keys.noise, keys.identity, keys.adv
    )
}

/// Delivers a push to every device of `account`: kept for each device until it acknowledges
/// receiving it, and sent at once to a page that is ready. Returns how many devices it went to.
fn deliver(inner: &mut Inner, account: &str, payload: &Value) -> usize {
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
fn flush(inner: &mut Inner, page_id: PageId) {
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

impl Sim {
    pub fn new(config: WebSimConfig, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            config,
            inner: Mutex::new(Inner::default()),
            shutdown,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps, or returns false at once when the simulator shuts down.
    async fn sleep(&self, ms: u64) -> bool {
        let mut stop = self.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(ms)) => true,
            _ = stop.wait_for(|s| *s) => false,
        }
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    // ----- the page channel -----

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
    fn start_qr_cycle(self: &Arc<Self>, inner: &mut Inner, page_id: PageId) {
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
    fn spawn_connect(self: &Arc<Self>, page_id: PageId, epoch: u64, fresh: bool) {
        let sim = self.clone();
        tokio::spawn(async move {
            if fresh && !sim.sleep(sim.config.pairing_ms).await {
                return;
            }
            {
                let mut inner = sim.lock();
                let Inner {
                    pages,
                    devices,
                    accounts,
                    ..
                } = &mut *inner;
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
    fn link(
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
    fn page_send(self: &Arc<Self>, inner: &mut Inner, page_id: PageId, m: Value) {
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
            for k in [
                "caption",
                "mimetype",
                "filename",
                "size",
                "filehash",
                "encFilehash",
                "directPath",
                "mediaKey",
                "mediaKeyTimestamp",
            ] {
                if let Some(v) = m.get(k) {
                    msg[k] = v.clone();
                }
            }
            let id = incoming_id();
            add_incoming(inner, &to_phone, &account, &id, msg);
        }
    }

    // ----- control routes -----

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
                for k in [
                    "size",
                    "filehash",
                    "encFilehash",
                    "directPath",
                    "mediaKey",
                    "mediaKeyTimestamp",
                ] {
                    msg[k] = entry[k].clone();
                }
            }
            (Some(text), None) => {
                msg["type"] = json!("chat");
                msg["body"] = json!(text);
            }
            (None, None) => return Err(SimError::BadRequest("give text or media".into())),
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
        let Inner {
            accounts,
            devices,
            pages,
            ..
        } = &mut *inner;
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

fn new_account() -> Account {
    let mut rng = rand::rng();
    Account {
        lid: format!(
            "{}",
            rng.random_range(100_000_000_000_000u64..999_999_999_999_999)
        ),
        name: None,
        devices: BTreeSet::new(),
        sent: Vec::new(),
        seen: Vec::new(),
    }
}

fn incoming_id() -> String {
    format!("3A{}", random_hex(9))
}

/// Records an inbound message `id` from `from` to `account` and delivers it. Returns the
/// serialized key.
fn add_incoming(inner: &mut Inner, account: &str, from: &str, id: &str, mut msg: Value) -> String {
    let remote = format!("{from}@c.us");
    let serialized = format!("false_{remote}_{id}");
    msg["id"] = json!({"fromMe": false, "remote": remote, "id": id, "_serialized": serialized});
    msg["from"] = json!(remote);
    msg["to"] = json!(format!("{account}@c.us"));
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
fn store_media(inner: &mut Inner, bytes: Bytes, mimetype: &str, filename: Option<String>) -> Value {
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
fn unlink_device(inner: &mut Inner, token: &str, reason: &str) {
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
