//! The CRM's side of the contract: the original data model's fields kept in step with ours
//! (`sync.rs`), the per-connection settings the CRM writes (`settings.rs`), where a lead came
//! from (`source.rs`), a contact changing number (`identity.rs`), automatic replies
//! (`auto_reply.rs`, its business hours in `hours.rs`, what is queued after commit in
//! `reply.rs`), and what ingest calls after storing a
//! batch's messages (`after_ingest.rs`, the one place the inbound path reaches this feature).

pub mod after_ingest;
pub mod auto_reply;
pub mod hours;
pub mod identity;
pub mod reply;
pub mod settings;
pub mod source;
pub mod sync;
