//! Scratch databases made for one benchmark run on a given server, and dropped after it.

use anyhow::{Context, Result};
use eventstore::testing::with_database;
use tokio_postgres::NoTls;
use uuid::Uuid;

/// A database made for one run on the server at `admin_url`.
pub struct Scratch {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl Scratch {
    /// Creates an empty database named `agora_bench_<random>`.
    pub async fn create(admin_url: &str) -> Result<Scratch> {
        let name = format!("agora_bench_{}", Uuid::new_v4().simple());
        admin_execute(admin_url, &format!("CREATE DATABASE {name}")).await?;
        Ok(Scratch {
            admin_url: admin_url.to_owned(),
            url: with_database(admin_url, &name),
            name,
        })
    }

    /// Drops the database (`WITH (FORCE)` ends any connection still open).
    pub async fn drop_database(&self) -> Result<()> {
        admin_execute(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
        .await
    }
}

/// Runs `sql` (one or more statements) on the server at `url`, on a connection of its own.
pub async fn admin_execute(url: &str, sql: &str) -> Result<()> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.with_context(|| {
        format!(
            "cannot reach PostgreSQL at {} (start it with scripts/postgres.sh start)",
            crate::support::redact(url)
        )
    })?;
    let driver = tokio::spawn(connection);
    client
        .batch_execute(sql)
        .await
        .with_context(|| sql.to_owned())?;
    drop(client);
    let _ = driver.await;
    Ok(())
}
