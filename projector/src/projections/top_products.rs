//! `top_products`: units sold and revenue per product from paid orders (refunds taken
//! off), with the product's SKU and name.
//!
//! Per order it remembers the version it reflects and the lines (`top_products_v{n}_orders`),
//! so a replayed event changes nothing; per product, the version of the SKU and name.

use domain::{OrderEvent, ProductEvent};

use crate::event::{ProjectedEvent, ShopEvent};
use crate::projection::{lines_json, p, table, Projection, SqlChange};

pub struct TopProducts;

impl Projection for TopProducts {
    fn name(&self) -> &'static str {
        "top_products"
    }

    fn tables(&self, version: i32) -> Vec<String> {
        vec![
            table("top_products", version),
            format!("{}_orders", table("top_products", version)),
        ]
    }

    fn changes(&self, version: i32, event: &ProjectedEvent) -> Vec<SqlChange> {
        let top = table("top_products", version);
        let orders = format!("{top}_orders");
        let id = event.stream_id;
        let sold = |sign: &str, condition: &str| {
            format!(
                "WITH guard AS (
                    UPDATE {orders} SET version = $2, paid = {condition}
                    WHERE order_id = $1 AND version < $2 AND paid = {sign_paid}
                    RETURNING lines)
                 INSERT INTO {top} (product_id, units_sold, revenue_cents)
                 SELECT l.product_id, {sign}l.quantity, {sign}l.quantity * l.unit_price_cents
                 FROM guard, jsonb_to_recordset(guard.lines)
                      AS l(product_id uuid, quantity int8, unit_price_cents int8)
                 ON CONFLICT (product_id) DO UPDATE
                 SET units_sold = {top}.units_sold + EXCLUDED.units_sold,
                     revenue_cents = {top}.revenue_cents + EXCLUDED.revenue_cents",
                sign_paid = if sign.is_empty() { "false" } else { "true" },
            )
        };
        let bump = || {
            SqlChange::new(
                format!("UPDATE {orders} SET version = $2 WHERE order_id = $1 AND version < $2"),
                vec![p(id), p(event.version)],
            )
        };
        let change = match &event.body {
            ShopEvent::Product(ProductEvent::ProductCreated(created)) => SqlChange::new(
                format!(
                    "INSERT INTO {top} (product_id, sku, name, product_version)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (product_id) DO UPDATE
                     SET sku = EXCLUDED.sku, name = EXCLUDED.name,
                         product_version = EXCLUDED.product_version
                     WHERE {top}.product_version < EXCLUDED.product_version"
                ),
                vec![
                    p(id),
                    p(created.sku.as_str().to_owned()),
                    p(created.name.as_str().to_owned()),
                    p(event.version),
                ],
            ),
            ShopEvent::Product(_) => return vec![],
            ShopEvent::Order(OrderEvent::OrderPlaced(placed)) => SqlChange::new(
                format!(
                    "INSERT INTO {orders} (order_id, version, lines) VALUES ($1, $2, $3)
                         ON CONFLICT (order_id) DO NOTHING"
                ),
                vec![p(id), p(event.version), p(lines_json(&placed.lines))],
            ),
            ShopEvent::Order(OrderEvent::OrderPaid(_)) => {
                SqlChange::new(sold("", "true"), vec![p(id), p(event.version)])
            }
            ShopEvent::Order(OrderEvent::OrderCancelled(cancelled))
                if cancelled.refunded_cents > 0 =>
            {
                SqlChange::new(sold("-", "false"), vec![p(id), p(event.version)])
            }
            ShopEvent::Order(_) => bump(),
        };
        vec![change]
    }
}
