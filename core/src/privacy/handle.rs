//! The typed way into the Retention actor ([`RetentionHandle`]) with its named timeout.

use super::retention::Purged;
use super::retention_actor::{RetentionError, RetentionMessage};
use crate::supervision::{Slot, ask_slot};
use std::time::Duration;

/// A whole pass deletes in batches until nothing is left past retention: after a long outage
/// or a lowered retention that is many batches.
pub const PURGE_TIMEOUT: Duration = Duration::from_secs(120);

/// The Retention actor of one daemon, whichever incarnation runs now.
#[derive(Clone)]
pub struct RetentionHandle {
    slot: Slot<RetentionMessage>,
}

impl RetentionHandle {
    pub fn new(slot: Slot<RetentionMessage>) -> Self {
        RetentionHandle { slot }
    }

    /// Purges everything past retention now; what was purged.
    pub async fn purge_now(&self) -> Result<Purged, RetentionError> {
        ask_slot(&self.slot, RetentionMessage::PurgeNow, PURGE_TIMEOUT).await?
    }
}
