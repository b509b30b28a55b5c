//! Reconciliation (`agora payments reconcile`): the provider's payments beside the log.
//!
//! - A payment the provider captured for one of our orders that the log does not hold as
//!   captured (a webhook lost for longer than the provider retries) is applied from the
//!   provider's record, exactly as its webhook would have been (provider event
//!   `reconcile:<payment id>`, actor `psp:reconcile`): the order becomes `paid`, or the
//!   payment is recorded as needing review.
//! - A payment the log holds as captured by the provider that the provider does not have, or
//!   does not have as succeeded, is reported: nothing can fix that automatically.
//! - A provider payment naming an order that is not in our log belongs to someone else
//!   sharing the account (every Agora order exists before its checkout): listed as foreign.

use chrono::{DateTime, Utc};
use domain::{PaymentStatus, ProviderEventId};
use serde::Serialize;

use super::webhook::Effect;
use super::{Payments, ProviderError};
use crate::execution::Engine;
use crate::routes::payments::apply_effect;

/// What a reconciliation found and did.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub provider: &'static str,
    pub since: String,
    /// Provider payments looked at.
    pub provider_payments: usize,
    /// Payments the log holds as captured by the provider, looked at.
    pub log_payments: usize,
    /// Applied from the provider's record.
    pub applied: Vec<Finding>,
    /// Provider payments for orders that are not ours.
    pub foreign: Vec<Finding>,
    /// What needs a person.
    pub unresolved: Vec<Finding>,
}

/// One payment's finding.
#[derive(Debug, Serialize)]
pub struct Finding {
    pub payment_id: String,
    pub order_id: Option<uuid::Uuid>,
    pub detail: String,
}

impl Report {
    /// Whether anything is left for a person.
    pub fn is_clean(&self) -> bool {
        self.unresolved.is_empty()
    }
}

/// Compares the provider's payments since `since` with the log, applying what the log
/// missed. Errors only when the provider or the store cannot be read at all.
pub async fn reconcile(
    engine: &Engine,
    payments: &Payments,
    since: DateTime<Utc>,
) -> Result<Report, String> {
    let mut report = Report {
        provider: payments.provider.name(),
        since: since.to_rfc3339(),
        ..Report::default()
    };
    if payments.is_manual() {
        return Ok(report);
    }
    let listed = payments
        .provider
        .payments_since(since.timestamp())
        .await
        .map_err(|error| error.to_string())?;
    report.provider_payments = listed.len();
    for payment in listed {
        let Some(order_id) = payment.order_id else {
            continue;
        };
        let order = engine
            .streams
            .peek(order_id)
            .await
            .map_err(|problem| problem.detail.clone())?
            .order();
        let finding = |detail: String| Finding {
            payment_id: payment.id.clone(),
            order_id: Some(order_id),
            detail,
        };
        if !order.exists() {
            report
                .foreign
                .push(finding("no such order in this log".into()));
            continue;
        }
        if !payment.succeeded() {
            continue;
        }
        let captured = order
            .payments()
            .payments
            .iter()
            .any(|p| p.payment_id.as_str() == payment.id && p.status.is_captured());
        if captured {
            continue;
        }
        let event = ProviderEventId::parse(format!("reconcile:{}", payment.id))
            .map_err(|error| error.to_string())?;
        let effect = Effect::PaymentSucceeded {
            order_id,
            payment_id: payment.id.clone(),
            amount_cents: payment.amount_cents,
            currency: payment.currency.clone(),
        };
        match apply_effect(engine, "psp:reconcile", &event, &effect).await {
            Ok(true) => report.applied.push(finding(
                "captured at the provider; applied from its record".into(),
            )),
            Ok(false) => {}
            Err(problem) => report
                .unresolved
                .push(finding(format!("cannot apply: {}", problem.detail))),
        }
    }
    for (order_id, payment_id) in captured_in_log(engine, since).await? {
        report.log_payments += 1;
        let finding = |detail: String| Finding {
            payment_id: payment_id.clone(),
            order_id: Some(order_id),
            detail,
        };
        match payments.provider.payment(&payment_id).await {
            Ok(payment) if payment.succeeded() => {}
            Ok(payment) => report.unresolved.push(finding(format!(
                "captured in the log, but {} at the provider",
                payment.status
            ))),
            Err(ProviderError::Refused(detail)) => report.unresolved.push(finding(format!(
                "captured in the log, unknown to the provider: {detail}"
            ))),
            Err(error @ ProviderError::Unavailable(_)) => return Err(error.to_string()),
        }
    }
    Ok(report)
}

/// The payments the log holds as captured by the provider (not offline, not the manual
/// provider's) in orders changed since `since`.
async fn captured_in_log(
    engine: &Engine,
    since: DateTime<Utc>,
) -> Result<Vec<(uuid::Uuid, String)>, String> {
    let client = engine.store.pool().get().await.map_err(|e| e.to_string())?;
    let rows = client
        .query(
            "SELECT DISTINCT stream_id FROM events \
             WHERE stream_type = 'order' AND occurred_at >= $1 \
               AND event_type IN ('OrderPaid', 'PaymentNeedsReview')",
            &[&since],
        )
        .await
        .map_err(|e| e.to_string())?;
    drop(client);
    let mut captured = Vec::new();
    for row in rows {
        let order_id: uuid::Uuid = row.try_get(0).map_err(|e| e.to_string())?;
        let order = engine
            .streams
            .peek(order_id)
            .await
            .map_err(|problem| problem.detail.clone())?
            .order();
        for payment in &order.payments().payments {
            let by_provider =
                !payment.offline && !payment.payment_id.as_str().starts_with("manual_");
            if by_provider
                && matches!(
                    payment.status,
                    PaymentStatus::Succeeded | PaymentStatus::NeedsReview
                )
            {
                captured.push((order_id, payment.payment_id.as_str().to_owned()));
            }
        }
    }
    Ok(captured)
}
