//! Shared service plumbing for Agora's HTTP services: problem+json errors, JWT auth,
//! telemetry (logs and metrics), the health endpoints' helpers and OpenAPI documents.

pub mod auth;
pub mod http;
pub mod openapi;
pub mod pii;
pub mod problem;
pub mod shutdown;
pub mod telemetry;
pub mod tls;

pub use auth::{AuthSettings, Authenticator, Caller, Claims, JwtKeys, RateLimits, Role};
pub use problem::Problem;
