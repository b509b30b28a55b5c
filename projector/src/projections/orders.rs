//! `orders`: one row per order, the summary and the detail (lines, payments and refunds,
//! shipment), with the stream version it reflects.
//!
//! A batch reads the rows of the orders it touches (the columns events change), folds
//! each order's events onto its row ([`step`]), and writes the results: one INSERT for
//! orders placed in the batch, one UPDATE (guarded by the version read) for the others.
//!
//! The row's status, `payment_ref`, `refunded_cents`, payments and refunds are what
//! [`domain::Order`]'s fold says of them ([`Money::apply`] mirrors its money arms; the tests
//! hold the two equal): a `PaymentNeedsReview` is listed but does not change the status, and
//! `refunded_cents` is the refunds the provider confirmed, or an old-style cancellation's
//! `refunded_cents` (`null` while there was neither and the order is not cancelled).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use domain::{OrderEvent, PaymentRef, PaymentStatus, RefundId, RefundStatus};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio_postgres::types::Json;
use uuid::Uuid;

use crate::apply::ApplyError;
use crate::batch::{by_stream, fold_rows, read, write_exactly, Columns};
use crate::event::{ProjectedEvent, ShopEvent};
use crate::projection::{lines_json, table, Line, Poisoned, Projection};

pub struct Orders;

/// What placing an order fixes (written once, with the row).
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub customer_id: String,
    pub total_cents: i64,
    pub currency: String,
    pub placed_at: DateTime<Utc>,
    pub lines: serde_json::Value,
    /// Sealed with the customer's data key (the query API opens it).
    pub shipping_address: Option<String>,
}

/// An order's row: the placement when it is placed in this batch, and the columns later
/// events change.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub placement: Option<Placement>,
    pub status: String,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    pub payment_ref: Option<String>,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub refunded_cents: Option<i64>,
    /// The payments and refunds (the `payments` and `refunds` columns).
    pub money: Money,
}

/// Applies one event to an order's row (`None`: no row yet), as a single guarded
/// statement would: placing inserts when there is no row and otherwise does nothing; any
/// other event changes an existing row it is newer than.
pub fn step(row: &mut Option<Row>, event: &ProjectedEvent, body: &OrderEvent) {
    if let OrderEvent::OrderPlaced(placed) = body {
        if row.is_none() {
            *row = Some(Row {
                placement: Some(Placement {
                    customer_id: placed.customer_id.as_str().to_owned(),
                    total_cents: placed.total_cents,
                    currency: placed.currency.as_str().to_owned(),
                    placed_at: event.occurred_at,
                    lines: lines_json(&Line::all(&placed.lines)),
                    shipping_address: placed
                        .shipping_address
                        .as_ref()
                        .map(|a| a.as_str().to_owned()),
                }),
                status: "placed".to_owned(),
                version: event.version,
                updated_at: event.occurred_at,
                payment_ref: None,
                carrier: None,
                tracking_number: None,
                refunded_cents: None,
                money: Money::default(),
            });
        }
        return;
    }
    let Some(row) = row.as_mut().filter(|r| r.version < event.version) else {
        return;
    };
    row.money.apply(body);
    match body {
        OrderEvent::OrderPaid(paid) => {
            row.status = "paid".to_owned();
            row.payment_ref = Some(paid.payment_ref.as_str().to_owned());
        }
        OrderEvent::OrderShipped(shipped) => {
            row.status = "shipped".to_owned();
            row.carrier = Some(shipped.carrier.as_str().to_owned());
            row.tracking_number = Some(shipped.tracking_number.as_str().to_owned());
        }
        OrderEvent::OrderCancelled(cancelled) => {
            row.status = "cancelled".to_owned();
            // Before refunds went through the provider, cancelling recorded the refund.
            row.refunded_cents = Some(cancelled.refunded_cents.max(row.money.refunded_cents()));
        }
        OrderEvent::Refunded(_) => row.refunded_cents = Some(row.money.refunded_cents()),
        OrderEvent::OrderPlaced(_)
        | OrderEvent::PaymentRequested(_)
        | OrderEvent::PaymentFailed(_)
        | OrderEvent::PaymentNeedsReview(_)
        | OrderEvent::RefundRequested(_)
        | OrderEvent::RefundFailed(_) => {}
    }
    row.version = event.version;
    row.updated_at = event.occurred_at;
}

