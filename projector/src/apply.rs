//! Applying a batch of events to the live projections exactly once: the rows the events
//! produce in a projection and its source checkpoint are written in one read-model
//! transaction (one per projection, run side by side), and events at or before a
//! projection's checkpoint are skipped.
//!
//! An event a projection cannot apply (it cannot be decoded, or its changes fail) parks its
//! stream for that projection version: the event is recorded as poison, and it and every
//! later event of the stream are held ([`crate::parked`]: `read_model.parked_streams`,
//! `read_model.held_events`) instead of applied, while every other stream goes on. A Kafka
//! message too unreadable to name its stream is recorded as poison only.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Pool, Transaction};
use eventstore::LogCheckpoint;
use futures::future::try_join_all;
use uuid::Uuid;

use crate::event::ProjectedEvent;
use crate::projection::Projection;
use crate::projections;
use crate::worker::WorkerStatus;

/// Taken shared by every batch and exclusively by a rebuild's switch, so a switch never
/// interleaves with a batch.
pub const SWITCH_LOCK_KEY: i64 = 0x4147_4f52_415f_5357;

/// Where an event sits in its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourcePosition {
    Log(LogCheckpoint),
    Kafka { partition: String, offset: i64 },
}

impl SourcePosition {
    pub fn source(&self) -> &'static str {
        match self {
            SourcePosition::Log(_) => "log",
            SourcePosition::Kafka { .. } => "kafka",
        }
    }
}

/// `log <transaction_id>/<position>` or `kafka <topic>/<partition>@<offset>`, as
/// `read_model.poison_events.source_position` records it.
impl std::fmt::Display for SourcePosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourcePosition::Log(at) => write!(f, "log {}/{}", at.transaction_id, at.position),
            SourcePosition::Kafka { partition, offset } => {
                write!(f, "kafka {partition}@{offset}")
            }
        }
    }
}

/// What is known of an event even when it cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFacts {
    /// Its position in the log (0 when a message does not say).
    pub position: i64,
    pub event_id: Uuid,
    pub stream_id: Uuid,
    pub version: i64,
    pub event_type: String,
}

/// One event of a batch: decoded, or the reason it is poison.
#[derive(Debug, Clone)]
pub struct BatchItem {
    pub facts: EventFacts,
    pub event: Result<ProjectedEvent, String>,
    pub position: SourcePosition,
    /// Whether this is known to be an event of the log (read from it, or from Kafka and
    /// checked against it), so that failing to apply it parks its stream. A message that is
    /// not (unreadable, or refused by [`crate::chain`]) is poison only: anyone on the network
    /// could otherwise park any stream.
    pub of_the_log: bool,
}

/// A projection at the version it writes.
#[derive(Clone)]
pub struct Target {
    pub projection: Arc<dyn Projection>,
    pub version: i32,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@v{}", self.projection.name(), self.version)
    }
}

/// Why a batch could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("read-model database unavailable: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("read-model database error: {0}")]
    Database(#[from] tokio_postgres::Error),
    /// A row changed under the batch (another projector instance wrote it after it was
    /// read): the batch is retried from a fresh read.
    #[error("read model changed concurrently: {0}")]
    Conflict(String),
    /// The projection refused an event of a batch applied set-based: the batch is applied
    /// again event by event, so the refused event's stream parks before its later events.
    #[error("an event was refused: {0}")]
    Refused(String),
}

impl ApplyError {
    /// Passing trouble (connection, deadlock, serialization, pool timeout, by the one
    /// classification of database errors): retry the batch as is.
    pub fn is_transient(&self) -> bool {
        match self {
            ApplyError::Conflict(_) => true,
            ApplyError::Refused(_) => false,
            ApplyError::Pool(error) => {
                eventstore::classify_pool(error) == eventstore::DbFailure::Transient
            }
            ApplyError::Database(error) => {
                eventstore::classify(error) == eventstore::DbFailure::Transient
            }
        }
    }

