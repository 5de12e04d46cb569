//! Event webhooks (docs/ARCHITECTURE.md §4, Event webhooks): every stream event of a user,
//! of the types an endpoint asks for, POSTed to that endpoint, signed, retried, in seq order,
//! from the durable event log and never from memory.
//!
//! An endpoint is a row of `event_webhooks` with a cursor (the last seq acknowledged). The
//! [`dispatcher::HookDispatcher`] of every node runs one [`lane`] per endpoint whose lease it
//! holds ([`cursor::take_lease`]): the lane reads the user's events after the cursor, sends each
//! one ([`send`]), and moves the cursor in the same statement that records the attempt and
//! renews the lease, so a restart, a `kill -9` or a node failover resumes where it stopped and
//! repeats at most the deliveries that were in flight (an endpoint taking several at once: also
//! the round whose record was still committing), with the same delivery id
//! ([`sign::delivery_id`]). One lane per endpoint: a slow or dead endpoint only holds up its
//! own lane, never another endpoint or the WebSocket stream.
//!
//! Files: [`manage`] (what the HTTP routes call), [`store`] (the endpoint rows), [`cursor`]
//! (the lanes' statements), [`progress`] (the lanes' rounds, several to a commit), [`sign`]
//! (secrets, signatures, delivery ids), [`send`] (one attempt and its classification),
//! [`lane`], [`dispatcher`], [`handle`], [`alert`].

pub mod alert;
pub mod cursor;
pub mod dispatcher;
pub mod error;
pub mod handle;
pub mod lane;
pub mod manage;
pub mod progress;
pub mod send;
pub mod sign;
pub mod store;

pub use error::{HookDispatcherError, HookError};

use crate::net_guard::AllowList;
use std::time::Duration;

/// How event webhooks are delivered (`WEBHOOK_*` variables).
#[derive(Debug, Clone)]
pub struct HooksSettings {
    /// Addresses and names endpoint URLs may point to although they are not public
    /// (`WEBHOOK_URL_ALLOW`, the syntax of `MEDIA_FETCH_ALLOW`).
    pub allow: AllowList,
    /// First retry delay; doubles per failed attempt, with jitter, up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// An endpoint failing for this long without one success is disabled (and alerted).
    pub disable_after: Duration,
    /// How long one delivery may take (connect, send, answer).
    pub timeout: Duration,
    /// How long a node's lease on an endpoint lasts unless renewed.
    pub lease: Duration,
    /// Safety-net poll of an idle lane (LISTEN/NOTIFY wakes it at once).
    pub poll: Duration,
    /// How long the previous secret still signs after a rotation, unless the call says.
    pub rotation_overlap: Duration,
}

impl Default for HooksSettings {
    fn default() -> Self {
        HooksSettings {
            allow: AllowList::default(),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(3600),
            disable_after: Duration::from_secs(3 * 24 * 3600),
            timeout: Duration::from_secs(10),
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(5),
            rotation_overlap: Duration::from_secs(24 * 3600),
        }
    }
}
