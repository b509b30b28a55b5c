//! `products`: one row per product with price, stock and the stream version it reflects.

use domain::ProductEvent;

use crate::event::{ProjectedEvent, ShopEvent};
use crate::projection::{p, table, Projection, SqlChange};

pub struct Products;

impl Projection for Products {
    fn name(&self) -> &'static str {
        "products"
    }

    fn tables(&self, version: i32) -> Vec<String> {
        vec![table("products", version)]
    }

    fn changes(&self, version: i32, event: &ProjectedEvent) -> Vec<SqlChange> {
        let ShopEvent::Product(body) = &event.body else {
            return vec![];
        };
        let t = table("products", version);
        let update = |set: &str, value: Box<dyn tokio_postgres::types::ToSql + Sync + Send>| {
            SqlChange::new(
                format!(
                    "UPDATE {t} SET {set}, version = $2, updated_at = $3 \
                     WHERE id = $1 AND version < $2"
                ),
                vec![
                    p(event.stream_id),
                    p(event.version),
                    p(event.occurred_at),
                    value,
                ],
            )
        };
        let change = match body {
            ProductEvent::ProductCreated(created) => SqlChange::new(
                format!(
                    "INSERT INTO {t} (id, sku, name, price_cents, currency, on_hand, reserved, \
                     discontinued, version, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 0, false, $7, $8) ON CONFLICT (id) DO NOTHING"
                ),
                vec![
                    p(event.stream_id),
                    p(created.sku.as_str().to_owned()),
                    p(created.name.as_str().to_owned()),
                    p(created.price_cents.get()),
                    p(created.currency.as_str().to_owned()),
                    p(created.initial_stock.get()),
                    p(event.version),
                    p(event.occurred_at),
                ],
            ),
            ProductEvent::PriceChanged(changed) => {
                update("price_cents = $4", p(changed.price_cents.get()))
            }
            ProductEvent::StockAdded(added) => {
                update("on_hand = on_hand + $4", p(added.quantity.get()))
            }
            ProductEvent::StockReserved(reserved) => {
                update("reserved = reserved + $4", p(reserved.quantity.get()))
            }
            ProductEvent::StockReleased(released) => {
                update("reserved = reserved - $4", p(released.quantity.get()))
            }
            ProductEvent::StockShipped(shipped) => update(
                "on_hand = on_hand - $4, reserved = reserved - $4",
                p(shipped.quantity.get()),
            ),
            ProductEvent::ProductDiscontinued(_) => update("discontinued = $4", p(true)),
        };
        vec![change]
    }
}