/// One payment as the `payments` column stores it (the query API's shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRow {
    pub payment_id: String,
    pub status: PaymentStatus,
    /// What was asked for, or what the provider reports it captured.
    pub amount_cents: i64,
}

/// One refund as the `refunds` column stores it (the query API's shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRow {
    pub refund_id: String,
    pub status: RefundStatus,
    pub amount_cents: i64,
}

/// An order's payments and refunds, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Money {
    pub payments: Vec<PaymentRow>,
    pub refunds: Vec<RefundRow>,
}

impl Money {
    /// Applies one event, as [`domain::Order::apply`] does to its [`domain::Payments`]: a
    /// payment is listed when first heard of and then takes the status (and amount) each
    /// event about it says; a refund is listed when requested; cancelling withdraws the
    /// payments still waiting for the buyer. Other events change nothing.
    pub fn apply(&mut self, body: &OrderEvent) {
        match body {
            OrderEvent::OrderPaid(e) => {
                self.set_payment(&e.payment_ref, PaymentStatus::Succeeded, e.amount_cents);
            }
            OrderEvent::PaymentRequested(e) => {
                if self.payment(&e.payment_id).is_none() {
                    self.set_payment(&e.payment_id, PaymentStatus::Requested, e.amount_cents);
                }
            }
            OrderEvent::PaymentFailed(e) => {
                let amount = self.payment(&e.payment_id).map_or(0, |p| p.amount_cents);
                self.set_payment(&e.payment_id, PaymentStatus::Failed, amount);
            }
            OrderEvent::PaymentNeedsReview(e) => {
                self.set_payment(&e.payment_id, PaymentStatus::NeedsReview, e.amount_cents);
            }
            OrderEvent::RefundRequested(e) => self.refunds.push(RefundRow {
                refund_id: e.refund_id.as_str().to_owned(),
                status: RefundStatus::Requested,
                amount_cents: e.amount_cents,
            }),
            OrderEvent::Refunded(e) => self.set_refund(&e.refund_id, RefundStatus::Succeeded),
            OrderEvent::RefundFailed(e) => self.set_refund(&e.refund_id, RefundStatus::Failed),
            OrderEvent::OrderCancelled(_) => {
                for payment in &mut self.payments {
                    if payment.status == PaymentStatus::Requested {
                        payment.status = PaymentStatus::Canceled;
                    }
                }
            }
            OrderEvent::OrderPlaced(_) | OrderEvent::OrderShipped(_) => {}
        }
    }

    /// Refunds the provider confirmed.
    pub fn refunded_cents(&self) -> i64 {
        self.refunds
            .iter()
            .filter(|r| r.status == RefundStatus::Succeeded)
            .map(|r| r.amount_cents)
            .sum()
    }

    fn payment(&self, id: &PaymentRef) -> Option<&PaymentRow> {
        self.payments.iter().find(|p| p.payment_id == id.as_str())
    }

    fn set_payment(&mut self, id: &PaymentRef, status: PaymentStatus, amount_cents: i64) {
        match self
            .payments
            .iter_mut()
            .find(|p| p.payment_id == id.as_str())
        {
            Some(payment) => {
                payment.status = status;
                payment.amount_cents = amount_cents;
            }
            None => self.payments.push(PaymentRow {
                payment_id: id.as_str().to_owned(),
                status,
                amount_cents,
            }),
        }
    }

    /// A refund not listed is left alone (every refund starts with `RefundRequested`).
    fn set_refund(&mut self, id: &RefundId, status: RefundStatus) {
        if let Some(refund) = self.refunds.iter_mut().find(|r| r.refund_id == id.as_str()) {
            refund.status = status;
        }
    }
}

impl Projection for Orders {
    fn name(&self) -> &'static str {
        "orders"
    }

    fn tables(&self, version: i32) -> Vec<String> {
        vec![table("orders", version)]
    }

    fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        version: i32,
        events: &'a [&'a ProjectedEvent],
    ) -> BoxFuture<'a, Result<Poisoned, ApplyError>> {
        Box::pin(apply(tx, table("orders", version), events))
    }
}

