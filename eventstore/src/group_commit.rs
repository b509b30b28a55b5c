//! Group commit: concurrent commands share one transaction (one statement, one WAL flush)
//! instead of waiting for a commit each.
//!
//! Commands queue for the committers. Whatever is queued when a committer is free forms its
//! next batch (no fixed delay: a lone command commits at once), up to [`GroupCommitLimits`];
//! a few batches may be in flight at once, so one batch's WAL flush overlaps the next
//! one's insert (PostgreSQL flushes concurrent commits together).
//! Each command keeps every guarantee of a lone append: all of its events, claims and its
//! idempotency record commit together or not at all, and a command that conflicts fails
//! alone while the rest of its batch commits ([`crate::EventStore::append_batch`]). Two
//! commands on the same stream (or claim, or idempotency key) never share a batch: the
//! later one waits for the next. Its answer reaches a command only once its batch is
//! durable (the statement's commit returned).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};
use uuid::Uuid;

use crate::append::{Appended, Prepared};
use crate::error::{AppendError, StoreError};
use crate::EventStore;

/// Bounds of one batch.
#[derive(Debug, Clone, Copy)]
pub struct GroupCommitLimits {
    /// Commands in one transaction.
    pub max_commands: usize,
    /// Payload bytes (approximately: the JSON of the payloads) in one transaction.
    pub max_bytes: usize,
    /// Batches committing at the same time.
    pub in_flight: usize,
}

impl Default for GroupCommitLimits {
    fn default() -> Self {
        GroupCommitLimits {
            max_commands: 256,
            max_bytes: 4 << 20,
            in_flight: 2,
        }
    }
}

struct Job {
    command: Prepared,
    bytes: usize,
    reply: oneshot::Sender<Result<Appended, AppendError>>,
}

/// The queue in front of the committer.
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the committer on `store` (which must not itself group; needs a running tokio
    /// runtime).
    pub fn spawn(store: EventStore, limits: GroupCommitLimits) -> GroupCommit {
        let (queue, jobs) = mpsc::channel(limits.max_commands.max(1) * 8);
        let pending = Arc::new(Mutex::new(Pending {
            jobs,
            waiting: VecDeque::new(),
        }));
        for _ in 0..limits.in_flight.max(1) {
            tokio::spawn(commit_batches(store.clone(), pending.clone(), limits));
        }
        GroupCommit { queue }
    }

    /// Appends one command with the next batch; answers once that batch committed.
    pub(crate) async fn append(&self, command: Prepared) -> Result<Appended, AppendError> {
        let (reply, answer) = oneshot::channel();
        let bytes = command
            .events
            .iter()
            .map(|e| e.payload.to_string().len() + 256)
            .sum();
        let job = Job {
            command,
            bytes,
            reply,
        };
        let gone = || AppendError::Store(StoreError::Unavailable("the committer stopped".into()));
        self.queue.send(job).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// What a batch already holds: no second command may touch the same.
#[derive(Default)]
struct Taken {
    streams: HashSet<Uuid>,
    claims: HashSet<(String, String)>,
    keys: HashSet<(String, String)>,
}

impl Taken {
    /// Takes what `command` touches, unless something of it is taken already.
    fn take(&mut self, command: &Prepared) -> bool {
        let request = &command.request;
        let streams = request.streams.iter().map(|s| s.stream_id);
        let claims = request
            .claims
            .iter()
            .map(|c| (c.scope.clone(), c.value.clone()));
        let key = request
            .idempotency
            .as_ref()
            .map(|i| (i.caller.clone(), i.key.clone()));
        let free = streams.clone().all(|s| !self.streams.contains(&s))
            && claims.clone().all(|c| !self.claims.contains(&c))
            && key.as_ref().is_none_or(|k| !self.keys.contains(k));
        if free {
            self.streams.extend(streams);
            self.claims.extend(claims);
            self.keys.extend(key);
        }
        free
    }
}

/// The queue as the committers share it: the channel, and the jobs a batch left for the
/// next one (they touched what it already held).
struct Pending {
    jobs: mpsc::Receiver<Job>,
    waiting: VecDeque<Job>,
}

impl Pending {
    /// The next batch: waits for one job, then takes what is queued, within the limits.
    /// `None` once the queue is closed and empty.
    async fn next_batch(&mut self, limits: GroupCommitLimits) -> Option<Vec<Job>> {
        if self.waiting.is_empty() {
            self.waiting.push_back(self.jobs.recv().await?);
        }
        while let Ok(job) = self.jobs.try_recv() {
            self.waiting.push_back(job);
        }
        let mut batch = Vec::new();
        let mut bytes = 0;
        let mut taken = Taken::default();
        let mut later = VecDeque::new();
        while let Some(job) = self.waiting.pop_front() {
            let fits = batch.is_empty()
                || (batch.len() < limits.max_commands && bytes + job.bytes <= limits.max_bytes);
            if fits && taken.take(&job.command) {
                bytes += job.bytes;
                batch.push(job);
            } else {
                later.push_back(job);
            }
        }
        self.waiting = later;
        Some(batch)
    }
}

/// One committer: takes a batch while no other committer is taking one, commits it, answers.
async fn commit_batches(
    store: EventStore,
    pending: Arc<Mutex<Pending>>,
    limits: GroupCommitLimits,
) {
    loop {
        let Some(batch) = pending.lock().await.next_batch(limits).await else {
            return;
        };
        let (commands, replies): (Vec<Prepared>, Vec<_>) = batch
            .into_iter()
            .map(|job| (job.command, job.reply))
            .unzip();
        metrics::histogram!("group_commit_commands").record(commands.len() as f64);
        metrics::histogram!("group_commit_events")
            .record(commands.iter().map(|c| c.events.len()).sum::<usize>() as f64);
        metrics::counter!("group_commits_total").increment(1);
        let results = store.append_prepared(commands).await;
        for (reply, result) in replies.into_iter().zip(results) {
            // A command whose caller went away is still committed; nobody to tell.
            let _ = reply.send(result);
        }
    }
}
