//! What can go wrong asking the Business actors: [`BusinessSupervisorError`]; a number's own
//! calls answer [`BusinessError`](super::BusinessError). Apart from the handles, so the actors
//! that reply with them do not depend on the handles that call them.

use super::BusinessError;
use std::time::Duration;

/// What went wrong asking the BusinessSupervisor.
#[derive(Debug, thiserror::Error)]
pub enum BusinessSupervisorError {
    #[error("the business supervisor is restarting")]
    NotRunning,
    #[error("the business supervisor did not answer within {0:?}")]
    TimedOut(Duration),
    /// The number's actor does not run here now (being replaced, restarting, or removed).
    #[error("this number's actor is not running right now")]
    NumberNotRunning,
    /// The number's actor could not be spawned.
    #[error("the number's actor could not start: {0}")]
    Spawn(String),
}
crate::unanswered_into!(BusinessSupervisorError);
crate::unanswered_into!(BusinessError);
