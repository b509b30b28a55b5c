//! Agora's command API: authenticates callers, parses requests into domain commands,
//! executes them against the event store (optimistic concurrency, retries, idempotency)
//! and answers with the new stream version and global position.

pub mod cache;
pub mod config;
pub mod customer_cache;
pub mod emails;
pub mod errors;
pub mod execution;
pub mod headers;
pub mod openapi;
pub mod payments;
pub mod reactors;
pub mod requests;
pub mod routes;
pub mod startup;
pub mod streams;
pub mod webhooks;
