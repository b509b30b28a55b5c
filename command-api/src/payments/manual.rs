//! The development provider (`AGORA_PAYMENTS=manual`): no money moves. A checkout records
//! a payment waiting for an admin, who confirms it (`POST /v1/orders/{id}/payment/confirm`);
//! refunds succeed at once. Ids derive from the idempotency key, so a retried checkout or
//! refund names the same payment or refund.

use futures::future::{self, BoxFuture};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::provider::{PaymentProvider, ProviderError, ProviderPayment, ProviderRefund};

/// See the module doc.
#[derive(Debug, Default)]
pub struct ManualProvider;

/// `prefix` and 24 hex digits of SHA-256 of `key`.
fn id_of(prefix: &str, key: &str) -> String {
    format!(
        "{prefix}{}",
        &hex::encode(Sha256::digest(key.as_bytes()))[..24]
    )
}

impl PaymentProvider for ManualProvider {
    fn name(&self) -> &'static str {
        "manual"
    }

    fn create_payment<'a>(
        &'a self,
        order_id: Uuid,
        amount_cents: i64,
        currency: &'a str,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<ProviderPayment, ProviderError>> {
        Box::pin(future::ready(Ok(ProviderPayment {
            id: id_of("manual_", idempotency_key),
            client_secret: None,
            status: "requires_confirmation".into(),
            amount_cents,
            currency: currency.to_owned(),
            order_id: Some(order_id),
        })))
    }

    fn payment<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<ProviderPayment, ProviderError>> {
        Box::pin(future::ready(Err(ProviderError::Refused(format!(
            "the manual provider keeps no payments ({id}): the log is the only record"
        )))))
    }

    fn cancel_payment<'a>(&'a self, _id: &'a str) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(future::ready(Ok(())))
    }

    fn refund<'a>(
        &'a self,
        _order_id: Uuid,
        _payment_id: &'a str,
        amount_cents: i64,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<ProviderRefund, ProviderError>> {
        Box::pin(future::ready(Ok(ProviderRefund {
            id: id_of("manual_re_", idempotency_key),
            status: "succeeded".into(),
            amount_cents,
        })))
    }

    fn payments_since(
        &self,
        _since: i64,
    ) -> BoxFuture<'_, Result<Vec<ProviderPayment>, ProviderError>> {
        Box::pin(future::ready(Ok(Vec::new())))
    }
}
