//! Agora's projector: builds the read models from events, exactly once in effect.
//!
//! A [`projection::Projection`] turns a batch of events into set-based SQL changes of its
//! tables (a pure fold per stream in Rust, then one statement per table; [`batch`]). The same projections run from either source — a Kafka consumer group
//! ([`source_kafka`]) or the Postgres log directly ([`source_log`]) — and every batch is
//! applied with its source checkpoint in one read-model transaction ([`apply`]). Events
//! read from Kafka are checked against the event store's hash chain first ([`chain`]). An
//! event a projection cannot apply parks its stream for that projection ([`parked`]).

pub mod apply;
pub mod batch;
pub mod chain;
pub mod config;
pub mod event;
pub mod parked;
pub mod progress;
pub mod projection;
pub mod projections;
pub mod rebuild;
pub mod service;
pub mod source_kafka;
pub mod source_log;
pub mod worker;
