//! One line of an audit export, checked on its own: everything a verifier of the export
//! can compute from the line alone, so that lines can be hashed on several threads and
//! folded in order afterwards (the chains of the streams, the sequence, the tree).
//!
//! [`read_line`] parses the envelope and recomputes, from the line as written, the chain
//! hash `SHA-256(prev_hash || JCS(document))` and the Merkle leaf hash (docs/AUDIT.md),
//! canonicalizing the payload and the metadata once for both. It reports the reasons the
//! line fails on its own with the wording of the export verifiers: a line that is not an
//! envelope, an unreadable time, metadata or hash, metadata not as the store writes it, a
//! time not in its hashed form. What depends on the lines before (version, `prev_hash`,
//! sequence, root) is the caller's fold.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::envelope::Envelope;
use crate::event::EventMetadata;
use crate::hashchain::Hash;
use crate::hashchain::{chain_hash_of, format_timestamp, metadata_not_as_written, CanonicalEvent};
use crate::jcs;
use crate::merkle::leaf_hash;

/// What one line of an export is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportLine {
    /// Empty or whitespace only: ignored.
    Blank,
    /// An event of a stream other than the one asked for.
    Skipped,
    /// Not an event envelope; the stream and version when the line is still JSON that
    /// names them.
    Unreadable {
        /// serde_json's reason.
        error: String,
        stream_id: Option<Uuid>,
        version: Option<i64>,
    },
    Event(LineEvent),
}

/// An envelope, with what its line alone says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineEvent {
    pub stream_id: Uuid,
    pub version: i64,
    pub sequence: Option<i64>,
    /// The line's `hash` when it is 64 hex digits: where the stream's chain goes on from.
    pub hash: Option<Hash>,
    /// The event read from the line, or why it cannot be (its time, metadata or a hash
    /// unreadable).
    pub event: Result<LineHashes, String>,
}

/// The hashes of a readable envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineHashes {
    pub prev_hash: Hash,
    pub hash: Hash,
    /// The Merkle leaf hash of the event as written.
    pub leaf: Hash,
    /// `SHA-256(prev_hash || JCS(document))` recomputed, or why the line cannot be what
    /// the store wrote whatever its stream (metadata altered, a time in another spelling).
    pub chain: Result<Hash, String>,
}

/// Buffers reused from line to line.
#[derive(Debug, Default)]
pub struct Scratch {
    values: Vec<u8>,
    bytes: Vec<u8>,
}

/// The envelope, its strings borrowed from the line where they need no unescaping.
/// The same members and types as [`Envelope`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineEnvelope<'a> {
    event_id: Uuid,
    position: i64,
    #[serde(default)]
    sequence: Option<i64>,
    #[serde(borrow)]
    stream_type: Cow<'a, str>,
    stream_id: Uuid,
    version: i64,
    #[serde(borrow)]
    event_type: Cow<'a, str>,
    schema_version: i32,
    #[serde(borrow)]
    occurred_at: Cow<'a, str>,
    payload: Value,
    metadata: Value,
    #[serde(borrow)]
    prev_hash: Cow<'a, str>,
    #[serde(borrow)]
    hash: Cow<'a, str>,
}

impl<'a> From<&'a Envelope> for LineEnvelope<'a> {
    fn from(envelope: &'a Envelope) -> Self {
        LineEnvelope {
            event_id: envelope.event_id,
            position: envelope.position,
            sequence: envelope.sequence,
            stream_type: Cow::Borrowed(&envelope.stream_type),
            stream_id: envelope.stream_id,
            version: envelope.version,
            event_type: Cow::Borrowed(&envelope.event_type),
            schema_version: envelope.schema_version,
            occurred_at: Cow::Borrowed(&envelope.occurred_at),
            payload: envelope.payload.clone(),
            metadata: envelope.metadata.clone(),
            prev_hash: Cow::Borrowed(&envelope.prev_hash),
            hash: Cow::Borrowed(&envelope.hash),
        }
    }
}

