//! The actors of sincro-whatsapp and what they own: the supervision tree
//! ([`supervision`], [`daemon`]), the PostgreSQL store ([`store`]), sealing at rest ([`seal`])
//! and phone normalisation ([`phone`]).

pub mod alerts;
pub mod business;
pub mod connection;
pub mod crm;
pub mod daemon;
pub mod digest;
pub mod hooks;
pub mod hub;
pub mod ingest;
pub mod leads;
pub mod lite;
pub mod media_store;
pub mod net_guard;
pub mod nodes;
pub mod outbound;
pub mod phone;
pub mod privacy;
pub mod private_fs;
pub mod rate_limiter;
pub mod seal;
pub mod secret;
pub mod settings;
pub mod shared;
pub mod store;
pub mod supervision;
pub mod telemetry;

pub use daemon::{Actors, start_tree};
pub use settings::ActorSettings;
pub use shared::Shared;
