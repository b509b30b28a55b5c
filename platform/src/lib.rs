//! Shared service plumbing for Agora's HTTP services: problem+json errors, JWT auth,
//! telemetry (logs and metrics) and the health endpoints' helpers.

pub mod auth;
pub mod http;
pub mod problem;
pub mod shutdown;
pub mod telemetry;

pub use auth::{Caller, Claims, JwtKeys, Role};
pub use problem::Problem;
