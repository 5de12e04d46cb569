//! The typed way into the RateLimiter ([`RateLimiterHandle`]): API permits and send slots,
//! each with its named timeout; what can go wrong is [`RateLimiterError`].

use super::{Permit, RateLimiterMessage, SendLimit};
use crate::supervision::{Slot, ask_slot};
use std::net::IpAddr;
use std::time::Duration;
use uuid::Uuid;

/// Every API request waits on this answer, computed from memory: a limiter slower than this
/// is stuck, and the API lets the request through rather than hold every request behind it.
pub const API_TIMEOUT: Duration = Duration::from_secs(2);
/// Send slots are computed from memory; a lane that gets none in time puts its messages back
/// and asks again shortly.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// What went wrong asking the RateLimiter, or its refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateLimiterError {
    #[error("the rate limiter is restarting")]
    NotRunning,
    #[error("the rate limiter did not answer within {0:?}")]
    TimedOut(Duration),
    /// The user's or the client IP's request bucket is empty.
    #[error("too many requests; retry after {retry_after:?}")]
    Limited { retry_after: Duration },
}
crate::unanswered_into!(RateLimiterError);

/// The RateLimiter of one daemon, whichever incarnation runs now.
#[derive(Clone)]
pub struct RateLimiterHandle {
    slot: Slot<RateLimiterMessage>,
}

impl RateLimiterHandle {
    pub fn new(slot: Slot<RateLimiterMessage>) -> Self {
        RateLimiterHandle { slot }
    }

    /// Takes one API request permit for the user and for the client IP.
    pub async fn check_api(
        &self,
        user: Option<Uuid>,
        ip: Option<IpAddr>,
    ) -> Result<(), RateLimiterError> {
        ask_slot(
            &self.slot,
            |reply| RateLimiterMessage::CheckApi { user, ip, reply },
            API_TIMEOUT,
        )
        .await?
        .map_err(|retry_after| RateLimiterError::Limited { retry_after })
    }

    /// Takes send slots for messages of one connection to `recipients`, one permit each.
    pub async fn acquire_send(
        &self,
        connection: Uuid,
        limit: SendLimit,
        recipients: Vec<String>,
    ) -> Result<Vec<Permit>, RateLimiterError> {
        Ok(ask_slot(
            &self.slot,
            |reply| RateLimiterMessage::AcquireSend {
                connection,
                limit,
                recipients,
                reply,
            },
            SEND_TIMEOUT,
        )
        .await?)
    }
}
