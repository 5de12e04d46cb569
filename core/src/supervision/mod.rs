//! The supervision tree (docs/ARCHITECTURE.md §1):
//!
//! ```text
//! Daemon (root supervisor)                       daemon.rs
//! ├── Membership (heartbeat, leases, control)    nodes/
//! ├── RateLimiter                                rate_limiter/
//! ├── LeadSync                                   leads/sync.rs
//! ├── Hub                                        hub/
//! ├── Ingest                                     ingest/
//! ├── Retention                                  privacy/retention_actor.rs
//! ├── BusinessSupervisor ── BusinessNumber × M   business/supervisor.rs
//! ├── LiteSupervisor ────── LiteSession × N      lite/supervisor.rs
//! └── Dispatcher                                 outbound/dispatcher.rs
//! ```
//!
//! Every actor implements ractor's `Actor` trait, so their `pre_start`/`handle`/`post_stop`
//! signatures and the supervisors' `Status`/`Restart` arms read alike: the trait's shape, with the
//! shared bookkeeping itself in [`children`].
//!
//! Every child is linked to its supervisor when spawned (in the supervisor's `pre_start` or
//! when it is added). A failed child (panic or error in a handler, or an unexpected stop) is
//! restarted after an exponential backoff with jitter ([`policy`]); one that fails more than
//! `max_failures` times within `window` is marked FAILED, is not restarted, and an alert row is
//! written. Supervisors track children by actor id ([`children`]), never by a global name, so
//! several daemons can share one process. `GET /v1/status` renders [`status::StatusNode`]s.
//! Shutdown stops children last-started-first, each supervisor stopping its own children before
//! it stops itself, within a deadline; whatever is still running then is reported.

pub mod call;
pub mod children;
pub mod policy;
pub mod react;
pub mod slot;
pub mod status;

pub use call::{Unanswered, ask, ask_slot};
pub use children::{ChildSpec, Children, Decision, Supervised};
pub use policy::RestartPolicy;
pub use react::react;
pub use slot::Slot;
pub use status::{ChildState, StatusNode};

/// Implements [`Supervised`] for an actor message enum with a `Panic` variant (and, with
/// `status`, a `Status(RpcReplyPort<Vec<StatusNode>>)` variant).
#[macro_export]
macro_rules! supervised_message {
    ($msg:ident) => {
        impl $crate::supervision::Supervised for $msg {
            fn panic_message() -> Self {
                $msg::Panic
            }
        }
    };
    ($msg:ident, status) => {
        impl $crate::supervision::Supervised for $msg {
            fn panic_message() -> Self {
                $msg::Panic
            }
            fn status_message(
                reply: ractor::RpcReplyPort<Vec<$crate::supervision::StatusNode>>,
            ) -> Option<Self> {
                Some($msg::Status(reply))
            }
        }
    };
}
