//! What can go wrong with event webhooks: [`HookError`] for the API's calls (each variant one
//! answer, mapped to HTTP in one place) and [`HookDispatcherError`] for calls to the actor.

use crate::hub::FilterError;
use crate::store::StoreError;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("webhook not found")]
    NotFound,
    /// The URL is not an http(s) URL the daemon can post to.
    #[error("url is not valid: {0}")]
    InvalidUrl(String),
    /// The URL points where the outbound-request guard refuses (a private address).
    #[error("{0}")]
    UrlNotAllowed(String),
    #[error("types: {0}")]
    InvalidTypes(#[from] FilterError),
    /// A custom header the daemon refuses (reserved, malformed, too many).
    #[error("{0}")]
    InvalidHeader(String),
    /// Another field out of its range (description, max_in_flight, overlap).
    #[error("{1}")]
    Invalid(&'static str, String),
    /// `replay?since=` names events the log no longer holds.
    #[error(
        "since={since} is no longer retained: the oldest event still stored is {first_available}; replay from since={} or later",
        first_available - 1
    )]
    SinceNotRetained { since: i64, first_available: i64 },
    #[error("since={since} is ahead of this user's newest event ({newest})")]
    SinceAhead { since: i64, newest: i64 },
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl From<tokio_postgres::Error> for HookError {
    fn from(e: tokio_postgres::Error) -> Self {
        HookError::Store(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for HookError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        HookError::Store(e.into())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HookDispatcherError {
    #[error("the webhook dispatcher is restarting")]
    NotRunning,
    #[error("the webhook dispatcher did not answer within {0:?}")]
    TimedOut(Duration),
}
crate::unanswered_into!(HookDispatcherError);