    /// What went wrong, for an operator: the server's SQLSTATE, message and constraint
    /// when the database refused a statement (tokio-postgres's own text is only "db error").
    pub fn reason(&self) -> String {
        match self {
            ApplyError::Database(error) => match error.as_db_error() {
                Some(db) => format!(
                    "{} {}{}",
                    db.code().code(),
                    db.message(),
                    db.detail().map(|d| format!(" ({d})")).unwrap_or_default()
                ),
                None => error.to_string(),
            },
            other => other.to_string(),
        }
    }

    /// Whether the database refused this because of the event's values (a data exception,
    /// a constraint the change breaks, a limit): then the event is poison. Anything else (a
    /// missing table, a refused privilege, a read-only or full database) is the read
    /// model's trouble: it must stop the worker, not turn every event into poison.
    pub fn is_about_the_event(&self) -> bool {
        match self {
            ApplyError::Database(error) => {
                eventstore::classify(error) == eventstore::DbFailure::Data
                    || error
                        .code()
                        .is_some_and(|code| code.code().starts_with("23"))
            }
            ApplyError::Pool(_) | ApplyError::Conflict(_) | ApplyError::Refused(_) => false,
        }
    }
}

/// The live targets: every projection at its active version.
pub async fn live_targets(tx: &Transaction<'_>) -> Result<Vec<Target>, ApplyError> {
    let rows = tx
        .query(
            "SELECT name, active_version FROM read_model.projections",
            &[],
        )
        .await?;
    let versions: HashMap<String, i32> = rows
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    Ok(projections::all()
        .into_iter()
        .filter_map(|projection| {
            let version = *versions.get(projection.name())?;
            Some(Target {
                projection,
                version,
            })
        })
        .collect())
}

/// Saved positions of one target in one source.
#[derive(Debug, Default, Clone)]
pub struct SavedPositions {
    pub log: Option<LogCheckpoint>,
    /// Next offset to read, per partition key `topic/partition`.
    pub kafka: HashMap<String, i64>,
}

impl SavedPositions {
    /// True when `position` was already applied.
    pub fn covers(&self, position: &SourcePosition) -> bool {
        match position {
            SourcePosition::Log(checkpoint) => self.log.is_some_and(|saved| *checkpoint <= saved),
            SourcePosition::Kafka { partition, offset } => {
                self.kafka.get(partition).is_some_and(|next| offset < next)
            }
        }
    }
}

/// The saved positions of `target` in `source`.
pub async fn saved_positions<C: deadpool_postgres::GenericClient>(
    client: &C,
    target: &Target,
    source: &str,
) -> Result<SavedPositions, ApplyError> {
    let rows = client
        .query(
            "SELECT partition_key, transaction_id, position, kafka_offset \
             FROM read_model.checkpoints WHERE projection = $1 AND version = $2 AND source = $3",
            &[&target.projection.name(), &target.version, &source],
        )
        .await?;
    let mut saved = SavedPositions::default();
    for row in rows {
        let partition: String = row.try_get(0)?;
        if source == "log" {
            saved.log = Some(LogCheckpoint {
                transaction_id: row.try_get::<_, i64>(1)? as u64,
                position: row.try_get(2)?,
            });
        } else {
            saved.kafka.insert(partition, row.try_get(3)?);
        }
    }
    Ok(saved)
}

/// Applies `items` to the live projections (or to `only`, for a rebuild): each projection
/// in a transaction of its own with its checkpoint, all of them at once on their own
/// connections (so the database works on several at a time); retries passing failures
/// (saying so to `status` meanwhile); isolates poison events. Returns the targets applied
/// to; an error is one retrying cannot mend.
pub async fn apply_batch(
    pool: &Pool,
    items: &[BatchItem],
    only: Option<&Target>,
    status: &WorkerStatus,
) -> Result<Vec<Target>, ApplyError> {
    status.progress().batch_started();
    let applied =
        match only {
            Some(target) => {
                vec![apply_retrying(pool, items, Choice::Exactly(target), status).await?]
            }
            None => {
                let projections = projections::all();
                try_join_all(projections.iter().map(|projection| {
                    apply_retrying(pool, items, Choice::Live(projection), status)
                }))
                .await?
            }
        };
    let applied: Vec<Target> = applied.into_iter().flatten().collect();
    let at = items
        .iter()
        .map(|item| match &item.position {
            SourcePosition::Log(at) => *at,
            SourcePosition::Kafka { .. } => LogCheckpoint {
                transaction_id: 0,
                position: item.facts.position,
            },
        })
        .max()
        .unwrap_or(LogCheckpoint::START);
    status
        .progress()
        .batch_applied(applied.iter().map(|t| t.projection.name()), at);
    Ok(applied)
}

