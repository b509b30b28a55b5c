//! Helpers shared by the unit tests: short constructors for ids, values and states.

use uuid::Uuid;

use crate::order::{Order, OrderCommand, OrderEvent};
use crate::product::{Product, ProductCommand, ProductEvent};
use crate::values::*;

pub fn pid(n: u128) -> ProductId {
    ProductId::from_uuid(Uuid::from_u128(n))
}

pub fn oid(n: u128) -> OrderId {
    OrderId::from_uuid(Uuid::from_u128(0x0a00 + n))
}

pub fn price(cents: i64) -> PriceCents {
    PriceCents::parse(cents).unwrap()
}

pub fn qty(n: i64) -> LineQuantity {
    LineQuantity::parse(n).unwrap()
}

pub fn cur(code: &str) -> Currency {
    Currency::parse(code).unwrap()
}

pub fn eur() -> Currency {
    cur("EUR")
}

pub fn customer() -> CustomerId {
    CustomerId::parse("alice").unwrap()
}

pub fn actor(sub: &str) -> ActorId {
    ActorId::parse(sub).unwrap()
}

pub fn create_command(price_cents: i64, currency: &str, stock: i64) -> ProductCommand {
    ProductCommand::Create {
        sku: Sku::parse("A-1").unwrap(),
        name: ProductName::parse("Mug").unwrap(),
        price: price(price_cents),
        currency: cur(currency),
        initial_stock: StockQuantity::parse(stock).unwrap(),
    }
}

/// Runs `command` against `state`, applies the resulting events, and returns them.
pub fn run_product(state: &mut Product, command: ProductCommand) -> Vec<ProductEvent> {
    let events = state.decide(command).unwrap();
    for e in events.clone() {
        state.apply(e);
    }
    events
}

/// A created product.
pub fn product(price_cents: i64, currency: &str, stock: i64) -> Product {
    let mut p = Product::default();
    run_product(&mut p, create_command(price_cents, currency, stock));
    p
}

pub fn line(n: u128, q: i64) -> LineItem {
    LineItem {
        product_id: pid(n),
        quantity: qty(q),
    }
}

pub fn priced_line(n: u128, q: i64, unit: i64) -> PricedLine {
    line(n, q).priced(price(unit))
}

/// Runs `command` against `state`, applies the resulting events, and returns them.
pub fn run_order(state: &mut Order, command: OrderCommand) -> Vec<OrderEvent> {
    let events = state.decide(command).unwrap();
    for e in events.clone() {
        state.apply(e);
    }
    events
}

/// A placed order of 2 × 1299 EUR and 1 × 500 EUR (total 3098).
pub fn placed_order() -> Order {
    let mut o = Order::default();
    run_order(
        &mut o,
        OrderCommand::Place {
            customer_id: customer(),
            placed_by: customer().into(),
            lines: PricedLines::parse(vec![priced_line(1, 2, 1299), priced_line(2, 1, 500)])
                .unwrap(),
            currency: eur(),
            shipping_address: None,
        },
    );
    o
}

pub fn pay_command(amount_cents: i64, currency: &str) -> OrderCommand {
    OrderCommand::Pay {
        amount_cents,
        currency: cur(currency),
        payment_ref: PaymentRef::parse("psp-123").unwrap(),
        reason: Reason::parse("bank transfer received").unwrap(),
    }
}

pub fn ship_command() -> OrderCommand {
    OrderCommand::Ship {
        carrier: Carrier::parse("DHL").unwrap(),
        tracking_number: TrackingNumber::parse("JD0001").unwrap(),
    }
}

pub fn cancel_command() -> OrderCommand {
    OrderCommand::Cancel {
        reason: CancelReason::parse("changed my mind").unwrap(),
        refund: None,
    }
}

/// A refund of `amount_cents` of the payment `pay_command` records, already succeeded.
pub fn refund_request(refund_id: &str, amount_cents: i64) -> crate::order::RefundRequest {
    crate::order::RefundRequest {
        refund_id: RefundId::parse(refund_id).unwrap(),
        payment_id: PaymentRef::parse("psp-123").unwrap(),
        amount_cents,
        reason: Reason::parse("changed my mind").unwrap(),
        succeeded: true,
    }
}

/// Cancels an order; a paid one with the refund of its total.
pub fn cancel_command_for(order: &Order) -> OrderCommand {
    OrderCommand::Cancel {
        reason: CancelReason::parse("changed my mind").unwrap(),
        refund: (order.payments().refundable_cents() > 0)
            .then(|| refund_request("re_1", order.payments().refundable_cents())),
    }
}

/// A tiny deterministic pseudo-random generator (SplitMix64) for property-style loops.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = (hi - lo + 1) as u64;
        lo + (self.next_u64() % span) as i64
    }
}