/// Reads one line (with or without its line ending); with `only`, events of other streams
/// are [`ExportLine::Skipped`] unhashed.
pub fn read_line(line: &[u8], only: Option<Uuid>, scratch: &mut Scratch) -> ExportLine {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return ExportLine::Blank;
    }
    let owned;
    // Checking the line is UTF-8 at once spares serde_json checking every string in it.
    let parsed = std::str::from_utf8(line)
        .ok()
        .and_then(|text| serde_json::from_str::<LineEnvelope<'_>>(text).ok());
    let envelope = match parsed {
        Some(envelope) => envelope,
        // `Envelope`'s own words for what is wrong (and its verdict, should it differ).
        None => match serde_json::from_slice::<Envelope>(line) {
            Ok(envelope) => {
                owned = envelope;
                LineEnvelope::from(&owned)
            }
            Err(error) => {
                let (stream_id, version) = identify(line);
                return ExportLine::Unreadable {
                    error: error.to_string(),
                    stream_id,
                    version,
                };
            }
        },
    };
    if only.is_some_and(|only| only != envelope.stream_id) {
        return ExportLine::Skipped;
    }
    let hash = Hash::from_hex(&envelope.hash);
    ExportLine::Event(LineEvent {
        stream_id: envelope.stream_id,
        version: envelope.version,
        sequence: envelope.sequence,
        hash,
        event: hashes(&envelope, hash, scratch),
    })
}

/// The event's hashes, in the order `Envelope::to_recorded` reads its fields (`hash` is
/// the line's `hash` read already).
fn hashes(
    envelope: &LineEnvelope<'_>,
    hash: Option<Hash>,
    scratch: &mut Scratch,
) -> Result<LineHashes, String> {
    let occurred_at = DateTime::parse_from_rfc3339(&envelope.occurred_at)
        .map_err(|e| format!("occurred_at: {e}"))?
        .with_timezone(&Utc);
    let metadata =
        EventMetadata::deserialize(&envelope.metadata).map_err(|e| format!("metadata: {e}"))?;
    let prev_hash = Hash::from_hex(&envelope.prev_hash).ok_or("prev_hash is not 64 hex digits")?;
    let hash = hash.ok_or("hash is not 64 hex digits")?;

    // The hashed form of the time; the leaf covers it, the chain must have hashed it.
    let hashed_time = format_timestamp(occurred_at);
    let Scratch { values, bytes } = scratch;
    values.clear();
    jcs::write_value(values, &envelope.payload);
    let payload_end = values.len();
    // The document as stored: the written form, when it is that, is the same JSON.
    jcs::write_value(values, &envelope.metadata);
    let (payload, metadata_bytes) = values.split_at(payload_end);
    let canonical = CanonicalEvent {
        event_id: envelope.event_id,
        stream_type: &envelope.stream_type,
        stream_id: envelope.stream_id,
        version: envelope.version,
        event_type: &envelope.event_type,
        schema_version: envelope.schema_version,
        occurred_at: &hashed_time,
        payload,
        metadata: metadata_bytes,
    };
    bytes.clear();
    canonical.write_leaf(bytes, envelope.position, &prev_hash, &hash);
    let leaf = leaf_hash(bytes);

    let chain = if !metadata.is_written_as(&envelope.metadata) {
        Err(metadata_not_as_written(&envelope.metadata))
    } else if hashed_time != envelope.occurred_at {
        // The hash covers the timestamp's one textual form; another spelling of the same
        // instant is not what was hashed (and independent verifiers hash the text as is).
        Err(format!(
            "occurred_at {:?} is not in the hashed form {hashed_time:?}",
            &*envelope.occurred_at
        ))
    } else {
        bytes.clear();
        canonical.write_document(bytes);
        Ok(chain_hash_of(&prev_hash, bytes))
    };
    Ok(LineHashes {
        prev_hash,
        hash,
        leaf,
        chain,
    })
}

