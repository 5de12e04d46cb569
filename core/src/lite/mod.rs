//! WhatsApp Lite: the user's own WhatsApp account linked as a device through WhatsApp Web, one
//! headless Chromium per session (docs/ARCHITECTURE.md §1, §4).
//!
//! ```text
//! LiteSupervisor (lite_supervisor.rs) ── LiteSession × N (session.rs)
//!                                          ├── Chromium: own process group, PDEATHSIG (browser.rs)
//!                                          ├── CDP connection + the injected bridge (bridge.rs, bridge.js)
//!                                          ├── profile dir under DATA_DIR/lite/<id> + sealed snapshot (profile.rs)
//!                                          └── inbound media sealed at rest (media.rs)
//! ```
//!
//! - [`browser`] starts Chromium itself (not through chromiumoxide's launcher) so it can put the
//!   whole tree in its own process group, ask the kernel to kill it if the daemon dies, and reap
//!   it: stop, logout, restart and crashes leave no zombie or orphan.
//! - [`bridge`] is the script injected into every document of the page. It uses only the module
//!   surface of the real WhatsApp Web page and reports through a CDP binding.
//! - [`session`] is the actor: statuses, QR, pairing code, inbound, sends, acks, logout,
//!   memory recycling, snapshots. It is the only owner of its browser and CDP connection; when
//!   it fails or stops, they die with it.
//! - [`store`] keeps `whatsapp_lite_sessions` and `configuracion_mensajeria_usuario` in step
//!   and appends `session.status` / `session.qr` events in the same transaction.
//! - [`handle`] is how the rest of the daemon calls the supervisor and its sessions: typed
//!   methods with named timeouts and error enums.
//! - [`login`] says whether a session can be linked now, by its QR or a pairing code.
//! - [`reaper`] kills Chromium trees a killed daemon left behind, at start.
//! - [`handover`] moves sessions to a node that joined, from their snapshot (§5).

pub mod bridge;
pub mod browser;
pub mod devtools_pipe;
pub mod error;
pub mod handle;
pub mod handover;
pub mod inbound;
pub mod login;
pub mod login_storage;
pub mod media;
pub mod memory;
pub mod picture;
pub mod profile;
pub mod qr;
pub mod reaper;
pub mod session;
pub mod store;
pub mod supervisor;

use std::path::PathBuf;
use std::time::Duration;

pub use error::{LiteSessionError, LiteSupervisorError};
pub use handle::LiteSupervisorHandle;
pub use session::handle::LiteSessionHandle;
pub use session::{LiteSession, LiteSessionMessage, SessionArgs};

/// Knobs of the Lite sessions (environment variables in the daemon's `Config`).
#[derive(Debug, Clone)]
pub struct LiteSettings {
    /// The WhatsApp Web page (`WHATSAPP_WEB_URL`).
    pub web_url: String,
    /// The browser (`CHROMIUM_PATH`); `chromium` on `PATH` when unset.
    pub chromium_path: Option<PathBuf>,
    /// Extra flags (`CHROMIUM_ARGS`), without leading dashes.
    pub chromium_args: Vec<String>,
    /// `DATA_DIR`: profiles live in `DATA_DIR/lite/<session id>/profile`, media in `DATA_DIR/media`.
    pub data_dir: PathBuf,
    /// Active sessions (STARTING, SCAN_QR_CODE, WORKING) per user.
    pub max_sessions_per_user: u32,
    /// PSS of one session's Chromium tree above which it is recycled (closed and relaunched).
    pub memory_limit_bytes: u64,
    /// How often the memory and the page's liveness are checked.
    pub health_interval: Duration,
    /// Delay between reaching WORKING and the first profile snapshot: Chromium writes local
    /// storage to disk in batches (about 5 s), so a snapshot taken at once could miss the login.
    pub snapshot_delay: Duration,
    /// Period of the later snapshots.
    pub snapshot_interval: Duration,
    /// QR cycles (each ends in UNPAIRED_IDLE and a `refreshQR`) before the session is stopped
    /// with reason QR_TIMEOUT.
    pub qr_max_cycles: u32,
    /// Time allowed for Chromium to start and for the page to load.
    pub launch_timeout: Duration,
    /// Run each Chromium as one process (half the memory; see `browser::BASE_FLAGS`).
    pub single_process: bool,
}

