//! The "phone and WhatsApp server" side of the WhatsApp Web simulator: accounts (phone
//! numbers), linked devices (a token each page keeps in its browser profile), the pages connected
//! right now (their Socket phase, QR ref rotation, pairing codes), the messages and acks each
//! linked device has not acknowledged receiving yet (kept and delivered again when it comes back,
//! as WhatsApp's offline delivery does), sent messages and acks, and uploaded/inbound media.
//!
//! Everything lives behind one `std::sync::Mutex` that is never held across an `.await`. Timed
//! sequences (QR rotation, PAIRING → CONNECTED → hasSynced) run as small tasks that re-check a
//! per-page `epoch` under the lock before acting, so any state change cancels them.

mod delivery;
mod number_change;
mod pages;
mod phone;
mod pictures;
mod values;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::WebSimConfig;
use delivery::*;
use values::*;

pub use pictures::PictureReq;

pub use values::normalize_phone;

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
    /// Contacts' profile pictures, by phone number.
    pictures: HashMap<String, pictures::Picture>,
    /// Picture lookups the pages made, by contact phone number.
    picture_fetches: BTreeMap<String, u64>,
}

/// The fields of a message's media that describe the stored file (as WhatsApp Web gives
/// them), copied into every message that carries it.
const STORED_MEDIA_FIELDS: &[&str] = &[
    "size",
    "filehash",
    "encFilehash",
    "directPath",
    "mediaKey",
    "mediaKeyTimestamp",
];

/// The maps a page's state is reached through.
type Links<'a> = (
    &'a mut BTreeMap<String, Account>,
    &'a mut HashMap<String, Device>,
    &'a mut BTreeMap<PageId, Page>,
);

impl Inner {
    /// The accounts, devices and pages borrowed apart, for code that walks from an account
    /// to its devices to their pages (or back) while changing a page.
    fn links(&mut self) -> Links<'_> {
        (&mut self.accounts, &mut self.devices, &mut self.pages)
    }
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
    /// The Click-to-WhatsApp ad the contact came from, as the page's message model carries it
    /// (`ctwaContext`: `sourceUrl`, `sourceId`, `sourceType` `ad`|`post`, `title`,
    /// `description`, `mediaType`, `thumbnailUrl`, `ctwaClid`).
    #[serde(default)]
    pub ctwa_context: Option<Value>,
}

/// The shared simulator state.
pub struct Sim {
    pub config: WebSimConfig,
    inner: Mutex<Inner>,
    shutdown: watch::Receiver<bool>,
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
}
