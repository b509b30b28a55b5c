//! `top_products`: units sold and revenue per product from paid orders, with the product's
//! SKU and name. A paid order's lines count when it is paid (`OrderPaid`) and come off when
//! it is cancelled (whether the cancellation recorded the refund itself, as before refunds
//! went through the provider, or the refund followed as its own events). A refund without a
//! cancellation (partial, or of a payment the order never took) changes nothing here: it
//! cannot be attributed to products.
//!
//! Per order it remembers the version it reflects and the lines (`top_products_v{n}_orders`),
//! so a replayed event changes nothing; per product, the version of the SKU and name. A
//! batch reads the order rows it needs, folds each order's events ([`step`]) into new
//! order rows and per-product sums, and writes them with one statement each.

use std::collections::{BTreeMap, HashMap};

use deadpool_postgres::Transaction;
use domain::{OrderEvent, ProductEvent};
use futures::future::BoxFuture;
use tokio_postgres::types::Json;
use uuid::Uuid;

use crate::apply::ApplyError;
use crate::batch::{by_stream, fold_rows, read, write, write_exactly, Columns};
use crate::event::{ProjectedEvent, ShopEvent};
use crate::projection::{lines_json, table, Line, Poisoned, Projection};

pub struct TopProducts;

/// What the projection remembers of an order. `lines` is `None` for a known order whose
/// lines this batch does not need (they are not read).
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRow {
    pub version: i64,
    pub paid: bool,
    pub lines: Option<Vec<Line>>,
}

/// What a batch adds to one product's row; `catalog` is its SKU and name at the newest
/// creation event seen, with that event's version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductSums {
    pub units_sold: i64,
    pub revenue_cents: i64,
    pub catalog: Option<(String, String, i64)>,
}

/// Products by id, in id order (the order rows are locked in).
pub type Products = BTreeMap<Uuid, ProductSums>;

/// Adds (or with `sign` -1 takes off) an order's lines to the products, or changes
/// nothing on overflow.
fn sell(products: &mut Products, lines: &[Line], sign: i64) -> Result<(), String> {
    let out_of_range = || "top product sums out of range".to_owned();
    let mut staged: BTreeMap<Uuid, (i64, i64)> = BTreeMap::new();
    for line in lines {
        let (units, revenue) = staged
            .get(&line.product_id)
            .copied()
            .or_else(|| {
                products
                    .get(&line.product_id)
                    .map(|p| (p.units_sold, p.revenue_cents))
            })
            .unwrap_or((0, 0));
        let line_units = line.quantity.checked_mul(sign);
        let line_revenue = line
            .quantity
            .checked_mul(line.unit_price_cents)
            .and_then(|r| r.checked_mul(sign));
        let next = line_units
            .zip(line_revenue)
            .and_then(|(u, r)| Some((units.checked_add(u)?, revenue.checked_add(r)?)))
            .ok_or_else(out_of_range)?;
        staged.insert(line.product_id, next);
    }
    for (id, (units, revenue)) in staged {
        let entry = products.entry(id).or_default();
        entry.units_sold = units;
        entry.revenue_cents = revenue;
    }
    Ok(())
}

/// Applies one order event to the order's row (`None`: not yet known) and the batch's
/// product sums, as a single guarded statement would: placing inserts when there is no
/// row; a payment of an unpaid order adds its lines, the cancellation of a paid one takes
/// them off; any event moves the version of a row it is newer than. An error is the
/// reason the event is poison (nothing changed).
pub fn step(
    row: &mut Option<OrderRow>,
    products: &mut Products,
    event: &ProjectedEvent,
    body: &OrderEvent,
) -> Result<(), String> {
    if let OrderEvent::OrderPlaced(placed) = body {
        if row.is_none() {
            *row = Some(OrderRow {
                version: event.version,
                paid: false,
                lines: Some(Line::all(&placed.lines)),
            });
        }
        return Ok(());
    }
    let Some(current) = row.as_mut().filter(|r| r.version < event.version) else {
        return Ok(());
    };
    let (paid_after, sign) = match body {
        OrderEvent::OrderPaid(_) if !current.paid => (true, 1),
        OrderEvent::OrderCancelled(_) if current.paid => (false, -1),
        _ => {
            current.version = event.version;
            return Ok(());
        }
    };
    let lines = current
        .lines
        .as_deref()
        .ok_or_else(|| "the order's lines were not read".to_owned())?;
    sell(products, lines, sign)?;
    current.paid = paid_after;
    current.version = event.version;
    Ok(())
}