/// Which version of a projection a batch goes to.
#[derive(Clone, Copy)]
enum Choice<'a> {
    /// The one `read_model.projections` names active (none when it names none).
    Live(&'a Arc<dyn Projection>),
    /// This one (a rebuild's new version).
    Exactly(&'a Target),
}

async fn apply_retrying(
    pool: &Pool,
    items: &[BatchItem],
    choice: Choice<'_>,
    status: &WorkerStatus,
) -> Result<Option<Target>, ApplyError> {
    let mut delay = Duration::from_millis(50);
    let mut isolate_poison = false;
    loop {
        match try_apply(pool, items, choice, isolate_poison).await {
            Ok(target) => return Ok(target),
            Err(error) if error.is_transient() => {
                status.retrying();
                tracing::warn!(%error, "applying a batch failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(error) if !isolate_poison => {
                tracing::warn!(%error, "a batch failed; applying it event by event");
                isolate_poison = true;
            }
            Err(error) => return Err(error),
        }
    }
}

async fn try_apply(
    pool: &Pool,
    items: &[BatchItem],
    choice: Choice<'_>,
    isolate_poison: bool,
) -> Result<Option<Target>, ApplyError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock_shared($1)",
        &[&SWITCH_LOCK_KEY],
    )
    .await?;
    let target = match choice {
        Choice::Exactly(target) => target.clone(),
        Choice::Live(projection) => {
            let statement = tx
                .prepare_cached("SELECT active_version FROM read_model.projections WHERE name = $1")
                .await?;
            let Some(row) = tx.query_opt(&statement, &[&projection.name()]).await? else {
                return Ok(None);
            };
            Target {
                projection: projection.clone(),
                version: row.try_get(0)?,
            }
        }
    };
    apply_in(&tx, items, std::slice::from_ref(&target), isolate_poison).await?;
    tx.commit().await?;
    Ok(Some(target))
}

/// Applies `items` to `targets` inside `tx` (which the caller commits), skipping what each
/// target's saved checkpoint already covers and saving the new checkpoints. With
/// `isolate_poison` each event is applied on its own under a savepoint, so an event whose
/// changes fail is recorded as poison and the rest still apply.
pub async fn apply_in(
    tx: &Transaction<'_>,
    items: &[BatchItem],
    targets: &[Target],
    isolate_poison: bool,
) -> Result<(), ApplyError> {
    let Some(first) = items.first() else {
        return Ok(());
    };
    let source = first.position.source();
    // Plan each set-based statement for its own arrays and the tables as they are now (a
    // generic plan cached while the tables were small scans them whole for ever after),
    // and look rows up by key: a batch touches a few hundred rows of tables that only
    // grow, where a hash or merge join would read the whole table every batch.
    tx.batch_execute(
        "SET LOCAL plan_cache_mode = force_custom_plan;          SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off",
    )
    .await?;
    for target in targets {
        apply_target(tx, items, target, source, isolate_poison).await?;
    }
    Ok(())
}

