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
