//! Snapshots: a stream's folded state at a version, so that loading costs the events after
//! the snapshot, not the whole stream. Loading reads the newest usable snapshot (same
//! [`fold_version`]) and the events after it in one round trip; a snapshot that cannot be
//! read is ignored (the stream is folded from its first event). Snapshots are written off
//! the command's critical path by a [`SnapshotWriter`] and can always be deleted.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::error::StoreError;
use crate::hashchain::Hash;
use crate::row::{decode_event, EVENT_COLUMNS, EVENT_COLUMN_COUNT};
use crate::state::{fold_version, AggregateState, StreamState};
use crate::EventStore;

/// A stream's state at a version, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub stream_id: Uuid,
    pub stream_type: &'static str,
    pub version: i64,
    pub last_hash: Hash,
    pub state: Value,
}

impl Snapshot {
    /// The snapshot of `state` (`None` for a stream with no events).
    pub fn of(state: &StreamState) -> Result<Option<Snapshot>, serde_json::Error> {
        let Some(aggregate) = &state.aggregate else {
            return Ok(None);
        };
        Ok(Some(Snapshot {
            stream_id: state.stream_id,
            stream_type: aggregate.stream_type(),
            version: state.version,
            last_hash: state.last_hash,
            state: aggregate.to_json()?,
        }))
    }
}

/// The snapshot (if any, of this fold) of every requested stream and the events after it,
/// one row per event (one row with no event when there is none). The snapshot's state is
/// sent with the first row only.
fn load_sql() -> String {
    let columns = EVENT_COLUMNS
        .split(", ")
        .map(|c| format!("e.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {columns}, ids.id, s.stream_type, s.version, s.last_hash, \
                CASE WHEN e.version IS NULL OR e.version = s.version + 1 THEN s.state END \
         FROM unnest($1::uuid[]) AS ids(id) \
         LEFT JOIN snapshots s ON s.stream_id = ids.id AND s.fold_version = $2 \
         LEFT JOIN LATERAL ( \
             SELECT {EVENT_COLUMNS} FROM events \
             WHERE stream_id = ids.id AND version > coalesce(s.version, 0) \
             ORDER BY version \
         ) e ON true \
         ORDER BY ids.id, e.version"
    )
}

const SNAPSHOT_ID: usize = EVENT_COLUMN_COUNT;

impl EventStore {
    /// The state of each of `stream_ids` (every requested id is in the result): the newest
    /// usable snapshot plus the events after it, in one round trip. A stream whose
    /// snapshot cannot be used is folded from its first event instead.
    pub async fn load_states(
        &self,
        stream_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, StreamState>, StoreError> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(&load_sql()).await?;
        let rows = client
            .query(&statement, &[&stream_ids, &fold_version()])
            .await?;
        drop(client);
        let mut states: HashMap<Uuid, StreamState> = HashMap::with_capacity(stream_ids.len());
        let mut unusable = Vec::new();
        for row in &rows {
            let stream_id: Uuid = row.try_get(SNAPSHOT_ID)?;
            if unusable.contains(&stream_id) {
                continue;
            }
            let state = match states.get_mut(&stream_id) {
                Some(state) => state,
                None => match from_snapshot(stream_id, row) {
                    Ok(state) => states.entry(stream_id).or_insert(state),
                    Err(reason) => {
                        tracing::warn!(%stream_id, %reason, "ignoring an unusable snapshot");
                        unusable.push(stream_id);
                        continue;
                    }
                },
            };
            if row.try_get::<_, Option<i64>>(0)?.is_none() {
                continue;
            }
            let event = decode_event(row)?;
            state
                .apply(&event)
                .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        }
        if !unusable.is_empty() {
            let loaded = self.load_streams(&unusable).await?;
            for (stream_id, stream) in loaded {
                let mut state = StreamState::empty(stream_id);
                for event in &stream.events {
                    state
                        .apply(event)
                        .map_err(|error| StoreError::Corrupt(error.to_string()))?;
                }
                states.insert(stream_id, state);
            }
        }
        for id in stream_ids {
            states.entry(*id).or_insert_with(|| StreamState::empty(*id));
        }
        if states.values().any(|s| s.snapshot_version > 0) {
            metrics::counter!("snapshot_loads_total")
                .increment(states.values().filter(|s| s.snapshot_version > 0).count() as u64);
        }
        Ok(states)
    }

    /// Stores snapshots, each replacing an older one of its stream (or one of another
    /// fold); a snapshot older than the stored one is dropped. One statement.
    pub async fn save_snapshots(&self, snapshots: &[Snapshot]) -> Result<u64, StoreError> {
        if snapshots.is_empty() {
            return Ok(0);
        }
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO snapshots (stream_id, stream_type, fold_version, version, \
                                        last_hash, state) \
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::int8[], $4::int8[], \
                                      $5::bytea[], $6::jsonb[]) \
                 ON CONFLICT (stream_id) DO UPDATE SET \
                     stream_type = EXCLUDED.stream_type, fold_version = EXCLUDED.fold_version, \
                     version = EXCLUDED.version, last_hash = EXCLUDED.last_hash, \
                     state = EXCLUDED.state, taken_at = now() \
                 WHERE snapshots.version < EXCLUDED.version \
                    OR snapshots.fold_version <> EXCLUDED.fold_version",
            )
            .await?;
        // One row per stream: a statement may not touch a row twice.
        let mut newest: HashMap<Uuid, &Snapshot> = HashMap::new();
        for snapshot in snapshots {
            let entry = newest.entry(snapshot.stream_id).or_insert(snapshot);
            if snapshot.version > entry.version {
                *entry = snapshot;
            }
        }
        let snapshots: Vec<&Snapshot> = newest.into_values().collect();
        let ids: Vec<Uuid> = snapshots.iter().map(|s| s.stream_id).collect();
        let types: Vec<&str> = snapshots.iter().map(|s| s.stream_type).collect();
        let folds = vec![fold_version(); snapshots.len()];
        let versions: Vec<i64> = snapshots.iter().map(|s| s.version).collect();
        let hashes: Vec<&[u8]> = snapshots.iter().map(|s| &s.last_hash.0[..]).collect();
        let states: Vec<&Value> = snapshots.iter().map(|s| &s.state).collect();
        let written = client
            .execute(
                &statement,
                &[&ids, &types, &folds, &versions, &hashes, &states],
            )
            .await?;
        metrics::counter!("snapshot_writes_total").increment(written);
        Ok(written)
    }

    /// Deletes the snapshots of `stream` (an erased customer's); returns how many.
    pub async fn delete_snapshots_of(&self, stream: Uuid) -> Result<u64, StoreError> {
        let client = self.pool.get().await?;
        Ok(client
            .execute("DELETE FROM snapshots WHERE stream_id = $1", &[&stream])
            .await?)
    }

    /// Deletes every snapshot (they are rebuilt as streams are used); returns how many.
    pub async fn delete_snapshots(&self) -> Result<u64, StoreError> {
        let client = self.pool.get().await?;
        Ok(client.execute("DELETE FROM snapshots", &[]).await?)
    }
}