async fn apply(
    tx: &Transaction<'_>,
    t: String,
    events: &[&ProjectedEvent],
) -> Result<Poisoned, ApplyError> {
    let streams = by_stream(events, |e| matches!(e.body, ShopEvent::Order(_)));
    let ids: Vec<Uuid> = streams.iter().map(|s| s.stream_id).collect();
    let rows = read(
        tx,
        &format!(
            "SELECT t.id, t.status, t.version, t.updated_at, t.payment_ref, t.carrier, \
                 t.tracking_number, t.refunded_cents, t.payments, t.refunds \
             FROM unnest($1::uuid[]) AS s(id) JOIN {t} AS t ON t.id = s.id"
        ),
        &[&ids],
        ids.len(),
    )
    .await?;
    let mut existing = HashMap::with_capacity(rows.len());
    for r in &rows {
        let id: Uuid = r.try_get(0)?;
        let Json(payments) = r.try_get(8)?;
        let Json(refunds) = r.try_get(9)?;
        existing.insert(
            id,
            Row {
                placement: None,
                status: r.try_get(1)?,
                version: r.try_get(2)?,
                updated_at: r.try_get(3)?,
                payment_ref: r.try_get(4)?,
                carrier: r.try_get(5)?,
                tracking_number: r.try_get(6)?,
                refunded_cents: r.try_get(7)?,
                money: Money { payments, refunds },
            },
        );
    }

    let mut folded = fold_rows(
        &streams,
        existing,
        |r| r.version,
        |row, event| {
            if let ShopEvent::Order(body) = &event.body {
                step(row, event, body);
            }
            Ok(())
        },
    );
    // A stream seen from its middle (no placement) has nothing to insert yet.
    folded.inserts.retain(|(_, row)| row.placement.is_some());
    let (inserts, updates): (Changed, Changed) = folded.into_columns();

    let c = &inserts;
    write_exactly(
        tx,
        &format!(
            "INSERT INTO {t} (id, customer_id, status, total_cents, currency, placed_at, \
                 updated_at, version, lines, payment_ref, carrier, tracking_number, \
                 refunded_cents, payments, refunds, shipping_address) \
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int8[], $5::text[], \
                                  $6::timestamptz[], $7::timestamptz[], $8::int8[], \
                                  $9::jsonb[], $10::text[], $11::text[], $12::text[], \
                                  $13::int8[], $14::jsonb[], $15::jsonb[], $16::text[]) \
             ON CONFLICT (id) DO NOTHING"
        ),
        &[
            &c.id,
            &c.customer_id,
            &c.status,
            &c.total_cents,
            &c.currency,
            &c.placed_at,
            &c.updated_at,
            &c.version,
            &c.lines,
            &c.payment_ref,
            &c.carrier,
            &c.tracking_number,
            &c.refunded_cents,
            &c.payments,
            &c.refunds,
            &c.shipping_address,
        ],
        c.id.len(),
        "new orders",
    )
    .await?;
    let c = &updates;
    write_exactly(
        tx,
        &format!(
            "UPDATE {t} AS t SET status = s.status, updated_at = s.updated_at, \
                 version = s.version, payment_ref = s.payment_ref, carrier = s.carrier, \
                 tracking_number = s.tracking_number, refunded_cents = s.refunded_cents, \
                 payments = s.payments, refunds = s.refunds \
             FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::int8[], $5::text[], \
                         $6::text[], $7::text[], $8::int8[], $9::jsonb[], $10::jsonb[], \
                         $11::int8[]) \
                  AS s(id, status, updated_at, version, payment_ref, carrier, \
                       tracking_number, refunded_cents, payments, refunds, expected) \
             WHERE t.id = s.id AND t.version = s.expected"
        ),
        &[
            &c.id,
            &c.status,
            &c.updated_at,
            &c.version,
            &c.payment_ref,
            &c.carrier,
            &c.tracking_number,
            &c.refunded_cents,
            &c.payments,
            &c.refunds,
            &c.expected,
        ],
        c.id.len(),
        "changed orders",
    )
    .await?;
    // An erased customer's orders keep everything but where they shipped.
    let erased = super::customers::erased_in(events);
    if !erased.is_empty() {
        let statement = tx
            .prepare_cached(&format!(
                "UPDATE {t} SET shipping_address = NULL \
                 WHERE customer_id = ANY($1) AND shipping_address IS NOT NULL"
            ))
            .await?;
        tx.execute(&statement, &[&erased]).await?;
    }
    Ok(Poisoned::new())
}

