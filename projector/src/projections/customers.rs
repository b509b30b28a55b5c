//! `customers`: one row per customer, their profile as the events carry it (each personal
//! field sealed with the customer's data key; the query API opens them), or `erased` with
//! every personal column dropped.
//!
//! A profile replaces the whole previous one and an erasure ends the stream's personal
//! data, so a stream's row after a batch is what its last event says: one upsert per batch,
//! guarded by the version it reflects.

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use domain::CustomerEvent;
use futures::future::BoxFuture;

use crate::apply::ApplyError;
use crate::batch::by_stream;
use crate::event::{ProjectedEvent, ShopEvent};
use crate::projection::{table, Poisoned, Projection};

pub struct Customers;

impl Projection for Customers {
    fn name(&self) -> &'static str {
        "customers"
    }

    fn tables(&self, version: i32) -> Vec<String> {
        vec![table("customers", version)]
    }

    fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        version: i32,
        events: &'a [&'a ProjectedEvent],
    ) -> BoxFuture<'a, Result<Poisoned, ApplyError>> {
        Box::pin(apply(tx, table("customers", version), events))
    }
}

/// A customer's row as the last event of their stream leaves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub customer_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub address: Option<String>,
    pub email_updates: bool,
    pub erased: bool,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

/// The row `event` leaves.
pub fn row_after(event: &ProjectedEvent, body: &CustomerEvent) -> Row {
    let (customer_id, email, name, address, email_updates, erased) = match body {
        CustomerEvent::CustomerProfileSet(set) => (
            &set.customer_id,
            Some(set.email.as_str().to_owned()),
            Some(set.name.as_str().to_owned()),
            set.address.as_ref().map(|a| a.as_str().to_owned()),
            set.email_updates,
            false,
        ),
        CustomerEvent::CustomerErased(erased) => {
            (&erased.customer_id, None, None, None, false, true)
        }
    };
    Row {
        customer_id: customer_id.as_str().to_owned(),
        email,
        name,
        address,
        email_updates,
        erased,
        version: event.version,
        updated_at: event.occurred_at,
    }
}

/// The customers erased by `events`.
pub fn erased_in(events: &[&ProjectedEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match &event.body {
            ShopEvent::Customer(CustomerEvent::CustomerErased(erased)) => {
                Some(erased.customer_id.as_str().to_owned())
            }
            _ => None,
        })
        .collect()
}

async fn apply(
    tx: &Transaction<'_>,
    t: String,
    events: &[&ProjectedEvent],
) -> Result<Poisoned, ApplyError> {
    let streams = by_stream(events, |e| matches!(e.body, ShopEvent::Customer(_)));
    let mut ids: Vec<String> = Vec::new();
    let mut emails: Vec<Option<String>> = Vec::new();
    let mut names: Vec<Option<String>> = Vec::new();
    let mut addresses: Vec<Option<String>> = Vec::new();
    let mut updates: Vec<bool> = Vec::new();
    let mut erased: Vec<bool> = Vec::new();
    let mut versions: Vec<i64> = Vec::new();
    let mut updated: Vec<DateTime<Utc>> = Vec::new();
    for stream in &streams {
        let Some(&(_, last)) = stream.events.last() else {
            continue;
        };
        let ShopEvent::Customer(body) = &last.body else {
            continue;
        };
        let row = row_after(last, body);
        ids.push(row.customer_id);
        emails.push(row.email);
        names.push(row.name);
        addresses.push(row.address);
        updates.push(row.email_updates);
        erased.push(row.erased);
        versions.push(row.version);
        updated.push(row.updated_at);
    }
    if ids.is_empty() {
        return Ok(Poisoned::new());
    }
    let statement = tx
        .prepare_cached(&format!(
            "INSERT INTO {t} AS t (customer_id, email, name, address, email_updates, erased, \
                 version, updated_at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], \
                                  $6::bool[], $7::int8[], $8::timestamptz[]) \
             ON CONFLICT (customer_id) DO UPDATE SET email = EXCLUDED.email, \
                 name = EXCLUDED.name, address = EXCLUDED.address, \
                 email_updates = EXCLUDED.email_updates, erased = EXCLUDED.erased, \
                 version = EXCLUDED.version, updated_at = EXCLUDED.updated_at \
             WHERE t.version < EXCLUDED.version"
        ))
        .await?;
    tx.execute(
        &statement,
        &[
            &ids, &emails, &names, &addresses, &updates, &erased, &versions, &updated,
        ],
    )
    .await?;
    Ok(Poisoned::new())
}
