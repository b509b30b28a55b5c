//! The event envelope: one NDJSON line of the audit export and the value of a Kafka message;
//! and the leaf bytes of the verifiable log, which are the canonical JSON of the envelope
//! without its `sequence` ([`leaf_bytes`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::event::{EventMetadata, RecordedEvent};
use crate::hashchain::{format_timestamp, Hash};

/// `{"event_id", "position", "sequence", "stream_type", "stream_id", "version", "event_type",
/// "schema_version", "occurred_at", "payload", "metadata", "prev_hash", "hash"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub event_id: Uuid,
    pub position: i64,
    /// The event's place in the verifiable log; `null` until the sequencer assigned it.
    #[serde(default)]
    pub sequence: Option<i64>,
    pub stream_type: String,
    pub stream_id: Uuid,
    pub version: i64,
    pub event_type: String,
    pub schema_version: i32,
    /// RFC 3339 UTC with microseconds, exactly as hashed.
    pub occurred_at: String,
    pub payload: Value,
    /// The metadata document as stored (`actor`, `correlation_id`, `causation_id`,
    /// `command_id` for every event the store wrote).
    pub metadata: Value,
    /// Lowercase hex.
    pub prev_hash: String,
    /// Lowercase hex.
    pub hash: String,
}

impl Envelope {
    /// The envelope of `event`, its metadata as stored.
    pub fn of(event: &RecordedEvent) -> Result<Self, serde_json::Error> {
        Ok(Envelope {
            event_id: event.event_id,
            position: event.position,
            sequence: event.sequence,
            stream_type: event.stream_type.clone(),
            stream_id: event.stream_id,
            version: event.version,
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            occurred_at: format_timestamp(event.occurred_at),
            payload: event.payload.clone(),
            metadata: event.metadata_document()?,
            prev_hash: event.prev_hash.to_hex(),
            hash: event.hash.to_hex(),
        })
    }

    /// Back to a recorded event (the transaction id is not in the envelope: 0).
    pub fn to_recorded(&self) -> Result<RecordedEvent, String> {
        let occurred_at = chrono::DateTime::parse_from_rfc3339(&self.occurred_at)
            .map_err(|e| format!("occurred_at: {e}"))?
            .with_timezone(&chrono::Utc);
        let (metadata, stored_metadata) = EventMetadata::from_stored(self.metadata.clone())
            .map_err(|e| format!("metadata: {e}"))?;
        Ok(RecordedEvent {
            position: self.position,
            transaction_id: 0,
            event_id: self.event_id,
            stream_type: self.stream_type.clone(),
            stream_id: self.stream_id,
            version: self.version,
            event_type: self.event_type.clone(),
            schema_version: self.schema_version,
            payload: self.payload.clone(),
            metadata,
            stored_metadata,
            sequence: self.sequence,
            occurred_at,
            prev_hash: Hash::from_hex(&self.prev_hash).ok_or("prev_hash is not 64 hex digits")?,
            hash: Hash::from_hex(&self.hash).ok_or("hash is not 64 hex digits")?,
        })
    }
}

/// The envelope of `event` as one JSON line without the newline.
pub fn to_json_line(event: &RecordedEvent) -> Result<String, serde_json::Error> {
    serde_json::to_string(&Envelope::of(event)?)
}

/// The bytes of `event`'s leaf in the verifiable log: the RFC 8785 canonical JSON of its
/// envelope without `sequence` (the leaf's place in the tree is its sequence), so every
/// stored field is covered: ids, position, stream, version, type, schema version, time,
/// payload and metadata as stored, and both chain hashes. docs/AUDIT.md gives an example.
pub fn leaf_bytes(event: &RecordedEvent) -> Result<Vec<u8>, serde_json::Error> {
    let mut envelope = serde_json::to_value(Envelope::of(event)?)?;
    if let Value::Object(members) = &mut envelope {
        members.remove("sequence");
    }
    serde_jcs::to_vec(&envelope)
}
