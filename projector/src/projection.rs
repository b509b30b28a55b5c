//! What a projection is: a function from a batch of events to set-based SQL changes to the
//! projection's tables (of a given version), guarded by stream versions so that applying
//! an event twice changes nothing. The rows a batch touches are read once, the events are
//! folded per stream in Rust (pure, one event at a time, exactly as one statement per
//! event would apply them), and the results are written with one statement per table.

use deadpool_postgres::Transaction;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::apply::ApplyError;
use crate::event::ProjectedEvent;

/// Events of a batch a projection could not apply (poison): their index in the batch and
/// why. They change nothing.
pub type Poisoned = Vec<(usize, String)>;

/// A read model built from events.
pub trait Projection: Send + Sync {
    /// Its name, as in `read_model.projections` and the view it is served through.
    fn name(&self) -> &'static str;

    /// The tables version `version` of the projection owns (qualified), first the one
    /// its view selects from.
    fn tables(&self, version: i32) -> Vec<String>;

    /// Applies `events` (in log order, so each stream's in version order) to the tables of
    /// `version` inside `tx`, with a number of statements that does not grow with the
    /// batch. Must be idempotent per stream version: an event at or below the version a
    /// row reflects changes nothing. A row another writer changed since it was read fails
    /// the batch with [`ApplyError::Conflict`] (retried).
    fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        version: i32,
        events: &'a [&'a ProjectedEvent],
    ) -> BoxFuture<'a, Result<Poisoned, ApplyError>>;
}

/// `read_model.{table}_v{version}`.
pub fn table(name: &str, version: i32) -> String {
    format!("{}.{name}_v{version}", readmodel::SCHEMA)
}

/// One line of an order as the read models store it, in `lines`:
/// `[{"product_id", "quantity", "unit_price_cents"}]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub product_id: Uuid,
    pub quantity: i64,
    pub unit_price_cents: i64,
}

impl Line {
    /// The lines of an order event.
    pub fn all(lines: &domain::PricedLines) -> Vec<Line> {
        lines
            .iter()
            .map(|l| Line {
                product_id: l.product_id.as_uuid(),
                quantity: l.quantity.get(),
                unit_price_cents: l.unit_price_cents.get(),
            })
            .collect()
    }
}

/// Lines as the `lines` column stores them.
pub fn lines_json(lines: &[Line]) -> serde_json::Value {
    serde_json::to_value(lines).unwrap_or_default()
}