async fn apply_target(
    tx: &Transaction<'_>,
    items: &[BatchItem],
    target: &Target,
    source: &str,
    isolate_poison: bool,
) -> Result<(), ApplyError> {
    let saved = saved_positions(tx, target, source).await?;
    let fresh: Vec<&BatchItem> = items
        .iter()
        .filter(|i| !saved.covers(&i.position))
        .collect();
    if fresh.is_empty() {
        return Ok(());
    }
    let name = target.projection.name();
    readmodel::notify_progress(tx, name).await?;
    // Streams already parked (locked against a retry draining them meanwhile).
    let mut streams: Vec<Uuid> = fresh
        .iter()
        .map(|item| item.facts.stream_id)
        .filter(|stream| !stream.is_nil())
        .collect();
    streams.sort_unstable();
    streams.dedup();
    let mut parked: HashSet<Uuid> = crate::parked::parked_among(tx, target, &streams).await?;
    // Unreadable messages (poison only), held events (with the error of the one that parks
    // its stream), and what is applied.
    let mut unreadable: Vec<(&BatchItem, String)> = Vec::new();
    let mut held: Vec<(&BatchItem, Option<String>)> = Vec::new();
    let mut decoded: Vec<(&BatchItem, &ProjectedEvent)> = Vec::with_capacity(fresh.len());
    for item in &fresh {
        let stream = item.facts.stream_id;
        match &item.event {
            Err(reason) if stream.is_nil() || !item.of_the_log => {
                unreadable.push((item, reason.clone()))
            }
            _ if parked.contains(&stream) => held.push((item, None)),
            Ok(event) => decoded.push((item, event)),
            Err(reason) => {
                parked.insert(stream);
                held.push((item, Some(reason.clone())));
            }
        }
    }
    if isolate_poison {
        for (item, event) in &decoded {
            if parked.contains(&item.facts.stream_id) {
                held.push((item, None));
            } else if let Err(error) = apply_isolated(tx, target, event).await? {
                parked.insert(item.facts.stream_id);
                held.push((item, Some(error)));
            }
        }
    } else {
        let events: Vec<&ProjectedEvent> = decoded.iter().map(|(_, e)| *e).collect();
        let refused = target.projection.apply(tx, target.version, &events).await?;
        if let Some((_, reason)) = refused.into_iter().next() {
            return Err(ApplyError::Refused(reason));
        }
    }
    for (item, error) in &unreadable {
        record_poison(tx, target, item, error).await?;
    }
    held.sort_by_key(|(item, _)| (item.facts.stream_id, item.facts.version));
    for (item, error) in &held {
        if let Some(error) = error {
            record_poison(tx, target, item, error).await?;
            crate::parked::park(tx, target, item, error).await?;
        }
        crate::parked::hold(tx, target, item).await?;
    }
    save_positions(tx, target, &fresh).await?;
    let applied = (fresh.len() - unreadable.len() - held.len()) as u64;
    metrics::counter!("projector_events_applied_total", "projection" => name).increment(applied);
    let poisoned = unreadable.len() + held.iter().filter(|(_, e)| e.is_some()).count();
    if poisoned > 0 {
        metrics::counter!("poison_events_total", "projection" => name).increment(poisoned as u64);
    }
    if !held.is_empty() {
        metrics::counter!("projector_events_held_total", "projection" => name)
            .increment(held.len() as u64);
    }
    if let Some(Ok(last)) = fresh.last().map(|i| &i.event) {
        let lag = (chrono::Utc::now() - last.occurred_at)
            .num_milliseconds()
            .max(0);
        metrics::gauge!("projection_lag_seconds", "projection" => name).set(lag as f64 / 1000.0);
    }
    Ok(())
}

/// Applies one event under a savepoint; an error about the event's values is returned as
/// its poison reason (and undone), anything else fails the batch.
pub(crate) async fn apply_isolated(
    tx: &Transaction<'_>,
    target: &Target,
    event: &ProjectedEvent,
) -> Result<Result<(), String>, ApplyError> {
    tx.batch_execute("SAVEPOINT projector_event").await?;
    let outcome = target
        .projection
        .apply(tx, target.version, std::slice::from_ref(&event))
        .await;
    match outcome {
        Ok(refused) => {
            tx.batch_execute("RELEASE SAVEPOINT projector_event")
                .await?;
            Ok(match refused.into_iter().next() {
                Some((_, reason)) => Err(reason),
                None => Ok(()),
            })
        }
        Err(error) if error.is_transient() || !error.is_about_the_event() => Err(error),
        Err(error) => {
            tx.batch_execute("ROLLBACK TO SAVEPOINT projector_event")
                .await?;
            Ok(Err(error.reason()))
        }
    }
}

