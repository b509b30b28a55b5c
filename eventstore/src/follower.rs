//! The log follower: one implementation of "follow the event log and do something with
//! each batch", shared by the Kafka relay and the reactors.
//!
//! - **Gap-free**: batches come from [`EventStore::read_log`] in `(transaction_id,
//!   position)` order, and the checkpoint is that pair.
//! - **One active instance**: a follower holds a session-level advisory lock (its
//!   `lock_key`) on a dedicated session; a standby retries the lock every `standby_retry`
//!   and takes over when the holder's session ends (a crash, kill -9, a lost network).
//! - **Checkpoint with the effects**: each batch runs inside a transaction on the session
//!   that holds the lock, and the checkpoint is saved in that same transaction, so
//!   database effects and the checkpoint commit together, and a follower that lost its
//!   session (and so its lock) cannot commit anything. Effects outside the database (a
//!   Kafka publish) happen before the commit: at least once, so they must be idempotent.
//! - **Woken after commit** by [`crate::listen::AppendNotifier`]'s notifications, with
//!   `idle_wait` polling as a fallback.
//! - **Observable**: `{prefix}_leader` (1 on the active instance), `{prefix}_lag_seconds`
//!   (age of the newest event handled), `{prefix}_lag_events` (a full batch's worth while
//!   catching up, else 0), `{prefix}_events_total`, `{prefix}_failures_total`; and a
//!   [`FollowerStatus`] for readiness.
//!
//! Checkpoints live in `relay_checkpoints`, one row per follower `name`. A batch saves its
//! checkpoint only over the one it started from (compare and set), so a checkpoint never
//! moves backwards: when the row moved under the follower (a stale instance, or an
//! operator who moved it by hand), the batch rolls back and the follower stands down and
//! resumes from the saved checkpoint.

use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_postgres::Client;

use crate::error::StoreError;
use crate::event::RecordedEvent;
use crate::listen::LogListener;
use crate::log::LogCheckpoint;
use crate::EventStore;

/// How a follower runs.
#[derive(Debug, Clone)]
pub struct FollowerConfig {
    pub database_url: String,
    /// The checkpoint's name (one per follower deployment).
    pub name: String,
    /// The advisory lock that elects the active instance.
    pub lock_key: i64,
    /// Metric names start with this (`relay`, `expiry_reactor`, ...).
    pub metric_prefix: String,
    pub batch_size: i64,
    /// How long a standby waits between tries for the lock.
    pub standby_retry: Duration,
    /// The longest wait for new events without a notification.
    pub idle_wait: Duration,
    /// How long to wait before retrying a batch whose handler failed.
    pub retry_after_failure: Duration,
}

impl FollowerConfig {
    /// A follower named `name` electing its leader with `lock_key`.
    pub fn new(database_url: &str, name: &str, lock_key: i64, metric_prefix: &str) -> Self {
        FollowerConfig {
            database_url: database_url.to_owned(),
            name: name.to_owned(),
            lock_key,
            metric_prefix: metric_prefix.to_owned(),
            batch_size: 1000,
            standby_retry: Duration::from_secs(1),
            idle_wait: Duration::from_millis(100),
            retry_after_failure: Duration::from_millis(500),
        }
    }
}

/// What a follower does with each batch of the log.
pub trait BatchHandler: Send {
    /// Handles `events` (in log order, at least one). `session` is the lock holder's
    /// session, inside the transaction that will also save the checkpoint after them:
    /// database effects written through it commit together with the checkpoint. An error
    /// rolls the batch back; it is retried from the same checkpoint.
    fn handle<'a>(
        &'a mut self,
        session: &'a Client,
        events: &'a [RecordedEvent],
    ) -> impl Future<Output = Result<(), String>> + Send + 'a;

    /// Called after a batch's transaction committed (to wake whoever acts on its effects).
    fn committed(&mut self) {}

    /// Called once each time this instance becomes the active one, before the first batch
    /// (to reset state a previous leadership left behind).
    fn on_leadership(&mut self) {}
}

/// Where a follower is: for readiness and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerState {
    /// No session to the database (starting, or lost it).
    Disconnected = 0,
    /// Connected, another instance holds the lock.
    Standby = 1,
    /// This instance holds the lock and follows the log.
    Active = 2,
}

/// A follower's state, shared with whoever asks (health checks).
#[derive(Debug, Clone, Default)]
pub struct FollowerStatus(Arc<AtomicU8>);

impl FollowerStatus {
    pub fn get(&self) -> FollowerState {
        match self.0.load(Ordering::Acquire) {
            2 => FollowerState::Active,
            1 => FollowerState::Standby,
            _ => FollowerState::Disconnected,
        }
    }

    fn set(&self, state: FollowerState) {
        self.0.store(state as u8, Ordering::Release);
    }
}

