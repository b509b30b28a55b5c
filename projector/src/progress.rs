//! Whether each projection is advancing, measured so that it cannot lie: not "is the lag
//! large" (a busy projection catching up has lag and is fine) but "has it stopped advancing
//! while there is work for it".
//!
//! Two kinds of work are watched:
//! - **a batch in hand**: the worker fetched events and has not committed them (the read
//!   model blocks it: a lock, a stuck connection, a database outage being retried). Its age
//!   counts for every projection.
//! - **events waiting in the log** (log source only): the log's head — its last committed
//!   event in log order, `(transaction_id, position)`, read by [`watch`] over its own
//!   connection every second — is beyond where a projection stands in that order (its saved
//!   checkpoint at start, then each batch it commits). The time counts from when the head was
//!   first seen beyond it or from its last advance, whichever is later. An open transaction
//!   that holds the gap-free reader back counts too: events wait and nothing advances. A head
//!   that cannot be read counts from when it last could (the log cannot be seen, so nothing
//!   says the projection is keeping up). (A Kafka replica cannot use the
//!   head: the newest events may be in another replica's partitions. For Kafka the batch in
//!   hand counts, and a broker that cannot be reached makes the worker `retrying`.)
//!
//! The larger is `projection_stalled_seconds{projection}`; over `AGORA_PROJECTOR_STALL_AFTER`
//! `/readyz` answers 503 naming the stalled projections. `projection_applied_position` and
//! `log_head_position` are the positions behind it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventstore::xid8::Xid8;
use eventstore::{EventStore, LogCheckpoint};
use tokio::sync::watch;

/// How often [`watch`] reads the log's head.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// The longest a head read may take before it counts as unknown.
const HEAD_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
struct State {
    /// Since when the worker holds a batch it has not committed.
    batch_since: Option<Instant>,
    /// Per projection: where it stands in log order and when it last advanced.
    applied: HashMap<String, (LogCheckpoint, Instant)>,
    /// Since when each projection has been seen behind the log's head.
    behind_since: HashMap<String, Instant>,
    /// Since when the head cannot be read.
    head_unknown_since: Option<Instant>,
}

/// Shared between the worker (batches), [`watch`] (the head) and `/readyz`.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    state: Arc<Mutex<State>>,
    /// Whether events waiting in the log count (the log source).
    watches_head: bool,
}

impl Progress {
    /// Progress of a worker; `watches_head` for the log source.
    pub fn new(watches_head: bool) -> Self {
        Progress {
            state: Arc::default(),
            watches_head,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `projections` as known (so they are watched before their first batch).
    pub fn know<'a>(&self, projections: impl IntoIterator<Item = &'a str>) {
        let now = Instant::now();
        let mut state = self.state();
        for name in projections {
            state
                .applied
                .entry(name.to_owned())
                .or_insert((LogCheckpoint::START, now));
        }
    }

    /// The worker has a batch in hand.
    pub fn batch_started(&self) {
        self.state().batch_since.get_or_insert_with(Instant::now);
    }

    /// The batch is committed for `projections`, up to `at` in log order (for Kafka, where
    /// only the position is known: `transaction_id` 0).
    pub fn batch_applied<'a>(
        &self,
        projections: impl IntoIterator<Item = &'a str>,
        at: LogCheckpoint,
    ) {
        self.state().batch_since = None;
        self.reached(projections, at);
    }

