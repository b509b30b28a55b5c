//! The Postgres log as a source: follows the event log gap-free (DESIGN.md) from the
//! earliest checkpoint of the projections it feeds, woken by LISTEN/NOTIFY. The next page
//! is read while the current one is applied. Passing failures are retried (the worker
//! reports itself retrying meanwhile); any other failure ends it.

use std::time::Duration;

use deadpool_postgres::Pool;
use eventstore::{EventStore, LogCheckpoint, LogListener, RecordedEvent};
use tokio::sync::watch;

use crate::apply::{
    apply_batch, live_targets, saved_positions, ApplyError, BatchItem, EventFacts, SourcePosition,
    Target,
};
use crate::event::decode;
use crate::worker::WorkerStatus;

/// Why a step of the log source failed.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("reading the log: {0}")]
    Store(#[from] eventstore::StoreError),
}

impl StepError {
    /// Passing trouble, by the one classification of database errors.
    fn is_transient(&self) -> bool {
        match self {
            StepError::Apply(error) => error.is_transient(),
            StepError::Store(error) => error.failure() == eventstore::DbFailure::Transient,
        }
    }
}

/// How the log follower runs.
#[derive(Debug, Clone)]
pub struct LogSourceConfig {
    pub database_url: String,
    pub batch_size: i64,
    pub idle_wait: Duration,
}

/// A recorded event as a batch item.
pub fn batch_item(event: &RecordedEvent) -> BatchItem {
    BatchItem {
        facts: EventFacts {
            position: event.position,
            event_id: event.event_id,
            stream_id: event.stream_id,
            version: event.version,
            event_type: event.event_type.clone(),
        },
        event: decode(event),
        position: SourcePosition::Log(LogCheckpoint::after(event)),
        of_the_log: true,
    }
}

/// The earliest saved log checkpoint among `targets` (START for one with none).
pub async fn earliest_checkpoint(
    read_pool: &Pool,
    targets: &[Target],
) -> Result<LogCheckpoint, crate::apply::ApplyError> {
    let client = read_pool.get().await?;
    let mut earliest: Option<LogCheckpoint> = None;
    for target in targets {
        let saved = saved_positions(&client, target, "log").await?;
        let checkpoint = saved.log.unwrap_or(LogCheckpoint::START);
        earliest = Some(earliest.map_or(checkpoint, |e| e.min(checkpoint)));
    }
    Ok(earliest.unwrap_or(LogCheckpoint::START))
}

async fn current_live_targets(read_pool: &Pool) -> Result<Vec<Target>, crate::apply::ApplyError> {
    let mut client = read_pool.get().await?;
    let tx = client.transaction().await?;
    let targets = live_targets(&tx).await?;
    tx.commit().await?;
    Ok(targets)
}

/// Follows the log into the live projections until `shutdown` turns true, finishing the
/// batch in hand first; reports to `status` as it goes. Returns an error (and stops) on a
/// failure retrying cannot mend: a batch that fails other than by passing trouble or
/// poison events, or a log that cannot be read for such a reason.
pub async fn run_log_source(
    config: LogSourceConfig,
    store: EventStore,
    read_pool: Pool,
    mut shutdown: watch::Receiver<bool>,
    status: WorkerStatus,
) -> anyhow::Result<()> {
    let mut listener: Option<LogListener> = None;
    let mut cursor: Option<(LogCheckpoint, Vec<String>)> = None;
    // The page after the one being applied, read while it applies (from, events).
    let mut prefetched: Option<(LogCheckpoint, Vec<RecordedEvent>)> = None;
    while !*shutdown.borrow() {
        if listener.as_ref().is_none_or(|l| l.is_closed()) {
            match LogListener::connect(&config.database_url).await {
                Ok(connected) => listener = Some(connected),
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for new events; polling");
                    listener = None;
                }
            }
        }
        let step = async {
            let (from, versions) = match &cursor {
                Some(known) => known.clone(),
                None => {
                    let targets = current_live_targets(&read_pool).await?;
                    let from = earliest_checkpoint(&read_pool, &targets).await?;
                    // Where the projections stand, for stall detection.
                    status
                        .progress()
                        .reached(targets.iter().map(|t| t.projection.name()), from);
                    (from, describe(&targets))
                }
            };
            let events = match prefetched.take() {
                Some((start, events)) if start == from && !events.is_empty() => events,
                _ => store.read_log(from, config.batch_size).await?,
            };
            let Some(last) = events.last() else {
                return Ok::<_, StepError>(Some((from, versions, true)));
            };
            let next = LogCheckpoint::after(last);
            let items: Vec<BatchItem> = events.iter().map(batch_item).collect();
            let (used, following) = tokio::join!(
                apply_batch(&read_pool, &items, None, &status),
                store.read_log(next, config.batch_size)
            );
            let used = used?;
            // A failed read ahead is only a lost head start: the page is read again.
            prefetched = following.ok().map(|events| (next, events));
            // A switched projection version has its own checkpoint: find the start anew.
            if describe(&used) != versions {
                return Ok(None);
            }
            Ok(Some((next, versions, false)))
        };
        let outcome = step.await;
        if outcome.is_ok() {
            status.running();
        }
        match outcome {
            Ok(Some((next, versions, idle))) => {
                cursor = Some((next, versions));
                if idle {
                    let wait = async {
                        match &listener {
                            Some(l) => l.wait(config.idle_wait).await,
                            None => tokio::time::sleep(config.idle_wait).await,
                        }
                    };
                    tokio::select! {
                        _ = wait => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
            Ok(None) => cursor = None,
            Err(error) if !error.is_transient() => {
                let error = anyhow::Error::new(error).context("projecting from the log");
                tracing::error!(error = format!("{error:#}"), "stopping");
                return Err(error);
            }
            Err(error) => {
                status.retrying();
                tracing::warn!(%error, "projecting from the log failed; retrying");
                cursor = None;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
    Ok(())
}

fn describe(targets: &[Target]) -> Vec<String> {
    targets.iter().map(|t| format!("{t:?}")).collect()
}
