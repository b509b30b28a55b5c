//! Connection pools and schema migrations.

use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::error::StoreError;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Arbitrary but fixed key of the advisory lock that serializes concurrent migrators.
const MIGRATION_LOCK_KEY: i64 = 0x4147_4f52_415f_4d31;

/// A pool of `max_size` connections to `database_url`.
pub fn connect_pool(database_url: &str, max_size: usize) -> Result<Pool, StoreError> {
    let config = tokio_postgres::Config::from_str(database_url)
        .map_err(|error| StoreError::Config(error.to_string()))?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_size)
        .build()
        .map_err(|error| StoreError::Config(error.to_string()))
}

/// Applies every pending migration, holding an advisory lock so that services starting
/// together do not race.
pub async fn migrate(database_url: &str) -> Result<(), StoreError> {
    let (mut client, connection) = tokio_postgres::connect(database_url, NoTls).await?;
    let driver = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "migration connection ended with an error");
        }
    });
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    let outcome = embedded::migrations::runner()
        .run_async(&mut client)
        .await
        .map_err(|error| StoreError::Migration(error.to_string()));
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await;
    drop(client);
    let _ = driver.await;
    let report = outcome?;
    unlocked?;
    for migration in report.applied_migrations() {
        tracing::info!(migration = %migration, "applied migration");
    }
    Ok(())
}
