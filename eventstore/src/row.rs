//! Decoding stored rows of the `events` table.

use tokio_postgres::Row;

use crate::error::StoreError;
use crate::event::{EventMetadata, RecordedEvent};
use crate::hashchain::Hash;
use crate::xid8::Xid8;

/// The columns every event query selects, in the order [`decode_event`] reads them. An
/// event's dense sequence is not among them: it lives in `event_sequence`, and only the
/// audit reads need it ([`crate::sequence`]).
pub const EVENT_COLUMNS: &str = "position, transaction_id, event_id, stream_type, stream_id, \
     version, event_type, schema_version, payload, metadata, occurred_at, prev_hash, hash";

/// The sequenced events, each with its `sequence`: the relation a whole-log scan in
/// sequence order selects [`EVENT_COLUMNS`] and `sequence` from (pages of the log attach
/// sequences with [`crate::sequence`] instead, which is cheaper per event).
pub const SEQUENCED_EVENTS: &str = "event_sequence JOIN events ON position = event_position";

/// How many columns [`EVENT_COLUMNS`] names (queries that select more after them start
/// there).
pub const EVENT_COLUMN_COUNT: usize = 13;

/// Reads one row selected with [`EVENT_COLUMNS`]; its `sequence` is left unknown.
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
        sequence: None,
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
