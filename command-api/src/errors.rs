//! How domain and store errors become problem+json answers.

use domain::DomainError;
use eventstore::{AppendError, StoreError};
use platform::Problem;

/// A business rule refused the command: 404 for a missing target, else 422 with its code.
pub fn domain_problem(error: DomainError) -> Problem {
    match error {
        DomainError::NotFound { .. } => Problem::not_found(error.to_string()),
        DomainError::AlreadyExists { .. } => Problem::new(
            actix_web::http::StatusCode::CONFLICT,
            "conflict",
            error.to_string(),
        ),
        other => Problem::unprocessable(other.code(), other.to_string()),
    }
}

/// The store failed: a passing outage is 503 with `Retry-After`; the rest is logged.
pub fn store_problem(error: StoreError) -> Problem {
    match error {
        StoreError::Pool(_) | StoreError::Database(_) | StoreError::Unavailable(_) => {
            tracing::error!(%error, "event store unavailable");
            Problem::unavailable(
                "unavailable",
                "the event store is unavailable; retry shortly",
                1,
            )
        }
        other => Problem::internal(other),
    }
}

/// An append error not handled by the retry loop.
pub fn append_problem(error: AppendError) -> Problem {
    match error {
        AppendError::Store(store) => store_problem(store),
        other => Problem::internal(other),
    }
}
