//! `sales`: orders placed, orders paid, revenue and units per hour and per day (UTC).
//! Placed counts at placing time; paid, revenue (payments minus refunds) and units at
//! paying time: a refund is taken off the buckets its payment was counted in.
//!
//! Per order it remembers the version it reflects (`sales_v{n}_orders`), so a replayed
//! event changes nothing, and what a later payment or refund needs.

use domain::OrderEvent;

use crate::event::{ProjectedEvent, ShopEvent};
use crate::projection::{p, table, Projection, SqlChange};

pub struct Sales;

const BUCKETS: &str = "(VALUES ('hour'), ('day')) AS b(bucket)";

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

    fn changes(&self, version: i32, event: &ProjectedEvent) -> Vec<SqlChange> {
        let ShopEvent::Order(body) = &event.body else {
            return vec![];
        };
        let sales = table("sales", version);
        let orders = format!("{}_orders", table("sales", version));
        let id = event.stream_id;
        let change = match body {
            OrderEvent::OrderPlaced(placed) => {
                let units: i64 = placed.lines.iter().map(|l| l.quantity.get()).sum();
                SqlChange::new(
                    format!(
                        "WITH guard AS (
                            INSERT INTO {orders} (order_id, version, total_cents, units, lines)
                            VALUES ($1, $2, $3, $4, '[]') ON CONFLICT (order_id) DO NOTHING
                            RETURNING 1)
                         INSERT INTO {sales} (bucket, start, orders_placed)
                         SELECT b.bucket, date_trunc(b.bucket, $5::timestamptz, 'UTC'), 1
                         FROM guard, {BUCKETS}
                         ON CONFLICT (bucket, start) DO UPDATE
                         SET orders_placed = {sales}.orders_placed + 1"
                    ),
                    vec![
                        p(id),
                        p(event.version),
                        p(placed.total_cents),
                        p(units),
                        p(event.occurred_at),
                    ],
                )
            }
            OrderEvent::OrderPaid(paid) => SqlChange::new(
                format!(
                    "WITH guard AS (
                        UPDATE {orders} SET version = $2, paid_at = $3
                        WHERE order_id = $1 AND version < $2
                        RETURNING units)
                     INSERT INTO {sales} (bucket, start, orders_paid, revenue_cents, units_sold)
                     SELECT b.bucket, date_trunc(b.bucket, $3::timestamptz, 'UTC'), 1, $4, guard.units
                     FROM guard, {BUCKETS}
                     ON CONFLICT (bucket, start) DO UPDATE
                     SET orders_paid = {sales}.orders_paid + 1,
                         revenue_cents = {sales}.revenue_cents + EXCLUDED.revenue_cents,
                         units_sold = {sales}.units_sold + EXCLUDED.units_sold"
                ),
                vec![p(id), p(event.version), p(event.occurred_at), p(paid.amount_cents)],
            ),
            OrderEvent::OrderCancelled(cancelled) if cancelled.refunded_cents > 0 => {
                SqlChange::new(
                    format!(
                        "WITH guard AS (
                            UPDATE {orders} SET version = $2
                            WHERE order_id = $1 AND version < $2
                            RETURNING paid_at, units)
                         INSERT INTO {sales} (bucket, start, revenue_cents, units_sold)
                         SELECT b.bucket, date_trunc(b.bucket, guard.paid_at, 'UTC'), -$3::int8,
                                -guard.units
                         FROM guard, {BUCKETS} WHERE guard.paid_at IS NOT NULL
                         ON CONFLICT (bucket, start) DO UPDATE
                         SET revenue_cents = {sales}.revenue_cents + EXCLUDED.revenue_cents,
                             units_sold = {sales}.units_sold + EXCLUDED.units_sold"
                    ),
                    vec![p(id), p(event.version), p(cancelled.refunded_cents)],
                )
            }
            OrderEvent::OrderCancelled(_) | OrderEvent::OrderShipped(_) => SqlChange::new(
                format!("UPDATE {orders} SET version = $2 WHERE order_id = $1 AND version < $2"),
                vec![p(id), p(event.version)],
            ),
        };
        vec![change]
    }
}
