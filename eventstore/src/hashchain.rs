//! The per-stream SHA-256 hash chain that makes tampering with the log evident.
//!
//! `hash = SHA-256(prev_hash || JCS(document))` where `prev_hash` is the 32 raw bytes of the
//! previous event's hash in the same stream (32 zero bytes for version 1) and `document` is
//! the JSON object of the event's recorded fields other than `position`, `transaction_id`,
//! `prev_hash` and `hash`:
//! `{"event_id", "stream_type", "stream_id", "version", "event_type", "schema_version",
//! "occurred_at", "payload", "metadata"}`, canonicalized by RFC 8785 (JCS). `occurred_at` is
//! RFC 3339 UTC with exactly six fractional digits and a `Z`. docs/AUDIT.md restates this for
//! auditors.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::event::{EventMetadata, RecordedEvent};
use crate::jcs;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// What the first event of every stream chains from.
    pub const GENESIS: Hash = Hash([0u8; 32]);

    /// Lowercase hex, as in the envelope.
    pub fn to_hex(&self) -> String {
        self.hex_digits().as_str().to_owned()
    }

    /// The 64 lowercase hex digits, without allocating.
    pub fn hex_digits(&self) -> HexDigits {
        let mut digits = [0u8; 64];
        // 32 bytes always fit 64 digits.
        let _ = hex::encode_to_slice(self.0, &mut digits);
        HexDigits(digits)
    }

    /// Reads the 32 raw bytes stored in Postgres.
    pub fn from_slice(bytes: &[u8]) -> Option<Hash> {
        <[u8; 32]>::try_from(bytes).ok().map(Hash)
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Option<Hash> {
        let digits: &[u8; 64] = text.as_bytes().try_into().ok()?;
        let mut bytes = [0u8; 32];
        let mut invalid = 0u8;
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            let (high, low) = (
                HEX_VALUE[usize::from(pair[0])],
                HEX_VALUE[usize::from(pair[1])],
            );
            invalid |= high | low;
            *byte = (high << 4) | (low & 0x0f);
        }
        (invalid & NOT_HEX == 0).then_some(Hash(bytes))
    }
}

/// Marks a byte that is not a hex digit in [`HEX_VALUE`].
const NOT_HEX: u8 = 0x80;

/// The value of each hex digit (either case), [`NOT_HEX`] for every other byte: verifiers
/// read two hashes per event, and a table beats a match per digit.
const HEX_VALUE: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut digit = 0;
    while digit < 10 {
        table[b'0' as usize + digit] = digit as u8;
        digit += 1;
    }
    let mut letter = 0;
    while letter < 6 {
        table[b'a' as usize + letter] = 10 + letter as u8;
        table[b'A' as usize + letter] = 10 + letter as u8;
        letter += 1;
    }
    table
};

/// A hash's 64 lowercase hex digits ([`Hash::hex_digits`]).
#[derive(Clone, Copy)]
pub struct HexDigits([u8; 64]);

impl HexDigits {
    pub fn as_str(&self) -> &str {
        // Hex digits are ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hex_digits().as_str())
    }
}

/// The fields of an event that its hash covers.
#[derive(Debug, Clone, Copy)]
pub struct HashedFields<'a> {
    pub event_id: Uuid,
    pub stream_type: &'a str,
    pub stream_id: Uuid,
    pub version: i64,
    pub event_type: &'a str,
    pub schema_version: i32,
    pub occurred_at: DateTime<Utc>,
    pub payload: &'a Value,
    pub metadata: &'a EventMetadata,
    /// The metadata document as stored when it is not the canonical form of `metadata`:
    /// then it is what is hashed.
    pub stored_metadata: Option<&'a Value>,
}

impl<'a> From<&'a RecordedEvent> for HashedFields<'a> {
    fn from(event: &'a RecordedEvent) -> Self {
        HashedFields {
            event_id: event.event_id,
            stream_type: &event.stream_type,
            stream_id: event.stream_id,
            version: event.version,
            event_type: &event.event_type,
            schema_version: event.schema_version,
            occurred_at: event.occurred_at,
            payload: &event.payload,
            metadata: &event.metadata,
            stored_metadata: event.stored_metadata.as_ref(),
        }
    }
}

/// The one textual form of a timestamp in hashes and envelopes: microseconds, UTC, `Z`.
pub fn format_timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Truncates a timestamp to the microseconds Postgres keeps, so hashes computed before
/// the insert match the stored value.
pub fn truncate_to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

