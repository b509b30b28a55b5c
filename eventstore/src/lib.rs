//! Agora's Postgres event store, on tokio-postgres and deadpool.
//!
//! - [`EventStore::append`]: a command's events for any number of streams, each at its
//!   expected version, in one statement (one round trip, one transaction).
//! - [`EventStore::load_streams`]: the events aggregates are folded from;
//!   [`EventStore::load_states`]: the folded states, from the newest snapshot on
//!   ([`snapshot`], [`state`], through the one decoder, [`decode`]).
//! - [`EventStore::read_log`]: the gap-free global log in `(transaction_id, position)` order.
//! - [`hashchain`]: the per-stream SHA-256 chain over RFC 8785 canonical JSON.
//! - [`follower`]: the one log follower (gap-free, leader by advisory lock, checkpointed)
//!   that the relay and the reactors share.
//! - [`sequencer`], [`sequence`], [`merkle`], [`tree`], [`checkpoint`]: the verifiable log (a dense
//!   sequence, an RFC 9162 Merkle tree over it, signed checkpoints, proofs).
//! - [`relay`]: publishes the log to Kafka (the events table is the outbox).
//! - [`connect::migrate`]: versioned migrations, applied at start.

pub mod append;
pub mod checkpoint;
pub mod claims;
pub mod connect;
pub mod db_error;
pub mod decode;
pub mod envelope;
pub mod error;
pub mod event;
pub mod exportline;
pub mod follower;
pub mod group_commit;
pub mod hashchain;
pub mod idempotency;
pub mod jcs;
pub mod kafka;
pub mod listen;
pub mod load;
pub mod log;
pub mod logverify;
pub mod merkle;
pub mod pii_keys;
pub mod relay;
pub mod row;
pub mod sequence;
pub mod sequencer;
pub mod snapshot;
pub mod state;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;
pub mod tree;
pub mod verify;
pub mod xid8;

pub use append::{AppendRequest, Appended, IdempotencyRecord, StreamWrite, UniqueClaim};
pub use connect::{connect_pool, migrate, Connector};
pub use db_error::{classify, classify_pool, DbFailure};
pub use deadpool_postgres::Pool;
pub use decode::{decode, DecodeError, ShopEvent};
pub use envelope::Envelope;
pub use error::{AppendError, StoreError};
pub use event::{EventMetadata, NewEvent, RecordedEvent};
pub use group_commit::{GroupCommit, GroupCommitLimits};
pub use hashchain::{ChainFailure, Hash};
pub use idempotency::StoredResponse;
pub use listen::{AppendNotifier, LogListener};
pub use load::LoadedStream;
pub use log::LogCheckpoint;
pub use snapshot::{Snapshot, SnapshotWriter};
pub use state::{fold_version, AggregateState, StreamState};
pub use verify::VerifyReport;

/// The event store: a handle on a connection pool; cheap to clone.
#[derive(Clone)]
pub struct EventStore {
    pool: Pool,
    notifier: Option<listen::AppendNotifier>,
    group: Option<GroupCommit>,
}

impl EventStore {
    pub fn new(pool: Pool) -> Self {
        EventStore {
            pool,
            notifier: None,
            group: None,
        }
    }

    /// The same store, appending through group commit: concurrent commands share a
    /// transaction ([`group_commit`]). Needs a running tokio runtime.
    pub fn grouping_commits(mut self, limits: GroupCommitLimits) -> Self {
        let plain = EventStore {
            group: None,
            ..self.clone()
        };
        self.group = Some(GroupCommit::spawn(plain, limits));
        self
    }

    /// The same store, also waking log followers (relay, projectors) after each append
    /// commits. Needs a running tokio runtime.
    pub fn notifying_followers(mut self) -> Self {
        self.notifier = Some(listen::AppendNotifier::spawn(self.pool.clone()));
        self
    }

    /// The pool, for callers that need a plain connection (health checks, tests).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// True when the database answers.
    pub async fn is_reachable(&self) -> bool {
        match self.pool.get().await {
            Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
            Err(_) => false,
        }
    }
}
