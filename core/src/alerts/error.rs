//! What the alert API's calls refuse.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// No alert with that id that the caller may see.
    #[error("alert not found")]
    NotFound,
    #[error("{0}")]
    Store(#[from] StoreError),
}
