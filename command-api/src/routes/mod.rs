//! The command API's routes.

pub mod customers;
pub mod emails;
pub mod health;
pub mod orders;
pub mod payments;
pub mod products;
pub mod webhooks;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::execution::{Engine, StreamLocks};
use crate::reactors::ReactorStatuses;
use crate::webhooks::WebhookSettings;

/// What every handler shares.
pub struct AppState {
    pub engine: Arc<Engine>,
    /// False once shutdown began: `/readyz` answers 503 so load balancers drain us.
    pub ready: Arc<AtomicBool>,
    /// The most orders a customer may hold in `placed` (0: no limit).
    pub max_open_orders: u32,
    /// Serializes one customer's placements in this process (keyed by customer).
    pub customer_locks: StreamLocks,
    /// Webhooks, when `AGORA_WEBHOOK_KEY` is set.
    pub webhooks: Option<WebhookSettings>,
    /// The reactors running in this process.
    pub reactors: ReactorStatuses,
    /// The verifiable log's sequencer in this process (halted when the stored tree is not
    /// what it computed).
    pub sequencer: eventstore::sequencer::SequencerStatus,
    /// The payment provider and its webhook secrets.
    pub payments: Arc<crate::payments::Payments>,
    /// Customers' data keys (personal data is sealed with them).
    pub vault: platform::pii::Vault,
    /// Customer states kept while their changes are heard (the default shipping address).
    pub customers: std::sync::Arc<crate::customer_cache::CustomerCache>,
    /// The domain of `AGORA_MAIL_FROM` (emails' `Message-ID`s end in it).
    pub mail_domain: String,
}