/// Follows the log until `shutdown` turns true: standby until it holds the lock, then
/// hands every batch to `handler`. Errors are logged and retried; this returns only on
/// shutdown.
pub async fn run_follower<H: BatchHandler>(
    config: FollowerConfig,
    store: EventStore,
    mut handler: H,
    status: FollowerStatus,
    mut shutdown: watch::Receiver<bool>,
) {
    let leader = format!("{}_leader", config.metric_prefix);
    loop {
        if *shutdown.borrow() {
            break;
        }
        if let Err(error) =
            lead_while_possible(&config, &store, &mut handler, &status, &mut shutdown).await
        {
            tracing::warn!(%error, follower = %config.name, "log follower interrupted; retrying");
        }
        status.set(FollowerState::Disconnected);
        metrics::gauge!(leader.clone()).set(0.0);
        tokio::select! {
            _ = tokio::time::sleep(config.standby_retry) => {}
            _ = shutdown.changed() => {}
        }
    }
    status.set(FollowerState::Disconnected);
}

/// One session: waits for the lock, then follows until the session or shutdown ends it.
async fn lead_while_possible<H: BatchHandler>(
    config: &FollowerConfig,
    store: &EventStore,
    handler: &mut H,
    status: &FollowerStatus,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let listener = LogListener::connect(&config.database_url).await?;
    let session = listener.client();
    status.set(FollowerState::Standby);
    loop {
        let row = session
            .query_one("SELECT pg_try_advisory_lock($1)", &[&config.lock_key])
            .await?;
        if row.try_get::<_, bool>(0)? {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(config.standby_retry) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return Ok(());
        }
    }
    tracing::info!(follower = %config.name, "now the active instance");
    status.set(FollowerState::Active);
    let prefix = &config.metric_prefix;
    metrics::gauge!(format!("{prefix}_leader")).set(1.0);
    handler.on_leadership();
    let mut checkpoint = load_checkpoint(session, &config.name).await?;
    let save = session
        .prepare(
            "UPDATE relay_checkpoints SET transaction_id = $2, position = $3, updated_at = now() \
             WHERE name = $1 AND transaction_id = $4 AND position = $5",
        )
        .await?;
    while !*shutdown.borrow() {
        if listener.is_closed() {
            return Err(StoreError::Unavailable(format!(
                "the session of follower {} ended",
                config.name
            )));
        }
        let events = store.read_log(checkpoint, config.batch_size).await?;
        let Some(last) = events.last() else {
            metrics::gauge!(format!("{prefix}_lag_events")).set(0.0);
            metrics::gauge!(format!("{prefix}_lag_seconds")).set(0.0);
            tokio::select! {
                _ = listener.wait(config.idle_wait) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        };
        let next = LogCheckpoint::after(last);
        session.batch_execute("BEGIN").await?;
        let outcome = match handler.handle(session, &events).await {
            Ok(()) => session
                .execute(
                    &save,
                    &[
                        &config.name,
                        &(next.transaction_id as i64),
                        &next.position,
                        &(checkpoint.transaction_id as i64),
                        &checkpoint.position,
                    ],
                )
                .await
                .map_err(|e| e.to_string()),
            Err(error) => Err(error),
        };
        if let Ok(0) = outcome {
            let _ = session.batch_execute("ROLLBACK").await;
            return Err(StoreError::Config(format!(
                "the checkpoint of follower {} moved under it; standing down to resume from it",
                config.name
            )));
        }
        if let Err(error) = outcome {
            let _ = session.batch_execute("ROLLBACK").await;
            metrics::counter!(format!("{prefix}_failures_total")).increment(1);
            tracing::warn!(%error, follower = %config.name, "a batch failed; retrying it");
            tokio::select! {
                _ = tokio::time::sleep(config.retry_after_failure) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        session.batch_execute("COMMIT").await?;
        handler.committed();
        checkpoint = next;
        metrics::counter!(format!("{prefix}_events_total")).increment(events.len() as u64);
        let lag = (chrono::Utc::now() - last.occurred_at)
            .num_milliseconds()
            .max(0) as f64;
        metrics::gauge!(format!("{prefix}_lag_seconds")).set(lag / 1000.0);
        metrics::gauge!(format!("{prefix}_lag_events")).set(
            if events.len() as i64 == config.batch_size {
                config.batch_size as f64
            } else {
                0.0
            },
        );
    }
    Ok(())
}

/// The follower's saved checkpoint (the start of the log for a new follower).
async fn load_checkpoint(session: &Client, name: &str) -> Result<LogCheckpoint, StoreError> {
    session
        .execute(
            "INSERT INTO relay_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
            &[&name],
        )
        .await?;
    let row = session
        .query_one(
            "SELECT transaction_id, position FROM relay_checkpoints WHERE name = $1",
            &[&name],
        )
        .await?;
    Ok(LogCheckpoint {
        transaction_id: row.try_get::<_, i64>(0)? as u64,
        position: row.try_get(1)?,
    })
}

/// Where follower `name` stands in the log (the start when it never ran).
pub async fn saved_checkpoint(store: &EventStore, name: &str) -> Result<LogCheckpoint, StoreError> {
    let client = store.pool().get().await?;
    let row = client
        .query_opt(
            "SELECT transaction_id, position FROM relay_checkpoints WHERE name = $1",
            &[&name],
        )
        .await?;
    match row {
        Some(row) => Ok(LogCheckpoint {
            transaction_id: row.try_get::<_, i64>(0)? as u64,
            position: row.try_get(1)?,
        }),
        None => Ok(LogCheckpoint::START),
    }
}
