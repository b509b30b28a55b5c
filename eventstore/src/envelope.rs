//! The event envelope: one NDJSON line of the audit export and the value of a Kafka message.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::event::{EventMetadata, RecordedEvent};
use crate::hashchain::{format_timestamp, Hash};

/// `{"event_id", "position", "stream_type", "stream_id", "version", "event_type",
/// "schema_version", "occurred_at", "payload", "metadata", "prev_hash", "hash"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub event_id: Uuid,
    pub position: i64,
    pub stream_type: String,
    pub stream_id: Uuid,
    pub version: i64,
    pub event_type: String,
    pub schema_version: i32,
    /// RFC 3339 UTC with microseconds, exactly as hashed.
    pub occurred_at: String,
    pub payload: Value,
    pub metadata: EventMetadata,
    /// Lowercase hex.
    pub prev_hash: String,
    /// Lowercase hex.
    pub hash: String,
}

impl From<&RecordedEvent> for Envelope {
    fn from(event: &RecordedEvent) -> Self {
        Envelope {
            event_id: event.event_id,
            position: event.position,
            stream_type: event.stream_type.clone(),
            stream_id: event.stream_id,
            version: event.version,
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            occurred_at: format_timestamp(event.occurred_at),
            payload: event.payload.clone(),
            metadata: event.metadata.clone(),
            prev_hash: event.prev_hash.to_hex(),
            hash: event.hash.to_hex(),
        }
    }
}

impl Envelope {
    /// Back to a recorded event (the transaction id is not in the envelope: 0).
    pub fn to_recorded(&self) -> Result<RecordedEvent, String> {
        let occurred_at = chrono::DateTime::parse_from_rfc3339(&self.occurred_at)
            .map_err(|e| format!("occurred_at: {e}"))?
            .with_timezone(&chrono::Utc);
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
            metadata: self.metadata.clone(),
            occurred_at,
            prev_hash: Hash::from_hex(&self.prev_hash).ok_or("prev_hash is not 64 hex digits")?,
            hash: Hash::from_hex(&self.hash).ok_or("hash is not 64 hex digits")?,
        })
    }
}

/// The envelope of `event` as one JSON line without the newline.
pub fn to_json_line(event: &RecordedEvent) -> Result<String, serde_json::Error> {
    serde_json::to_string(&Envelope::from(event))
}
