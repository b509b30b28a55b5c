//! `sales`: orders placed, orders paid, revenue and units per hour and per day (UTC).
//! Revenue is money the provider confirmed minus refunds the provider confirmed.
//!
//! - Placed counts at placing time.
//! - Paid, revenue and units count at paying time (`OrderPaid`).
//! - A refund (`Refunded`) takes its amount off the revenue of its own bucket, unless it
//!   pays back a payment the order never took (`PaymentNeedsReview`: captured money that
//!   was never revenue, so neither is its refund).
//! - Cancelling a paid order takes its units off the buckets its payment was counted in.
//!   Before refunds went through the provider, the cancellation also recorded the refund
//!   (`OrderCancelled.refunded_cents`), which comes off the revenue of those buckets too;
//!   since, it is 0 and the refund is its own `Refunded`.
//!
//! Per order it remembers the version it reflects (`sales_v{n}_orders`), so a replayed
//! event changes nothing, and what a later payment or refund needs. A batch reads those
//! rows for its orders, folds each order's events ([`step`]) into new rows and bucket
//! sums, and writes them with one statement each.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use domain::OrderEvent;
use futures::future::BoxFuture;
use tokio_postgres::types::Json;
use uuid::Uuid;

use crate::apply::ApplyError;
use crate::batch::{by_stream, fold_rows, read, write, write_exactly, Columns};
use crate::event::{ProjectedEvent, ShopEvent};
use crate::projection::{table, Poisoned, Projection};

pub struct Sales;

/// What the projection remembers of an order.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRow {
    pub version: i64,
    pub total_cents: i64,
    pub units: i64,
    pub paid_at: Option<DateTime<Utc>>,
    /// The payments captured without paying the order (`PaymentNeedsReview`).
    pub review_payments: Vec<String>,
    /// Refunds of revenue requested and not yet confirmed.
    pub revenue_refunds: Vec<String>,
}

/// What a batch adds to one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums {
    pub orders_placed: i64,
    pub orders_paid: i64,
    pub revenue_cents: i64,
    pub units_sold: i64,
}

impl Sums {
    fn plus(self, other: Sums) -> Option<Sums> {
        Some(Sums {
            orders_placed: self.orders_placed.checked_add(other.orders_placed)?,
            orders_paid: self.orders_paid.checked_add(other.orders_paid)?,
            revenue_cents: self.revenue_cents.checked_add(other.revenue_cents)?,
            units_sold: self.units_sold.checked_add(other.units_sold)?,
        })
    }
}

