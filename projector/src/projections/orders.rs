//! `orders`: one row per order, the summary and the detail (lines, payment, shipment,
//! refund), with the stream version it reflects.
//!
//! A batch reads the rows of the orders it touches (the columns events change), folds
//! each order's events onto its row ([`step`]), and writes the results: one INSERT for
//! orders placed in the batch, one UPDATE (guarded by the version read) for the others.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use domain::OrderEvent;
use futures::future::BoxFuture;
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
                }),
                status: "placed".to_owned(),
                version: event.version,
                updated_at: event.occurred_at,
                payment_ref: None,
                carrier: None,
                tracking_number: None,
                refunded_cents: None,
            });
        }
        return;
    }
    let Some(row) = row.as_mut().filter(|r| r.version < event.version) else {
        return;
    };
    match body {
        OrderEvent::OrderPlaced(_) => {}
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
            row.refunded_cents = Some(cancelled.refunded_cents);
        }
    }
    row.version = event.version;
    row.updated_at = event.occurred_at;
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
                 t.tracking_number, t.refunded_cents \
             FROM unnest($1::uuid[]) AS s(id) JOIN {t} AS t ON t.id = s.id"
        ),
        &[&ids],
        ids.len(),
    )
    .await?;
    let mut existing = HashMap::with_capacity(rows.len());
    for r in &rows {
        let id: Uuid = r.try_get(0)?;
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
                 refunded_cents) \
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int8[], $5::text[], \
                                  $6::timestamptz[], $7::timestamptz[], $8::int8[], \
                                  $9::jsonb[], $10::text[], $11::text[], $12::text[], \
                                  $13::int8[]) \
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
                 tracking_number = s.tracking_number, refunded_cents = s.refunded_cents \
             FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::int8[], $5::text[], \
                         $6::text[], $7::text[], $8::int8[], $9::int8[]) \
                  AS s(id, status, updated_at, version, payment_ref, carrier, \
                       tracking_number, refunded_cents, expected) \
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
            &c.expected,
        ],
        c.id.len(),
        "changed orders",
    )
    .await?;
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
    payment_ref: Vec<Option<String>>,
    carrier: Vec<Option<String>>,
    tracking_number: Vec<Option<String>>,
    refunded_cents: Vec<Option<i64>>,
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
        }
        self.status.push(row.status);
        self.updated_at.push(row.updated_at);
        self.version.push(row.version);
        self.payment_ref.push(row.payment_ref);
        self.carrier.push(row.carrier);
        self.tracking_number.push(row.tracking_number);
        self.refunded_cents.push(row.refunded_cents);
        self.expected.push(expected);
    }
}
