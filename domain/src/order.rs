//! The Order aggregate (stream type `order`): lines, total and the status machine
//! `placed → paid → shipped`, `placed | paid → cancelled`.
//!
//! The order alone does not touch stock: placing, shipping and cancelling with their
//! stock effects go through [`crate::placement`]. Like products, an order does not know
//! its own id.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::stored::stored_events;
use crate::values::{
    ActorId, CancelReason, Carrier, Currency, CustomerId, PaymentRef, PricedLine, PricedLines,
    TrackingNumber,
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
    },
    /// Records the payment of the order total.
    Pay {
        /// Must equal the order total.
        amount_cents: i64,
        /// Must equal the order currency.
        currency: Currency,
        /// The payment service provider's reference.
        payment_ref: PaymentRef,
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
    /// releases the reserved stock.
    Cancel {
        /// Why.
        reason: CancelReason,
    },
}

/// Payload of `OrderPlaced` (schema version 2): an order was recorded (its stock reserved
/// alongside).
///
/// Version 2 added `placed_by`. Version 1 payloads (without it) are upcast by the
/// `schemas` crate before decoding, with `placed_by` = `customer_id`.
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
}

/// Payload of `OrderPaid`: the order total was paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderPaid {
    /// The amount paid (the order total).
    pub amount_cents: i64,
    /// The currency paid in (the order currency).
    pub currency: Currency,
    /// The payment service provider's reference.
    pub payment_ref: PaymentRef,
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
    /// The refund: the order total if the order was paid, else 0.
    pub refunded_cents: i64,
}

stored_events!(
    /// An event of an order stream.
    OrderEvent, stream_type = STREAM_TYPE, {
        /// See [`OrderPlaced`].
        OrderPlaced = 2,
        /// See [`OrderPaid`].
        OrderPaid,
        /// See [`OrderShipped`].
        OrderShipped,
        /// See [`OrderCancelled`].
        OrderCancelled,
    }
);

/// The state of one order, folded from its events. `Default` is "not placed".
///
/// Serialized (for snapshots and the audit state endpoint) as
/// `{"exists", "customer_id", "placed_by", "lines": [{"product_id", "quantity",
/// "unit_price_cents"}], "total_cents", "currency", "status", "payment_ref", "carrier",
/// "tracking_number", "cancel_reason", "refunded_cents"}`, with `null` where not set.
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

    /// The refund, once cancelled (the total if it was paid, else 0).
    pub fn refunded_cents(&self) -> Option<i64> {
        self.refunded_cents
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
                OrderPaid {
                    amount_cents,
                    currency,
                    payment_ref,
                }
                .into()
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
            OrderCommand::Cancel { reason } => {
                let refunded_cents = match status {
                    OrderStatus::Placed => 0,
                    OrderStatus::Paid => self.total_cents,
                    OrderStatus::Shipped | OrderStatus::Cancelled => {
                        return Err(DomainError::invalid_state(format!(
                            "order is {status}; only a placed or paid order can be cancelled"
                        )))
                    }
                };
                OrderCancelled {
                    reason,
                    refunded_cents,
                }
                .into()
            }
        };
        Ok(vec![event])
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
                self.payment_ref = Some(e.payment_ref);
            }
            OrderEvent::OrderShipped(e) => {
                self.status = Some(OrderStatus::Shipped);
                self.carrier = Some(e.carrier);
                self.tracking_number = Some(e.tracking_number);
            }
            OrderEvent::OrderCancelled(e) => {
                self.status = Some(OrderStatus::Cancelled);
                self.cancel_reason = Some(e.reason);
                self.refunded_cents = Some(e.refunded_cents);
            }
        }
    }
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
