//! The store's error.

use crate::domain::{Refusal, ViewError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (disk, database); its own words.
    #[error("{backend}: {detail}")]
    Backend {
        backend: &'static str,
        detail: String,
    },
    #[error("{0}")]
    Codec(#[from] super::codec::CodecError),
    #[error("writing: {0}")]
    Io(#[from] std::io::Error),
    #[error("store is shutting down")]
    Closed,
}

impl From<StoreError> for ViewError {
    fn from(e: StoreError) -> Self {
        ViewError(e.to_string())
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::store(e.to_string())
    }
}
