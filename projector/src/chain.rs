//! What a Kafka consumer checks before it applies an event: anyone on the network between
//! the relay and the projector can write a message, so a message is trusted only when its
//! event is the link of the hash chain the event store recorded.
//!
//! - The event's `hash` must be the hash of its own content chained from its `prev_hash`
//!   (a payload changed in transit without the hash is refused);
//! - and that hash must be the one the event store holds for the event's stream and
//!   version (read for a whole batch in one query), so the event chains from its stream's
//!   real previous event and is the one that follows it. A forged event with a recomputed
//!   hash, however well formed, is not in the store: refused.
//!
//! A refused event is poison (recorded with the reason, not applied); the real event, when it
//! arrives, is applied as usual.

use std::collections::HashMap;

use eventstore::hashchain::{chain_hash, HashedFields};
use eventstore::{EventStore, Hash, RecordedEvent, StoreError};
use uuid::Uuid;

/// Checks events read from Kafka against the event store.
pub struct ChainGuard {
    store: EventStore,
}

impl ChainGuard {
    pub fn new(store: EventStore) -> Self {
        ChainGuard { store }
    }

    /// For each of `events`, `Ok` or why it is refused. Errors only when the event store
    /// cannot be read.
    pub async fn check(
        &self,
        events: &[&RecordedEvent],
    ) -> Result<Vec<Result<(), String>>, StoreError> {
        let stored = self.stored_hashes(events).await?;
        Ok(events
            .iter()
            .map(|event| check_one(event, stored.get(&(event.stream_id, event.version))))
            .collect())
    }

    /// The stored hashes of the events' (stream, version), in one query.
    async fn stored_hashes(
        &self,
        events: &[&RecordedEvent],
    ) -> Result<HashMap<(Uuid, i64), Hash>, StoreError> {
        if events.is_empty() {
            return Ok(HashMap::new());
        }
        let streams: Vec<Uuid> = events.iter().map(|event| event.stream_id).collect();
        let versions: Vec<i64> = events.iter().map(|event| event.version).collect();
        let client = self.store.pool().get().await?;
        let statement = client
            .prepare_cached(
                "SELECT e.stream_id, e.version, e.hash FROM events e \
                 JOIN unnest($1::uuid[], $2::bigint[]) AS w(stream_id, version) \
                   ON e.stream_id = w.stream_id AND e.version = w.version",
            )
            .await?;
        let rows = client.query(&statement, &[&streams, &versions]).await?;
        let mut stored = HashMap::with_capacity(rows.len());
        for row in rows {
            let bytes: &[u8] = row.try_get(2)?;
            if let Some(hash) = Hash::from_slice(bytes) {
                stored.insert((row.try_get(0)?, row.try_get(1)?), hash);
            }
        }
        Ok(stored)
    }
}

/// One event against its own content and the hash the store recorded for it.
fn check_one(event: &RecordedEvent, stored: Option<&Hash>) -> Result<(), String> {
    match chain_hash(&event.prev_hash, &HashedFields::from(event)) {
        Ok(hash) if hash == event.hash => {}
        Ok(_) => {
            return Err(
                "the event's hash does not match its content: altered after it was recorded".into(),
            )
        }
        Err(error) => return Err(format!("cannot canonicalize the event: {error}")),
    }
    match stored {
        Some(hash) if *hash == event.hash => Ok(()),
        Some(_) => Err(
            "the event is not the one the event store recorded at its stream's version \
             (a forgery: it does not chain as the store's events do)"
                .into(),
        ),
        None => {
            Err("the event store has no event at this stream's version: a forged message".into())
        }
    }
}
