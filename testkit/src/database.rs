//! Scratch databases: one per test, on the test cluster (or another one), dropped when the
//! test is done.
//!
//! The drop runs `DROP DATABASE … WITH (FORCE)` (ending any session still open, such as a
//! service the test started) on a thread of its own, so it works from synchronous and
//! asynchronous code alike. `AGORA_TEST_KEEP_DATABASES=1` keeps them for a post-mortem.

use std::time::Duration;

use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::env::SERVICES_HINT;

/// How long dropping a database may take before the test moves on (and leaves it to
/// `scripts/postgres.sh sweep`).
const DROP_DEADLINE: Duration = Duration::from_secs(20);

/// A database made for one test; dropped when this value is.
#[derive(Debug)]
pub struct ScratchDatabase {
    /// `agora_test_<uuid>`.
    pub name: String,
    /// A URL to it.
    pub url: String,
    admin: String,
    keep: bool,
}

impl ScratchDatabase {
    /// Creates an empty database on the server at `admin` (a URL to any of its databases).
    /// Fails with a clear message when the server cannot be reached.
    pub async fn create(admin: &str) -> Result<ScratchDatabase, String> {
        let name = format!("agora_test_{}", Uuid::new_v4().simple());
        let (client, connection) = tokio_postgres::connect(admin, NoTls).await.map_err(|e| {
            format!("cannot reach the test PostgreSQL at {admin} ({SERVICES_HINT}): {e}")
        })?;
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|e| format!("creating {name}: {}", with_cause(&e)))?;
        drop(client);
        let _ = driver.await;
        Ok(ScratchDatabase {
            url: with_database(admin, &name),
            name,
            admin: admin.to_owned(),
            keep: std::env::var("AGORA_TEST_KEEP_DATABASES").is_ok_and(|v| v == "1"),
        })
    }

    /// Keeps the database when this value is dropped (a benchmark's `--keep`).
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let admin = self.admin.clone();
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropping = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&admin, NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                let driver = tokio::spawn(connection);
                let outcome = tokio::time::timeout(DROP_DEADLINE, client.batch_execute(&statement))
                    .await
                    .map_err(|_| "timed out".to_owned())
                    .and_then(|done| done.map_err(|e| with_cause(&e)));
                drop(client);
                let _ = driver.await;
                outcome
            })
        });
        // A failed drop never fails the test; `scripts/postgres.sh sweep` collects leftovers.
        if let Ok(Err(error)) = dropping.join() {
            eprintln!(
                "note: could not drop the test database {}: {error}",
                self.name
            );
        }
    }
}

/// A PostgreSQL error with the server's message ("db error" alone says nothing).
fn with_cause(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{error}: {} ({})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

/// `url` with its database name replaced by `name` (query parameters kept).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_is_replaced_and_the_query_kept() {
        assert_eq!(
            with_database("postgres://u@h:1/postgres?sslmode=require", "x"),
            "postgres://u@h:1/x?sslmode=require"
        );
        assert_eq!(
            with_database("postgres://u@h:1/postgres", "x"),
            "postgres://u@h:1/x"
        );
    }

    /// Through the test PostgreSQL: the database exists while the value lives and is gone
    /// after it is dropped, even with a session still open on it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scratch_database_is_dropped_with_its_value() {
        let admin = crate::env::database_url();
        let scratch = ScratchDatabase::create(&admin)
            .await
            .expect("the test PostgreSQL");
        let name = scratch.name.clone();
        let (session, connection) = tokio_postgres::connect(&scratch.url, NoTls)
            .await
            .expect("a session on the scratch database");
        tokio::spawn(connection);
        session
            .batch_execute("CREATE TABLE t (x int)")
            .await
            .expect("usable");
        let (client, connection) = tokio_postgres::connect(&admin, NoTls).await.expect("admin");
        tokio::spawn(connection);
        let exists = |client: tokio_postgres::Client, name: String| async move {
            let row = client
                .query_one(
                    "SELECT count(*) FROM pg_database WHERE datname = $1",
                    &[&name],
                )
                .await
                .expect("a count");
            (client, row.get::<_, i64>(0) == 1)
        };
        let (client, before) = exists(client, name.clone()).await;
        assert!(before, "{name} exists while its value lives");
        drop(scratch);
        let (_, after) = exists(client, name.clone()).await;
        assert!(!after, "{name} is dropped with its value");
        assert!(
            session.batch_execute("SELECT 1").await.is_err(),
            "its sessions ended"
        );
    }
}
