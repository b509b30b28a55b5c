//! `products`: one row per product with price, stock and the stream version it reflects.
//!
//! A batch reads the rows of the products it touches, folds each product's events onto
//! its row ([`step`]), and writes the new rows back: one INSERT for products created in
//! the batch, one UPDATE (guarded by the version read) for the others.

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use domain::ProductEvent;
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::apply::ApplyError;
use crate::batch::{by_stream, fold_rows, read, write_exactly, Columns};
use crate::event::{ProjectedEvent, ShopEvent};
use crate::projection::{table, Poisoned, Projection};

pub struct Products;

/// A product's row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub sku: String,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub discontinued: bool,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

/// Applies one event to a product's row (`None`: no row yet), as a single guarded
/// statement would: creation inserts when there is no row and otherwise does nothing;
/// any other event changes an existing row it is newer than. An error is the reason the
/// event is poison (the row is left as it was).
pub fn step(
    row: &mut Option<Row>,
    event: &ProjectedEvent,
    body: &ProductEvent,
) -> Result<(), String> {
    if let ProductEvent::ProductCreated(created) = body {
        if row.is_none() {
            *row = Some(Row {
                sku: created.sku.as_str().to_owned(),
                name: created.name.as_str().to_owned(),
                price_cents: created.price_cents.get(),
                currency: created.currency.as_str().to_owned(),
                on_hand: created.initial_stock.get(),
                reserved: 0,
                discontinued: false,
                version: event.version,
                updated_at: event.occurred_at,
            });
        }
        return Ok(());
    }
    let Some(current) = row.as_mut().filter(|r| r.version < event.version) else {
        return Ok(());
    };
    let mut next = current.clone();
    let overflow = || "stock out of range".to_owned();
    match body {
        ProductEvent::ProductCreated(_) => {}
        ProductEvent::PriceChanged(changed) => next.price_cents = changed.price_cents.get(),
        ProductEvent::StockAdded(added) => {
            next.on_hand = next
                .on_hand
                .checked_add(added.quantity.get())
                .ok_or_else(overflow)?
        }
        ProductEvent::StockReserved(reserved) => {
            next.reserved = next
                .reserved
                .checked_add(reserved.quantity.get())
                .ok_or_else(overflow)?
        }
        ProductEvent::StockReleased(released) => {
            next.reserved = next
                .reserved
                .checked_sub(released.quantity.get())
                .ok_or_else(overflow)?
        }
        ProductEvent::StockShipped(shipped) => {
            next.on_hand = next
                .on_hand
                .checked_sub(shipped.quantity.get())
                .ok_or_else(overflow)?;
            next.reserved = next
                .reserved
                .checked_sub(shipped.quantity.get())
                .ok_or_else(overflow)?;
        }
        ProductEvent::ProductDiscontinued(_) => next.discontinued = true,
    }
    next.version = event.version;
    next.updated_at = event.occurred_at;
    *current = next;
    Ok(())
}

impl Projection for Products {
    fn name(&self) -> &'static str {
        "products"
    }

    fn tables(&self, version: i32) -> Vec<String> {
        vec![table("products", version)]
    }

    fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        version: i32,
        events: &'a [&'a ProjectedEvent],
    ) -> BoxFuture<'a, Result<Poisoned, ApplyError>> {
        Box::pin(apply(tx, table("products", version), events))
    }
}