    /// `projections` stand at least at `at` (a saved checkpoint, a committed batch).
    pub fn reached<'a>(&self, projections: impl IntoIterator<Item = &'a str>, at: LogCheckpoint) {
        let now = Instant::now();
        let mut state = self.state();
        for name in projections {
            let entry = state
                .applied
                .entry(name.to_owned())
                .or_insert((LogCheckpoint::START, now));
            if at > entry.0 {
                *entry = (at, now);
            }
            metrics::gauge!("projection_applied_position", "projection" => name.to_owned())
                .set(entry.0.position as f64);
        }
    }

    /// The log's head as just read (`None`: it could not be read).
    fn head_seen(&self, head: Option<LogCheckpoint>) {
        let now = Instant::now();
        let mut state = self.state();
        let Some(head) = head else {
            state.head_unknown_since.get_or_insert(now);
            return;
        };
        state.head_unknown_since = None;
        metrics::gauge!("log_head_position").set(head.position as f64);
        let behind: Vec<String> = state
            .applied
            .iter()
            .filter(|(_, (applied, _))| *applied < head)
            .map(|(name, _)| name.clone())
            .collect();
        state.behind_since.retain(|name, _| behind.contains(name));
        for name in behind {
            state.behind_since.entry(name).or_insert(now);
        }
    }

    /// Seconds each known projection has not advanced while work waited for it.
    pub fn stalled(&self) -> HashMap<String, f64> {
        let now = Instant::now();
        let state = self.state();
        let since = |at: Instant| now.duration_since(at).as_secs_f64();
        let in_hand = state.batch_since.map_or(0.0, since);
        let unknown = state.head_unknown_since.map_or(0.0, since);
        state
            .applied
            .iter()
            .map(|(name, (_, advanced))| {
                let waiting = match state.behind_since.get(name) {
                    _ if !self.watches_head => 0.0,
                    Some(behind) => since((*behind).max(*advanced)),
                    None => unknown,
                };
                (name.clone(), in_hand.max(waiting))
            })
            .collect()
    }

    /// The projections stalled longer than `after`, and for how long (seconds, rounded).
    pub fn stalled_longer_than(&self, after: Duration) -> Vec<(String, u64)> {
        let mut stalled: Vec<(String, u64)> = self
            .stalled()
            .into_iter()
            .filter(|(_, seconds)| *seconds > after.as_secs_f64())
            .map(|(name, seconds)| (name, seconds as u64))
            .collect();
        stalled.sort();
        stalled
    }
}

/// The log's last committed event in log order (the start of the log when it is empty).
async fn read_head(store: &EventStore) -> Option<LogCheckpoint> {
    let client = store.pool().get().await.ok()?;
    let row = client
        .query_opt(
            "SELECT transaction_id, position FROM events \
             ORDER BY transaction_id DESC, position DESC LIMIT 1",
            &[],
        )
        .await
        .ok()?;
    Some(match row {
        Some(row) => LogCheckpoint {
            transaction_id: row.try_get::<_, Xid8>(0).ok()?.0,
            position: row.try_get(1).ok()?,
        },
        None => LogCheckpoint::START,
    })
}

/// Reads the log's head every [`INTERVAL`] (when the progress watches it) and keeps the
/// gauge `projection_stalled_seconds`, until `shutdown`.
pub async fn watch(progress: Progress, store: EventStore, mut shutdown: watch::Receiver<bool>) {
    loop {
        if progress.watches_head {
            let head = tokio::time::timeout(HEAD_TIMEOUT, read_head(&store))
                .await
                .ok()
                .flatten();
            progress.head_seen(head);
        }
        for (name, seconds) in progress.stalled() {
            metrics::gauge!("projection_stalled_seconds", "projection" => name).set(seconds);
        }
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(transaction_id: u64, position: i64) -> LogCheckpoint {
        LogCheckpoint {
            transaction_id,
            position,
        }
    }

    #[test]
    fn a_projection_behind_the_head_stalls_only_while_it_does_not_advance() {
        let progress = Progress::new(true);
        progress.know(["products"]);
        progress.reached(["products"], at(7, 10));
        progress.head_seen(Some(at(7, 10)));
        assert_eq!(progress.stalled()["products"], 0.0, "caught up");
        // Log order, not position order: a later transaction's lower position is ahead.
        progress.head_seen(Some(at(8, 9)));
        std::thread::sleep(Duration::from_millis(30));
        assert!(
            progress.stalled()["products"] > 0.0,
            "behind, not advancing"
        );
        progress.batch_applied(["products"], at(8, 9));
        progress.head_seen(Some(at(8, 9)));
        assert_eq!(progress.stalled()["products"], 0.0, "advanced to the head");
        // A head that cannot be read counts.
        progress.head_seen(None);
        std::thread::sleep(Duration::from_millis(30));
        assert!(progress.stalled()["products"] > 0.0);
    }

    #[test]
    fn a_batch_in_hand_counts_for_every_projection_and_kafka_ignores_the_head() {
        let progress = Progress::new(false);
        progress.know(["orders", "sales"]);
        progress.head_seen(Some(at(9, 1000)));
        assert!(progress.stalled().values().all(|s| *s == 0.0));
        progress.batch_started();
        std::thread::sleep(Duration::from_millis(30));
        let stalled = progress.stalled();
        assert!(
            stalled["orders"] > 0.0 && stalled["sales"] > 0.0,
            "{stalled:?}"
        );
        assert_eq!(
            progress
                .stalled_longer_than(Duration::from_millis(10))
                .len(),
            2
        );
        progress.batch_applied(["orders", "sales"], at(0, 5));
        assert!(progress.stalled().values().all(|s| *s == 0.0));
    }
}
