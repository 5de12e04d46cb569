//! Personal data as LGPD and GDPR ask of it: a contact's consent (opt-out keywords, opt-ins
//! and opt-outs recorded with their source, and the check that refuses bulk and marketing
//! sends to an opted-out contact: [`consent`]); finding everything of one contact of a user
//! ([`contact`]); the export of it as a zip streamed to the client ([`export`], [`zip`]);
//! its erasure, and the erasure of a whole user ([`erase`], [`erase_user`], with the inbox's
//! webhook bodies rewritten by [`inbox_scrub`]); retention, purged by the Retention actor in
//! small batches ([`retention`], [`retention_actor`], [`handle`]); and re-sealing every sealed
//! value and media file under the current key so an old key can be retired ([`reseal`]).

pub mod consent;
pub mod contact;
pub mod erase;
pub mod erase_user;
pub mod export;
pub mod handle;
pub mod inbox_scrub;
pub mod reseal;
pub mod retention;
pub mod retention_actor;
pub mod zip;

use crate::store::StoreError;
use std::time::Duration;

/// The privacy settings (`OPT_OUT_KEYWORDS`, `RETENTION_DAYS`, `INBOX_RETENTION_DAYS`,
/// `AUDIT_RETENTION_DAYS`, `RETENTION_INTERVAL_SECS`).
#[derive(Debug, Clone)]
pub struct PrivacySettings {
    /// Whole-message keywords that opt a contact out.
    pub opt_out_keywords: consent::Keywords,
    /// Days a user's messages and media are kept when the user set none (None: kept).
    pub retention_days: Option<u32>,
    /// Days drained webhook inbox rows and dead letters are kept (None: kept).
    pub inbox_retention_days: Option<u32>,
    /// Days audit rows are kept (None: kept).
    pub audit_retention_days: Option<u32>,
    /// How often the Retention actor looks for rows past retention.
    pub retention_interval: Duration,
    /// Rows deleted per statement: short transactions, so a purge never holds long locks.
    pub retention_batch: i64,
}

impl Default for PrivacySettings {
    fn default() -> Self {
        PrivacySettings {
            opt_out_keywords: consent::Keywords::default(),
            retention_days: None,
            inbox_retention_days: None,
            audit_retention_days: None,
            retention_interval: Duration::from_secs(3600),
            retention_batch: 500,
        }
    }
}

/// Why a privacy request failed.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    /// The contact's number does not read as one.
    #[error("not a phone number or WhatsApp id: {0}")]
    InvalidContact(String),
    /// Nothing of this contact is stored for the user.
    #[error("contact not found")]
    ContactNotFound,
    #[error("user not found")]
    UserNotFound,
    #[error("lead not found")]
    LeadNotFound,
    /// A request field is wrong (the message says which).
    #[error("{1}")]
    Invalid(&'static str, String),
    /// A sealed value or media file could not be opened or written.
    #[error("{0}")]
    Files(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<tokio_postgres::Error> for PrivacyError {
    fn from(e: tokio_postgres::Error) -> Self {
        PrivacyError::Store(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for PrivacyError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        PrivacyError::Store(e.into())
    }
}
