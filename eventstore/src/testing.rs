//! Test support: a fresh, migrated database per test on the test PostgreSQL server
//! (started by `scripts/postgres.sh`; `AGORA_TEST_DATABASE_URL` overrides where it is).

use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::{connect_pool, migrate, EventStore, StoreError};

/// Where the test server is unless `AGORA_TEST_DATABASE_URL` says otherwise.
pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:55432/postgres";

/// The admin URL of the test server.
pub fn admin_url() -> String {
    std::env::var("AGORA_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.into())
}

/// A database made for one test.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    pub store: EventStore,
}

impl TestDatabase {
    /// Creates and migrates a database with a unique name. Fails loudly when the test
    /// server cannot be reached: tests never skip for a missing service.
    pub async fn create() -> Result<TestDatabase, StoreError> {
        Self::create_at(&admin_url()).await
    }

    /// [`TestDatabase::create`] on the server at `admin` (a URL to any of its databases), for
    /// tests that run their own cluster (one they crash, or one behind a fault proxy).
    pub async fn create_at(admin: &str) -> Result<TestDatabase, StoreError> {
        let admin = admin.to_owned();
        let name = format!("agora_test_{}", Uuid::new_v4().simple());
        let (client, connection) = tokio_postgres::connect(&admin, NoTls).await.map_err(|e| {
            StoreError::Config(format!(
                "cannot reach the test PostgreSQL at {admin} (start it with scripts/postgres.sh start): {e}"
            ))
        })?;
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        drop(client);
        let _ = driver.await;
        let url = with_database(&admin, &name);
        migrate(&url).await?;
        let store = EventStore::new(connect_pool(&url, 32)?).notifying_followers();
        Ok(TestDatabase { name, url, store })
    }
}

/// A session on `url` as an attacker with superuser access sees the database: triggers
/// off (`session_replication_role = replica`), so the append-only guard of `events` does
/// not stop it. For tests of tamper evidence.
pub async fn attacker_session(url: &str) -> Result<tokio_postgres::Client, StoreError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute("SET session_replication_role = replica")
        .await?;
    Ok(client)
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let base = match base.rfind('/') {
        Some(slash) if slash > "postgres://".len() => &base[..slash],
        _ => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

/// Polls `condition` every 20 ms until it holds, panicking with `what` once `deadline`
/// passed: tests wait for asynchronous work this way, never by sleeping.
pub async fn eventually<F, Fut>(what: &str, deadline: std::time::Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = std::time::Instant::now() + deadline;
    while !condition().await {
        assert!(
            std::time::Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
