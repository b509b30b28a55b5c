//! Test support: a fresh, migrated database per test on the test PostgreSQL server
//! (started by `scripts/postgres.sh`; `AGORA_TEST_DATABASE_URL` overrides where it is),
//! dropped when the test is done. The rest of what tests share is in the `testkit` crate,
//! re-exported here.

use tokio_postgres::NoTls;

pub use testkit::{env, eventually, eventually_some, free_port, try_eventually, with_database};

use crate::{connect_pool, migrate, EventStore, StoreError};

/// Where the test server is unless `AGORA_TEST_DATABASE_URL` says otherwise.
pub const DEFAULT_TEST_DATABASE_URL: &str = testkit::env::DEFAULT_DATABASE_URL;

/// The admin URL of the test server.
pub fn admin_url() -> String {
    testkit::env::database_url()
}

/// A database made for one test, migrated, with a store on it. The database is dropped
/// when this value is (keep the value alive as long as the test uses the database).
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    pub store: EventStore,
    scratch: testkit::ScratchDatabase,
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
        let scratch = testkit::ScratchDatabase::create(admin)
            .await
            .map_err(StoreError::Config)?;
        migrate(&scratch.url).await?;
        let store = EventStore::new(connect_pool(&scratch.url, 32)?).notifying_followers();
        Ok(TestDatabase {
            name: scratch.name.clone(),
            url: scratch.url.clone(),
            store,
            scratch,
        })
    }

    /// Keeps the database after this value is dropped (a benchmark's `--keep`).
    pub fn keep(&mut self) {
        self.scratch.keep();
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
