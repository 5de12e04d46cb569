//! Linking by phone number: the pairing code the page makes while it shows a QR.

use super::SessionState;
use crate::lite::session::LiteSessionError;
use crate::lite::session_handle::PAIRING_PAGE_TIMEOUT;
use crate::lite::{Status, bridge};
use serde_json::{Value, json};

impl SessionState {
    /// A pairing code for `phone` (digits only), or why there is none now.
    pub(super) async fn pairing_code(&mut self, phone: &str) -> Result<String, LiteSessionError> {
        if self.status == Status::Working {
            return Err(LiteSessionError::AlreadyLinked);
        }
        let Some(r) = &self.running else {
            return Err(LiteSessionError::BrowserStarting);
        };
        if self.status != Status::ScanQrCode {
            return Err(LiteSessionError::NotWaitingForQr);
        }
        match bridge::call(&r.page, "pair", &[json!(phone)], PAIRING_PAGE_TIMEOUT).await? {
            Value::String(code) => Ok(code),
            other => Err(LiteSessionError::PageFailed(format!(
                "unexpected answer: {other}"
            ))),
        }
    }
}
