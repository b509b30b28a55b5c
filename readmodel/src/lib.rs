//! Agora's read-model schema, shared by the projector (which writes it) and the query API
//! (which reads its views): versioned migrations on `READ_DATABASE_URL`, with their own
//! history table so they can share a database with the event store.

use eventstore::StoreError;
use tokio_postgres::NoTls;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The schema all read-model tables and views live in.
pub const SCHEMA: &str = "read_model";

/// Fixed key of the advisory lock that serializes concurrent read-model migrators.
const MIGRATION_LOCK_KEY: i64 = 0x4147_4f52_415f_5231;

/// Applies every pending read-model migration.
pub async fn migrate(read_database_url: &str) -> Result<(), StoreError> {
    let (mut client, connection) = tokio_postgres::connect(read_database_url, NoTls).await?;
    let driver = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "read-model migration connection ended with an error");
        }
    });
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    let outcome = embedded::migrations::runner()
        .set_migration_table_name("read_model_migrations")
        .run_async(&mut client)
        .await
        .map_err(|error| StoreError::Migration(error.to_string()));
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await;
    drop(client);
    let _ = driver.await;
    outcome?;
    unlocked?;
    Ok(())
}
