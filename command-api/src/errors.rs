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

/// The store failed, as the one classification says: a passing outage is 503 with
/// `Retry-After`, a value the database refused is 400, the rest is a logged 500.
pub fn store_problem(error: StoreError) -> Problem {
    Problem::database(
        error.failure(),
        &error,
        "unavailable",
        "the event store is unavailable; retry shortly",
    )
}

/// An append error not handled by the retry loop.
pub fn append_problem(error: AppendError) -> Problem {
    match error {
        AppendError::Store(store) => store_problem(store),
        other => Problem::internal(other),
    }
}
