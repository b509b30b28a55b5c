//! Order histories for the projections' unit tests, decided by the domain itself (each
//! command runs against the fold of the events before it), one event an hour.

use chrono::{DateTime, TimeDelta, Utc};
use domain::order::{OrderCancelled, OrderPaid};
use domain::{
    ActorId, CancelReason, Currency, CustomerId, LineQuantity, Order, OrderCommand, OrderEvent,
    PaymentRef, PriceCents, PricedLine, PricedLines, ProductId, ProviderEventId, ProviderName,
    Reason, RefundId, RefundRequest,
};
use uuid::Uuid;

use crate::event::{ProjectedEvent, ShopEvent};

/// The two products every history orders: 2 × 1299 of the first, 1 × 500 of the second.
pub const PRODUCTS: [u128; 2] = [0x1, 0x2];
/// The total of every history's order.
pub const TOTAL: i64 = 2 * 1299 + 500;
/// The units of every history's order.
pub const UNITS: i64 = 3;

/// When the first event of every history happened (the others follow an hour apart).
pub fn start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_714_557_600, 0).unwrap_or_default() // 2024-05-01T10:00:00Z
}

/// An order history being written: the events so far and their fold.
pub struct History {
    pub stream_id: Uuid,
    pub order: Order,
    pub events: Vec<OrderEvent>,
}

impl History {
    /// An order placed for [`TOTAL`].
    pub fn placed() -> History {
        let line = |n: u128, quantity: i64, price: i64| PricedLine {
            product_id: ProductId::from_uuid(Uuid::from_u128(n)),
            quantity: LineQuantity::parse(quantity).unwrap(),
            unit_price_cents: PriceCents::parse(price).unwrap(),
        };
        let lines = PricedLines::parse(vec![line(PRODUCTS[0], 2, 1299), line(PRODUCTS[1], 1, 500)])
            .unwrap();
        let mut history = History {
            stream_id: Uuid::new_v4(),
            order: Order::default(),
            events: Vec::new(),
        };
        history.run(OrderCommand::Place {
            customer_id: CustomerId::parse("alice").unwrap(),
            placed_by: ActorId::parse("alice").unwrap(),
            lines,
            currency: eur(),
            shipping_address: None,
        });
        history
    }

    /// Decides `command` on the fold so far and records its events.
    pub fn run(&mut self, command: OrderCommand) -> &mut History {
        let events = self.order.decide(command).unwrap();
        assert!(!events.is_empty(), "the command records something");
        for event in events {
            self.record(event);
        }
        self
    }

    /// Records `event` as it is (as an older release wrote it).
    pub fn record(&mut self, event: OrderEvent) -> &mut History {
        self.order.apply(event.clone());
        self.events.push(event);
        self
    }

    pub fn request(&mut self, payment: &str) -> &mut History {
        self.run(OrderCommand::RequestPayment {
            payment_id: payment_ref(payment),
            provider: ProviderName::parse("stripe").unwrap(),
        })
    }

    pub fn confirm(&mut self, payment: &str, amount_cents: i64) -> &mut History {
        self.run(OrderCommand::ConfirmPayment {
            payment_id: payment_ref(payment),
            amount_cents,
            currency: eur(),
            provider_event: ProviderEventId::parse(format!("evt-{payment}")).unwrap(),
        })
    }

    pub fn fail(&mut self, payment: &str) -> &mut History {
        self.run(OrderCommand::FailPayment {
            payment_id: payment_ref(payment),
            provider_event: ProviderEventId::parse(format!("evt-fail-{payment}")).unwrap(),
            reason: "card declined".to_owned(),
        })
    }

    /// An admin's offline payment of the total.
    pub fn pay_offline(&mut self, payment: &str) -> &mut History {
        self.run(OrderCommand::Pay {
            amount_cents: TOTAL,
            currency: eur(),
            payment_ref: payment_ref(payment),
            reason: Reason::parse("bank transfer").unwrap(),
        })
    }

    pub fn refund(
        &mut self,
        refund: &str,
        payment: &str,
        amount_cents: i64,
        succeeded: bool,
    ) -> &mut History {
        self.run(OrderCommand::Refund(refund_request(
            refund,
            payment,
            amount_cents,
            succeeded,
        )))
    }

    /// The provider's word on a refund: succeeded, or failed.
    pub fn settle(&mut self, refund: &str, succeeded: bool) -> &mut History {
        self.run(OrderCommand::SettleRefund {
            refund_id: RefundId::parse(refund).unwrap(),
            provider_event: Some(ProviderEventId::parse(format!("evt-{refund}")).unwrap()),
            failure: (!succeeded).then(|| "insufficient funds".to_owned()),
        })
    }

