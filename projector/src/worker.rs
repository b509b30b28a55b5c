//! What a projector worker (the Kafka or the log source) reports about itself, for
//! `/readyz` and `/healthz`: starting, running, retrying a passing failure, failed for good,
//! or stopped on request. A failed worker does not come back: the process exits non-zero
//! so that an orchestrator restarts it.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use crate::progress::Progress;

/// Where a worker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// Not yet through its first step (connecting, subscribing, the first batch).
    Starting = 0,
    /// Projecting, or waiting for events.
    Running = 1,
    /// Retrying a passing failure (the database or Kafka unreachable, a lock timeout, a
    /// deadlock); running again once a step succeeds.
    Retrying = 2,
    /// Stopped by a failure retrying cannot mend (final).
    Failed = 3,
    /// Stopped on request (final).
    Stopped = 4,
}

impl WorkerState {
    /// As `/readyz` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Starting => "starting",
            WorkerState::Running => "running",
            WorkerState::Retrying => "retrying",
            WorkerState::Failed => "failed",
            WorkerState::Stopped => "stopped",
        }
    }

    fn is_final(self) -> bool {
        matches!(self, WorkerState::Failed | WorkerState::Stopped)
    }

    fn from_u8(value: u8) -> WorkerState {
        match value {
            1 => WorkerState::Running,
            2 => WorkerState::Retrying,
            3 => WorkerState::Failed,
            4 => WorkerState::Stopped,
            _ => WorkerState::Starting,
        }
    }
}

/// A worker's state, shared between the worker and whoever asks. Once failed or stopped
/// it stays so.
#[derive(Debug, Clone)]
pub struct WorkerStatus {
    name: &'static str,
    state: Arc<AtomicU8>,
    progress: Progress,
}

impl WorkerStatus {
    /// A starting worker called `name` (`kafka`, `log`, `rebuild`); the `log` source's
    /// progress is also measured against the log's head ([`Progress`]).
    pub fn new(name: &'static str) -> Self {
        WorkerStatus {
            name,
            state: Arc::new(AtomicU8::new(WorkerState::Starting as u8)),
            progress: Progress::new(name == "log"),
        }
    }

    /// Whether its projections are advancing.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn get(&self) -> WorkerState {
        WorkerState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// A step succeeded.
    pub fn running(&self) {
        self.set(WorkerState::Running);
    }

    /// A step failed and will be retried.
    pub fn retrying(&self) {
        self.set(WorkerState::Retrying);
    }

    /// The worker ended on a failure.
    pub fn failed(&self) {
        self.set(WorkerState::Failed);
    }

    /// The worker ended because it was asked to.
    pub fn stopped(&self) {
        self.set(WorkerState::Stopped);
    }

    fn set(&self, state: WorkerState) {
        let changed = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                (!WorkerState::from_u8(current).is_final()).then_some(state as u8)
            });
        if changed.is_ok() {
            metrics::gauge!("projector_worker_state", "worker" => self.name)
                .set(f64::from(state as u8));
        }
    }

    /// A guard that marks the worker failed when dropped before it reached a final state
    /// (the worker panicked, or returned without saying how it ended).
    pub fn until_ended(&self) -> EndGuard {
        EndGuard(self.clone())
    }
}

/// See [`WorkerStatus::until_ended`].
pub struct EndGuard(WorkerStatus);

impl Drop for EndGuard {
    fn drop(&mut self) {
        if !self.0.get().is_final() {
            tracing::error!(worker = self.0.name, "the worker ended unexpectedly");
            self.0.failed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_states_stay_and_a_dropped_guard_fails_a_live_worker() {
        let status = WorkerStatus::new("t");
        assert_eq!(status.get(), WorkerState::Starting);
        status.retrying();
        assert_eq!(status.get(), WorkerState::Retrying);
        status.running();
        assert_eq!(status.get(), WorkerState::Running);
        drop(status.until_ended());
        assert_eq!(status.get(), WorkerState::Failed);
        status.running();
        assert_eq!(status.get(), WorkerState::Failed, "failed is final");

        let stopped = WorkerStatus::new("t");
        stopped.stopped();
        drop(stopped.until_ended());
        assert_eq!(stopped.get(), WorkerState::Stopped, "stopped is final");
    }
}
