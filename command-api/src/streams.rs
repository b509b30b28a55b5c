//! The streams a command reads: states from the aggregate cache, else from the store (the
//! newest snapshot plus the events after it), kept current from what commands append, and
//! snapshotted in the background every [`SNAPSHOT_EVERY`] events; and decided events as
//! rows.

use std::collections::HashMap;
use std::sync::Arc;

use domain::{OrderEvent, ProductEvent, StoredEvent};
use eventstore::{EventStore, NewEvent, RecordedEvent, Snapshot, SnapshotWriter, StreamState};
use platform::Problem;
use uuid::Uuid;

use crate::cache::StateCache;
use crate::errors::store_problem;

/// A stream is snapshotted when this many events were appended since its last snapshot
/// (or were folded to load it).
pub const SNAPSHOT_EVERY: i64 = 100;

/// The states a command decides on, by stream id.
pub type States = HashMap<Uuid, Arc<StreamState>>;

/// States as loaded for one attempt of a command.
pub struct Loaded {
    pub states: States,
    /// Whether any of them came from the cache (and so may be stale).
    pub from_cache: bool,
}

/// Loads, caches and snapshots stream states.
pub struct Streams {
    store: EventStore,
    cache: StateCache,
    snapshots: SnapshotWriter,
}

impl Streams {
    /// Needs a running tokio runtime (the snapshot writer is a task).
    pub fn new(store: EventStore, cache: StateCache) -> Self {
        Streams {
            snapshots: SnapshotWriter::spawn(store.clone()),
            store,
            cache,
        }
    }

    pub fn cache(&self) -> &StateCache {
        &self.cache
    }

    /// The states of `existing` (from the cache unless `fresh`), plus an empty state for
    /// each of `created` (streams the command creates under new ids; never loaded).
    pub async fn load(
        &self,
        existing: &[Uuid],
        created: &[Uuid],
        fresh: bool,
    ) -> Result<Loaded, Problem> {
        let mut states: States = HashMap::with_capacity(existing.len() + created.len());
        let mut missing = Vec::new();
        for id in existing {
            match (!fresh).then(|| self.cache.get(id)).flatten() {
                Some(state) => {
                    states.insert(*id, state);
                }
                None => missing.push(*id),
            }
        }
        let from_cache = !states.is_empty();
        if !missing.is_empty() {
            let loaded = self
                .store
                .load_states(&missing)
                .await
                .map_err(store_problem)?;
            let mut folded = 0;
            for (id, state) in loaded {
                folded += state.events_folded;
                if state.events_folded as i64 >= SNAPSHOT_EVERY {
                    self.offer_snapshot(&state);
                }
                let state = Arc::new(state);
                if state.exists() {
                    self.cache.put(state.clone());
                }
                states.insert(id, state);
            }
            metrics::histogram!("command_events_folded").record(folded as f64);
        } else {
            metrics::histogram!("command_events_folded").record(0.0);
        }
        for id in created {
            states.insert(*id, Arc::new(StreamState::empty(*id)));
        }
        Ok(Loaded { states, from_cache })
    }

    /// The state of `id` as far as it is known, without taking its lock: from the cache,
    /// else loaded (and not cached: only commands holding a stream's lock write its
    /// entry). For naming a command's streams before locking them.
    pub async fn peek(&self, id: Uuid) -> Result<Arc<StreamState>, Problem> {
        if let Some(state) = self.cache.get(&id) {
            return Ok(state);
        }
        let mut loaded = self.store.load_states(&[id]).await.map_err(store_problem)?;
        Ok(Arc::new(
            loaded.remove(&id).unwrap_or_else(|| StreamState::empty(id)),
        ))
    }

    /// Which of `ids` exist (have events), without taking their locks: those in the
    /// cache, and the rest as the store says. Nothing is cached here.
    pub async fn existing(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, Problem> {
        let (mut known, unknown): (Vec<Uuid>, Vec<Uuid>) =
            ids.iter().partition(|id| self.cache.get(id).is_some());
        known.extend(
            self.store
                .existing_streams(&unknown)
                .await
                .map_err(store_problem)?,
        );
        Ok(known)
    }

    /// Moves the states a command decided on past the events it appended (as a fresh load
    /// would see them), caches them and snapshots those that are due. A state that cannot
    /// follow (it should always) is evicted instead.
    pub fn record(&self, states: &States, appended: &[RecordedEvent]) {
        let mut next: HashMap<Uuid, StreamState> = HashMap::new();
        for event in appended {
            let state = match next.get_mut(&event.stream_id) {
                Some(state) => state,
                None => match states.get(&event.stream_id) {
                    Some(state) => next
                        .entry(event.stream_id)
                        .or_insert_with(|| StreamState::clone(state)),
                    None => continue,
                },
            };
            if let Err(error) = state.apply(event) {
                tracing::warn!(%error, "cannot follow an appended event; evicting the stream");
                next.remove(&event.stream_id);
                self.cache.evict(&event.stream_id);
            }
        }
        for (_, mut state) in next {
            if state.version - state.snapshot_version >= SNAPSHOT_EVERY {
                self.offer_snapshot(&state);
                state.snapshot_version = state.version;
            }
            self.cache.put(Arc::new(state));
        }
    }

    /// Forgets the cached states of `streams` (after a conflict or an unknown outcome).
    pub fn evict(&self, streams: &[Uuid]) {
        for id in streams {
            self.cache.evict(id);
        }
    }

    fn offer_snapshot(&self, state: &StreamState) {
        match Snapshot::of(state) {
            Ok(Some(snapshot)) => {
                self.snapshots.offer(snapshot);
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "cannot serialize a snapshot"),
        }
    }
}

/// The loaded state of `id` (the executor loads every stream a command names).
pub fn state_of(states: &States, id: Uuid) -> Result<&StreamState, Problem> {
    states
        .get(&id)
        .map(|state| state.as_ref())
        .ok_or_else(|| Problem::internal(format!("stream {id} was not loaded")))
}

/// Events of any stream type as rows to append.
pub fn event_rows<E: StoredEvent>(events: &[E]) -> Vec<NewEvent> {
    events
        .iter()
        .map(|e| {
            NewEvent::new(
                e.stored_type(),
                e.stored_version() as i32,
                e.stored_payload(),
            )
        })
        .collect()
}

/// Product events as rows to append.
pub fn product_rows(events: &[ProductEvent]) -> Vec<NewEvent> {
    event_rows(events)
}

/// Order events as rows to append.
pub fn order_rows(events: &[OrderEvent]) -> Vec<NewEvent> {
    event_rows(events)
}
