//! The event store as the audit endpoints see it: a pool of **read-only** sessions, the
//! pages of one stream, and store failures as problem+json answers.
//!
//! Every session of the audit pool starts with `default_transaction_read_only = on` (sent
//! as a startup option, so it costs no round trip and holds before the first statement):
//! any `INSERT`, `UPDATE`, `DELETE` or DDL through it fails with SQLSTATE 25006
//! (`read_only_sql_transaction`). This guards against mistakes in this service; it is not
//! a security boundary (a session may lower the setting again), so operators who want one
//! give the query API a database role with `SELECT` on `events` only.

use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod};
use eventstore::row::{decode_event, EVENT_COLUMNS};
use eventstore::{RecordedEvent, StoreError};
use platform::Problem;
use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::db;

/// The startup option that makes every transaction of a session read-only.
pub const READ_ONLY_OPTION: &str = "-c default_transaction_read_only=on";

/// What the audit sessions call themselves in `pg_stat_activity` unless the URL names one.
const APPLICATION_NAME: &str = "agora-query-api-audit";

/// Seconds a client should wait before retrying when the event store is unreachable.
const RETRY_AFTER_SECONDS: u64 = 1;

/// The connection settings of `database_url` with [`READ_ONLY_OPTION`] added after any
/// `options` the URL already has (the last `-c` of a setting wins, so the URL cannot turn
/// it off).
pub fn read_only_config(database_url: &str) -> anyhow::Result<tokio_postgres::Config> {
    let mut config = tokio_postgres::Config::from_str(database_url)
        .map_err(|error| anyhow::anyhow!("DATABASE_URL is not a valid connection URL: {error}"))?;
    let options = match config.get_options().map(str::trim) {
        Some(existing) if !existing.is_empty() => format!("{existing} {READ_ONLY_OPTION}"),
        _ => READ_ONLY_OPTION.to_owned(),
    };
    config.options(&options);
    if config.get_application_name().is_none() {
        config.application_name(APPLICATION_NAME);
    }
    Ok(config)
}

/// A pool of at most `max_size` read-only sessions to the event store.
pub fn connect_read_only(database_url: &str, max_size: usize) -> anyhow::Result<Pool> {
    let manager = Manager::from_config(
        read_only_config(database_url)?,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager).max_size(max_size).build()?)
}

/// A failed event-store call: unreachable or overloaded is 503 (with `Retry-After`),
/// anything else 500 with the details in the log.
pub fn store_error(error: StoreError) -> Problem {
    match error {
        StoreError::Pool(PoolError::Backend(error)) | StoreError::Database(error)
            if db::is_transient(&error) =>
        {
            unavailable(&error)
        }
        StoreError::Pool(error @ PoolError::Timeout(_)) => unavailable(&error),
        other => Problem::internal(format!("event store: {other}")),
    }
}

fn unavailable(error: &dyn std::fmt::Display) -> Problem {
    tracing::warn!(%error, "event store unavailable");
    Problem::unavailable(
        "database_unavailable",
        "the event store cannot be reached; retry shortly",
        RETRY_AFTER_SECONDS,
    )
}

/// Up to `limit` events of `stream_id` with a version above `after_version`, in version
/// order.
///
/// `EventStore::load_stream` loads a whole stream at once, and a product's stream grows
/// with every order placed for it, so the audit endpoints read streams page by page.
/// A stream's visible versions are always a prefix (a writer of version v + 1 read
/// version v committed), so pages by version neither skip nor repeat.
pub async fn stream_page(
    pool: &Pool,
    stream_id: Uuid,
    after_version: i64,
    limit: i64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND version > $2 \
             ORDER BY version LIMIT $3"
        ))
        .await?;
    let rows = client
        .query(&statement, &[&stream_id, &after_version, &limit])
        .await?;
    rows.iter().map(decode_event).collect()
}

/// Up to `limit` events with a `sequence` above `after_sequence`, in sequence order. The
/// sequence is dense and assigned in log order, so pages by sequence never skip an event.
pub async fn sequence_page(
    pool: &Pool,
    after_sequence: i64,
    limit: i64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE sequence > $1 ORDER BY sequence LIMIT $2"
        ))
        .await?;
    let rows = client.query(&statement, &[&after_sequence, &limit]).await?;
    rows.iter().map(decode_event).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_only_option_is_added_last() {
        let plain = read_only_config("postgres://u@localhost:5432/agora").unwrap();
        assert_eq!(plain.get_options(), Some(READ_ONLY_OPTION));
        assert_eq!(plain.get_application_name(), Some(APPLICATION_NAME));

        let url = "postgres://u@localhost/agora?options=-c%20default_transaction_read_only%3Doff\
                   &application_name=auditor";
        let overridden = read_only_config(url).unwrap();
        assert_eq!(
            overridden.get_options(),
            Some("-c default_transaction_read_only=off -c default_transaction_read_only=on")
        );
        assert_eq!(overridden.get_application_name(), Some("auditor"));

        assert!(read_only_config("not a url at all =").is_err());
    }
}