    pub fn ship(&mut self) -> &mut History {
        self.run(OrderCommand::Ship {
            carrier: domain::Carrier::parse("DHL").unwrap(),
            tracking_number: domain::TrackingNumber::parse("T-1").unwrap(),
        })
    }

    /// Cancels, with the refund of `refund` (id, payment, amount, succeeded) when given.
    pub fn cancel(&mut self, refund: Option<(&str, &str, i64, bool)>) -> &mut History {
        self.run(OrderCommand::Cancel {
            reason: CancelReason::parse("changed my mind").unwrap(),
            refund: refund.map(|(refund, payment, amount, succeeded)| {
                refund_request(refund, payment, amount, succeeded)
            }),
        })
    }

    /// The events as the projections see them: versions from 1, an hour apart from
    /// [`start`].
    pub fn projected(&self) -> Vec<ProjectedEvent> {
        self.events
            .iter()
            .enumerate()
            .map(|(i, event)| ProjectedEvent {
                event_id: Uuid::new_v4(),
                stream_id: self.stream_id,
                version: i as i64 + 1,
                occurred_at: at(i),
                body: ShopEvent::Order(event.clone()),
            })
            .collect()
    }
}

/// When the event at `index` of a history happened.
pub fn at(index: usize) -> DateTime<Utc> {
    start() + TimeDelta::hours(index as i64)
}

fn eur() -> Currency {
    Currency::parse("EUR").unwrap()
}

fn payment_ref(payment: &str) -> PaymentRef {
    PaymentRef::parse(payment).unwrap()
}

fn refund_request(
    refund: &str,
    payment: &str,
    amount_cents: i64,
    succeeded: bool,
) -> RefundRequest {
    RefundRequest {
        refund_id: RefundId::parse(refund).unwrap(),
        payment_id: payment_ref(payment),
        amount_cents,
        reason: Reason::parse("customer asked").unwrap(),
        succeeded,
    }
}

/// Paid through the provider after a declined card, then shipped:
/// placed, requested, failed, requested, paid (event 4), shipped.
pub fn provider_payment() -> History {
    let mut history = History::placed();
    history
        .request("pi_1")
        .fail("pi_1")
        .request("pi_2")
        .confirm("pi_2", TOTAL)
        .ship();
    history
}

/// The provider captured the wrong amount (needs review, event 2), then the right one
/// (paid, event 4); the wrong one is refunded (events 5 and 6).
pub fn needs_review() -> History {
    let mut history = History::placed();
    history
        .request("pi_1")
        .confirm("pi_1", 1000)
        .request("pi_2")
        .confirm("pi_2", TOTAL)
        .refund("re_1", "pi_1", 1000, true);
    history
}

/// Paid offline (event 1); a partial refund confirmed later (events 2 and 3), another that
/// failed (events 4 and 5).
pub fn partial_refund() -> History {
    let mut history = History::placed();
    history
        .pay_offline("bank-1")
        .refund("re_1", "bank-1", 700, false)
        .settle("re_1", true)
        .refund("re_2", "bank-1", 300, false)
        .settle("re_2", false);
    history
}

/// Paid through the provider (event 2), cancelled with the refund of the total (events 3, 4
/// and 5).
pub fn cancelled_paid() -> History {
    let mut history = History::placed();
    history
        .request("pi_1")
        .confirm("pi_1", TOTAL)
        .cancel(Some(("re_1", "pi_1", TOTAL, true)));
    history
}

/// Cancelled while a payment was open (event 2); the provider captured it afterwards
/// (needs review, event 3) and it is refunded (events 4 and 5).
pub fn cancelled_open() -> History {
    let mut history = History::placed();
    history
        .request("pi_1")
        .cancel(None)
        .confirm("pi_1", TOTAL)
        .refund("re_1", "pi_1", TOTAL, true);
    history
}

/// As the release before payments went through a provider wrote it: `OrderPaid` v1
/// (upcast: no provider event, no reason; event 1) and a cancellation that recorded the
/// refund of the total (event 2).
pub fn old_style() -> History {
    let mut history = History::placed();
    history
        .record(
            OrderPaid {
                amount_cents: TOTAL,
                currency: eur(),
                payment_ref: payment_ref("psp-1"),
                provider_event: None,
                reason: None,
            }
            .into(),
        )
        .record(
            OrderCancelled {
                reason: CancelReason::parse("changed my mind").unwrap(),
                refunded_cents: TOTAL,
            }
            .into(),
        );
    history
}

/// Every history above.
pub fn all() -> Vec<(&'static str, History)> {
    vec![
        ("provider payment", provider_payment()),
        ("needs review", needs_review()),
        ("partial refund", partial_refund()),
        ("cancelled paid", cancelled_paid()),
        ("cancelled open", cancelled_open()),
        ("old style", old_style()),
    ]
}
