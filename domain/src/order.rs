//! The Order aggregate (stream type `order`): lines, total and the status machine
//! `placed → paid → shipped`, `placed | paid → cancelled`, and its money
//! ([`crate::payment`]): payments asked of the provider, the provider's word on them, and
//! refunds.
//!
//! The order alone does not touch stock: placing, shipping and cancelling with their
//! stock effects go through [`crate::placement`]. Like products, an order does not know
//! its own id.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::payment::{PaymentStatus, Payments, RefundStatus};
use crate::stored::stored_events;
use crate::values::{
    ActorId, CancelReason, Carrier, Currency, CustomerId, PaymentRef, PricedLine, PricedLines,
    ProviderEventId, ProviderName, Reason, RefundId, Sealed, TrackingNumber,
};

/// The stream type of order streams.
pub const STREAM_TYPE: &str = "order";

const ENTITY: &str = "order";

/// Where an order is in its life. Serialized lowercase (`"placed"`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Recorded, stock reserved, not paid.
    Placed,
    /// Paid in full.
    Paid,
    /// Handed to the carrier (final).
    Shipped,
    /// Cancelled, reservation released, refunded if it was paid (final).
    Cancelled,
}

impl OrderStatus {
    /// The lowercase name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Placed => "placed",
            Self::Paid => "paid",
            Self::Shipped => "shipped",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A command on one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderCommand {
    /// Records a new order. Use [`crate::placement::place_order`], which prices the lines
    /// and reserves the stock in the same decision.
    Place {
        /// Whose order it is.
        customer_id: CustomerId,
        /// Who places it: the customer themself, or an admin on the customer's behalf.
        placed_by: ActorId,
        /// The lines with their unit prices.
        lines: PricedLines,
        /// The currency of every unit price.
        currency: Currency,
        /// Where to ship it, sealed with the customer's data key (none: digital goods).
        shipping_address: Option<Sealed>,
    },
    /// Records an admin's offline payment of the order total (a bank transfer, cash on
    /// delivery), with why.
    Pay {
        /// Must equal the order total.
        amount_cents: i64,
        /// Must equal the order currency.
        currency: Currency,
        /// The payment's reference (a bank transfer's, a receipt's).
        payment_ref: PaymentRef,
        /// Why the payment is recorded by hand.
        reason: Reason,
    },
    /// Records that a payment of the order total was asked of the provider. A placed order
    /// only; while one is open (the same id) nothing more is recorded.
    RequestPayment {
        payment_id: PaymentRef,
        provider: ProviderName,
    },
    /// The provider's word that a payment succeeded (its signed webhook, or its API read
    /// back). Pays a placed order when the amount and currency are the total's; anything
    /// else is recorded as needing review. A payment already recorded as captured: nothing.
    ConfirmPayment {
        payment_id: PaymentRef,
        amount_cents: i64,
        currency: Currency,
        provider_event: ProviderEventId,
    },
    /// The provider's word that a payment failed. A captured payment stays captured.
    FailPayment {
        payment_id: PaymentRef,
        provider_event: ProviderEventId,
        reason: String,
    },
    /// Records a refund sent to the provider (and, when the provider already answered that
    /// it succeeded, that too). At most what was captured and not yet refunded.
    Refund(RefundRequest),
    /// The provider's word on a refund: it succeeded (`failure` none) or failed.
    SettleRefund {
        refund_id: RefundId,
        provider_event: Option<ProviderEventId>,
        failure: Option<String>,
    },
    /// Records the shipment of a paid order. Use [`crate::placement::ship_order`], which
    /// also ships the reserved stock.
    Ship {
        /// The carrier.
        carrier: Carrier,
        /// The carrier's tracking number.
        tracking_number: TrackingNumber,
    },
    /// Cancels a placed or paid order. Use [`crate::placement::cancel_order`], which also
    /// releases the reserved stock. A paid order is cancelled with the refund of what may
    /// still be refunded, sent to the provider.
    Cancel {
        /// Why.
        reason: CancelReason,
        /// The refund, for an order with captured money.
        refund: Option<RefundRequest>,
    },
}

/// A refund the provider accepted (the route asked it first, with an idempotency key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub refund_id: RefundId,
    /// The captured payment it pays back ([`Payments::refundable_payment`]).
    pub payment_id: PaymentRef,
    pub amount_cents: i64,
    pub reason: Reason,
    /// The provider answered that it already succeeded (Stripe's card refunds usually do;
    /// the manual and offline providers always).
    pub succeeded: bool,
}

