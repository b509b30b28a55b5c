//! What the audit endpoints need beyond HTTP: the read-only event-store connection,
//! streaming pages of events as NDJSON, and folding a stream into its aggregate's state.

pub mod fold;
pub mod ndjson;
pub mod store;
