//! The typed way into the Dispatcher ([`DispatcherHandle`]): recover expired leases now, and
//! what it holds, each with its named timeout; failures are [`DispatcherError`].

use super::dispatcher::{DispatcherMessage, DispatcherStats};
use super::error::DispatcherError;
use super::lease::Recovered;
use crate::supervision::{Slot, ask_slot};
use std::time::Duration;

/// A sweep returns every expired lease in one transaction and records the uncertain ones.
pub const SWEEP_TIMEOUT: Duration = Duration::from_secs(10);
/// Stats are counted from memory.
pub const STATS_TIMEOUT: Duration = Duration::from_secs(2);

/// The Dispatcher of one daemon, whichever incarnation runs now.
#[derive(Clone)]
pub struct DispatcherHandle {
    slot: Slot<DispatcherMessage>,
}

impl DispatcherHandle {
    pub fn new(slot: Slot<DispatcherMessage>) -> Self {
        DispatcherHandle { slot }
    }

    /// Recovers expired leases now; what came back.
    pub async fn sweep(&self) -> Result<Recovered, DispatcherError> {
        ask_slot(&self.slot, DispatcherMessage::Sweep, SWEEP_TIMEOUT).await?
    }

    /// What the Dispatcher holds now.
    pub async fn stats(&self) -> Result<DispatcherStats, DispatcherError> {
        Ok(ask_slot(&self.slot, DispatcherMessage::Stats, STATS_TIMEOUT).await?)
    }
}
