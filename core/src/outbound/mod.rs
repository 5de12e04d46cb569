//! The durable outbound queue (docs/ARCHITECTURE.md §4, Outbound). PostgreSQL's `outbox`
//! table is the queue: the API writes a message and its outbox row in one transaction
//! ([`enqueue`]), the Dispatcher claims due rows per connection under an expiring lease
//! ([`claim`], [`lease`]), takes a RateLimiter permit, marks the attempt in flight
//! ([`inflight`]), hands the message to the connection actor and records the outcome
//! ([`record`]): sent with its external id, retried with jittered exponential backoff
//! ([`backoff`]), failed (dead letter), or uncertain when the provider may have accepted it.
//! Each connection has its own [`lane`], so one user's backlog never delays another's messages
//! ([`fairness`]). Request validation is [`validate`]; the whole of `POST /v1/messages` (the
//! provider's rules included) is [`submit`], which `POST /v1/messages/batch` ([`batch`])
//! shares; per-connection limits and pacing are
//! [`settings`]. The Dispatcher is called through [`handle`].

pub mod backoff;
pub mod batch;
pub mod claim;
pub mod depth;
pub mod dispatcher;
pub mod enqueue;
pub mod error;
pub mod fairness;
pub mod handle;
pub mod inflight;
pub mod lane;
pub mod lease;
pub mod listen;
pub mod query;
pub mod record;
pub mod settings;
pub mod submit;
pub mod validate;

pub use settings::{ConnectionLimits, OutboundSettings};

/// The LISTEN/NOTIFY channel that wakes Dispatchers; the payload is the connection id.
pub const CHANNEL: &str = "sincro_outbox";

/// `priority` column values.
pub const PRIORITY_HIGH: i16 = 0;
pub const PRIORITY_NORMAL: i16 = 1;
pub const PRIORITY_BULK: i16 = 2;

/// The API name of a priority column value.
pub fn priority_name(p: i16) -> &'static str {
    match p {
        PRIORITY_HIGH => "high",
        PRIORITY_BULK => "bulk",
        _ => "normal",
    }
}
