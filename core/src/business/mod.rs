//! WhatsApp Business Cloud API numbers: the Graph client ([`graph`]) and what its
//! errors mean ([`classify`]), the BusinessNumber actor that owns one client per connected
//! phone_number_id ([`number`]), credential validation before a number is stored
//! ([`validate`]), webhook envelopes → inbound items ([`webhook`]) drained from the durable
//! inbox ([`inbox`]), templates ([`templates`]), sealed media files ([`media`]), the numbers'
//! throughput levels ([`throughput`]) and the rows of connected numbers ([`store`]). The
//! supervisor is `crate::business::supervisor`; the rest of the daemon calls it and its numbers
//! through [`handle`].

mod callback;
pub mod classify;
pub mod connect;
pub mod demo;
mod envelope;
pub mod error;
pub mod graph;
pub mod handle;
pub mod inbox;
pub mod media;
pub mod number;
mod send;
pub mod store;
pub mod subscription;
pub mod supervisor;
pub mod templates;
pub mod throughput;
pub mod validate;
pub mod webhook;

use crate::seal::SealError;
use crate::store::StoreError;

/// The SQL condition of a connected Business number's row in `configuracion_mensajeria_usuario`.
pub(crate) const ACTIVE: &str = "activo AND configuracion->>'tipo_conexion' = 'business'";

/// Errors of Business operations, for the actors and the HTTP routes that call them.
#[derive(Debug, thiserror::Error)]
pub enum BusinessError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored secret cannot be opened: {0}")]
    Seal(#[from] SealError),
    #[error("{0}")]
    Graph(#[from] graph::GraphError),
    /// Meta refuses the number's token; new credentials are needed (PATCH the number).
    #[error("the number needs new credentials: {0}")]
    NeedsCredentials(String),
    /// The request is not acceptable as given (explained for the user).
    #[error("{0}")]
    Invalid(String),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Io(String),
    /// The number's actor does not run (replaced, restarting or removed) or stopped meanwhile.
    #[error("the number's actor is not running")]
    NotRunning,
    /// The number's actor did not answer in time.
    #[error("the number did not answer within {0:?}")]
    TimedOut(std::time::Duration),
}

impl From<crate::media_store::MediaError> for BusinessError {
    fn from(e: crate::media_store::MediaError) -> Self {
        use crate::media_store::MediaError;
        match e {
            MediaError::Store(s) => BusinessError::Store(s),
            MediaError::Seal(s) => BusinessError::Seal(s),
            MediaError::Io(m) => BusinessError::Io(m),
        }
    }
}

impl From<tokio_postgres::Error> for BusinessError {
    fn from(e: tokio_postgres::Error) -> Self {
        BusinessError::Store(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for BusinessError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        BusinessError::Store(e.into())
    }
}

/// Where the Graph API is and how to reach it, from the daemon's settings.
#[derive(Debug, Clone)]
pub struct GraphSettings {
    pub base: String,
    pub version: String,
}
