//! The command API's routes.

pub mod health;
pub mod orders;
pub mod products;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::execution::Engine;

/// What every handler shares.
pub struct AppState {
    pub engine: Engine,
    /// False once shutdown began: `/readyz` answers 503 so load balancers drain us.
    pub ready: Arc<AtomicBool>,
}
