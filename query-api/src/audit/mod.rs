//! What the audit endpoints need beyond HTTP: the read-only event-store connection and
//! streaming pages of events as NDJSON (folding a stream is `eventstore::AggregateState`).

pub mod ndjson;
pub mod store;
