//! Linking by phone number: the pairing code the page makes while it shows a QR.

use super::SessionState;
use crate::lite::{Status, bridge};
use serde_json::{Value, json};
use std::time::Duration;

impl SessionState {
    /// A pairing code for `phone` (digits only), or why there is none now.
    pub(super) async fn pairing_code(&mut self, phone: &str) -> Result<String, String> {
        if self.status == Status::Working {
            return Err("the session is already linked".into());
        }
        let Some(r) = &self.running else {
            return Err("the session's browser is starting; retry shortly".into());
        };
        if self.status != Status::ScanQrCode {
            return Err("the session is not waiting for a login yet; retry shortly".into());
        }
        match bridge::call(&r.page, "pair", &[json!(phone)], Duration::from_secs(20)).await {
            Ok(Value::String(code)) => Ok(code),
            Ok(other) => Err(format!("unexpected answer from the page: {other}")),
            Err(e) => Err(format!("the page could not make a pairing code: {e}")),
        }
    }
}