/// Rows to write, column by column (what `unnest` takes). The placement columns are
/// filled for new rows only.
#[derive(Default)]
struct Changed {
    id: Vec<Uuid>,
    customer_id: Vec<String>,
    status: Vec<String>,
    total_cents: Vec<i64>,
    currency: Vec<String>,
    placed_at: Vec<DateTime<Utc>>,
    updated_at: Vec<DateTime<Utc>>,
    version: Vec<i64>,
    lines: Vec<serde_json::Value>,
    shipping_address: Vec<Option<String>>,
    payment_ref: Vec<Option<String>>,
    carrier: Vec<Option<String>>,
    tracking_number: Vec<Option<String>>,
    refunded_cents: Vec<Option<i64>>,
    payments: Vec<Json<Vec<PaymentRow>>>,
    refunds: Vec<Json<Vec<RefundRow>>>,
    expected: Vec<i64>,
}

impl Columns<Row> for Changed {
    fn push(&mut self, id: Uuid, row: Row, expected: i64) {
        self.id.push(id);
        if let Some(placement) = row.placement {
            self.customer_id.push(placement.customer_id);
            self.total_cents.push(placement.total_cents);
            self.currency.push(placement.currency);
            self.placed_at.push(placement.placed_at);
            self.lines.push(placement.lines);
            self.shipping_address.push(placement.shipping_address);
        }
        self.status.push(row.status);
        self.updated_at.push(row.updated_at);
        self.version.push(row.version);
        self.payment_ref.push(row.payment_ref);
        self.carrier.push(row.carrier);
        self.tracking_number.push(row.tracking_number);
        self.refunded_cents.push(row.refunded_cents);
        self.payments.push(Json(row.money.payments));
        self.refunds.push(Json(row.money.refunds));
        self.expected.push(expected);
    }
}

#[cfg(test)]
mod tests {
    use domain::PaymentStatus as P;
    use domain::RefundStatus as R;

    use super::*;
    use crate::projections::histories::{self, History, TOTAL};

    /// The row the projection folds from a history's events.
    fn fold(history: &History) -> Row {
        let mut row = None;
        for event in history.projected() {
            let ShopEvent::Order(body) = &event.body else {
                unreachable!("an order history");
            };
            step(&mut row, &event, body);
        }
        row.expect("a placed order has a row")
    }

    fn payment(id: &str, status: PaymentStatus, amount_cents: i64) -> PaymentRow {
        PaymentRow {
            payment_id: id.to_owned(),
            status,
            amount_cents,
        }
    }

    fn refund(id: &str, status: RefundStatus, amount_cents: i64) -> RefundRow {
        RefundRow {
            refund_id: id.to_owned(),
            status,
            amount_cents,
        }
    }

    #[test]
    fn every_history_folds_to_what_the_domain_says() {
        for (name, history) in histories::all() {
            let row = fold(&history);
            let order = &history.order;
            let status = order.status().map(|s| s.as_str().to_owned());
            assert_eq!(Some(row.status.clone()), status, "{name}");
            assert_eq!(row.version, history.events.len() as i64, "{name}");
            assert_eq!(
                row.payment_ref.as_deref(),
                order.payment_ref().map(|p| p.as_str()),
                "{name}"
            );
            assert_eq!(row.refunded_cents, order.refunded_cents(), "{name}");
            let payments: Vec<PaymentRow> = order
                .payments()
                .payments
                .iter()
                .map(|p| payment(p.payment_id.as_str(), p.status, p.amount_cents))
                .collect();
            assert_eq!(row.money.payments, payments, "{name}");
            let refunds: Vec<RefundRow> = order
                .payments()
                .refunds
                .iter()
                .map(|r| refund(r.refund_id.as_str(), r.status, r.amount_cents))
                .collect();
            assert_eq!(row.money.refunds, refunds, "{name}");
        }
    }

