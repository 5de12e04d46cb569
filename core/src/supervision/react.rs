//! What a supervisor does with a [`Decision`]: schedule the restart as a message to itself (so
//! the backoff never blocks its mailbox) or raise the alert for a child that gave up.

use super::Decision;
use crate::shared::Shared;
use crate::store::alerts::{NewAlert, Severity};
use ractor::ActorRef;
use std::sync::Arc;

pub fn react<M: ractor::Message>(
    myself: &ActorRef<M>,
    shared: &Arc<Shared>,
    supervisor: &str,
    decision: Decision,
    restart: fn(String) -> M,
) {
    match decision {
        Decision::None => {}
        Decision::Restart { name, after } => {
            myself.send_after(after, move || restart(name));
        }
        Decision::GaveUp { name, error } => {
            shared.raise_alert(NewAlert {
                usuario_id: None,
                kind: "actor_failed".into(),
                severity: Severity::Critical,
                source: format!("{supervisor}/{name}"),
                message: format!("{name} failed too often and is no longer restarted"),
                details: serde_json::json!({ "child": name, "supervisor": supervisor, "last_error": error }),
            });
        }
    }
}
