//! Decoding stored rows of the `events` table, and the relations event queries select from
//! (the events joined with their dense sequence, which lives in `event_sequence`).

use tokio_postgres::Row;

use crate::error::StoreError;
use crate::event::{EventMetadata, RecordedEvent};
use crate::hashchain::Hash;
use crate::xid8::Xid8;

/// The columns every event query selects, from [`EVENTS`] or [`SEQUENCED_EVENTS`], in the
/// order [`decode_event`] reads them.
pub const EVENT_COLUMNS: &str = "position, transaction_id, event_id, stream_type, stream_id, \
     version, event_type, schema_version, payload, metadata, occurred_at, prev_hash, hash, \
     sequence";

/// Every event with its sequence (none while the sequencer has not reached it): the relation
/// `FROM {EVENTS}` selects [`EVENT_COLUMNS`] from, filtered by the columns of `events`.
pub const EVENTS: &str = "events LEFT JOIN event_sequence ON event_position = position";

/// The sequenced events only, to read in `sequence` order.
pub const SEQUENCED_EVENTS: &str = "event_sequence JOIN events ON position = event_position";

/// How many columns [`EVENT_COLUMNS`] names (queries that select more after them start
/// there).
pub const EVENT_COLUMN_COUNT: usize = 14;

/// Reads one row selected with [`EVENT_COLUMNS`].
pub fn decode_event(row: &Row) -> Result<RecordedEvent, StoreError> {
    let position: i64 = row.try_get(0)?;
    let transaction_id: Xid8 = row.try_get(1)?;
    let metadata: serde_json::Value = row.try_get(9)?;
    let (metadata, stored_metadata) = EventMetadata::from_stored(metadata).map_err(|error| {
        StoreError::Corrupt(format!("event at position {position}: metadata: {error}"))
    })?;
    let hash_at = |index: usize, name: &str| -> Result<Hash, StoreError> {
        let bytes: &[u8] = row.try_get(index)?;
        Hash::from_slice(bytes).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "event at position {position}: {name} is not 32 bytes"
            ))
        })
    };
    Ok(RecordedEvent {
        position,
        transaction_id: transaction_id.0,
        event_id: row.try_get(2)?,
        stream_type: row.try_get(3)?,
        stream_id: row.try_get(4)?,
        version: row.try_get(5)?,
        event_type: row.try_get(6)?,
        schema_version: row.try_get(7)?,
        payload: row.try_get(8)?,
        metadata,
        occurred_at: row.try_get(10)?,
        prev_hash: hash_at(11, "prev_hash")?,
        hash: hash_at(12, "hash")?,
        sequence: row.try_get(13)?,
        stored_metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_column_count_is_that_of_the_column_list() {
        assert_eq!(EVENT_COLUMNS.split(", ").count(), EVENT_COLUMN_COUNT);
    }
}
