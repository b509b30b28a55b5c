//! Zero-downtime rebuilds (blue/green): a new version of a projection's tables is filled
//! from the Postgres log beside the live ones, catches up, and then — under the switch
//! lock, so no live batch interleaves — takes the last events, inherits the live version's
//! Kafka offsets, and becomes the version the view serves, in one transaction. Queries
//! see the old model until that commit and the complete new one after it.
//!
//! One rebuild per projection at a time: a rebuild first takes the projection's rebuild
//! lock ([`rebuild_lock_key`], a session-level advisory lock on a connection of its own,
//! released when the rebuild ends however it ends), and a second rebuild of the same
//! projection is refused ([`RebuildError::Busy`]) instead of dropping the first one's
//! tables from under it. Rebuilds of different projections run side by side.
//!
//! Running projector workers need no pause: they write only the version
//! `read_model.projections` names active, under the switch lock taken shared, so they never
//! touch the version being filled and carry on into it once the switch commits (the new
//! version has its log checkpoint and the live version's Kafka offsets by then).

use std::time::Instant;

use deadpool_postgres::Pool;
use eventstore::{EventStore, LogCheckpoint};

use crate::apply::{apply_batch, apply_in, saved_positions, ApplyError, Target, SWITCH_LOCK_KEY};
use crate::projections;
use crate::source_log::batch_item;
use crate::worker::WorkerStatus;

/// The class of the rebuild locks (the first key of PostgreSQL's two-key advisory locks,
/// which never collide with the one-key locks the projector and the followers take).
pub const REBUILD_LOCK_CLASS: i32 = 0x4147_5242;

/// The advisory lock (class, key) a rebuild of `name` holds while it runs. The key is the
/// 32-bit FNV-1a hash of the name: stable across processes and releases.
pub fn rebuild_lock_key(name: &str) -> (i32, i32) {
    let hash = name.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    (REBUILD_LOCK_CLASS, hash as i32)
}

/// Where a rebuild stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RebuildProgress {
    pub applied: u64,
    /// Events in the log when the rebuild started (the log may grow meanwhile).
    pub total: u64,
}

/// What a finished rebuild did.
#[derive(Debug, Clone, PartialEq)]
pub struct RebuildReport {
    pub projection: String,
    pub from_version: i32,
    pub to_version: i32,
    pub events: u64,
    pub seconds: f64,
}

impl RebuildReport {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.seconds.max(1e-9)
    }
}

/// Why a rebuild failed (the live version keeps serving).
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("no projection named {0:?}")]
    UnknownProjection(String),
    /// Another rebuild of this projection holds its rebuild lock.
    #[error("a rebuild of {0:?} is already running; try again once it has finished")]
    Busy(String),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("event store: {0}")]
    Store(#[from] eventstore::StoreError),
}

impl From<tokio_postgres::Error> for RebuildError {
    fn from(error: tokio_postgres::Error) -> Self {
        RebuildError::Apply(ApplyError::Database(error))
    }
}

impl From<deadpool_postgres::PoolError> for RebuildError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        RebuildError::Apply(ApplyError::Pool(error))
    }
}