/// Payload of `OrderPlaced` (schema version 3): an order was recorded (its stock reserved
/// alongside).
///
/// Version 2 added `placed_by`, version 3 `shipping_address`. Older payloads are upcast by
/// the `schemas` crate before decoding: `placed_by` = `customer_id`, `shipping_address`
/// `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderPlaced {
    /// Whose order it is.
    pub customer_id: CustomerId,
    /// Who placed it (a token `sub`): the customer themself, or an admin on the customer's
    /// behalf.
    pub placed_by: ActorId,
    /// The lines with the unit prices taken at placing time.
    pub lines: PricedLines,
    /// The sum of `quantity * unit_price_cents` over the lines.
    pub total_cents: i64,
    /// The currency of every amount in the order.
    pub currency: Currency,
    /// Where the order ships to, sealed with the customer's data key; `null` when it names
    /// no address (digital goods).
    pub shipping_address: Option<Sealed>,
}

/// Payload of `OrderPaid` (schema version 2): the order total was paid, by the provider's
/// word (`provider_event`) or by an admin's offline payment (`reason`).
///
/// Version 2 added `provider_event` and `reason`; version 1 payloads (from before payments
/// went through a provider) are upcast by the `schemas` crate with both `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderPaid {
    /// The amount paid (the order total).
    pub amount_cents: i64,
    /// The currency paid in (the order currency).
    pub currency: Currency,
    /// The payment's id at the provider (or the offline payment's reference).
    pub payment_ref: PaymentRef,
    /// The provider event that reported it.
    pub provider_event: Option<ProviderEventId>,
    /// Why an admin recorded it by hand (an offline payment).
    pub reason: Option<Reason>,
}

/// Payload of `PaymentRequested`: a payment of the order total was asked of the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequested {
    pub payment_id: PaymentRef,
    pub provider: ProviderName,
    pub amount_cents: i64,
    pub currency: Currency,
}

/// Payload of `PaymentFailed`: the provider refused a payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentFailed {
    pub payment_id: PaymentRef,
    pub provider_event: ProviderEventId,
    /// The provider's reason (may be empty).
    pub reason: String,
}

/// Payload of `PaymentNeedsReview`: the provider captured money the order could not take
/// (see [`crate::payment`]); an admin refunds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentNeedsReview {
    pub payment_id: PaymentRef,
    /// What the provider reports it captured.
    pub amount_cents: i64,
    pub currency: Currency,
    pub provider_event: ProviderEventId,
    /// Why the order could not take it.
    pub reason: String,
}

/// Payload of `RefundRequested`: a refund was sent to the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundRequested {
    pub refund_id: RefundId,
    pub payment_id: PaymentRef,
    pub amount_cents: i64,
    pub currency: Currency,
    pub reason: Reason,
}

/// Payload of `Refunded`: the provider paid a refund back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refunded {
    pub refund_id: RefundId,
    pub amount_cents: i64,
    pub currency: Currency,
    /// The provider event that reported it (none: the provider's answer to the request).
    pub provider_event: Option<ProviderEventId>,
}

/// Payload of `RefundFailed`: the provider could not pay a refund back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundFailed {
    pub refund_id: RefundId,
    pub provider_event: Option<ProviderEventId>,
    pub reason: String,
}

/// Payload of `OrderShipped`: the order was handed to a carrier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderShipped {
    /// The carrier.
    pub carrier: Carrier,
    /// The carrier's tracking number.
    pub tracking_number: TrackingNumber,
}

