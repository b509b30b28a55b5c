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

/// A pooled connection to the read-model database.
pub async fn connection(pool: &Pool) -> Result<Object, Problem> {
    pool.get().await.map_err(pool_error)
}

/// A failed pool checkout, as the one classification ([`eventstore::classify_pool`]) says.
pub fn pool_error(error: PoolError) -> Problem {
    problem(eventstore::classify_pool(&error), &error)
}

/// A failed statement, as the one classification ([`eventstore::classify`]) says: 503 when
/// the database cannot be reached, 400 for a value it refused, else 500 (logged).
pub fn database_error(error: tokio_postgres::Error) -> Problem {
    problem(eventstore::classify(&error), &error)
}

fn problem(failure: eventstore::DbFailure, cause: &dyn std::fmt::Display) -> Problem {
    Problem::database(
        failure,
        cause,
        "database_unavailable",
        "the read-model database cannot be reached; retry shortly",
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
