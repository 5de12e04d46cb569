//! The typed ways into the Lite actors: [`LiteSupervisorHandle`] (start, stop, reach a
//! session) and [`LiteSessionHandle`] (pairing code, stop), each call with its named timeout,
//! and what can go wrong with them ([`LiteSupervisorError`], [`LiteSessionError`]).

use super::LiteSessionMessage;
use super::supervisor::LiteSupervisorMessage;
use crate::store::StoreError;
use crate::supervision::{Slot, ask, ask_slot};
use ractor::ActorRef;
use std::time::Duration;
use uuid::Uuid;

/// Starting a session takes its lease and spawns its actor; the browser launches afterwards,
/// so this covers a few store round trips, not Chromium.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Stopping waits for the session to close its browser ([`SESSION_STOP_TIMEOUT`]), or for the
/// node that runs it to record the stop (up to 35 s), with a margin.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(40);
/// Looking up a running session is answered from the supervisor's memory.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// A session closes its browser gracefully (logout included) before it answers a stop.
pub const SESSION_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The page's pairing call gets [`PAIRING_PAGE_TIMEOUT`]; the margin covers a session busy
/// with another page call when asked.
pub const PAIRING_TIMEOUT: Duration = Duration::from_secs(30);
/// WhatsApp Web asks its servers for the code; this is how long the page may take.
pub const PAIRING_PAGE_TIMEOUT: Duration = Duration::from_secs(20);

/// What went wrong asking the LiteSupervisor.
#[derive(Debug, thiserror::Error)]
pub enum LiteSupervisorError {
    #[error("Lite sessions are restarting")]
    NotRunning,
    #[error("the Lite supervisor did not answer within {0:?}")]
    TimedOut(Duration),
    /// The session's actor does not run on this node (another node runs it, or it is down).
    #[error("the session is not running on this node")]
    SessionNotRunning,
    /// The store could not be reached to take the session's lease.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The session's actor could not be spawned.
    #[error("the session's actor could not start: {0}")]
    Spawn(String),
}
crate::unanswered_into!(LiteSupervisorError);

/// What went wrong asking one LiteSession.
#[derive(Debug, thiserror::Error)]
pub enum LiteSessionError {
    #[error("the session is not running")]
    NotRunning,
    #[error("the session did not answer within {0:?}")]
    TimedOut(Duration),
    /// It is being stopped and takes no new work.
    #[error("the session is stopping")]
    Stopping,
    /// A pairing code links a device; this one is linked already.
    #[error("the session is already linked")]
    AlreadyLinked,
    /// Its browser is not up yet (just started, or restarting).
    #[error("the session's browser is starting; retry shortly")]
    BrowserStarting,
    /// The page does not show the login screen (a QR) yet.
    #[error("the session is not waiting for a login yet; retry shortly")]
    NotWaitingForQr,
    /// The phone number cannot be a WhatsApp account (digits only, 7 to 15 of them).
    #[error("invalid phone number: {0}")]
    PhoneInvalid(String),
    /// The page did not answer in time.
    #[error("the page did not answer within {0:?}")]
    PageTimedOut(Duration),
    /// The page answered with an error or something unexpected.
    #[error("the page could not do it: {0}")]
    PageFailed(String),
}
crate::unanswered_into!(LiteSessionError);

impl From<super::LiteError> for LiteSessionError {
    fn from(e: super::LiteError) -> Self {
        match e {
            super::LiteError::Timeout(t) => LiteSessionError::PageTimedOut(t),
            other => LiteSessionError::PageFailed(other.to_string()),
        }
    }
}

/// Checks a pairing phone number (digits of an E.164 number without the `+`).
pub fn pairing_phone(digits: &str) -> Result<(), LiteSessionError> {
    let ok = (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(LiteSessionError::PhoneInvalid(format!(
            "{digits:?} is not 7 to 15 digits"
        )))
    }
}

