//! Set-based plumbing shared by the projections: a batch's events grouped per stream (in
//! log order), and writes of many rows in one statement whose row count is checked, so a
//! row another writer changed since it was read fails the batch (optimistic concurrency)
//! instead of being overwritten.

use std::collections::HashMap;

use deadpool_postgres::Transaction;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::apply::ApplyError;
use crate::event::ProjectedEvent;
use crate::projection::Poisoned;

/// One stream's events of a batch, in log order, each with its index in the batch.
#[derive(Debug)]
pub struct StreamEvents<'e> {
    pub stream_id: Uuid,
    pub events: Vec<(usize, &'e ProjectedEvent)>,
}

/// The events `relevant` keeps, grouped per stream, streams in order of first appearance.
pub fn by_stream<'e>(
    events: &[&'e ProjectedEvent],
    relevant: impl Fn(&ProjectedEvent) -> bool,
) -> Vec<StreamEvents<'e>> {
    let mut index: HashMap<Uuid, usize> = HashMap::new();
    let mut streams: Vec<StreamEvents<'e>> = Vec::new();
    for (i, event) in events.iter().enumerate() {
        if !relevant(event) {
            continue;
        }
        let slot = *index.entry(event.stream_id).or_insert_with(|| {
            streams.push(StreamEvents {
                stream_id: event.stream_id,
                events: Vec::new(),
            });
            streams.len() - 1
        });
        streams[slot].events.push((i, event));
    }
    streams
}

/// What folding a batch over the stored rows changed.
pub struct FoldedRows<R> {
    /// Rows of streams that had none.
    pub inserts: Vec<(Uuid, R)>,
    /// Changed rows, each with the stream version it was read at.
    pub updates: Vec<(Uuid, R, i64)>,
    /// The events `step` refused, with the reason.
    pub poisoned: Poisoned,
}

/// A projection's rows as statement parameters, one array per column.
pub trait Columns<R>: Default {
    /// Adds `row` of stream `id`, expected at stream version `expected` (0: a new row).
    fn push(&mut self, id: Uuid, row: R, expected: i64);
}

impl<R> FoldedRows<R> {
    /// The rows to insert and the rows to update, as columns.
    pub fn into_columns<C: Columns<R>>(self) -> (C, C) {
        let mut inserts = C::default();
        for (id, row) in self.inserts {
            inserts.push(id, row, 0);
        }
        let mut updates = C::default();
        for (id, row, read_at) in self.updates {
            updates.push(id, row, read_at);
        }
        (inserts, updates)
    }
}

/// Folds each stream's events over its stored row (`None` while it has none) with `step`,
/// one event at a time (an `Err` is the reason the event is poison: the row stays as it
/// was before it); `version` reads the stream version a stored row reflects.
pub fn fold_rows<R: Clone + PartialEq>(
    streams: &[StreamEvents<'_>],
    mut existing: HashMap<Uuid, R>,
    version: impl Fn(&R) -> i64,
    mut step: impl FnMut(&mut Option<R>, &ProjectedEvent) -> Result<(), String>,
) -> FoldedRows<R> {
    let mut folded = FoldedRows {
        inserts: Vec::new(),
        updates: Vec::new(),
        poisoned: Poisoned::new(),
    };
    for stream in streams {
        let before = existing.remove(&stream.stream_id);
        let mut row = before.clone();
        for (i, event) in &stream.events {
            if let Err(reason) = step(&mut row, event) {
                folded.poisoned.push((*i, reason));
            }
        }
        match (before, row) {
            (None, Some(row)) => folded.inserts.push((stream.stream_id, row)),
            (Some(before), Some(row)) if row != before => {
                folded
                    .updates
                    .push((stream.stream_id, row, version(&before)));
            }
            _ => {}
        }
    }
    folded
}

/// Runs one set-based write that must touch exactly `expected` rows (nothing when
/// `expected` is 0). Fewer means another writer got to one of the rows first: the batch
/// fails with [`ApplyError::Conflict`] and is retried from a fresh read.
pub async fn write_exactly(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    expected: usize,
    what: &str,
) -> Result<(), ApplyError> {
    if expected == 0 {
        return Ok(());
    }
    let statement = tx.prepare_cached(sql).await?;
    let written = tx.execute(&statement, params).await?;
    if written != expected as u64 {
        return Err(ApplyError::Conflict(format!(
            "{what}: wrote {written} rows of {expected}"
        )));
    }
    Ok(())
}

/// Runs one set-based write of any number of rows (nothing when `rows` is 0).
pub async fn write(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    rows: usize,
) -> Result<(), ApplyError> {
    if rows == 0 {
        return Ok(());
    }
    let statement = tx.prepare_cached(sql).await?;
    tx.execute(&statement, params).await?;
    Ok(())
}

/// Runs one read of the rows of `ids` (nothing when there are none).
pub async fn read(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    ids: usize,
) -> Result<Vec<tokio_postgres::Row>, ApplyError> {
    if ids == 0 {
        return Ok(Vec::new());
    }
    let statement = tx.prepare_cached(sql).await?;
    Ok(tx.query(&statement, params).await?)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use domain::ProductEvent;

    use super::*;
    use crate::event::ShopEvent;

    fn event(stream: Uuid, version: i64) -> ProjectedEvent {
        ProjectedEvent {
            event_id: Uuid::new_v4(),
            stream_id: stream,
            version,
            occurred_at: Utc::now(),
            body: ShopEvent::Product(ProductEvent::ProductDiscontinued(
                domain::product::ProductDiscontinued {},
            )),
        }
    }

    #[test]
    fn streams_keep_log_order_and_batch_indexes() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let events = [
            event(a, 1),
            event(b, 1),
            event(a, 2),
            event(b, 2),
            event(a, 3),
        ];
        let refs: Vec<&ProjectedEvent> = events.iter().collect();
        let streams = by_stream(&refs, |e| e.version != 2 || e.stream_id == a);
        let got: Vec<(Uuid, Vec<usize>)> = streams
            .iter()
            .map(|s| (s.stream_id, s.events.iter().map(|(i, _)| *i).collect()))
            .collect();
        assert_eq!(got, [(a, vec![0, 2, 4]), (b, vec![1])]);
    }
}