/// Buckets by (`hour` or `day`, start), in key order (the order rows are locked in).
pub type Buckets = BTreeMap<(&'static str, DateTime<Utc>), Sums>;

/// The start of the UTC hour and day `at` falls in (as `date_trunc(.., 'UTC')`).
pub fn bucket_starts(at: DateTime<Utc>) -> [(&'static str, DateTime<Utc>); 2] {
    const HOUR: i64 = 3_600_000_000;
    const DAY: i64 = 24 * HOUR;
    let micros = at.timestamp_micros();
    let start = |width: i64| {
        DateTime::from_timestamp_micros(micros - micros.rem_euclid(width)).unwrap_or(at)
    };
    [("hour", start(HOUR)), ("day", start(DAY))]
}

/// Adds `sums` to the hour and day buckets of `at`, or to none of them on overflow.
fn add(buckets: &mut Buckets, at: DateTime<Utc>, sums: Sums) -> Result<(), String> {
    let keys = bucket_starts(at);
    let mut totals = [Sums::default(); 2];
    for (total, key) in totals.iter_mut().zip(&keys) {
        *total = buckets
            .get(key)
            .copied()
            .unwrap_or_default()
            .plus(sums)
            .ok_or_else(|| "sales sums out of range".to_owned())?;
    }
    for (total, key) in totals.into_iter().zip(keys) {
        buckets.insert(key, total);
    }
    Ok(())
}

/// Applies one event to an order's row (`None`: not yet known) and the batch's buckets,
/// as a single guarded statement would: placing inserts when there is no row (and counts
/// the order placed); any other event changes an existing row it is newer than, as the
/// module doc says. An error is the reason the event is poison (nothing changed).
pub fn step(
    row: &mut Option<OrderRow>,
    buckets: &mut Buckets,
    event: &ProjectedEvent,
    body: &OrderEvent,
) -> Result<(), String> {
    if let OrderEvent::OrderPlaced(placed) = body {
        if row.is_none() {
            let units = placed
                .lines
                .iter()
                .try_fold(0i64, |sum, l| sum.checked_add(l.quantity.get()))
                .ok_or_else(|| "units out of range".to_owned())?;
            let placed_one = Sums {
                orders_placed: 1,
                ..Sums::default()
            };
            add(buckets, event.occurred_at, placed_one)?;
            *row = Some(OrderRow {
                version: event.version,
                total_cents: placed.total_cents,
                units,
                paid_at: None,
                review_payments: Vec::new(),
                revenue_refunds: Vec::new(),
            });
        }
        return Ok(());
    }
    let Some(current) = row.as_mut().filter(|r| r.version < event.version) else {
        return Ok(());
    };
    let negative = |value: i64, what: &str| {
        value
            .checked_neg()
            .ok_or_else(|| format!("{what} out of range"))
    };
    match body {
        OrderEvent::OrderPaid(paid) => {
            let sums = Sums {
                orders_placed: 0,
                orders_paid: 1,
                revenue_cents: paid.amount_cents,
                units_sold: current.units,
            };
            add(buckets, event.occurred_at, sums)?;
            current.paid_at = Some(event.occurred_at);
        }
        OrderEvent::OrderCancelled(cancelled) => {
            if let Some(paid_at) = current.paid_at {
                let cancelled_sale = Sums {
                    orders_placed: 0,
                    orders_paid: 0,
                    revenue_cents: negative(cancelled.refunded_cents, "refund")?,
                    units_sold: negative(current.units, "units")?,
                };
                add(buckets, paid_at, cancelled_sale)?;
            }
        }
        OrderEvent::PaymentNeedsReview(review) => {
            let payment = review.payment_id.as_str();
            if !current.review_payments.iter().any(|p| p == payment) {
                current.review_payments.push(payment.to_owned());
            }
        }
        OrderEvent::RefundRequested(requested) => {
            let payment = requested.payment_id.as_str();
            if !current.review_payments.iter().any(|p| p == payment) {
                current
                    .revenue_refunds
                    .push(requested.refund_id.as_str().to_owned());
            }
        }
        OrderEvent::Refunded(refunded) => {
            let refund = refunded.refund_id.as_str();
            if let Some(at) = current.revenue_refunds.iter().position(|r| r == refund) {
                let refund = Sums {
                    revenue_cents: negative(refunded.amount_cents, "refund")?,
                    ..Sums::default()
                };
                add(buckets, event.occurred_at, refund)?;
                current.revenue_refunds.remove(at);
            }
        }
        OrderEvent::RefundFailed(failed) => {
            let refund = failed.refund_id.as_str();
            current.revenue_refunds.retain(|r| r != refund);
        }
        OrderEvent::OrderPlaced(_)
        | OrderEvent::OrderShipped(_)
        | OrderEvent::PaymentRequested(_)
        | OrderEvent::PaymentFailed(_) => {}
    }
    current.version = event.version;
    Ok(())
}

impl Projection for Sales {
    fn name(&self) -> &'static str {
        "sales"
    }

    fn tables(&self, version: i32) -> Vec<String> {
        vec![
            table("sales", version),
            format!("{}_orders", table("sales", version)),
        ]
    }

    fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        version: i32,
        events: &'a [&'a ProjectedEvent],
    ) -> BoxFuture<'a, Result<Poisoned, ApplyError>> {
        Box::pin(apply(tx, table("sales", version), events))
    }
}

