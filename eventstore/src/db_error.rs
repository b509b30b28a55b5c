//! The one classification of database errors, shared by every service: what a failed
//! statement or pool checkout means for the caller.
//!
//! - [`DbFailure::Transient`]: the database cannot be reached, is shutting down, starting
//!   up, out of connections, or the statement lost a race (serialization failure,
//!   deadlock, lock timeout, statement timeout) or the pool had no connection in time.
//!   Safe to retry; an HTTP answer is 503 with `Retry-After`.
//! - [`DbFailure::Data`]: the database refused a value (SQLSTATE class 22, data exception:
//!   NUL in text, a number out of range, bad encoding; class 54, a value beyond a limit).
//!   The input was bad: 400, never 5xx.
//! - [`DbFailure::Other`]: anything else is a bug or a misconfiguration: 500 with a
//!   generic body, the cause logged.

use deadpool_postgres::PoolError;

/// What a database error means for the caller (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFailure {
    /// Passing trouble: retry (503 with `Retry-After`).
    Transient,
    /// The database refused a value the caller sent (400).
    Data,
    /// A bug or misconfiguration (500, logged).
    Other,
}

/// SQLSTATE classes of passing trouble: connection exceptions (08), transaction rollback
/// (40: serialization failure, deadlock), insufficient resources (53), operator
/// intervention (57: shutdown, statement timeout, cancel), system errors (58: I/O).
const TRANSIENT_CLASSES: [&str; 5] = ["08", "40", "53", "57", "58"];

/// SQLSTATE classes of refused values: data exception (22), program limit exceeded (54).
const DATA_CLASSES: [&str; 2] = ["22", "54"];

/// `55P03`: a lock could not be taken within `lock_timeout`.
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// Classifies a failed statement.
pub fn classify(error: &tokio_postgres::Error) -> DbFailure {
    if error.is_closed() {
        return DbFailure::Transient;
    }
    if let Some(code) = error.code() {
        return classify_sqlstate(code.code());
    }
    // No SQLSTATE: the connection failed (I/O, TLS, a timeout while connecting).
    DbFailure::Transient
}

/// Classifies a SQLSTATE code (five characters).
pub fn classify_sqlstate(code: &str) -> DbFailure {
    let class = code.get(..2).unwrap_or_default();
    if TRANSIENT_CLASSES.contains(&class) || code == LOCK_NOT_AVAILABLE {
        DbFailure::Transient
    } else if DATA_CLASSES.contains(&class) {
        DbFailure::Data
    } else {
        DbFailure::Other
    }
}

/// Classifies a failed pool checkout: no connection in time, a closed pool, or the
/// database refusing or failing a new connection (down, not accepting connections, out
/// of slots) are passing; a failing set-up hook is not.
pub fn classify_pool(error: &PoolError) -> DbFailure {
    match error {
        // Connecting failed: whatever the server said, the caller can only retry.
        PoolError::Backend(_) => DbFailure::Transient,
        PoolError::Timeout(_) | PoolError::Closed => DbFailure::Transient,
        PoolError::NoRuntimeSpecified | PoolError::PostCreateHook(_) => DbFailure::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_fall_in_their_class() {
        for transient in [
            "08006", "40001", "40P01", "53300", "57P01", "57014", "58030", "55P03",
        ] {
            assert_eq!(
                classify_sqlstate(transient),
                DbFailure::Transient,
                "{transient}"
            );
        }
        for data in ["22021", "22P05", "22003", "22P02", "54000"] {
            assert_eq!(classify_sqlstate(data), DbFailure::Data, "{data}");
        }
        for other in ["42P01", "23505", "42501", "XX000", ""] {
            assert_eq!(classify_sqlstate(other), DbFailure::Other, "{other}");
        }
    }
}
