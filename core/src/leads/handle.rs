//! The typed way into LeadSync ([`LeadSyncHandle`]), with its named timeouts and what can go
//! wrong ([`LeadSyncError`]).

use super::error::LeadSyncError;
use super::sync::LeadSyncMessage;
use crate::phone::NormalizedPhone;
use crate::supervision::{Slot, ask_slot};
use std::time::Duration;
use uuid::Uuid;

/// A merge rewrites every duplicate lead of a user, with their conversations and events, in
/// one transaction: for a large CRM that takes a while.
pub const MERGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Normalising a phone is pure computation in the actor.
pub const NORMALIZE_TIMEOUT: Duration = Duration::from_secs(2);

/// The LeadSync of one daemon, whichever incarnation runs now.
#[derive(Clone)]
pub struct LeadSyncHandle {
    slot: Slot<LeadSyncMessage>,
}

impl LeadSyncHandle {
    pub fn new(slot: Slot<LeadSyncMessage>) -> Self {
        LeadSyncHandle { slot }
    }

    /// Merges the user's leads whose phones are one number; how many leads were merged away.
    pub async fn merge_duplicates(&self, usuario_id: Uuid) -> Result<usize, LeadSyncError> {
        ask_slot(
            &self.slot,
            |reply| LeadSyncMessage::MergeDuplicates { usuario_id, reply },
            MERGE_TIMEOUT,
        )
        .await?
    }

    /// A phone number in E.164, national formats read in `region`.
    pub async fn normalize(
        &self,
        phone: String,
        region: Option<String>,
    ) -> Result<NormalizedPhone, LeadSyncError> {
        let normalized = ask_slot(
            &self.slot,
            |reply| LeadSyncMessage::Normalize {
                phone,
                region,
                reply,
            },
            NORMALIZE_TIMEOUT,
        )
        .await??;
        Ok(normalized)
    }
}
