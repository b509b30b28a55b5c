//! The one small trait a payment provider implements, and what it answers: a payment
//! (Stripe's PaymentIntent), a refund, and the errors that tell a retry from a refusal.

use futures::future::BoxFuture;
use uuid::Uuid;

/// A payment as the provider knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderPayment {
    /// The provider's id (`pi_...`).
    pub id: String,
    /// What the buyer's browser needs to pay at the provider (none for the manual provider).
    pub client_secret: Option<String>,
    /// The provider's status (`requires_payment_method`, `succeeded`, `canceled`, ...).
    pub status: String,
    /// The amount asked for, in minor units.
    pub amount_cents: i64,
    /// Upper case (`EUR`).
    pub currency: String,
    /// The order it pays (`metadata.order_id`), if it names one.
    pub order_id: Option<Uuid>,
}

impl ProviderPayment {
    /// Whether the provider captured the money.
    pub fn succeeded(&self) -> bool {
        self.status == "succeeded"
    }
}

/// A refund as the provider knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRefund {
    /// The provider's id (`re_...`).
    pub id: String,
    /// `pending`, `succeeded`, `failed`, `canceled`, ...
    pub status: String,
    pub amount_cents: i64,
}

/// Why a provider call did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached, timed out or failed on its side: retrying the
    /// same call (same idempotency key) is safe.
    #[error("the payment provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request (its 4xx).
    #[error("the payment provider refused the request: {0}")]
    Refused(String),
}

/// What Agora asks of a payment provider. Every call that creates something carries an
/// idempotency key derived from the command, so a retry never creates a second one.
pub trait PaymentProvider: Send + Sync {
    /// The provider's name as recorded in `PaymentRequested` (`stripe`, `manual`).
    fn name(&self) -> &'static str;

    /// Creates a payment of `amount_cents` `currency` for `order_id`.
    fn create_payment<'a>(
        &'a self,
        order_id: Uuid,
        amount_cents: i64,
        currency: &'a str,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<ProviderPayment, ProviderError>>;

    /// Reads a payment back.
    fn payment<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<ProviderPayment, ProviderError>>;

    /// Withdraws a payment the buyer has not paid (an expired order's).
    fn cancel_payment<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), ProviderError>>;

    /// Refunds `amount_cents` of payment `payment_id` (of order `order_id`).
    fn refund<'a>(
        &'a self,
        order_id: Uuid,
        payment_id: &'a str,
        amount_cents: i64,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<ProviderRefund, ProviderError>>;

    /// The payments created since `since` (unix seconds), newest first, for reconciliation.
    fn payments_since(
        &self,
        since: i64,
    ) -> BoxFuture<'_, Result<Vec<ProviderPayment>, ProviderError>>;
}
