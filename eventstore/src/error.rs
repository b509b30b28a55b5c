//! Errors of the event store.

use thiserror::Error;
use uuid::Uuid;

/// What can go wrong talking to the store.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("no database connection available: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database error: {0}")]
    Database(#[from] tokio_postgres::Error),
    /// The database could not be reached, or the outcome of a write is unknown (the
    /// connection was lost); safe to retry with an idempotency key.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
    #[error("cannot serialize an event: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("invalid database configuration: {0}")]
    Config(String),
}

impl StoreError {
    /// What this failure means for the caller, by the one classification
    /// ([`crate::db_error`]): an unknown outcome is passing trouble (retry with the
    /// idempotency key); malformed stored data or a failed migration is not.
    pub fn failure(&self) -> crate::DbFailure {
        match self {
            StoreError::Pool(error) => crate::classify_pool(error),
            StoreError::Database(error) => crate::classify(error),
            StoreError::Unavailable(_) => crate::DbFailure::Transient,
            StoreError::Serialize(_) => crate::DbFailure::Data,
            StoreError::Corrupt(_) | StoreError::Migration(_) | StoreError::Config(_) => {
                crate::DbFailure::Other
            }
        }
    }
}

/// Why an append did not happen. Nothing was written in every case.
#[derive(Debug, Error)]
pub enum AppendError {
    /// Another writer appended to this stream since it was loaded.
    #[error("a stream was changed concurrently ({stream_id:?})")]
    Conflict { stream_id: Option<Uuid> },
    /// A unique value (such as a SKU) is already claimed by another stream.
    #[error("{scope} {value:?} is already taken")]
    ClaimTaken { scope: String, value: String },
    /// The idempotency key was recorded by a concurrent request.
    #[error("idempotency key already recorded")]
    IdempotencyKeyTaken,
    /// The append asked for nothing, or for something inconsistent.
    #[error("invalid append: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<tokio_postgres::Error> for AppendError {
    fn from(error: tokio_postgres::Error) -> Self {
        AppendError::Store(StoreError::Database(error))
    }
}

impl From<deadpool_postgres::PoolError> for AppendError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        AppendError::Store(StoreError::Pool(error))
    }
}