/// Payload of `OrderCancelled`: the order was cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderCancelled {
    /// Why (may be empty).
    pub reason: CancelReason,
    /// Before refunds went through the provider: the order total if the order was paid,
    /// else 0. Since: always 0, the refund is its own `RefundRequested` and `Refunded`.
    pub refunded_cents: i64,
}

stored_events!(
    /// An event of an order stream.
    OrderEvent, stream_type = STREAM_TYPE, {
        /// See [`OrderPlaced`].
        OrderPlaced = 3,
        /// See [`OrderPaid`].
        OrderPaid = 2,
        /// See [`OrderShipped`].
        OrderShipped,
        /// See [`OrderCancelled`].
        OrderCancelled,
        /// See [`PaymentRequested`].
        PaymentRequested,
        /// See [`PaymentFailed`].
        PaymentFailed,
        /// See [`PaymentNeedsReview`].
        PaymentNeedsReview,
        /// See [`RefundRequested`].
        RefundRequested,
        /// See [`Refunded`].
        Refunded,
        /// See [`RefundFailed`].
        RefundFailed,
    }
);

/// The state of one order, folded from its events. `Default` is "not placed".
///
/// Serialized (for snapshots and the audit state endpoint) as
/// `{"exists", "customer_id", "placed_by", "lines": [{"product_id", "quantity",
/// "unit_price_cents"}], "total_cents", "currency", "status", "payment_ref", "carrier",
/// "tracking_number", "cancel_reason", "refunded_cents", "payments": {"payments": [...],
/// "refunds": [...]}}`, with `null` where not set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    exists: bool,
    customer_id: Option<CustomerId>,
    placed_by: Option<ActorId>,
    lines: Vec<PricedLine>,
    total_cents: i64,
    currency: Option<Currency>,
    status: Option<OrderStatus>,
    payment_ref: Option<PaymentRef>,
    carrier: Option<Carrier>,
    tracking_number: Option<TrackingNumber>,
    cancel_reason: Option<CancelReason>,
    refunded_cents: Option<i64>,
    #[serde(default)]
    payments: Payments,
}

impl Order {
    /// Folds events, oldest first, into a state.
    pub fn from_events(events: impl IntoIterator<Item = OrderEvent>) -> Self {
        let mut order = Self::default();
        for event in events {
            order.apply(event);
        }
        order
    }

    /// Whether the order was placed.
    pub fn exists(&self) -> bool {
        self.exists
    }

    /// Whose order it is (`None` while not placed). Use it for ownership checks.
    pub fn customer_id(&self) -> Option<&CustomerId> {
        self.customer_id.as_ref()
    }

    /// Who placed the order (`None` while not placed): the customer themself or an admin.
    /// For orders recorded before `OrderPlaced` v2 this is the customer.
    pub fn placed_by(&self) -> Option<&ActorId> {
        self.placed_by.as_ref()
    }

    /// The priced lines, in placing order (empty while not placed).
    pub fn lines(&self) -> &[PricedLine] {
        &self.lines
    }

    /// The order total (0 while not placed).
    pub fn total_cents(&self) -> i64 {
        self.total_cents
    }

    /// The order currency (`None` while not placed).
    pub fn currency(&self) -> Option<&Currency> {
        self.currency.as_ref()
    }

    /// The status (`None` while not placed).
    pub fn status(&self) -> Option<OrderStatus> {
        self.status
    }

    /// The payment reference, once paid.
    pub fn payment_ref(&self) -> Option<&PaymentRef> {
        self.payment_ref.as_ref()
    }

    /// The carrier, once shipped.
    pub fn carrier(&self) -> Option<&Carrier> {
        self.carrier.as_ref()
    }

    /// The tracking number, once shipped.
    pub fn tracking_number(&self) -> Option<&TrackingNumber> {
        self.tracking_number.as_ref()
    }