/// The LiteSupervisor of one daemon, whichever incarnation runs now.
#[derive(Clone)]
pub struct LiteSupervisorHandle {
    slot: Slot<LiteSupervisorMessage>,
}

impl LiteSupervisorHandle {
    pub fn new(slot: Slot<LiteSupervisorMessage>) -> Self {
        LiteSupervisorHandle { slot }
    }

    /// Whether a LiteSupervisor runs now.
    pub fn is_running(&self) -> bool {
        self.slot.get().is_some()
    }

    /// Starts the actor of a session whose row is STARTING (nothing if it already runs, or if
    /// another live node holds its lease).
    pub async fn start(&self, id: Uuid, usuario_id: Uuid) -> Result<(), LiteSupervisorError> {
        ask_slot(
            &self.slot,
            |reply| LiteSupervisorMessage::Start {
                id,
                usuario_id,
                reply,
            },
            START_TIMEOUT,
        )
        .await?
    }

    /// Stops a session on purpose (`logout`: unlink it and wipe its profile), wherever it runs;
    /// returns once it stopped.
    pub async fn stop(&self, id: Uuid, logout: bool) -> Result<(), LiteSupervisorError> {
        ask_slot(
            &self.slot,
            |reply| LiteSupervisorMessage::Stop { id, logout, reply },
            STOP_TIMEOUT,
        )
        .await
        .map_err(Into::into)
    }

    /// The session's actor, when it runs on this node.
    pub async fn session(&self, id: Uuid) -> Result<LiteSessionHandle, LiteSupervisorError> {
        ask_slot(
            &self.slot,
            |reply| LiteSupervisorMessage::Session { id, reply },
            LOOKUP_TIMEOUT,
        )
        .await?
        .map(LiteSessionHandle::new)
        .ok_or(LiteSupervisorError::SessionNotRunning)
    }

    /// Stops the sessions whose lease this node lost and starts those it may take (after a
    /// heartbeat); nothing if the supervisor is restarting, as it resumes sessions at start.
    pub fn reconcile(&self) {
        if let Some(sup) = self.slot.get() {
            let _ = sup.cast(LiteSupervisorMessage::Reconcile);
        }
    }
}

/// One running LiteSession.
#[derive(Clone)]
pub struct LiteSessionHandle {
    actor: ActorRef<LiteSessionMessage>,
}

impl LiteSessionHandle {
    pub fn new(actor: ActorRef<LiteSessionMessage>) -> Self {
        LiteSessionHandle { actor }
    }

    /// A code to type on the phone to link it by number (`phone`: digits only), while the
    /// session waits for a login.
    pub async fn pairing_code(&self, phone: String) -> Result<String, LiteSessionError> {
        pairing_phone(&phone)?;
        ask(
            &self.actor,
            |reply| LiteSessionMessage::PairingCode { phone, reply },
            PAIRING_TIMEOUT,
        )
        .await?
    }

    /// Stops the session on purpose; it ends (not restarted) once it answered.
    pub async fn stop(&self, logout: bool) -> Result<(), LiteSessionError> {
        ask(
            &self.actor,
            |reply| LiteSessionMessage::Stop { logout, reply },
            SESSION_STOP_TIMEOUT,
        )
        .await
        .map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairing_phone_takes_e164_digits_only() {
        assert!(pairing_phone("5511999990002").is_ok());
        for bad in [
            "",
            "123456",
            "1234567890123456",
            "+5511999990002",
            "55 11 9999",
        ] {
            assert!(
                matches!(pairing_phone(bad), Err(LiteSessionError::PhoneInvalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn page_errors_keep_timeouts_apart() {
        let t = Duration::from_secs(20);
        assert!(matches!(
            LiteSessionError::from(super::super::LiteError::Timeout(t)),
            LiteSessionError::PageTimedOut(d) if d == t
        ));
        assert!(matches!(
            LiteSessionError::from(super::super::LiteError::Page("boom".into())),
            LiteSessionError::PageFailed(m) if m.contains("boom")
        ));
    }
}