async fn apply(
    tx: &Transaction<'_>,
    sales: String,
    events: &[&ProjectedEvent],
) -> Result<Poisoned, ApplyError> {
    let orders = format!("{sales}_orders");
    let streams = by_stream(events, |e| matches!(e.body, ShopEvent::Order(_)));
    let ids: Vec<Uuid> = streams.iter().map(|s| s.stream_id).collect();
    let rows = read(
        tx,
        &format!(
            "SELECT t.order_id, t.version, t.total_cents, t.units, t.paid_at, \
                 t.review_payments, t.revenue_refunds \
             FROM unnest($1::uuid[]) AS s(id) JOIN {orders} AS t ON t.order_id = s.id"
        ),
        &[&ids],
        ids.len(),
    )
    .await?;
    let mut existing = HashMap::with_capacity(rows.len());
    for r in &rows {
        let id: Uuid = r.try_get(0)?;
        let Json(review_payments) = r.try_get(5)?;
        let Json(revenue_refunds) = r.try_get(6)?;
        existing.insert(
            id,
            OrderRow {
                version: r.try_get(1)?,
                total_cents: r.try_get(2)?,
                units: r.try_get(3)?,
                paid_at: r.try_get(4)?,
                review_payments,
                revenue_refunds,
            },
        );
    }

    let mut poisoned = Poisoned::new();
    let mut buckets = Buckets::new();
    let mut folded = fold_rows(
        &streams,
        existing,
        |r| r.version,
        |row, event| match &event.body {
            ShopEvent::Order(body) => step(row, &mut buckets, event, body),
            ShopEvent::Product(_) | ShopEvent::Customer(_) | ShopEvent::Webhook(_) => Ok(()),
        },
    );
    poisoned.append(&mut folded.poisoned);
    let (inserts, updates): (Changed, Changed) = folded.into_columns();

    let c = &inserts;
    write_exactly(
        tx,
        &format!(
            "INSERT INTO {orders} (order_id, version, total_cents, units, lines, paid_at, \
                 review_payments, revenue_refunds) \
             SELECT id, version, total_cents, units, '[]', paid_at, review_payments, \
                 revenue_refunds \
             FROM unnest($1::uuid[], $2::int8[], $3::int8[], $4::int8[], $5::timestamptz[], \
                         $6::jsonb[], $7::jsonb[]) \
                  AS s(id, version, total_cents, units, paid_at, review_payments, \
                       revenue_refunds) \
             ON CONFLICT (order_id) DO NOTHING"
        ),
        &[
            &c.id,
            &c.version,
            &c.total_cents,
            &c.units,
            &c.paid_at,
            &c.review_payments,
            &c.revenue_refunds,
        ],
        c.id.len(),
        "new sales orders",
    )
    .await?;
    let c = &updates;
    write_exactly(
        tx,
        &format!(
            "UPDATE {orders} AS t SET version = s.version, paid_at = s.paid_at, \
                 review_payments = s.review_payments, revenue_refunds = s.revenue_refunds \
             FROM unnest($1::uuid[], $2::int8[], $3::timestamptz[], $4::jsonb[], $5::jsonb[], \
                         $6::int8[]) \
                  AS s(id, version, paid_at, review_payments, revenue_refunds, expected) \
             WHERE t.order_id = s.id AND t.version = s.expected"
        ),
        &[
            &c.id,
            &c.version,
            &c.paid_at,
            &c.review_payments,
            &c.revenue_refunds,
            &c.expected,
        ],
        c.id.len(),
        "changed sales orders",
    )
    .await?;

    let (mut kind, mut start) = (Vec::new(), Vec::new());
    let (mut placed, mut paid, mut revenue, mut units) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((k, s), sums) in &buckets {
        kind.push(*k);
        start.push(*s);
        placed.push(sums.orders_placed);
        paid.push(sums.orders_paid);
        revenue.push(sums.revenue_cents);
        units.push(sums.units_sold);
    }
    write(
        tx,
        &format!(
            "INSERT INTO {sales} AS t (bucket, start, orders_placed, orders_paid, \
                 revenue_cents, units_sold) \
             SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::int8[], $4::int8[], \
                                  $5::int8[], $6::int8[]) \
             ON CONFLICT (bucket, start) DO UPDATE \
             SET orders_placed = t.orders_placed + EXCLUDED.orders_placed, \
                 orders_paid = t.orders_paid + EXCLUDED.orders_paid, \
                 revenue_cents = t.revenue_cents + EXCLUDED.revenue_cents, \
                 units_sold = t.units_sold + EXCLUDED.units_sold"
        ),
        &[&kind, &start, &placed, &paid, &revenue, &units],
        kind.len(),
    )
    .await?;
    Ok(poisoned)
}

/// Order rows to write, column by column (what `unnest` takes).
#[derive(Default)]
struct Changed {
    id: Vec<Uuid>,
    version: Vec<i64>,
    total_cents: Vec<i64>,
    units: Vec<i64>,
    paid_at: Vec<Option<DateTime<Utc>>>,
    review_payments: Vec<Json<Vec<String>>>,
    revenue_refunds: Vec<Json<Vec<String>>>,
    expected: Vec<i64>,
}

