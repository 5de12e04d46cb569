//! [`LiteSupervisorHandle`]: the typed way into the LiteSupervisor (start, stop, reach a
//! session, which answers a [`LiteSessionHandle`]), each call with its named timeout; what can
//! go wrong is in [`super::error`].

use super::error::LiteSupervisorError;
use super::session::handle::LiteSessionHandle;
use super::supervisor::LiteSupervisorMessage;
use crate::supervision::{Slot, ask_slot};
use std::time::Duration;
use uuid::Uuid;

/// Starting a session takes its lease and spawns its actor; the browser launches afterwards,
/// so this covers a few store round trips, not Chromium.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Stopping waits for the session to close its browser ([`SESSION_STOP_TIMEOUT`](super::session::handle::SESSION_STOP_TIMEOUT)), or for the
/// node that runs it to record the stop (up to 35 s), with a margin.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(40);
/// Looking up a running session is answered from the supervisor's memory.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
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