    #[test]
    fn payments_and_refunds_are_listed_oldest_first_with_their_outcome() {
        let row = fold(&histories::provider_payment());
        assert_eq!(row.status, "shipped");
        assert_eq!(row.payment_ref.as_deref(), Some("pi_2"));
        assert_eq!(
            row.money.payments,
            [
                payment("pi_1", P::Failed, TOTAL),
                payment("pi_2", P::Succeeded, TOTAL)
            ]
        );
        assert_eq!(row.refunded_cents, None);

        // Captured money the order could not take is listed; the order is paid by the other.
        let row = fold(&histories::needs_review());
        assert_eq!(row.status, "paid");
        assert_eq!(row.payment_ref.as_deref(), Some("pi_2"));
        assert_eq!(
            row.money.payments,
            [
                payment("pi_1", P::NeedsReview, 1000),
                payment("pi_2", P::Succeeded, TOTAL)
            ]
        );
        assert_eq!(row.money.refunds, [refund("re_1", R::Succeeded, 1000)]);
        assert_eq!(row.refunded_cents, Some(1000));

        // Only confirmed refunds count.
        let row = fold(&histories::partial_refund());
        assert_eq!(row.status, "paid");
        assert_eq!(
            row.money.refunds,
            [
                refund("re_1", R::Succeeded, 700),
                refund("re_2", R::Failed, 300)
            ]
        );
        assert_eq!(row.refunded_cents, Some(700));

        let row = fold(&histories::cancelled_paid());
        assert_eq!(row.status, "cancelled");
        assert_eq!(row.money.refunds, [refund("re_1", R::Succeeded, TOTAL)]);
        assert_eq!(row.refunded_cents, Some(TOTAL));

        // An open payment is withdrawn by the cancellation; the provider's late capture is
        // listed as needing review, and the cancelled order stays cancelled.
        let mut history = History::placed();
        history.request("pi_1").cancel(None);
        let row = fold(&history);
        assert_eq!(row.money.payments, [payment("pi_1", P::Canceled, TOTAL)]);
        assert_eq!(row.refunded_cents, Some(0));
        let row = fold(&histories::cancelled_open());
        assert_eq!(row.status, "cancelled");
        assert_eq!(row.money.payments, [payment("pi_1", P::NeedsReview, TOTAL)]);
        assert_eq!(row.refunded_cents, Some(TOTAL));

        // Before refunds went through the provider: the cancellation recorded the refund.
        let row = fold(&histories::old_style());
        assert_eq!(row.status, "cancelled");
        assert_eq!(row.money.payments, [payment("psp-1", P::Succeeded, TOTAL)]);
        assert!(row.money.refunds.is_empty());
        assert_eq!(row.refunded_cents, Some(TOTAL));
    }

    #[test]
    fn replayed_events_change_nothing() {
        let history = histories::needs_review();
        let events = history.projected();
        let mut row = None;
        for event in &events {
            let ShopEvent::Order(body) = &event.body else {
                unreachable!("an order history");
            };
            step(&mut row, event, body);
            let applied = row.clone();
            for earlier in events.iter().filter(|e| e.version <= event.version) {
                let ShopEvent::Order(body) = &earlier.body else {
                    unreachable!("an order history");
                };
                step(&mut row, earlier, body);
            }
            assert_eq!(row, applied, "replayed up to version {}", event.version);
        }
        assert_eq!(row, Some(fold(&history)));
    }

    #[test]
    fn stored_lists_have_the_query_apis_shape() {
        let row = fold(&histories::needs_review());
        assert_eq!(
            serde_json::to_value(&row.money.payments).unwrap(),
            serde_json::json!([
                {"payment_id": "pi_1", "status": "needs_review", "amount_cents": 1000},
                {"payment_id": "pi_2", "status": "succeeded", "amount_cents": TOTAL}
            ])
        );
        assert_eq!(
            serde_json::to_value(&row.money.refunds).unwrap(),
            serde_json::json!([{"refund_id": "re_1", "status": "succeeded", "amount_cents": 1000}])
        );
    }
}