    /// The cancellation reason, once cancelled.
    pub fn cancel_reason(&self) -> Option<&CancelReason> {
        self.cancel_reason.as_ref()
    }

    /// What was refunded: before payments went through a provider, the total when a paid
    /// order was cancelled; since, the refunds the provider confirmed (`None` while there
    /// was no refund and the order is not cancelled).
    pub fn refunded_cents(&self) -> Option<i64> {
        self.refunded_cents
    }

    /// The payments and refunds.
    pub fn payments(&self) -> &Payments {
        &self.payments
    }

    /// Decides the events a command produces, or why it is refused. Pure: `self` is not
    /// changed; apply the events to move on.
    ///
    /// Refusals: `Place` on an existing order is `AlreadyExists`; anything else on an
    /// order not placed is `NotFound`. `Pay` needs `placed`, `Ship` needs `paid`, `Cancel`
    /// needs `placed` or `paid`, else `InvalidState`. `Pay` with an amount or currency
    /// other than the order's is `AmountMismatch`.
    pub fn decide(&self, command: OrderCommand) -> Result<Vec<OrderEvent>, DomainError> {
        if let OrderCommand::Place {
            customer_id,
            placed_by,
            lines,
            currency,
            shipping_address,
        } = command
        {
            if self.exists {
                return Err(DomainError::AlreadyExists { entity: ENTITY });
            }
            let total_cents = lines.total_cents();
            return Ok(vec![OrderPlaced {
                customer_id,
                placed_by,
                lines,
                total_cents,
                currency,
                shipping_address,
            }
            .into()]);
        }
        let (Some(status), Some(order_currency)) =
            (self.status.filter(|_| self.exists), self.currency.as_ref())
        else {
            return Err(DomainError::NotFound { entity: ENTITY });
        };
        let event: OrderEvent = match command {
            OrderCommand::Place { .. } => {
                return Err(DomainError::AlreadyExists { entity: ENTITY })
            }
            OrderCommand::Pay {
                amount_cents,
                currency,
                payment_ref,
                reason,
            } => {
                if status != OrderStatus::Placed {
                    return Err(DomainError::invalid_state(format!(
                        "order is {status}; only a placed order can be paid"
                    )));
                }
                if amount_cents != self.total_cents || &currency != order_currency {
                    return Err(DomainError::AmountMismatch {
                        expected_cents: self.total_cents,
                        currency: order_currency.clone(),
                    });
                }
                if self.payments.payment(&payment_ref).is_some() {
                    return Err(DomainError::invalid_state(format!(
                        "the order already has a payment {payment_ref}"
                    )));
                }
                OrderPaid {
                    amount_cents,
                    currency,
                    payment_ref,
                    provider_event: None,
                    reason: Some(reason),
                }
                .into()
            }
            OrderCommand::RequestPayment {
                payment_id,
                provider,
            } => {
                if status != OrderStatus::Placed {
                    return Err(DomainError::invalid_state(format!(
                        "order is {status}; only a placed order can be paid"
                    )));
                }
                if let Some(open) = self.payments.open() {
                    if open.payment_id == payment_id {
                        return Ok(vec![]);
                    }
                    return Err(DomainError::invalid_state(format!(
                        "payment {} is open for this order",
                        open.payment_id
                    )));
                }
                if self.payments.payment(&payment_id).is_some() {
                    return Err(DomainError::invalid_state(format!(
                        "payment {payment_id} was already recorded"
                    )));
                }
                PaymentRequested {
                    payment_id,
                    provider,
                    amount_cents: self.total_cents,
                    currency: order_currency.clone(),
                }
                .into()
            }
            OrderCommand::ConfirmPayment {
                payment_id,
                amount_cents,
                currency,
                provider_event,
            } => {
                if self
                    .payments
                    .payment(&payment_id)
                    .is_some_and(|p| p.status.is_captured())
                {
                    return Ok(vec![]);
                }
                let review = |reason: String| -> Vec<OrderEvent> {
                    vec![PaymentNeedsReview {
                        payment_id: payment_id.clone(),
                        amount_cents,
                        currency: currency.clone(),
                        provider_event: provider_event.clone(),
                        reason,
                    }
                    .into()]
                };
                if status != OrderStatus::Placed {
                    return Ok(review(format!(
                        "the order is {status}: it cannot take this payment"
                    )));
                }
                if amount_cents != self.total_cents || &currency != order_currency {
                    return Ok(review(format!(
                        "the provider captured {amount_cents} {currency}, the order total is {} \
                         {order_currency}",
                        self.total_cents
                    )));
                }
                OrderPaid {
                    amount_cents,
                    currency,
                    payment_ref: payment_id,
                    provider_event: Some(provider_event),
                    reason: None,
                }
                .into()
            }
            OrderCommand::FailPayment {
                payment_id,
                provider_event,
                reason,
            } => {
                let known = self.payments.payment(&payment_id);
                if known
                    .is_some_and(|p| p.status.is_captured() || p.status == PaymentStatus::Failed)
                {
                    return Ok(vec![]);
                }
                PaymentFailed {
                    payment_id,
                    provider_event,
                    reason: bounded(reason),
                }
                .into()
            }
            OrderCommand::Refund(request) => {
                return self.refund_events(request, order_currency);
            }
            OrderCommand::SettleRefund {
                refund_id,
                provider_event,
                failure,
            } => {
                let Some(refund) = self.payments.refund(&refund_id) else {
                    return Err(DomainError::NotFound { entity: "refund" });
                };
                if refund.status != RefundStatus::Requested {
                    return Ok(vec![]);
                }
                match failure {
                    None => Refunded {
                        refund_id,
                        amount_cents: refund.amount_cents,
                        currency: order_currency.clone(),
                        provider_event,
                    }
                    .into(),
                    Some(reason) => RefundFailed {
                        refund_id,
                        provider_event,
                        reason: bounded(reason),
                    }
                    .into(),
                }
            }
            OrderCommand::Ship {
                carrier,
                tracking_number,
            } => {
                if status != OrderStatus::Paid {
                    return Err(DomainError::invalid_state(format!(
                        "order is {status}; only a paid order can be shipped"
                    )));
                }
                OrderShipped {
                    carrier,
                    tracking_number,
                }
                .into()
            }
            OrderCommand::Cancel { reason, refund } => {
                if !matches!(status, OrderStatus::Placed | OrderStatus::Paid) {
                    return Err(DomainError::invalid_state(format!(
                        "order is {status}; only a placed or paid order can be cancelled"
                    )));
                }
                let mut events = vec![OrderCancelled {
                    reason,
                    refunded_cents: 0,
                }
                .into()];
                match refund {
                    Some(request) => {
                        events.extend(self.refund_events(request, order_currency)?);
                    }
                    None if status == OrderStatus::Paid && self.payments.refundable_cents() > 0 => {
                        return Err(DomainError::invalid_state(
                            "an order holding captured money is cancelled with its refund",
                        ));
                    }
                    None => {}
                }
                return Ok(events);
            }
        };
        Ok(vec![event])
    }

