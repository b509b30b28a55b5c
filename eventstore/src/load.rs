//! Loading streams: the events an aggregate is folded from.

use std::collections::HashMap;

use uuid::Uuid;

use crate::error::StoreError;
use crate::event::RecordedEvent;
use crate::hashchain::Hash;
use crate::row::{decode_event, EVENT_COLUMNS};
use crate::EventStore;

/// One stream as loaded: its events in version order and where it stands.
#[derive(Debug, Clone)]
pub struct LoadedStream {
    pub stream_id: Uuid,
    /// The stream's type, `None` when the stream has no events yet.
    pub stream_type: Option<String>,
    /// The current version: 0 for a stream with no events.
    pub version: i64,
    /// The hash of the last event, what the next event chains from.
    pub last_hash: Hash,
    pub events: Vec<RecordedEvent>,
}

impl LoadedStream {
    /// A stream that has no events.
    pub fn empty(stream_id: Uuid) -> Self {
        LoadedStream {
            stream_id,
            stream_type: None,
            version: 0,
            last_hash: Hash::GENESIS,
            events: Vec::new(),
        }
    }

    /// True when the stream has at least one event.
    pub fn exists(&self) -> bool {
        self.version > 0
    }

    fn push(&mut self, event: RecordedEvent) {
        self.stream_type
            .get_or_insert_with(|| event.stream_type.clone());
        self.version = event.version;
        self.last_hash = event.hash;
        self.events.push(event);
    }
}

impl EventStore {
    /// Loads one stream (empty if it has no events).
    pub async fn load_stream(&self, stream_id: Uuid) -> Result<LoadedStream, StoreError> {
        let mut streams = self.load_streams(&[stream_id]).await?;
        Ok(streams
            .remove(&stream_id)
            .unwrap_or_else(|| LoadedStream::empty(stream_id)))
    }

    /// Loads several streams in one round trip; every requested id is in the result.
    pub async fn load_streams(
        &self,
        stream_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, LoadedStream>, StoreError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ANY($1) \
                 ORDER BY stream_id, version"
            ))
            .await?;
        let rows = client.query(&statement, &[&stream_ids]).await?;
        let mut streams: HashMap<Uuid, LoadedStream> = stream_ids
            .iter()
            .map(|id| (*id, LoadedStream::empty(*id)))
            .collect();
        for row in &rows {
            let event = decode_event(row)?;
            streams
                .entry(event.stream_id)
                .or_insert_with(|| LoadedStream::empty(event.stream_id))
                .push(event);
        }
        Ok(streams)
    }

    /// Which of `stream_ids` have at least one event (one index probe each, one round
    /// trip), without loading them.
    pub async fn existing_streams(&self, stream_ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
        if stream_ids.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "SELECT stream_id FROM events WHERE stream_id = ANY($1) AND version = 1",
            )
            .await?;
        let rows = client.query(&statement, &[&stream_ids]).await?;
        rows.iter()
            .map(|row| row.try_get(0).map_err(StoreError::from))
            .collect()
    }
}