/// The RFC 8785 canonical JSON of the hashed document.
pub fn canonical_document(fields: &HashedFields<'_>) -> Result<Vec<u8>, serde_json::Error> {
    let occurred_at = format_timestamp(fields.occurred_at);
    let mut values = Vec::with_capacity(512);
    let canonical = CanonicalEvent::of_fields(fields, &occurred_at, &mut values);
    let mut document = Vec::with_capacity(canonical.document_len());
    canonical.write_document(&mut document);
    Ok(document)
}

/// An event's members as they are hashed: the strings and numbers as they are, the
/// payload and metadata already canonical (RFC 8785), the time in its one textual form.
/// What both the chain's document and the Merkle leaf ([`crate::envelope::leaf_bytes`]) are
/// written from, so each value is canonicalized once for both.
#[derive(Debug, Clone, Copy)]
pub struct CanonicalEvent<'a> {
    pub event_id: Uuid,
    pub stream_type: &'a str,
    pub stream_id: Uuid,
    pub version: i64,
    pub event_type: &'a str,
    pub schema_version: i32,
    /// [`format_timestamp`]'s form.
    pub occurred_at: &'a str,
    /// JCS of the payload.
    pub payload: &'a [u8],
    /// JCS of the metadata document as stored.
    pub metadata: &'a [u8],
}

impl<'a> CanonicalEvent<'a> {
    /// `fields`, canonicalizing the payload and metadata into `values` (cleared first).
    pub fn of_fields(
        fields: &HashedFields<'a>,
        occurred_at: &'a str,
        values: &'a mut Vec<u8>,
    ) -> Self {
        values.clear();
        jcs::write_value(values, fields.payload);
        let payload_end = values.len();
        match fields.stored_metadata {
            Some(stored) => jcs::write_value(values, stored),
            None => write_metadata(values, fields.metadata),
        }
        let (payload, metadata) = values.split_at(payload_end);
        CanonicalEvent {
            event_id: fields.event_id,
            stream_type: fields.stream_type,
            stream_id: fields.stream_id,
            version: fields.version,
            event_type: fields.event_type,
            schema_version: fields.schema_version,
            occurred_at,
            payload,
            metadata,
        }
    }

    /// An upper bound of the document's length when no string needs escaping.
    pub fn document_len(&self) -> usize {
        256 + self.stream_type.len()
            + self.event_type.len()
            + self.payload.len()
            + self.metadata.len()
    }

    /// Appends the JCS of the hashed document: its nine members in sorted order.
    pub fn write_document(&self, out: &mut Vec<u8>) {
        self.write_members(out, None);
    }

    /// Appends the JCS of the document's nine members merged with the envelope's
    /// `position`, `prev_hash` and `hash`, in sorted order: the leaf bytes.
    pub fn write_leaf(&self, out: &mut Vec<u8>, position: i64, prev_hash: &Hash, hash: &Hash) {
        self.write_members(out, Some((position, prev_hash, hash)));
    }

    fn write_members(&self, out: &mut Vec<u8>, envelope: Option<(i64, &Hash, &Hash)>) {
        out.extend_from_slice(b"{\"event_id\":");
        write_uuid(out, self.event_id);
        out.extend_from_slice(b",\"event_type\":");
        jcs::write_str(out, self.event_type);
        if let Some((_, _, hash)) = envelope {
            out.extend_from_slice(b",\"hash\":");
            write_hash(out, hash);
        }
        out.extend_from_slice(b",\"metadata\":");
        out.extend_from_slice(self.metadata);
        out.extend_from_slice(b",\"occurred_at\":");
        jcs::write_str(out, self.occurred_at);
        out.extend_from_slice(b",\"payload\":");
        out.extend_from_slice(self.payload);
        if let Some((position, prev_hash, _)) = envelope {
            out.extend_from_slice(b",\"position\":");
            jcs::write_i64(out, position);
            out.extend_from_slice(b",\"prev_hash\":");
            write_hash(out, prev_hash);
        }
        out.extend_from_slice(b",\"schema_version\":");
        jcs::write_i64(out, i64::from(self.schema_version));
        out.extend_from_slice(b",\"stream_id\":");
        write_uuid(out, self.stream_id);
        out.extend_from_slice(b",\"stream_type\":");
        jcs::write_str(out, self.stream_type);
        out.extend_from_slice(b",\"version\":");
        jcs::write_i64(out, self.version);
        out.push(b'}');
    }
}