impl Default for LiteSettings {
    fn default() -> Self {
        LiteSettings {
            web_url: "https://web.whatsapp.com".into(),
            chromium_path: None,
            chromium_args: Vec::new(),
            data_dir: PathBuf::from("./data"),
            max_sessions_per_user: 5,
            memory_limit_bytes: 512 << 20,
            health_interval: Duration::from_secs(15),
            snapshot_delay: Duration::from_secs(8),
            snapshot_interval: Duration::from_secs(600),
            qr_max_cycles: 10,
            launch_timeout: Duration::from_secs(30),
            single_process: true,
        }
    }
}

impl LiteSettings {
    /// `DATA_DIR/lite`: every session's directory, and what the reaper looks for.
    pub fn lite_dir(&self) -> PathBuf {
        absolute(&self.data_dir).join("lite")
    }

    /// `DATA_DIR/lite/<id>`.
    pub fn session_dir(&self, id: uuid::Uuid) -> PathBuf {
        self.lite_dir().join(id.to_string())
    }

    /// The browser profile (`--user-data-dir`) of a session.
    pub fn profile_dir(&self, id: uuid::Uuid) -> PathBuf {
        self.session_dir(id).join("profile")
    }
}

/// An absolute form of `p` without touching the filesystem (the reaper matches command lines,
/// which carry whatever path Chromium was given).
pub fn absolute(p: &std::path::Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// Session statuses, as stored and as the API shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Starting,
    ScanQrCode,
    Working,
    Failed,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Starting => "STARTING",
            Status::ScanQrCode => "SCAN_QR_CODE",
            Status::Working => "WORKING",
            Status::Failed => "FAILED",
            Status::Stopped => "STOPPED",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "STARTING" => Status::Starting,
            "SCAN_QR_CODE" => Status::ScanQrCode,
            "WORKING" => Status::Working,
            "FAILED" => Status::Failed,
            "STOPPED" => Status::Stopped,
            _ => return None,
        })
    }

    /// Counts toward the per-user limit and is owned by a running actor.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Status::Starting | Status::ScanQrCode | Status::Working
        )
    }
}

/// Why a session left WORKING or stopped (`last_disconnect_reason`).
pub mod reason {
    /// Logged out from the phone (or unlinked through the API).
    pub const LOGOUT: &str = "LOGOUT";
    /// Stopped through the API.
    pub const STOPPED: &str = "STOPPED_BY_USER";
    /// Nobody scanned the QR within the configured number of cycles.
    pub const QR_TIMEOUT: &str = "QR_TIMEOUT";
    /// Chromium (or its page) died; the supervisor restarts the session.
    pub const BROWSER_DIED: &str = "BROWSER_DIED";
    /// Recycled because Chromium's memory passed the limit.
    pub const MEMORY_LIMIT: &str = "MEMORY_LIMIT";
    /// The daemon stopped (the session starts again with it).
    pub const SHUTDOWN: &str = "DAEMON_SHUTDOWN";
    /// Failed more often than the restart policy allows.
    pub const TOO_MANY_FAILURES: &str = "TOO_MANY_FAILURES";
}

/// What can go wrong driving one session.
#[derive(Debug, thiserror::Error)]
pub enum LiteError {
    #[error("browser: {0}")]
    Browser(#[from] browser::BrowserError),
    #[error("page: {0}")]
    Page(String),
    #[error("the page did not answer within {0:?}")]
    Timeout(Duration),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("profile: {0}")]
    Profile(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
}
