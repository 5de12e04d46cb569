//! An automatic answer that was decided (and its once-per-window slot claimed) inside the
//! ingest transaction, to be queued once that transaction commits. Kept apart from the
//! decision so the ingest report can carry it without depending on the decision's inputs.

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Due {
    pub usuario_id: Uuid,
    pub connection_id: Uuid,
    /// The contact, `+` and digits.
    pub to: String,
    /// The contact's message being answered.
    pub in_reply_to: Uuid,
    /// The Cloud API type and its object (`{"type":"text","text":{..}}` or a template).
    pub answer: Value,
}
