//! Webhooks: admins subscribe URLs to event types; every matching event is POSTed to them,
//! signed, at least once, in per-stream order, retried with backoff until a failure limit.
//!
//! - [`secrets`]: subscription secrets sealed at rest with `AGORA_WEBHOOK_KEY`.
//! - [`signing`]: the `Agora-Signature` header.
//! - [`target`]: which URLs may be subscribed.
//! - [`store`]: subscriptions and the delivery log in PostgreSQL.
//! - [`delivery`]: the reactor: fan-out from the log, then per-subscription delivery.

pub mod delivery;
pub mod secrets;
pub mod signing;
pub mod store;
pub mod target;

use std::time::Duration;

use secrets::SecretBox;

/// How webhooks run in this process (present only when `AGORA_WEBHOOK_KEY` is set).
#[derive(Clone)]
pub struct WebhookSettings {
    pub secrets: SecretBox,
    pub allow_insecure: bool,
    pub max_attempts: u32,
    pub retry_base: Duration,
}
