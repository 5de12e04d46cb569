//! [`LiteSessionHandle`]: the typed way into one running LiteSession (pairing code, stop), each
//! call with its named timeout.

use super::LiteSessionMessage;
use crate::lite::error::{LiteSessionError, pairing_phone};
use crate::supervision::ask;
use ractor::ActorRef;
use std::time::Duration;

/// A session closes its browser gracefully (logout included) before it answers a stop.
pub const SESSION_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The page's pairing call gets [`PAIRING_PAGE_TIMEOUT`](crate::lite::error::PAIRING_PAGE_TIMEOUT); the margin covers a session busy
/// with another page call when asked.
pub const PAIRING_TIMEOUT: Duration = Duration::from_secs(30);

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
