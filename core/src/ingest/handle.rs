//! The typed way into Ingest ([`IngestHandle`]), with its named timeout; failures are
//! [`IngestError`].

use super::{InboundItem, IngestError, IngestMessage, IngestReport};
use crate::supervision::{Slot, ask_slot};
use std::time::Duration;

/// A batch waits for a free store connection (the mailbox is the back-pressure), then commits
/// in one transaction, retried whole after a deadlock.
pub const BATCH_TIMEOUT: Duration = Duration::from_secs(30);

/// The Ingest of one daemon, whichever incarnation runs now.
#[derive(Clone)]
pub struct IngestHandle {
    slot: Slot<IngestMessage>,
}

impl IngestHandle {
    pub fn new(slot: Slot<IngestMessage>) -> Self {
        IngestHandle { slot }
    }

    /// Stores the batch in one transaction; answers once it committed.
    pub async fn batch(&self, items: Vec<InboundItem>) -> Result<IngestReport, IngestError> {
        ask_slot(
            &self.slot,
            |reply| IngestMessage::Batch { items, reply },
            BATCH_TIMEOUT,
        )
        .await?
    }
}
