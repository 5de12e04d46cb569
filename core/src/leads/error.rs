//! What can go wrong asking LeadSync ([`LeadSyncError`]). Apart from the handle, so the actor
//! that replies with it does not depend on the handle that calls it.

use crate::phone::PhoneError;
use crate::store::StoreError;
use std::time::Duration;

/// What went wrong asking LeadSync.
#[derive(Debug, thiserror::Error)]
pub enum LeadSyncError {
    #[error("lead sync is restarting")]
    NotRunning,
    #[error("lead sync did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The phone number cannot be read as one.
    #[error("{0}")]
    Phone(#[from] PhoneError),
}
crate::unanswered_into!(LeadSyncError);
