//! A contact changes number. WhatsApp Web shows it as a notice in the chat of the old number:
//! a message of type `notification_template`, subtype `change_number`, whose `to` is the new
//! id and whose `templateParams` are the old and the new id (what drivers of the real page,
//! such as whatsapp-web.js's `contact_changed`, read).

use serde_json::{Value, json};

use super::*;
use crate::web::error::SimError;

impl Sim {
    /// `POST /sim/number-change {account, from, to}`: contact `from` now writes from `to`.
    pub fn number_change(&self, account: &str, from: &str, to: &str) -> Result<Value, SimError> {
        let account = normalize_phone(account)?;
        let from = normalize_phone(from)?;
        let to = normalize_phone(to)?;
        if from == to {
            return Err(SimError::BadRequest(
                "from and to are the same number".into(),
            ));
        }
        let mut inner = self.lock();
        match inner.accounts.get(&account) {
            None => return Err(SimError::UnknownAccount(account)),
            Some(a) if a.devices.is_empty() => return Err(SimError::NoLinkedDevice(account)),
            _ => {}
        }
        let (old, new) = (format!("{from}@c.us"), format!("{to}@c.us"));
        let msg = json!({
            "t": now_secs(), "type": "notification_template", "subtype": "change_number",
            "body": "", "to": new, "templateParams": [old, new],
        });
        let id = incoming_id();
        let serialized = add_incoming(&mut inner, &account, &from, &id, msg);
        Ok(json!({"id": id, "serialized": serialized}))
    }
}