/// Appends the JCS of the document the store writes for `metadata`
/// (`{"actor", "causation_id", "command_id", "correlation_id"}`).
pub fn write_metadata(out: &mut Vec<u8>, metadata: &EventMetadata) {
    out.extend_from_slice(b"{\"actor\":");
    jcs::write_str(out, &metadata.actor);
    out.extend_from_slice(b",\"causation_id\":");
    match &metadata.causation_id {
        Some(causation_id) => jcs::write_str(out, causation_id),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"command_id\":");
    write_uuid(out, metadata.command_id);
    out.extend_from_slice(b",\"correlation_id\":");
    jcs::write_str(out, &metadata.correlation_id);
    out.push(b'}');
}

/// A UUID as a JSON string (as serde writes it, and canonical): lowercase, hyphenated.
pub(crate) fn write_uuid(out: &mut Vec<u8>, id: Uuid) {
    out.push(b'"');
    out.extend_from_slice(
        id.hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .as_bytes(),
    );
    out.push(b'"');
}

/// A hash as a JSON string of 64 lowercase hex digits.
pub(crate) fn write_hash(out: &mut Vec<u8>, hash: &Hash) {
    out.push(b'"');
    out.extend_from_slice(hash.hex_digits().as_str().as_bytes());
    out.push(b'"');
}

/// `SHA-256(prev_hash || JCS(document))`.
pub fn chain_hash(prev_hash: &Hash, fields: &HashedFields<'_>) -> Result<Hash, serde_json::Error> {
    let document = canonical_document(fields)?;
    Ok(chain_hash_of(prev_hash, &document))
}

/// `SHA-256(prev_hash || document)`, the document already canonical.
pub fn chain_hash_of(prev_hash: &Hash, document: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.0);
    hasher.update(document);
    Hash(hasher.finalize().into())
}

/// The failure of an event whose stored metadata is not what the store wrote.
pub fn metadata_not_as_written(stored: &Value) -> String {
    format!(
        "metadata as stored {stored} is not what the store writes (exactly actor, \
         correlation_id, causation_id, command_id): it was altered after the append"
    )
}

/// Why one event breaks its stream's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainFailure {
    pub stream_id: Uuid,
    pub version: i64,
    pub reason: String,
}

/// Checks events of streams, each stream's events in version order (streams may be
/// interleaved stream by stream, as `ORDER BY stream_id, version` gives them).
#[derive(Debug, Default)]
pub struct ChainVerifier {
    current: Option<(Uuid, i64, Hash)>,
    pub streams_checked: u64,
    pub events_checked: u64,
    pub failures: Vec<ChainFailure>,
}