/// Rebuilds `name` into a new version and switches to it. With `keep_previous` the old
/// version's tables stay (for comparison or rollback); otherwise they are dropped. Refused
/// with [`RebuildError::Busy`] while another rebuild of `name` runs.
pub async fn rebuild(
    store: &EventStore,
    read_pool: &Pool,
    name: &str,
    batch_size: i64,
    keep_previous: bool,
    mut progress: impl FnMut(RebuildProgress),
) -> Result<RebuildReport, RebuildError> {
    let projection =
        projections::by_name(name).ok_or_else(|| RebuildError::UnknownProjection(name.into()))?;
    let started = Instant::now();
    // The rebuild lock, on a connection taken out of the pool: it closes (and so releases
    // the lock) when this function returns or is dropped, whatever happened.
    let lock = deadpool_postgres::Object::take(read_pool.get().await?);
    let (class, key) = rebuild_lock_key(name);
    let held: bool = lock
        .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&class, &key])
        .await?
        .try_get(0)?;
    if !held {
        return Err(RebuildError::Busy(name.to_owned()));
    }
    let status = WorkerStatus::new("rebuild");
    let client = read_pool.get().await?;
    let current: i32 = client
        .query_one(
            "SELECT active_version FROM read_model.projections WHERE name = $1",
            &[&name],
        )
        .await?
        .try_get(0)?;
    let next = current + 1;
    let live = Target {
        projection: projection.clone(),
        version: current,
    };
    let target = Target {
        projection: projection.clone(),
        version: next,
    };
    // Leftovers of an interrupted rebuild are thrown away: a rebuild starts clean. This is
    // the one place a checkpoint moves back: the new version's are deleted, explicitly.
    let mut ddl = String::new();
    for (old, new) in projection
        .tables(current)
        .iter()
        .zip(projection.tables(next))
    {
        ddl.push_str(&format!(
            "DROP TABLE IF EXISTS {new}; CREATE TABLE {new} (LIKE {old} INCLUDING ALL);"
        ));
    }
    client.batch_execute(&ddl).await?;
    client
        .execute(
            "DELETE FROM read_model.checkpoints WHERE projection = $1 AND version = $2",
            &[&name, &next],
        )
        .await?;
    for table in ["poison_events", "parked_streams", "held_events"] {
        client
            .execute(
                &format!("DELETE FROM read_model.{table} WHERE projection = $1 AND version = $2"),
                &[&name, &next],
            )
            .await?;
    }
    let total: i64 = store
        .pool()
        .get()
        .await?
        .query_one("SELECT count(*) FROM events", &[])
        .await?
        .try_get(0)?;
    let total = total as u64;

    // Fill and catch up beside the live version.
    // The next page is read while the current one is applied.
    let mut checkpoint = LogCheckpoint::START;
    let mut applied = 0u64;
    let mut events = store.read_log(checkpoint, batch_size).await?;
    while let Some(last) = events.last() {
        checkpoint = LogCheckpoint::after(last);
        let items: Vec<_> = events.iter().map(batch_item).collect();
        let (done, following) = tokio::join!(
            apply_batch(read_pool, &items, Some(&target), &status),
            store.read_log(checkpoint, batch_size)
        );
        done?;
        events = following?;
        applied += items.len() as u64;
        metrics::gauge!("projection_rebuild_progress", "projection" => name.to_owned())
            .set(applied as f64 / total.max(1) as f64);
        progress(RebuildProgress { applied, total });
    }

    // Switch: the last events and the new view in one transaction, no batch in between.
    let mut client = read_pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SWITCH_LOCK_KEY])
        .await?;
    let saved = saved_positions(&tx, &target, "log").await?;
    let mut checkpoint = saved.log.unwrap_or(checkpoint);
    loop {
        let events = store.read_log(checkpoint, batch_size).await?;
        let Some(last) = events.last() else {
            break;
        };
        checkpoint = LogCheckpoint::after(last);
        let items: Vec<_> = events.iter().map(batch_item).collect();
        apply_in(&tx, &items, std::slice::from_ref(&target), true).await?;
        applied += items.len() as u64;
    }
    tx.execute(
        "INSERT INTO read_model.checkpoints \
         (projection, version, source, partition_key, transaction_id, position, kafka_offset) \
         SELECT projection, $2, source, partition_key, transaction_id, position, kafka_offset \
         FROM read_model.checkpoints WHERE projection = $1 AND version = $3 AND source = 'kafka' \
         ON CONFLICT DO NOTHING",
        &[&name, &next, &current],
    )
    .await?;
    let main_table = projection
        .tables(next)
        .into_iter()
        .next()
        .unwrap_or_default();
    tx.batch_execute(&format!(
        "CREATE OR REPLACE VIEW {}.{name} AS SELECT * FROM {main_table}",
        readmodel::SCHEMA
    ))
    .await?;
    tx.execute(
        "UPDATE read_model.projections SET active_version = $2, updated_at = now() WHERE name = $1",
        &[&name, &next],
    )
    .await?;
    readmodel::notify_progress(&tx, name).await?;
    tx.commit().await?;
    progress(RebuildProgress { applied, total });
    tracing::info!(
        projection = name,
        from = current,
        to = next,
        events = applied,
        "rebuild switched"
    );

    if !keep_previous {
        let mut ddl = String::new();
        for table in live.projection.tables(current) {
            ddl.push_str(&format!("DROP TABLE IF EXISTS {table};"));
        }
        client.batch_execute(&ddl).await?;
        client
            .execute(
                "DELETE FROM read_model.checkpoints WHERE projection = $1 AND version = $2",
                &[&name, &current],
            )
            .await?;
    }
    // Released now rather than when the connection is closed, so that a rebuild started
    // right after this one returns finds the lock free.
    lock.execute("SELECT pg_advisory_unlock($1, $2)", &[&class, &key])
        .await?;
    Ok(RebuildReport {
        projection: name.to_owned(),
        from_version: current,
        to_version: next,
        events: applied,
        seconds: started.elapsed().as_secs_f64(),
    })
}