/// The state a row's snapshot columns hold (empty when the row has none).
fn from_snapshot(stream_id: Uuid, row: &tokio_postgres::Row) -> Result<StreamState, String> {
    let mut state = StreamState::empty(stream_id);
    let column = |e: tokio_postgres::Error| e.to_string();
    let Some(version) = row
        .try_get::<_, Option<i64>>(SNAPSHOT_ID + 2)
        .map_err(column)?
    else {
        return Ok(state);
    };
    let stream_type: String = row.try_get(SNAPSHOT_ID + 1).map_err(column)?;
    let hash: &[u8] = row.try_get(SNAPSHOT_ID + 3).map_err(column)?;
    let json: Option<Value> = row.try_get(SNAPSHOT_ID + 4).map_err(column)?;
    let json = json.ok_or("the events after it do not follow it")?;
    state.aggregate = Some(AggregateState::from_json(&stream_type, json)?);
    state.last_hash = Hash::from_slice(hash).ok_or("last_hash is not 32 bytes")?;
    state.version = version;
    state.snapshot_version = version;
    Ok(state)
}

/// Writes snapshots in the background, batched, so that no command waits for one. When
/// the queue is full a snapshot is dropped: it is only an optimization, and the next one
/// of that stream will do.
#[derive(Clone)]
pub struct SnapshotWriter {
    queue: mpsc::Sender<Snapshot>,
}

impl SnapshotWriter {
    /// Starts the writer on `store` (needs a running tokio runtime).
    pub fn spawn(store: EventStore) -> SnapshotWriter {
        let (queue, mut pending) = mpsc::channel::<Snapshot>(4096);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(256);
            while pending.recv_many(&mut batch, 256).await > 0 {
                if let Err(error) = store.save_snapshots(&batch).await {
                    tracing::warn!(%error, count = batch.len(), "cannot save snapshots");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                batch.clear();
            }
        });
        SnapshotWriter { queue }
    }

    /// Queues a snapshot; false when it was dropped (queue full or writer gone).
    pub fn offer(&self, snapshot: Snapshot) -> bool {
        self.queue.try_send(snapshot).is_ok()
    }
}