async fn apply(
    tx: &Transaction<'_>,
    t: String,
    events: &[&ProjectedEvent],
) -> Result<Poisoned, ApplyError> {
    let streams = by_stream(events, |e| matches!(e.body, ShopEvent::Product(_)));
    let ids: Vec<Uuid> = streams.iter().map(|s| s.stream_id).collect();
    let rows = read(
        tx,
        &format!(
            "SELECT t.id, t.sku, t.name, t.price_cents, t.currency, t.on_hand, t.reserved, \
                 t.discontinued, t.version, t.updated_at \
             FROM unnest($1::uuid[]) AS s(id) JOIN {t} AS t ON t.id = s.id"
        ),
        &[&ids],
        ids.len(),
    )
    .await?;
    let mut existing = std::collections::HashMap::with_capacity(rows.len());
    for r in &rows {
        let id: Uuid = r.try_get(0)?;
        existing.insert(
            id,
            Row {
                sku: r.try_get(1)?,
                name: r.try_get(2)?,
                price_cents: r.try_get(3)?,
                currency: r.try_get(4)?,
                on_hand: r.try_get(5)?,
                reserved: r.try_get(6)?,
                discontinued: r.try_get(7)?,
                version: r.try_get(8)?,
                updated_at: r.try_get(9)?,
            },
        );
    }

    let mut folded = fold_rows(
        &streams,
        existing,
        |r| r.version,
        |row, event| match &event.body {
            ShopEvent::Product(body) => step(row, event, body),
            ShopEvent::Order(_) | ShopEvent::Customer(_) | ShopEvent::Webhook(_) => Ok(()),
        },
    );
    let poisoned = std::mem::take(&mut folded.poisoned);
    let (inserts, updates): (Changed, Changed) = folded.into_columns();

    let c = &inserts;
    write_exactly(
        tx,
        &format!(
            "INSERT INTO {t} (id, sku, name, price_cents, currency, on_hand, reserved, \
             discontinued, version, updated_at) \
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int8[], $5::text[], \
                                  $6::int8[], $7::int8[], $8::bool[], $9::int8[], \
                                  $10::timestamptz[]) \
             ON CONFLICT (id) DO NOTHING"
        ),
        &[
            &c.id,
            &c.sku,
            &c.name,
            &c.price_cents,
            &c.currency,
            &c.on_hand,
            &c.reserved,
            &c.discontinued,
            &c.version,
            &c.updated_at,
        ],
        c.id.len(),
        "new products",
    )
    .await?;
    let c = &updates;
    write_exactly(
        tx,
        &format!(
            "UPDATE {t} AS t SET price_cents = s.price_cents, on_hand = s.on_hand, \
                 reserved = s.reserved, discontinued = s.discontinued, version = s.version, \
                 updated_at = s.updated_at \
             FROM unnest($1::uuid[], $2::int8[], $3::int8[], $4::int8[], $5::bool[], \
                         $6::int8[], $7::timestamptz[], $8::int8[]) \
                  AS s(id, price_cents, on_hand, reserved, discontinued, version, updated_at, \
                       expected) \
             WHERE t.id = s.id AND t.version = s.expected"
        ),
        &[
            &c.id,
            &c.price_cents,
            &c.on_hand,
            &c.reserved,
            &c.discontinued,
            &c.version,
            &c.updated_at,
            &c.expected,
        ],
        c.id.len(),
        "changed products",
    )
    .await?;
    Ok(poisoned)
}

/// Rows to write, column by column (what `unnest` takes).
#[derive(Default)]
struct Changed {
    id: Vec<Uuid>,
    sku: Vec<String>,
    name: Vec<String>,
    price_cents: Vec<i64>,
    currency: Vec<String>,
    on_hand: Vec<i64>,
    reserved: Vec<i64>,
    discontinued: Vec<bool>,
    version: Vec<i64>,
    updated_at: Vec<DateTime<Utc>>,
    expected: Vec<i64>,
}

impl Columns<Row> for Changed {
    fn push(&mut self, id: Uuid, row: Row, expected: i64) {
        self.id.push(id);
        self.sku.push(row.sku);
        self.name.push(row.name);
        self.price_cents.push(row.price_cents);
        self.currency.push(row.currency);
        self.on_hand.push(row.on_hand);
        self.reserved.push(row.reserved);
        self.discontinued.push(row.discontinued);
        self.version.push(row.version);
        self.updated_at.push(row.updated_at);
        self.expected.push(expected);
    }
}
