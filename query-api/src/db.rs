//! The read-model database: pooled connections, cached prepared statements, and database
//! failures as problem+json answers (503 when the database cannot be reached, 500
//! otherwise, with the details in the log).
//!
//! Reads do not check a connection out each: each HTTP worker keeps a few connections
//! that its concurrent requests share. tokio-postgres pipelines their queries, so under
//! load one write and one read carry several of them, where a connection per request
//! costs every request its own round of system calls and wake-ups on both sides.

use std::sync::{Arc, Mutex};

use deadpool_postgres::{Object, Pool, PoolError};
use platform::Problem;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

/// Seconds a client should wait before retrying when the database is unreachable.
const RETRY_AFTER_SECONDS: u64 = 1;

/// A pooled connection to the read-model database.
pub async fn connection(pool: &Pool) -> Result<Object, Problem> {
    pool.get().await.map_err(pool_error)
}

/// A failed pool checkout: the database is down or overloaded (503), or the pool is
/// misconfigured (500).
pub fn pool_error(error: PoolError) -> Problem {
    match error {
        PoolError::Backend(error) => database_error(error),
        PoolError::Timeout(_) => unavailable(&error),
        other => Problem::internal(other),
    }
}

/// A failed statement: a lost or refused connection is 503, anything else is a server
/// bug (500).
pub fn database_error(error: tokio_postgres::Error) -> Problem {
    if is_transient(&error) {
        unavailable(&error)
    } else {
        Problem::internal(error)
    }
}

/// Connection-level failures: closed, I/O, or a server that is shutting down, starting up
/// or out of connections (SQLSTATE classes 08, 53 and 57).
pub(crate) fn is_transient(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    if let Some(db) = error.as_db_error() {
        let code = db.code().code();
        return ["08", "53", "57"]
            .iter()
            .any(|class| code.starts_with(class));
    }
    std::error::Error::source(error).is_some_and(|source| source.is::<std::io::Error>())
}

fn unavailable(error: &dyn std::fmt::Display) -> Problem {
    tracing::warn!(%error, "read-model database unavailable");
    Problem::unavailable(
        "database_unavailable",
        "the read-model database cannot be reached; retry shortly",
        RETRY_AFTER_SECONDS,
    )
}

/// Connections of one HTTP worker, shared by its requests (see the module doc).
/// `SHARED_PER_WORKER` of them, used in turn; a closed one is replaced from the pool.
pub struct ReadModel {
    pool: Pool,
    shared: Vec<Mutex<Option<Arc<Object>>>>,
    next: std::sync::atomic::AtomicUsize,
}

/// How many connections each HTTP worker's requests share.
pub const SHARED_PER_WORKER: usize = 2;

impl ReadModel {
    /// Shared connections for one worker, taken from `pool` when first needed.
    pub fn new(pool: Pool) -> ReadModel {
        ReadModel {
            pool,
            shared: (0..SHARED_PER_WORKER).map(|_| Mutex::new(None)).collect(),
            next: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The pool itself (health checks take a connection of their own).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The next shared connection, connected anew if it was closed.
    async fn client(&self) -> Result<Arc<Object>, Problem> {
        let index =
            self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.shared.len();
        let slot = &self.shared[index];
        let usable =
            |guard: &Option<Arc<Object>>| guard.as_ref().filter(|c| !c.is_closed()).cloned();
        if let Some(client) = usable(&slot.lock().unwrap_or_else(|p| p.into_inner())) {
            return Ok(client);
        }
        let fresh = Arc::new(connection(&self.pool).await?);
        let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
        // Another request of this worker may have reconnected meanwhile: use one only.
        if let Some(client) = usable(&guard) {
            return Ok(client);
        }
        *guard = Some(fresh.clone());
        Ok(fresh)
    }
}

/// Runs a (cached, prepared) query and maps every row.
pub async fn query<T>(
    read: &ReadModel,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    map: impl Fn(&Row) -> Result<T, tokio_postgres::Error>,
) -> Result<Vec<T>, Problem> {
    let client = read.client().await?;
    let statement = client.prepare_cached(sql).await.map_err(database_error)?;
    let rows = client
        .query(&statement, params)
        .await
        .map_err(database_error)?;
    rows.iter()
        .map(map)
        .collect::<Result<_, _>>()
        .map_err(database_error)
}

/// Runs a (cached, prepared) query for at most one row and maps it.
pub async fn query_opt<T>(
    read: &ReadModel,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    map: impl Fn(&Row) -> Result<T, tokio_postgres::Error>,
) -> Result<Option<T>, Problem> {
    let client = read.client().await?;
    let statement = client.prepare_cached(sql).await.map_err(database_error)?;
    let row = client
        .query_opt(&statement, params)
        .await
        .map_err(database_error)?;
    row.as_ref().map(map).transpose().map_err(database_error)
}