/// Records a poison event once: an event once per projection version (by its id, however
/// often a source delivers it), a message too unreadable to name its event (nil id) once
/// per place in its source (migration `V2__poison_per_message.sql`).
pub(crate) async fn record_poison(
    tx: &Transaction<'_>,
    target: &Target,
    item: &BatchItem,
    error: &str,
) -> Result<(), ApplyError> {
    let facts = &item.facts;
    let at = item.position.to_string();
    tracing::error!(
        projection = target.projection.name(),
        event_id = %facts.event_id,
        stream_id = %facts.stream_id,
        version = facts.version,
        source_position = %at,
        %error,
        "poison event: not applied"
    );
    tx.execute(
        "INSERT INTO read_model.poison_events \
         (projection, version, event_id, stream_id, stream_version, event_type, error, \
          source_position) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        &[
            &target.projection.name(),
            &target.version,
            &facts.event_id,
            &facts.stream_id,
            &facts.version,
            &facts.event_type,
            &error,
            &at,
        ],
    )
    .await?;
    Ok(())
}

/// Saves where `target` now stands: the last log pair, or per Kafka partition the offset
/// after the last message. A saved checkpoint never moves backwards: another writer of the
/// same projection (a second projector on the log, a partition's previous owner) may
/// have committed a later one after this transaction read its own, and the later one
/// stays. Only a rebuild moves a checkpoint back, explicitly, by deleting the checkpoints
/// of the version it starts from nothing ([`crate::rebuild`]).
async fn save_positions(
    tx: &Transaction<'_>,
    target: &Target,
    applied: &[&BatchItem],
) -> Result<(), ApplyError> {
    let name = target.projection.name();
    let mut log_last: Option<LogCheckpoint> = None;
    let mut kafka_next: HashMap<&str, i64> = HashMap::new();
    for item in applied {
        match &item.position {
            SourcePosition::Log(checkpoint) => {
                log_last = Some(log_last.map_or(*checkpoint, |l| l.max(*checkpoint)))
            }
            SourcePosition::Kafka { partition, offset } => {
                let next = kafka_next.entry(partition.as_str()).or_insert(0);
                *next = (*next).max(offset + 1);
            }
        }
    }
    if let Some(last) = log_last {
        let statement = tx
            .prepare_cached(
                "INSERT INTO read_model.checkpoints \
                 (projection, version, source, partition_key, transaction_id, position) \
                 VALUES ($1, $2, 'log', '', $3, $4) \
                 ON CONFLICT (projection, version, source, partition_key) DO UPDATE \
                 SET transaction_id = EXCLUDED.transaction_id, position = EXCLUDED.position, \
                     updated_at = now() \
                 WHERE (read_model.checkpoints.transaction_id, read_model.checkpoints.position) \
                     < (EXCLUDED.transaction_id, EXCLUDED.position)",
            )
            .await?;
        tx.execute(
            &statement,
            &[
                &name,
                &target.version,
                &(last.transaction_id as i64),
                &last.position,
            ],
        )
        .await?;
    }
    for (partition, next) in kafka_next {
        let statement = tx
            .prepare_cached(
                "INSERT INTO read_model.checkpoints \
                 (projection, version, source, partition_key, kafka_offset) \
                 VALUES ($1, $2, 'kafka', $3, $4) \
                 ON CONFLICT (projection, version, source, partition_key) DO UPDATE \
                 SET kafka_offset = GREATEST(read_model.checkpoints.kafka_offset, \
                                             EXCLUDED.kafka_offset), updated_at = now()",
            )
            .await?;
        tx.execute(&statement, &[&name, &target.version, &partition, &next])
            .await?;
    }
    Ok(())
}