impl ChainVerifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next event. A stream's first event must be version 1.
    pub fn check(&mut self, event: &RecordedEvent) {
        self.events_checked += 1;
        let (expected_version, expected_prev) = match self.current {
            Some((stream_id, version, hash)) if stream_id == event.stream_id => (version + 1, hash),
            _ => {
                self.streams_checked += 1;
                (1, Hash::GENESIS)
            }
        };
        let fail = |reason: String| ChainFailure {
            stream_id: event.stream_id,
            version: event.version,
            reason,
        };
        if let Some(stored) = &event.stored_metadata {
            self.failures.push(fail(metadata_not_as_written(stored)));
        } else if event.version != expected_version {
            self.failures.push(fail(format!(
                "expected version {expected_version}, found {}",
                event.version
            )));
        } else if event.prev_hash != expected_prev {
            self.failures.push(fail(format!(
                "prev_hash {} does not match the previous event's hash {}",
                event.prev_hash, expected_prev
            )));
        } else {
            match chain_hash(&event.prev_hash, &HashedFields::from(event)) {
                Ok(hash) if hash == event.hash => {}
                Ok(hash) => self.failures.push(fail(format!(
                    "stored hash {} does not match the recomputed {}",
                    event.hash, hash
                ))),
                Err(error) => self
                    .failures
                    .push(fail(format!("cannot canonicalize the event: {error}"))),
            }
        }
        // Chain on from what is stored, so one altered event is reported once.
        self.current = Some((event.stream_id, event.version, event.hash));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn metadata() -> EventMetadata {
        EventMetadata {
            actor: "alice".into(),
            correlation_id: "c-1".into(),
            causation_id: None,
            command_id: Uuid::nil(),
        }
    }

    #[test]
    fn canonical_document_is_sorted_and_compact() {
        let payload = json!({"b": 1, "a": "x"});
        let meta = metadata();
        let fields = HashedFields {
            event_id: Uuid::nil(),
            stream_type: "product",
            stream_id: Uuid::nil(),
            version: 1,
            event_type: "StockAdded",
            schema_version: 1,
            occurred_at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single().unwrap(),
            payload: &payload,
            metadata: &meta,
            stored_metadata: None,
        };
        let text = String::from_utf8(canonical_document(&fields).unwrap()).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"event_id":"00000000-0000-0000-0000-000000000000","event_type":"StockAdded","#,
                r#""metadata":{"actor":"alice","causation_id":null,"command_id":"00000000-0000-0000-0000-000000000000","correlation_id":"c-1"},"#,
                r#""occurred_at":"2026-01-02T03:04:05.000000Z","payload":{"a":"x","b":1},"#,
                r#""schema_version":1,"stream_id":"00000000-0000-0000-0000-000000000000","stream_type":"product","version":1}"#
            )
        );
    }

    #[test]
    fn hash_depends_on_prev_hash_and_payload() {
        let meta = metadata();
        let p1 = json!({"quantity": 1});
        let p2 = json!({"quantity": 2});
        let at = Utc::now();
        let mk = |payload| HashedFields {
            event_id: Uuid::nil(),
            stream_type: "product",
            stream_id: Uuid::nil(),
            version: 1,
            event_type: "StockAdded",
            schema_version: 1,
            occurred_at: at,
            payload,
            metadata: &meta,
            stored_metadata: None,
        };
        let a = chain_hash(&Hash::GENESIS, &mk(&p1)).unwrap();
        let b = chain_hash(&Hash::GENESIS, &mk(&p2)).unwrap();
        let c = chain_hash(&a, &mk(&p1)).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, chain_hash(&Hash::GENESIS, &mk(&p1)).unwrap());
        assert_eq!(Hash::from_hex(&a.to_hex()), Some(a));
    }

    /// The document as the store first defined it: a JSON value canonicalized by serde_jcs.
    fn reference_document(fields: &HashedFields<'_>) -> Vec<u8> {
        let metadata = match fields.stored_metadata {
            Some(stored) => stored.clone(),
            None => serde_json::to_value(fields.metadata).unwrap(),
        };
        serde_jcs::to_vec(&json!({
            "event_id": fields.event_id,
            "stream_type": fields.stream_type,
            "stream_id": fields.stream_id,
            "version": fields.version,
            "event_type": fields.event_type,
            "schema_version": fields.schema_version,
            "occurred_at": format_timestamp(fields.occurred_at),
            "payload": fields.payload,
            "metadata": metadata,
        }))
        .unwrap()
    }

    #[test]
    fn the_document_is_the_reference_canonicalization() {
        let mut meta = metadata();
        let stored =
            json!({"actor": "x", "extra": [1, 2.5, {"\u{1F600}": null, "\u{FF61}": "\u{1}"}]});
        let payloads = [
            json!({"b": 1, "a": "x"}),
            json!({"name": "Thé vert 🍵\n\"quoted\"", "lines": [{"qty": 9007199254740993u64}], "f": 0.1}),
            json!({}),
        ];
        for (index, payload) in payloads.iter().enumerate() {
            meta.causation_id = (index % 2 == 1).then(|| "cause\u{7f}".to_owned());
            for stored_metadata in [None, Some(&stored)] {
                let fields = HashedFields {
                    event_id: Uuid::now_v7(),
                    stream_type: "ord\"er",
                    stream_id: Uuid::now_v7(),
                    version: 1 << 54,
                    event_type: "Stock\tAdded",
                    schema_version: -3,
                    occurred_at: Utc::now(),
                    payload,
                    metadata: &meta,
                    stored_metadata,
                };
                assert_eq!(
                    String::from_utf8(canonical_document(&fields).unwrap()).unwrap(),
                    String::from_utf8(reference_document(&fields)).unwrap()
                );
            }
        }
    }

    #[test]
    fn hex_reads_64_digits_of_either_case_and_nothing_else() {
        let hash = Hash(std::array::from_fn(|i| (i * 37 + 11) as u8));
        let hex = hash.to_hex();
        assert_eq!(hex, hex::encode(hash.0));
        assert_eq!(Hash::from_hex(&hex), Some(hash));
        assert_eq!(Hash::from_hex(&hex.to_uppercase()), Some(hash));
        for bad in [&hex[1..], &format!("{hex}0"), &format!("g{}", &hex[1..])] {
            assert_eq!(Hash::from_hex(bad), None, "{bad}");
        }
        for byte in 0..=255u8 {
            let text = format!("{}{}", char::from(byte), &hex[1..]);
            let expected = hex::decode(&text)
                .ok()
                .map(|bytes| Hash(bytes.try_into().unwrap()));
            assert_eq!(Hash::from_hex(&text), expected, "{byte}");
        }
    }
}