    /// The events of a refund the provider accepted: `RefundRequested`, and `Refunded` when
    /// it already succeeded.
    fn refund_events(
        &self,
        request: RefundRequest,
        currency: &Currency,
    ) -> Result<Vec<OrderEvent>, DomainError> {
        if self.payments.refund(&request.refund_id).is_some() {
            return Ok(vec![]);
        }
        let refundable = self.payments.refundable_cents();
        let payment_fits = self
            .payments
            .refundable_payment(request.amount_cents)
            .is_some_and(|p| p.payment_id == request.payment_id);
        if request.amount_cents <= 0 || request.amount_cents > refundable || !payment_fits {
            return Err(DomainError::RefundExceedsPayment {
                refundable_cents: refundable,
            });
        }
        let mut events: Vec<OrderEvent> = vec![RefundRequested {
            refund_id: request.refund_id.clone(),
            payment_id: request.payment_id,
            amount_cents: request.amount_cents,
            currency: currency.clone(),
            reason: request.reason,
        }
        .into()];
        if request.succeeded {
            events.push(
                Refunded {
                    refund_id: request.refund_id,
                    amount_cents: request.amount_cents,
                    currency: currency.clone(),
                    provider_event: None,
                }
                .into(),
            );
        }
        Ok(events)
    }

