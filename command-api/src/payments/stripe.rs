//! Stripe's API, the calls Agora needs (PaymentIntents and refunds), over `reqwest` with
//! form-encoded bodies, as Stripe's own libraries send them. Each call that creates
//! something sends an `Idempotency-Key`; a network failure, a timeout, a 429 or a 5xx is
//! [`ProviderError::Unavailable`] (retry with the same key), any other 4xx
//! [`ProviderError::Refused`]. The secret key is never logged (`Debug` hides it).

use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use uuid::Uuid;

use super::provider::{PaymentProvider, ProviderError, ProviderPayment, ProviderRefund};

/// Stripe's API.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";
/// The longest any one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// The most PaymentIntents one list call returns (Stripe's limit).
const PAGE: usize = 100;
/// The most pages one reconciliation reads (100,000 payments).
const MAX_PAGES: usize = 1000;

/// A Stripe account's API.
pub struct StripeProvider {
    http: reqwest::Client,
    base: String,
    secret_key: String,
}

impl std::fmt::Debug for StripeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeProvider")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// A PaymentIntent, the fields we read.
#[derive(Debug, Deserialize)]
struct PaymentIntent {
    id: String,
    #[serde(default)]
    client_secret: Option<String>,
    status: String,
    amount: i64,
    currency: String,
    #[serde(default)]
    metadata: Metadata,
}

/// `metadata`, the field we set.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Metadata {
    #[serde(default)]
    pub order_id: Option<String>,
}

impl From<PaymentIntent> for ProviderPayment {
    fn from(intent: PaymentIntent) -> Self {
        ProviderPayment {
            order_id: intent
                .metadata
                .order_id
                .as_deref()
                .and_then(|id| Uuid::parse_str(id).ok()),
            id: intent.id,
            client_secret: intent.client_secret,
            status: intent.status,
            amount_cents: intent.amount,
            currency: intent.currency.to_ascii_uppercase(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct RefundObject {
    id: String,
    status: String,
    amount: i64,
}

#[derive(Debug, Deserialize)]
struct List<T> {
    data: Vec<T>,
    #[serde(default)]
    has_more: bool,
}

/// A PaymentIntent with its creation time (for lists).
#[derive(Debug, Deserialize)]
struct Listed {
    created: i64,
    #[serde(flatten)]
    intent: PaymentIntent,
}

impl StripeProvider {
    /// A client of the API at `base` with `secret_key`.
    pub fn new(base: &str, secret_key: &str) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| format!("cannot build the HTTP client: {error}"))?;
        Ok(StripeProvider {
            http,
            base: base.trim_end_matches('/').to_owned(),
            secret_key: secret_key.to_owned(),
        })
    }

    /// One call: `method path` with `form` (and an idempotency key), its JSON answer.
    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        method: Method,
        path: &str,
        form: &[(&str, String)],
        idempotency_key: Option<&str>,
    ) -> Result<T, ProviderError> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.secret_key);
        request = if method == Method::GET {
            request.query(form)
        } else {
            request.form(form)
        };
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request
            .send()
            .await
            .map_err(|error| ProviderError::Unavailable(format!("{method} {path}: {error}")))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|error| ProviderError::Unavailable(format!("{method} {path}: {error}")))?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|error| {
                ProviderError::Unavailable(format!("{method} {path}: unexpected answer: {error}"))
            });
        }
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let detail = format!("{method} {path}: {status} {message}");
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Err(ProviderError::Unavailable(detail))
        } else {
            Err(ProviderError::Refused(detail))
        }
    }
}

/// A provider id as one path segment: Stripe's ids are `[A-Za-z0-9_]`; anything else is
/// refused before it reaches a URL.
fn path_id(id: &str) -> Result<&str, ProviderError> {
    if !id.is_empty()
        && id.len() <= 200
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(id)
    } else {
        Err(ProviderError::Refused(format!("{id:?} is not a Stripe id")))
    }
}

impl PaymentProvider for StripeProvider {
    fn name(&self) -> &'static str {
        "stripe"
    }

    fn create_payment<'a>(
        &'a self,
        order_id: Uuid,
        amount_cents: i64,
        currency: &'a str,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<ProviderPayment, ProviderError>> {
        Box::pin(async move {
            let form = [
                ("amount", amount_cents.to_string()),
                ("currency", currency.to_ascii_lowercase()),
                ("metadata[order_id]", order_id.to_string()),
            ];
            let intent: PaymentIntent = self
                .call(
                    Method::POST,
                    "/v1/payment_intents",
                    &form,
                    Some(idempotency_key),
                )
                .await?;
            Ok(intent.into())
        })
    }

    fn payment<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<ProviderPayment, ProviderError>> {
        Box::pin(async move {
            let path = format!("/v1/payment_intents/{}", path_id(id)?);
            let intent: PaymentIntent = self.call(Method::GET, &path, &[], None).await?;
            Ok(intent.into())
        })
    }

    fn cancel_payment<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let path = format!("/v1/payment_intents/{}/cancel", path_id(id)?);
            let _: PaymentIntent = self.call(Method::POST, &path, &[], None).await?;
            Ok(())
        })
    }

    fn refund<'a>(
        &'a self,
        order_id: Uuid,
        payment_id: &'a str,
        amount_cents: i64,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<ProviderRefund, ProviderError>> {
        Box::pin(async move {
            let form = [
                ("payment_intent", path_id(payment_id)?.to_owned()),
                ("amount", amount_cents.to_string()),
                ("metadata[order_id]", order_id.to_string()),
            ];
            let refund: RefundObject = self
                .call(Method::POST, "/v1/refunds", &form, Some(idempotency_key))
                .await?;
            Ok(ProviderRefund {
                id: refund.id,
                status: refund.status,
                amount_cents: refund.amount,
            })
        })
    }

    fn payments_since(
        &self,
        since: i64,
    ) -> BoxFuture<'_, Result<Vec<ProviderPayment>, ProviderError>> {
        Box::pin(async move {
            let mut payments = Vec::new();
            let mut after: Option<String> = None;
            let mut pages = 0;
            loop {
                let mut query = vec![("limit", PAGE.to_string())];
                if let Some(last) = &after {
                    query.push(("starting_after", last.clone()));
                }
                let page: List<Listed> = self
                    .call(Method::GET, "/v1/payment_intents", &query, None)
                    .await?;
                // Stripe lists newest first: a page ending before `since` is the last one
                // needed. (Compatible servers that list oldest first are read to the end.)
                let newest_first = page
                    .data
                    .windows(2)
                    .all(|pair| pair[0].created >= pair[1].created);
                let ends_before = page
                    .data
                    .last()
                    .is_some_and(|listed| listed.created < since);
                after = page.data.last().map(|listed| listed.intent.id.clone());
                payments.extend(
                    page.data
                        .into_iter()
                        .filter(|listed| listed.created >= since)
                        .map(|listed| ProviderPayment::from(listed.intent)),
                );
                pages += 1;
                if !page.has_more
                    || (newest_first && ends_before)
                    || after.is_none()
                    || pages >= MAX_PAGES
                {
                    return Ok(payments);
                }
            }
        })
    }
}
