//! `orders`: one row per order, the summary and the detail (lines, payment, shipment,
//! refund), with the stream version it reflects.

use domain::OrderEvent;

use crate::event::{ProjectedEvent, ShopEvent};
use crate::projection::{lines_json, p, table, Projection, SqlChange};

pub struct Orders;

impl Projection for Orders {
    fn name(&self) -> &'static str {
        "orders"
    }

    fn tables(&self, version: i32) -> Vec<String> {
        vec![table("orders", version)]
    }

    fn changes(&self, version: i32, event: &ProjectedEvent) -> Vec<SqlChange> {
        let ShopEvent::Order(body) = &event.body else {
            return vec![];
        };
        let t = table("orders", version);
        let update =
            |set: &str, values: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>>| {
                let mut params = vec![p(event.stream_id), p(event.version), p(event.occurred_at)];
                params.extend(values);
                SqlChange::new(
                    format!(
                        "UPDATE {t} SET {set}, version = $2, updated_at = $3 \
                     WHERE id = $1 AND version < $2"
                    ),
                    params,
                )
            };
        let change = match body {
            OrderEvent::OrderPlaced(placed) => SqlChange::new(
                format!(
                    "INSERT INTO {t} (id, customer_id, status, total_cents, currency, \
                         placed_at, updated_at, version, lines) \
                         VALUES ($1, $2, 'placed', $3, $4, $5, $5, $6, $7) \
                         ON CONFLICT (id) DO NOTHING"
                ),
                vec![
                    p(event.stream_id),
                    p(placed.customer_id.as_str().to_owned()),
                    p(placed.total_cents),
                    p(placed.currency.as_str().to_owned()),
                    p(event.occurred_at),
                    p(event.version),
                    p(lines_json(&placed.lines)),
                ],
            ),
            OrderEvent::OrderPaid(paid) => update(
                "status = 'paid', payment_ref = $4",
                vec![p(paid.payment_ref.as_str().to_owned())],
            ),
            OrderEvent::OrderShipped(shipped) => update(
                "status = 'shipped', carrier = $4, tracking_number = $5",
                vec![
                    p(shipped.carrier.as_str().to_owned()),
                    p(shipped.tracking_number.as_str().to_owned()),
                ],
            ),
            OrderEvent::OrderCancelled(cancelled) => update(
                "status = 'cancelled', refunded_cents = $4",
                vec![p(cancelled.refunded_cents)],
            ),
        };
        vec![change]
    }
}