    /// Applies one event (a fact: never refused).
    pub fn apply(&mut self, event: OrderEvent) {
        match event {
            OrderEvent::OrderPlaced(e) => {
                *self = Self {
                    exists: true,
                    customer_id: Some(e.customer_id),
                    placed_by: Some(e.placed_by),
                    lines: e.lines.into(),
                    total_cents: e.total_cents,
                    currency: Some(e.currency),
                    status: Some(OrderStatus::Placed),
                    ..Self::default()
                };
            }
            OrderEvent::OrderPaid(e) => {
                self.status = Some(OrderStatus::Paid);
                self.payments.set_payment(
                    e.payment_ref.clone(),
                    PaymentStatus::Succeeded,
                    e.amount_cents,
                );
                if e.provider_event.is_none() {
                    self.payments.mark_offline(&e.payment_ref);
                }
                self.payment_ref = Some(e.payment_ref);
            }
            OrderEvent::PaymentRequested(e) => {
                if self.payments.payment(&e.payment_id).is_none() {
                    self.payments.set_payment(
                        e.payment_id,
                        PaymentStatus::Requested,
                        e.amount_cents,
                    );
                }
            }
            OrderEvent::PaymentFailed(e) => {
                let amount = self
                    .payments
                    .payment(&e.payment_id)
                    .map_or(0, |p| p.amount_cents);
                self.payments
                    .set_payment(e.payment_id, PaymentStatus::Failed, amount);
            }
            OrderEvent::PaymentNeedsReview(e) => {
                self.payments
                    .set_payment(e.payment_id, PaymentStatus::NeedsReview, e.amount_cents);
            }
            OrderEvent::RefundRequested(e) => {
                self.payments.refunds.push(crate::payment::Refund {
                    refund_id: e.refund_id,
                    payment_id: e.payment_id,
                    status: RefundStatus::Requested,
                    amount_cents: e.amount_cents,
                });
            }
            OrderEvent::Refunded(e) => {
                self.payments
                    .set_refund_status(&e.refund_id, RefundStatus::Succeeded);
                self.refunded_cents = Some(self.payments.refunded_cents());
            }
            OrderEvent::RefundFailed(e) => {
                self.payments
                    .set_refund_status(&e.refund_id, RefundStatus::Failed);
            }
            OrderEvent::OrderShipped(e) => {
                self.status = Some(OrderStatus::Shipped);
                self.carrier = Some(e.carrier);
                self.tracking_number = Some(e.tracking_number);
            }
            OrderEvent::OrderCancelled(e) => {
                self.status = Some(OrderStatus::Cancelled);
                self.cancel_reason = Some(e.reason);
                self.payments.cancel_open();
                // Before refunds went through a provider, cancelling recorded the refund.
                self.refunded_cents = Some(e.refunded_cents.max(self.payments.refunded_cents()));
            }
        }
    }
}

/// A provider's free-text reason, cut to 500 characters.
fn bounded(reason: String) -> String {
    reason
        .chars()
        .filter(|c| !c.is_control())
        .take(500)
        .collect()
}

impl cqrs_es::Aggregate for Order {
    const TYPE: &'static str = STREAM_TYPE;
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: OrderCommand,
        _services: &(),
        sink: &cqrs_es::event_sink::EventSink<Self>,
    ) -> Result<(), DomainError> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: OrderEvent) {
        // The inherent `Order::apply` (inherent functions take precedence).
        Order::apply(self, event);
    }
}

#[cfg(test)]
mod tests;