/// Notes a product's SKU and name from its creation event, keeping the newest.
fn catalog(products: &mut Products, event: &ProjectedEvent, body: &ProductEvent) {
    let ProductEvent::ProductCreated(created) = body else {
        return;
    };
    let entry = products.entry(event.stream_id).or_default();
    if entry.catalog.as_ref().is_none_or(|c| c.2 < event.version) {
        entry.catalog = Some((
            created.sku.as_str().to_owned(),
            created.name.as_str().to_owned(),
            event.version,
        ));
    }
}

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

    fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        version: i32,
        events: &'a [&'a ProjectedEvent],
    ) -> BoxFuture<'a, Result<Poisoned, ApplyError>> {
        Box::pin(apply(tx, table("top_products", version), events))
    }
}

async fn apply(
    tx: &Transaction<'_>,
    top: String,
    events: &[&ProjectedEvent],
) -> Result<Poisoned, ApplyError> {
    let orders = format!("{top}_orders");
    let streams = by_stream(events, |e| matches!(e.body, ShopEvent::Order(_)));
    let ids: Vec<Uuid> = streams.iter().map(|s| s.stream_id).collect();
    // Lines are read only for orders this batch pays or refunds.
    let need_lines: Vec<bool> = streams
        .iter()
        .map(|s| {
            s.events.iter().any(|(_, e)| {
                matches!(
                    e.body,
                    ShopEvent::Order(OrderEvent::OrderPaid(_) | OrderEvent::OrderCancelled(_))
                )
            })
        })
        .collect();
    let rows = read(
        tx,
        &format!(
            "SELECT o.order_id, o.version, o.paid, CASE WHEN s.need THEN o.lines END \
             FROM unnest($1::uuid[], $2::bool[]) AS s(id, need) \
             JOIN {orders} o ON o.order_id = s.id"
        ),
        &[&ids, &need_lines],
        ids.len(),
    )
    .await?;
    let mut existing = HashMap::with_capacity(rows.len());
    for r in &rows {
        let id: Uuid = r.try_get(0)?;
        let lines: Option<Json<Vec<Line>>> = r.try_get(3)?;
        existing.insert(
            id,
            OrderRow {
                version: r.try_get(1)?,
                paid: r.try_get(2)?,
                lines: lines.map(|Json(lines)| lines),
            },
        );
    }

    let mut poisoned = Poisoned::new();
    let mut products = Products::new();
    for event in events {
        if let ShopEvent::Product(body) = &event.body {
            catalog(&mut products, event, body);
        }
    }
    let mut folded = fold_rows(
        &streams,
        existing,
        |r| r.version,
        |row, event| match &event.body {
            ShopEvent::Order(body) => step(row, &mut products, event, body),
            ShopEvent::Product(_) | ShopEvent::Customer(_) | ShopEvent::Webhook(_) => Ok(()),
        },
    );
    poisoned.append(&mut folded.poisoned);
    let (inserts, updates): (Changed, Changed) = folded.into_columns();

    let c = &inserts;
    write_exactly(
        tx,
        &format!(
            "INSERT INTO {orders} (order_id, version, lines, paid) \
             SELECT * FROM unnest($1::uuid[], $2::int8[], $3::jsonb[], $4::bool[]) \
             ON CONFLICT (order_id) DO NOTHING"
        ),
        &[&c.id, &c.version, &c.lines, &c.paid],
        c.id.len(),
        "new top-products orders",
    )
    .await?;
    let c = &updates;
    write_exactly(
        tx,
        &format!(
            "UPDATE {orders} AS t SET version = s.version, paid = s.paid \
             FROM unnest($1::uuid[], $2::int8[], $3::bool[], $4::int8[]) \
                  AS s(id, version, paid, expected) \
             WHERE t.order_id = s.id AND t.version = s.expected"
        ),
        &[&c.id, &c.version, &c.paid, &c.expected],
        c.id.len(),
        "changed top-products orders",
    )
    .await?;

    let (mut id, mut sku, mut name, mut version) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut units, mut revenue) = (Vec::new(), Vec::new());
    for (product, sums) in products {
        let (s, n, v) = sums.catalog.unwrap_or_default();
        id.push(product);
        sku.push(s);
        name.push(n);
        version.push(v);
        units.push(sums.units_sold);
        revenue.push(sums.revenue_cents);
    }
    write(
        tx,
        &format!(
            "INSERT INTO {top} AS t (product_id, sku, name, product_version, units_sold, \
                 revenue_cents) \
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int8[], $5::int8[], \
                                  $6::int8[]) \
             ON CONFLICT (product_id) DO UPDATE \
             SET units_sold = t.units_sold + EXCLUDED.units_sold, \
                 revenue_cents = t.revenue_cents + EXCLUDED.revenue_cents, \
                 sku = CASE WHEN t.product_version < EXCLUDED.product_version \
                            THEN EXCLUDED.sku ELSE t.sku END, \
                 name = CASE WHEN t.product_version < EXCLUDED.product_version \
                             THEN EXCLUDED.name ELSE t.name END, \
                 product_version = GREATEST(t.product_version, EXCLUDED.product_version)"
        ),
        &[&id, &sku, &name, &version, &units, &revenue],
        id.len(),
    )
    .await?;
    Ok(poisoned)
}

