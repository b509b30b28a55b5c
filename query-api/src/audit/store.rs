//! The event store as the audit endpoints see it: a pool of **read-only** sessions, the
//! pages of one stream, and store failures as problem+json answers.
//!
//! Every session of the audit pool starts with `default_transaction_read_only = on` (sent
//! as a startup option, so it costs no round trip and holds before the first statement):
//! any `INSERT`, `UPDATE`, `DELETE` or DDL through it fails with SQLSTATE 25006
//! (`read_only_sql_transaction`). This guards against mistakes in this service; it is not
//! a security boundary (a session may lower the setting again), so operators who want one
//! give the query API a database role with `SELECT` on `events` only.

use deadpool_postgres::Pool;
use eventstore::row::{decode_event, EVENT_COLUMNS};
use eventstore::{Connector, RecordedEvent, StoreError};
use platform::Problem;
use uuid::Uuid;

/// What the audit sessions call themselves in `pg_stat_activity` unless the URL names one.
const APPLICATION_NAME: &str = "agora-query-api-audit";

/// A pool of at most `max_size` read-only sessions to the event store (the shared
/// connector's bounds, with `default_transaction_read_only` enforced after the URL's own
/// options, so the URL cannot turn it off).
pub fn connect_read_only(database_url: &str, max_size: usize) -> anyhow::Result<Pool> {
    Ok(Connector::new(database_url)?
        .read_only()
        .application_name(APPLICATION_NAME)
        .pool(max_size)?)
}

/// A failed event-store call, as the one classification says: unreachable or overloaded
/// is 503 (with `Retry-After`), a refused value 400, anything else 500 (logged).
pub fn store_error(error: StoreError) -> Problem {
    Problem::database(
        error.failure(),
        &error,
        "database_unavailable",
        "the event store cannot be reached; retry shortly",
    )
}

/// Up to `limit` events of `stream_id` with a version above `after_version`, in version
/// order, without their sequence numbers.
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
