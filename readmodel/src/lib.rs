//! Agora's read-model schema, shared by the projector (which writes it) and the query API
//! (which reads its views): versioned migrations on `READ_DATABASE_URL`, with their own
//! history table so they can share a database with the event store.

use eventstore::StoreError;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The schema all read-model tables and views live in.
pub const SCHEMA: &str = "read_model";

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
