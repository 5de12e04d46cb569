//! The typed way into the HookDispatcher ([`HookDispatcherHandle`]), with its named timeout;
//! failures are [`HookDispatcherError`].

use super::HookDispatcherError;
use super::dispatcher::{HookDispatcherMessage, HookDispatcherStats};
use crate::supervision::{Slot, ask_slot};
use std::time::Duration;

/// Stats are counted from memory.
pub const STATS_TIMEOUT: Duration = Duration::from_secs(2);

/// The HookDispatcher of one daemon, whichever incarnation runs now.
#[derive(Clone)]
pub struct HookDispatcherHandle {
    slot: Slot<HookDispatcherMessage>,
}

impl HookDispatcherHandle {
    pub fn new(slot: Slot<HookDispatcherMessage>) -> Self {
        HookDispatcherHandle { slot }
    }

    /// The lanes running now.
    pub async fn stats(&self) -> Result<HookDispatcherStats, HookDispatcherError> {
        Ok(ask_slot(&self.slot, HookDispatcherMessage::Stats, STATS_TIMEOUT).await?)
    }
}