/// Order rows to write, column by column (what `unnest` takes); `lines` for new rows
/// only.
#[derive(Default)]
struct Changed {
    id: Vec<Uuid>,
    version: Vec<i64>,
    lines: Vec<serde_json::Value>,
    paid: Vec<bool>,
    expected: Vec<i64>,
}

impl Columns<OrderRow> for Changed {
    fn push(&mut self, id: Uuid, row: OrderRow, expected: i64) {
        if expected == 0 {
            self.lines
                .push(lines_json(row.lines.as_deref().unwrap_or_default()));
        }
        self.id.push(id);
        self.version.push(row.version);
        self.paid.push(row.paid);
        self.expected.push(expected);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projections::histories::{self, History, PRODUCTS};

    /// Units and revenue per product a history folds to (products it never sold: none).
    fn fold(history: &History) -> (OrderRow, Vec<(i64, i64)>) {
        let (mut row, mut products) = (None, Products::new());
        for event in history.projected() {
            let ShopEvent::Order(body) = &event.body else {
                unreachable!("an order history");
            };
            step(&mut row, &mut products, &event, body).unwrap();
        }
        let sums = PRODUCTS
            .iter()
            .map(|n| {
                let sums = products
                    .get(&Uuid::from_u128(*n))
                    .cloned()
                    .unwrap_or_default();
                (sums.units_sold, sums.revenue_cents)
            })
            .collect();
        (row.expect("a placed order has a row"), sums)
    }

    #[test]
    fn paid_orders_count_until_they_are_cancelled_whatever_their_refunds() {
        let sold = vec![(2, 2 * 1299), (1, 500)];
        let nothing = vec![(0, 0), (0, 0)];
        let cases = [
            (
                "provider payment, shipped",
                histories::provider_payment(),
                &sold,
                true,
            ),
            (
                "paid, with a refund of captured money",
                histories::needs_review(),
                &sold,
                true,
            ),
            (
                "paid, partly refunded",
                histories::partial_refund(),
                &sold,
                true,
            ),
            (
                "paid and cancelled",
                histories::cancelled_paid(),
                &nothing,
                false,
            ),
            (
                "cancelled unpaid, a late capture",
                histories::cancelled_open(),
                &nothing,
                false,
            ),
            (
                "old style, paid and cancelled",
                histories::old_style(),
                &nothing,
                false,
            ),
        ];
        for (name, history, expected, paid) in cases {
            let (row, sums) = fold(&history);
            assert_eq!(&sums, expected, "{name}");
            assert_eq!(row.paid, paid, "{name}");
            assert_eq!(row.version, history.events.len() as i64, "{name}");
        }
    }

    #[test]
    fn an_unpaid_cancellation_takes_nothing_off() {
        let mut history = History::placed();
        history.cancel(None);
        let (row, sums) = fold(&history);
        assert_eq!(sums, [(0, 0), (0, 0)]);
        assert!(!row.paid);
        assert_eq!(row.version, 2);
    }
}
