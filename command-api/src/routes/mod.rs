//! The command API's routes.

pub mod health;
pub mod orders;
pub mod products;

use eventstore::EventStore;

use crate::execution::StreamLocks;

/// What every handler shares.
pub struct AppState {
    pub store: EventStore,
    pub locks: StreamLocks,
}
