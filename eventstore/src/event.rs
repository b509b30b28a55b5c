//! The shapes of events going into the store and coming out of it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::hashchain::Hash;

/// Who caused an event and in answer to what: recorded with every event of a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// The authenticated caller (the token's `sub`).
    pub actor: String,
    /// Ties together everything done for one user action (`X-Correlation-Id`).
    pub correlation_id: String,
    /// The event or message that caused this command, when there is one.
    pub causation_id: Option<String>,
    /// The command that appended the event.
    pub command_id: Uuid,
}

/// An event a command wants to append to one stream.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: Value,
}

impl NewEvent {
    /// A new event with a fresh time-ordered id.
    pub fn new(event_type: impl Into<String>, schema_version: i32, payload: Value) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type: event_type.into(),
            schema_version,
            payload,
        }
    }
}

/// An event as recorded in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// Global position: identifies the event; not monotonic in log order.
    pub position: i64,
    /// The id of the transaction that appended it: with `position`, the log order.
    pub transaction_id: u64,
    pub event_id: Uuid,
    pub stream_type: String,
    pub stream_id: Uuid,
    /// 1-based version within the stream.
    pub version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: Value,
    pub metadata: EventMetadata,
    pub occurred_at: DateTime<Utc>,
    pub prev_hash: Hash,
    pub hash: Hash,
    /// The event's place in the verifiable log (1, 2, 3, ... in log order), once the
    /// sequencer assigned it. Only the audit reads fill it in ([`crate::sequence`]); the
    /// log's other readers leave it `None`.
    pub sequence: Option<i64>,
    /// The metadata document exactly as stored, when it is *not* the canonical form of
    /// `metadata` (a member added or removed behind the store's back); `None` for every
    /// event the store wrote. Hashes and exports use this when it is set, so nothing stored
    /// escapes verification.
    pub stored_metadata: Option<Value>,
}

impl RecordedEvent {
    /// The metadata document as stored: `stored_metadata`, or the canonical form of
    /// `metadata`.
    pub fn metadata_document(&self) -> Result<Value, serde_json::Error> {
        match &self.stored_metadata {
            Some(stored) => Ok(stored.clone()),
            None => serde_json::to_value(&self.metadata),
        }
    }
}

impl EventMetadata {
    /// Parses a stored metadata document: the metadata, and the document itself when it is
    /// not exactly the canonical form of that metadata.
    pub fn from_stored(stored: Value) -> Result<(EventMetadata, Option<Value>), serde_json::Error> {
        let metadata = EventMetadata::deserialize(&stored)?;
        Ok(if metadata.is_written_as(&stored) {
            (metadata, None)
        } else {
            (metadata, Some(stored))
        })
    }

    /// True when `stored` is exactly the document the store writes for this metadata
    /// (`serde_json::to_value(self) == *stored`, without building that value).
    pub fn is_written_as(&self, stored: &Value) -> bool {
        let Value::Object(members) = stored else {
            return false;
        };
        let text = |name: &str| members.get(name).and_then(Value::as_str);
        let causation_id = match (members.get("causation_id"), &self.causation_id) {
            (Some(Value::Null), None) => true,
            (Some(Value::String(stored)), Some(causation_id)) => stored == causation_id,
            _ => false,
        };
        members.len() == 4
            && causation_id
            && text("actor") == Some(self.actor.as_str())
            && text("correlation_id") == Some(self.correlation_id.as_str())
            && text("command_id")
                == Some(
                    self.command_id
                        .hyphenated()
                        .encode_lower(&mut Uuid::encode_buffer()),
                )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn written_as_is_equality_with_the_written_document() {
        let id = "0194f3a2-5c1d-7a00-b001-0c0ffee00001";
        let documents = [
            json!({"actor": "a", "correlation_id": "c", "causation_id": null, "command_id": id}),
            json!({"actor": "a", "correlation_id": "c", "causation_id": "x", "command_id": id}),
            json!({"actor": "a", "correlation_id": "c", "command_id": id}),
            json!({"actor": "a", "correlation_id": "c", "causation_id": null, "command_id": id, "extra": 1}),
            json!({"actor": "a", "correlation_id": "c", "causation_id": null, "command_id": id.to_uppercase()}),
            json!({"actor": "a", "correlation_id": "c", "causation_id": null, "command_id": id.replace('-', "")}),
            json!({"actor": "a", "correlation_id": "c", "causation_id": 5, "command_id": id}),
        ];
        for stored in documents {
            let Ok(metadata) = EventMetadata::deserialize(&stored) else {
                continue;
            };
            let written = serde_json::to_value(&metadata).expect("a value");
            assert_eq!(
                metadata.is_written_as(&stored),
                written == stored,
                "{stored}"
            );
        }
        let stored =
            json!({"actor": "a", "correlation_id": "c", "causation_id": null, "command_id": id});
        let (metadata, altered) = EventMetadata::from_stored(stored.clone()).expect("metadata");
        assert!(metadata.is_written_as(&stored));
        assert_eq!(altered, None);
    }
}
