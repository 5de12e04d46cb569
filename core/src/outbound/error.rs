//! What can go wrong asking the Dispatcher ([`DispatcherError`]). Apart from the handle, so the
//! actor that replies with it does not depend on the handle that calls it.

use crate::store::StoreError;
use std::time::Duration;

/// What went wrong asking the Dispatcher.
#[derive(Debug, thiserror::Error)]
pub enum DispatcherError {
    #[error("the dispatcher is restarting")]
    NotRunning,
    #[error("the dispatcher did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}
crate::unanswered_into!(DispatcherError);