impl Columns<OrderRow> for Changed {
    fn push(&mut self, id: Uuid, row: OrderRow, expected: i64) {
        self.id.push(id);
        self.version.push(row.version);
        self.total_cents.push(row.total_cents);
        self.units.push(row.units);
        self.paid_at.push(row.paid_at);
        self.review_payments.push(Json(row.review_payments));
        self.revenue_refunds.push(Json(row.revenue_refunds));
        self.expected.push(expected);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projections::histories::{self, at, History, TOTAL, UNITS};

    /// The order row and the buckets a history folds to.
    fn fold(history: &History) -> (OrderRow, Buckets) {
        let (mut row, mut buckets) = (None, Buckets::new());
        for event in history.projected() {
            let ShopEvent::Order(body) = &event.body else {
                unreachable!("an order history");
            };
            step(&mut row, &mut buckets, &event, body).unwrap();
        }
        (row.expect("a placed order has a row"), buckets)
    }

    /// The hour buckets, by the index of the history's event they start at.
    fn hours(buckets: &Buckets) -> BTreeMap<usize, Sums> {
        buckets
            .iter()
            .filter(|((kind, _), _)| *kind == "hour")
            .map(|((_, start), sums)| {
                let index = (0..24)
                    .find(|i| at(*i) == *start)
                    .expect("a history's hour");
                (index, *sums)
            })
            .collect()
    }

    fn placed() -> Sums {
        Sums {
            orders_placed: 1,
            ..Sums::default()
        }
    }

    fn paid(revenue_cents: i64, units_sold: i64) -> Sums {
        Sums {
            orders_placed: 0,
            orders_paid: 1,
            revenue_cents,
            units_sold,
        }
    }

    fn refunded(cents: i64) -> Sums {
        Sums {
            revenue_cents: -cents,
            ..Sums::default()
        }
    }

    #[test]
    fn revenue_is_confirmed_payments_minus_confirmed_refunds_of_them() {
        let cases = [
            (
                "paid through the provider at event 4",
                histories::provider_payment(),
                vec![(0, placed()), (4, paid(TOTAL, UNITS))],
            ),
            (
                "captured for review at 2 (not revenue, nor is its refund at 6), paid at 4",
                histories::needs_review(),
                vec![(0, placed()), (4, paid(TOTAL, UNITS))],
            ),
            (
                "paid at 1, refunded 700 at 3, a failed refund at 5",
                histories::partial_refund(),
                vec![(0, placed()), (1, paid(TOTAL, UNITS)), (3, refunded(700))],
            ),
            (
                "paid at 2, cancelled at 3 (units off the paying hour), refunded at 5",
                histories::cancelled_paid(),
                vec![(0, placed()), (2, paid(TOTAL, 0)), (5, refunded(TOTAL))],
            ),
            (
                "cancelled unpaid; the late capture and its refund are not revenue",
                histories::cancelled_open(),
                vec![(0, placed())],
            ),
            (
                "old style: the cancellation takes revenue and units off the paying hour",
                histories::old_style(),
                vec![(0, placed()), (1, paid(0, 0))],
            ),
        ];
        for (name, history, expected) in cases {
            let (row, buckets) = fold(&history);
            let expected: BTreeMap<usize, Sums> = expected.into_iter().collect();
            assert_eq!(hours(&buckets), expected, "{name}");
            let day = expected
                .values()
                .fold(Sums::default(), |a, b| a.plus(*b).unwrap());
            let days: Vec<Sums> = buckets
                .iter()
                .filter(|((kind, _), _)| *kind == "day")
                .map(|(_, sums)| *sums)
                .collect();
            assert_eq!(days, [day], "{name}");
            assert_eq!(row.version, history.events.len() as i64, "{name}");
            assert!(
                row.revenue_refunds.is_empty(),
                "{name}: every refund settled"
            );
        }
    }

    #[test]
    fn a_refund_remembers_whether_it_pays_back_revenue_until_it_is_settled() {
        let mut history = History::placed();
        history
            .request("pi_1")
            .confirm("pi_1", 1000)
            .pay_offline("bank-1")
            .refund("re_1", "pi_1", 1000, false)
            .refund("re_2", "bank-1", 400, false);
        let (row, _) = fold(&history);
        assert_eq!(row.review_payments, ["pi_1"]);
        assert_eq!(row.revenue_refunds, ["re_2"]);

        history.settle("re_2", true).settle("re_1", true);
        let (row, buckets) = fold(&history);
        assert!(row.revenue_refunds.is_empty());
        assert_eq!(hours(&buckets)[&6], refunded(400));
        assert_eq!(
            hours(&buckets).len(),
            3,
            "placed, paid, one refund of revenue"
        );
    }

    #[test]
    fn replayed_events_change_nothing() {
        let history = histories::cancelled_paid();
        let events = history.projected();
        let (mut row, mut buckets) = (None, Buckets::new());
        for event in &events {
            for earlier in events.iter().filter(|e| e.version <= event.version) {
                let ShopEvent::Order(body) = &earlier.body else {
                    unreachable!("an order history");
                };
                step(&mut row, &mut buckets, earlier, body).unwrap();
            }
        }
        let (once_row, once_buckets) = fold(&history);
        assert_eq!(row, Some(once_row));
        assert_eq!(buckets, once_buckets);
    }

    #[test]
    fn buckets_start_at_the_utc_hour_and_day() {
        let at: DateTime<Utc> = "2024-03-05T17:42:13.123456Z".parse().unwrap();
        let [(h, hour), (d, day)] = bucket_starts(at);
        assert_eq!((h, d), ("hour", "day"));
        assert_eq!(
            hour,
            "2024-03-05T17:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            day,
            "2024-03-05T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        let before_1970: DateTime<Utc> = "1969-12-31T23:59:59.5Z".parse().unwrap();
        assert_eq!(
            bucket_starts(before_1970)[0].1,
            "1969-12-31T23:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }
}
