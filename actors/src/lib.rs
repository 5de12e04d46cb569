//! The actors of sincro-whatsapp and what they own: the supervision tree
//! ([`supervision`], [`daemon`]), the PostgreSQL store ([`store`]), sealing at rest ([`seal`])
//! and phone normalisation ([`phone`]).

pub mod business;
pub mod business_supervisor;
pub mod connection;
pub mod daemon;
pub mod dispatcher;
pub mod hub;
pub mod ingest;
pub mod lead_sync;
pub mod lite;
pub mod lite_supervisor;
pub mod membership;
pub mod net_guard;
pub mod outbound;
pub mod ownership;
pub mod phone;
pub mod private_fs;
pub mod rate_limiter;
pub mod seal;
pub mod secret;
pub mod shared;
pub mod store;
pub mod supervision;

pub use daemon::{Actors, start_tree};
pub use shared::{ActorSettings, Shared};
