//! The event envelope: one NDJSON line of the audit export and the value of a Kafka message;
//! and the leaf bytes of the verifiable log, which are the canonical JSON of the envelope
//! without its `sequence` ([`leaf_bytes`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::event::{EventMetadata, RecordedEvent};
use crate::hashchain::{
    format_timestamp, write_hash, write_uuid, CanonicalEvent, Hash, HashedFields,
};

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

/// The envelope of `event` as one JSON line without the newline: the bytes of
/// `serde_json::to_string(&Envelope::of(event))`, written without copying the event.
pub fn to_json_line(event: &RecordedEvent) -> Result<String, serde_json::Error> {
    let mut line = Vec::with_capacity(512);
    write_json_line(&mut line, event)?;
    // serde_json writes UTF-8.
    String::from_utf8(line).map_err(serde::ser::Error::custom)
}

/// Appends [`to_json_line`]'s line to `out`: `Envelope`'s members in their order, written
/// as serde_json writes them (the tests compare the two), the ids, hashes and time without
/// the escaping their alphabets never need.
pub fn write_json_line(out: &mut Vec<u8>, event: &RecordedEvent) -> Result<(), serde_json::Error> {
    let mut number = itoa::Buffer::new();
    out.extend_from_slice(b"{\"event_id\":");
    write_uuid(out, event.event_id);
    out.extend_from_slice(b",\"position\":");
    out.extend_from_slice(number.format(event.position).as_bytes());
    out.extend_from_slice(b",\"sequence\":");
    match event.sequence {
        Some(sequence) => out.extend_from_slice(number.format(sequence).as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"stream_type\":");
    serde_json::to_writer(&mut *out, &event.stream_type)?;
    out.extend_from_slice(b",\"stream_id\":");
    write_uuid(out, event.stream_id);
    out.extend_from_slice(b",\"version\":");
    out.extend_from_slice(number.format(event.version).as_bytes());
    out.extend_from_slice(b",\"event_type\":");
    serde_json::to_writer(&mut *out, &event.event_type)?;
    out.extend_from_slice(b",\"schema_version\":");
    out.extend_from_slice(number.format(event.schema_version).as_bytes());
    out.extend_from_slice(b",\"occurred_at\":\"");
    out.extend_from_slice(format_timestamp(event.occurred_at).as_bytes());
    out.extend_from_slice(b"\",\"payload\":");
    serde_json::to_writer(&mut *out, &event.payload)?;
    out.extend_from_slice(b",\"metadata\":");
    match &event.stored_metadata {
        Some(stored) => serde_json::to_writer(&mut *out, stored)?,
        None => {
            // The members of the JSON object `serde_json::to_value` makes: sorted by name.
            let metadata = &event.metadata;
            out.extend_from_slice(b"{\"actor\":");
            serde_json::to_writer(&mut *out, &metadata.actor)?;
            out.extend_from_slice(b",\"causation_id\":");
            serde_json::to_writer(&mut *out, &metadata.causation_id)?;
            out.extend_from_slice(b",\"command_id\":");
            write_uuid(out, metadata.command_id);
            out.extend_from_slice(b",\"correlation_id\":");
            serde_json::to_writer(&mut *out, &metadata.correlation_id)?;
            out.push(b'}');
        }
    }
    out.extend_from_slice(b",\"prev_hash\":");
    write_hash(out, &event.prev_hash);
    out.extend_from_slice(b",\"hash\":");
    write_hash(out, &event.hash);
    out.push(b'}');
    Ok(())
}

/// The bytes of `event`'s leaf in the verifiable log: the RFC 8785 canonical JSON of its
/// envelope without `sequence` (the leaf's place in the tree is its sequence), so every
/// stored field is covered: ids, position, stream, version, type, schema version, time,
/// payload and metadata as stored, and both chain hashes. docs/AUDIT.md gives an example.
pub fn leaf_bytes(event: &RecordedEvent) -> Result<Vec<u8>, serde_json::Error> {
    let occurred_at = format_timestamp(event.occurred_at);
    let mut values = Vec::with_capacity(512);
    let canonical =
        CanonicalEvent::of_fields(&HashedFields::from(event), &occurred_at, &mut values);
    let mut leaf = Vec::with_capacity(canonical.document_len() + 160);
    canonical.write_leaf(&mut leaf, event.position, &event.prev_hash, &event.hash);
    Ok(leaf)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;

    fn event(stored_metadata: Option<Value>, causation_id: Option<&str>) -> RecordedEvent {
        RecordedEvent {
            position: 1 << 54,
            transaction_id: 7,
            event_id: Uuid::now_v7(),
            stream_type: "prod\tuct".into(),
            stream_id: Uuid::now_v7(),
            version: 3,
            event_type: "ProductCreated".into(),
            schema_version: 2,
            payload: json!({"name": "Thé vert 🍵 \"x\"\n", "price": {"amount_cents": 1250}, "f": 2.5}),
            metadata: EventMetadata {
                actor: "admin-1 \"\u{1}\\".into(),
                correlation_id: "req-7f3a\u{2028}/é".into(),
                causation_id: causation_id.map(Into::into),
                command_id: Uuid::now_v7(),
            },
            occurred_at: Utc::now(),
            prev_hash: Hash([0xab; 32]),
            hash: Hash([0x0c; 32]),
            sequence: Some(9),
            stored_metadata,
        }
    }

    fn events() -> Vec<RecordedEvent> {
        let altered = json!({"actor": "admin-1", "z": [1, {"\u{1F600}": 1, "\u{FF61}": 2}]});
        vec![
            event(None, None),
            event(None, Some("cause")),
            event(Some(altered), Some("cause")),
        ]
    }

    #[test]
    fn the_line_is_the_envelope_serialized() {
        for event in events() {
            let envelope = Envelope::of(&event).unwrap();
            assert_eq!(
                to_json_line(&event).unwrap(),
                serde_json::to_string(&envelope).unwrap()
            );
            let mut unsequenced = event.clone();
            unsequenced.sequence = None;
            assert_eq!(
                to_json_line(&unsequenced).unwrap(),
                serde_json::to_string(&Envelope::of(&unsequenced).unwrap()).unwrap()
            );
        }
    }

    #[test]
    fn the_leaf_is_the_canonical_envelope_without_its_sequence() {
        for event in events() {
            let mut envelope = serde_json::to_value(Envelope::of(&event).unwrap()).unwrap();
            if let Value::Object(members) = &mut envelope {
                members.remove("sequence");
            }
            assert_eq!(
                String::from_utf8(leaf_bytes(&event).unwrap()).unwrap(),
                serde_jcs::to_string(&envelope).unwrap()
            );
        }
    }
}