/// The stream and version a damaged line seems to be about, when it is still JSON.
fn identify(line: &[u8]) -> (Option<Uuid>, Option<i64>) {
    let Ok(value) = serde_json::from_slice::<Value>(line) else {
        return (None, None);
    };
    let stream_id = value
        .get("stream_id")
        .and_then(|v| v.as_str())
        .and_then(|s| Uuid::parse_str(s).ok());
    let version = value.get("version").and_then(|v| v.as_i64());
    (stream_id, version)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::envelope::{leaf_bytes, to_json_line};
    use crate::event::RecordedEvent;
    use crate::hashchain::{chain_hash, HashedFields};

    fn recorded() -> RecordedEvent {
        RecordedEvent {
            position: 17,
            transaction_id: 0,
            event_id: Uuid::now_v7(),
            stream_type: "order".into(),
            stream_id: Uuid::now_v7(),
            version: 2,
            event_type: "OrderPlaced".into(),
            schema_version: 3,
            payload: json!({"lines": [{"sku": "T\u{e9}-1", "qty": 2}], "note": "a\nb \"c\""}),
            metadata: EventMetadata {
                actor: "alice".into(),
                correlation_id: "c-1".into(),
                causation_id: None,
                command_id: Uuid::now_v7(),
            },
            occurred_at: Utc::now(),
            prev_hash: Hash([7; 32]),
            hash: Hash([0; 32]),
            sequence: Some(5),
            stored_metadata: None,
        }
    }

    fn event_of(line: &str) -> LineEvent {
        match read_line(line.as_bytes(), None, &mut Scratch::default()) {
            ExportLine::Event(event) => event,
            other => panic!("not an event: {other:?}"),
        }
    }

    #[test]
    fn the_hashes_are_those_of_the_recorded_event() {
        let mut event = recorded();
        event.hash = chain_hash(&event.prev_hash, &HashedFields::from(&event)).unwrap();
        let line = to_json_line(&event).unwrap();
        let read = event_of(&format!("{line}\r\n"));
        assert_eq!(
            read,
            LineEvent {
                stream_id: event.stream_id,
                version: 2,
                sequence: Some(5),
                hash: Some(event.hash),
                event: Ok(LineHashes {
                    prev_hash: event.prev_hash,
                    hash: event.hash,
                    leaf: leaf_hash(&leaf_bytes(&event).unwrap()),
                    chain: Ok(event.hash),
                }),
            }
        );
    }

    #[test]
    fn altered_metadata_and_another_spelling_of_the_time_are_named() {
        let mut event = recorded();
        let stored = json!({"actor": "alice", "correlation_id": "c-1", "causation_id": null,
                            "command_id": event.metadata.command_id, "extra": true});
        event.stored_metadata = Some(stored.clone());
        let read = event_of(&to_json_line(&event).unwrap());
        let hashes = read.event.unwrap();
        assert_eq!(hashes.leaf, leaf_hash(&leaf_bytes(&event).unwrap()));
        assert_eq!(hashes.chain, Err(metadata_not_as_written(&stored)));

        let event = recorded();
        let line = to_json_line(&event).unwrap();
        let hashed = format_timestamp(event.occurred_at);
        let respelled = hashed.replace('Z', "+00:00");
        let read = event_of(&line.replace(&hashed, &respelled));
        let hashes = read.event.unwrap();
        assert_eq!(hashes.leaf, leaf_hash(&leaf_bytes(&event).unwrap()));
        assert_eq!(
            hashes.chain,
            Err(format!(
                "occurred_at {respelled:?} is not in the hashed form {hashed:?}"
            ))
        );
    }

    #[test]
    fn unreadable_fields_and_lines_are_named_as_the_envelope_reader_names_them() {
        let event = recorded();
        let line = to_json_line(&event).unwrap();
        let upper = line.replace(
            &event.prev_hash.to_hex(),
            &event.prev_hash.to_hex().to_uppercase(),
        );
        assert_eq!(event_of(&upper).event.unwrap().prev_hash, event.prev_hash);
        let short = line.replace(&event.prev_hash.to_hex(), "abc");
        assert_eq!(
            event_of(&short).event,
            Err("prev_hash is not 64 hex digits".to_owned())
        );
        let time = line.replace(&format_timestamp(event.occurred_at), "yesterday");
        let Err(reason) = event_of(&time).event else {
            panic!("an unreadable time")
        };
        assert!(reason.starts_with("occurred_at: "), "{reason}");

        let cut = &line[..line.len() - 10];
        let expected = serde_json::from_str::<Envelope>(cut)
            .unwrap_err()
            .to_string();
        assert_eq!(
            read_line(cut.as_bytes(), None, &mut Scratch::default()),
            ExportLine::Unreadable {
                error: expected,
                stream_id: None,
                version: None
            }
        );
        let extra = line.replace("{\"event_id\"", "{\"x\":1,\"event_id\"");
        let expected = serde_json::from_str::<Envelope>(&extra)
            .unwrap_err()
            .to_string();
        assert_eq!(
            read_line(extra.as_bytes(), None, &mut Scratch::default()),
            ExportLine::Unreadable {
                error: expected,
                stream_id: Some(event.stream_id),
                version: Some(2)
            }
        );
        assert_eq!(
            read_line(b"  \r\n", None, &mut Scratch::default()),
            ExportLine::Blank
        );
        assert_eq!(
            read_line(
                line.as_bytes(),
                Some(Uuid::now_v7()),
                &mut Scratch::default()
            ),
            ExportLine::Skipped
        );
    }
}
