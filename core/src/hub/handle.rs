//! The typed way into the Hub ([`HubHandle`]): subscribe a connection, purge, stats, each with
//! its named timeout; failures are [`HubError`].

use super::{HubError, HubMessage, HubStats, Subscription};
use crate::supervision::{Slot, ask, ask_slot};
use ractor::ActorRef;
use std::time::Duration;
use uuid::Uuid;

/// Subscribing is answered from the Hub's memory; a Hub that takes longer is busy or
/// restarting, and the connection asks again (within its own wait).
pub const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// A purge deletes every event past retention in one statement.
pub const PURGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Stats are counted from memory.
pub const STATS_TIMEOUT: Duration = Duration::from_secs(2);

crate::unanswered_into!(HubError);

/// The Hub of one daemon, whichever incarnation runs now.
#[derive(Clone)]
pub struct HubHandle {
    slot: Slot<HubMessage>,
}

/// A subscription the Hub took: the incarnation that holds it and its id there.
pub struct HubSubscriber {
    hub: ActorRef<HubMessage>,
    id: u64,
    usuario_id: Uuid,
}

impl HubSubscriber {
    /// Tells the Hub the connection is gone (nothing if that incarnation has stopped: its
    /// subscriptions went with it).
    pub fn unsubscribe(&self) {
        let _ = self.hub.cast(HubMessage::Unsubscribe {
            usuario_id: self.usuario_id,
            id: self.id,
        });
    }
}

impl HubHandle {
    pub fn new(slot: Slot<HubMessage>) -> Self {
        HubHandle { slot }
    }

    /// Whether a Hub runs now.
    pub fn is_running(&self) -> bool {
        self.slot.get().is_some()
    }

    /// Feeds the user's live events into the subscription's channel.
    pub async fn subscribe(&self, subscription: Subscription) -> Result<HubSubscriber, HubError> {
        let hub = self.slot.get().ok_or(HubError::NotRunning)?;
        let usuario_id = subscription.usuario_id;
        let id = ask(
            &hub,
            |reply| HubMessage::Subscribe {
                subscription,
                reply,
            },
            SUBSCRIBE_TIMEOUT,
        )
        .await?;
        Ok(HubSubscriber {
            hub,
            id,
            usuario_id,
        })
    }

    /// Deletes events past retention now; how many.
    pub async fn purge(&self) -> Result<u64, HubError> {
        ask_slot(
            &self.slot,
            |reply| HubMessage::Purge(Some(reply)),
            PURGE_TIMEOUT,
        )
        .await?
    }

    /// How many users and subscribers the Hub serves.
    pub async fn stats(&self) -> Result<HubStats, HubError> {
        Ok(ask_slot(&self.slot, HubMessage::Stats, STATS_TIMEOUT).await?)
    }
}
