//! Leads: the CRM's contacts. The store functions that find, create and merge a user's leads by
//! WhatsApp's conventions for numbers ([`store`]; ingest calls them inside its own batch
//! transaction) and the LeadSync actor serving the API's normalise and merge requests
//! ([`sync`]), called through [`handle`]. The API's reads of a user's leads are [`query`].

pub mod error;
pub mod handle;
pub mod query;
pub mod store;
pub mod sync;
