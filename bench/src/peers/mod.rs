//! `peers-bench`: Agora's write path next to its peers on the same PostgreSQL server, plus
//! the command API's stream-length curve and memory check. `scripts/bench-peers.sh` runs
//! the rounds (and the contenders that are not in-process: pgbench's raw INSERT and the
//! command API over HTTP with wrk).
//!
//! The in-process contenders, each a [`crate::drive::CommandClient`] per client, every
//! client owning its share of pre-created product streams and restocking them in turn:
//! - [`message_db`]: Message DB's `write_message` (after a load, or at a known version);
//! - [`postgres_es`]: cqrs-es + postgres-es, `CqrsFramework::execute`;
//! - Agora's append at a known version: [`crate::appender`], as `append-bench` runs it;
//! - [`agora_command`]: Agora's command path (load, decide, append), the slot to switch to
//!   the cached engine.
//!
//! Through the real `command-api` binary: [`curve`] (restock latency against stream
//! length) and [`memory`] (the process's resident memory while a million streams are
//! touched), both over [`http`]. [`summary`] prints the report of a whole run.

pub mod agora_command;
pub mod curve;
pub mod http;
pub mod memory;
pub mod message_db;
pub mod postgres_es;
pub mod summary;
