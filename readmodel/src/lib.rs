//! Agora's read-model schema, shared by the projector (which writes it) and the query API
//! (which reads its views): versioned migrations on `READ_DATABASE_URL`, with their own
//! history table so they can share a database with the event store.

use eventstore::StoreError;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The schema all read-model tables and views live in.
pub const SCHEMA: &str = "read_model";

/// The channel the projector NOTIFYs after a batch changes a projection (the payload is
/// the projection's name: `products`, `orders`, `sales`, `top_products`). Sent inside the
/// batch's transaction, so it arrives only once the change is committed and visible; the
/// query API LISTENs to it to wake live dashboards and read-your-writes waiters.
pub const PROGRESS_CHANNEL: &str = "agora_read_model_progress";

/// Queues the [`PROGRESS_CHANNEL`] notification for `projection` in the open transaction
/// `tx` (delivered at its commit, dropped at its rollback).
pub async fn notify_progress(
    tx: &deadpool_postgres::Transaction<'_>,
    projection: &str,
) -> Result<(), tokio_postgres::Error> {
    let statement = tx.prepare_cached("SELECT pg_notify($1, $2)").await?;
    tx.execute(&statement, &[&PROGRESS_CHANNEL, &projection])
        .await?;
    Ok(())
}

/// Fixed key of the advisory lock that serializes concurrent read-model migrators.
const MIGRATION_LOCK_KEY: i64 = 0x4147_4f52_415f_5231;

/// Applies every pending read-model migration (recorded in `read_model_migrations`; a
/// no-op that needs only `SELECT` on it when none is pending).
pub async fn migrate(read_database_url: &str) -> Result<(), StoreError> {
    eventstore::connect::apply_migrations(
        read_database_url,
        embedded::migrations::runner(),
        "read_model_migrations",
        MIGRATION_LOCK_KEY,
    )
    .await
}
