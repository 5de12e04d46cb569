//! What can go wrong asking the Lite actors ([`LiteSupervisorError`], [`LiteSessionError`]),
//! how long the page may take to make a pairing code, and the pairing number's check. Apart from
//! the handles, so the actors that reply with them do not depend on the handles that call them.

use crate::store::StoreError;
use std::time::Duration;

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
