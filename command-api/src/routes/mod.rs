//! The command API's routes.

pub mod health;
pub mod orders;
pub mod products;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use eventstore::EventStore;

use crate::execution::StreamLocks;

/// What every handler shares.
pub struct AppState {
    pub store: EventStore,
    pub locks: StreamLocks,
    /// False once shutdown began: `/readyz` answers 503 so load balancers drain us.
    pub ready: Arc<AtomicBool>,
}
