//! [`LiteSessionHandle`]: the typed way into one running Lite session (pairing code, stop),
//! each call with its named timeout. Apart from the supervisor's handle so the supervisor,
//! which stops sessions through it, and the handle that asks the supervisor do not import
//! each other.

use super::LiteSessionMessage;
use super::session::LiteSessionError;
use crate::supervision::ask;
use ractor::ActorRef;
use std::time::Duration;

/// A session closes its browser gracefully (logout included) before it answers a stop.
pub const SESSION_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The page's pairing call gets [`PAIRING_PAGE_TIMEOUT`]; the margin covers a session busy
/// with another page call when asked.
pub const PAIRING_TIMEOUT: Duration = Duration::from_secs(30);
/// WhatsApp Web asks its servers for the code; this is how long the page may take.
pub const PAIRING_PAGE_TIMEOUT: Duration = Duration::from_secs(20);

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
