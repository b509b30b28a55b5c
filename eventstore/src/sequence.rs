//! Reading the dense sequence (`event_sequence`, written by [`crate::sequencer`]): the
//! stored sequence numbers of a page of events, and the log's events in sequence order.
//!
//! The sequence lives beside the events, so the hot readers of the log (relay, projectors,
//! the sequencer) never pay for it; the audit reads attach it a page at a time. Sequence
//! order is log order, so a page's events sit close together in both tables: one range
//! scan of the narrow `event_sequence` (or of `events` by position) covers a page, far
//! cheaper than a lookup per event. A page whose positions lie far apart (a tampered
//! database, or transactions that stayed open while thousands of events were appended) is
//! looked up position by position instead. Every number comes from the row stored for that
//! event: nothing is inferred from order, so a verifier sees the database as it is.

use std::collections::HashMap;

use crate::error::StoreError;
use crate::event::RecordedEvent;
use crate::row::{decode_event, EVENT_COLUMNS};
use crate::EventStore;

/// A set of positions is read by one range scan when the range is at most this many times
/// their number (plus [`RANGE_SLACK`]); otherwise position by position.
const RANGE_FACTOR: i64 = 4;
const RANGE_SLACK: i64 = 256;

/// The smallest and largest of `positions`, when a range scan between them reads few rows
/// besides them.
fn compact_range(positions: &[i64]) -> Option<(i64, i64)> {
    let low = *positions.iter().min()?;
    let high = *positions.iter().max()?;
    let count = i64::try_from(positions.len()).unwrap_or(i64::MAX);
    let span = high.saturating_sub(low).saturating_add(1);
    (span
        <= count
            .saturating_mul(RANGE_FACTOR)
            .saturating_add(RANGE_SLACK))
    .then_some((low, high))
}

impl EventStore {
    /// Sets each event's `sequence` to the number stored for it (`None` when the sequencer
    /// has not reached it).
    pub async fn attach_sequences(&self, events: &mut [RecordedEvent]) -> Result<(), StoreError> {
        let positions: Vec<i64> = events.iter().map(|event| event.position).collect();
        let Some(stored) = self.sequences_of(&positions).await? else {
            return Ok(());
        };
        for event in events {
            event.sequence = stored.get(&event.position).copied();
        }
        Ok(())
    }

    /// The stored sequence numbers of `positions`, by position (None: no positions).
    async fn sequences_of(
        &self,
        positions: &[i64],
    ) -> Result<Option<HashMap<i64, i64>>, StoreError> {
        if positions.is_empty() {
            return Ok(None);
        }
        let client = self.pool.get().await?;
        let rows = match compact_range(positions) {
            Some((low, high)) => {
                let statement = client
                    .prepare_cached(
                        "SELECT event_position, sequence FROM event_sequence \
                         WHERE event_position BETWEEN $1 AND $2",
                    )
                    .await?;
                client.query(&statement, &[&low, &high]).await?
            }
            None => {
                let statement = client
                    .prepare_cached(
                        "SELECT event_position, sequence FROM event_sequence \
                         WHERE event_position = ANY($1)",
                    )
                    .await?;
                client.query(&statement, &[&positions]).await?
            }
        };
        let mut stored = HashMap::with_capacity(rows.len());
        for row in rows {
            stored.insert(row.try_get::<_, i64>(0)?, row.try_get::<_, i64>(1)?);
        }
        Ok(Some(stored))
    }

    /// Up to `limit` sequenced events with a sequence above `after_sequence`, in sequence
    /// order, each with its `sequence`; fewer only at the end of the sequence. A number
    /// whose event is missing from `events` is skipped (a verifier then sees the gap).
    pub async fn read_sequenced(
        &self,
        after_sequence: i64,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut events = Vec::new();
        let mut after = after_sequence;
        loop {
            let wanted = limit.saturating_sub(i64::try_from(events.len()).unwrap_or(i64::MAX));
            if wanted <= 0 {
                return Ok(events);
            }
            let (numbers, last) = self.sequenced_page(after, wanted, &mut events).await?;
            match last {
                Some(last) if numbers == wanted => after = last,
                _ => return Ok(events),
            }
        }
    }

    /// Reads the next `limit` sequence numbers after `after` and appends their events to
    /// `events`; how many numbers there were, and the last.
    async fn sequenced_page(
        &self,
        after: i64,
        limit: i64,
        events: &mut Vec<RecordedEvent>,
    ) -> Result<(i64, Option<i64>), StoreError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "SELECT sequence, event_position FROM event_sequence \
                 WHERE sequence > $1 ORDER BY sequence LIMIT $2",
            )
            .await?;
        let numbered = client
            .query(&statement, &[&after, &limit])
            .await?
            .iter()
            .map(|row| Ok((row.try_get::<_, i64>(0)?, row.try_get::<_, i64>(1)?)))
            .collect::<Result<Vec<(i64, i64)>, StoreError>>()?;
        let count = i64::try_from(numbered.len()).unwrap_or(i64::MAX);
        let last = numbered.last().map(|&(sequence, _)| sequence);
        let positions: Vec<i64> = numbered.iter().map(|&(_, position)| position).collect();
        let rows = match compact_range(&positions) {
            None if positions.is_empty() => return Ok((0, None)),
            Some((low, high)) => {
                let statement = client
                    .prepare_cached(&format!(
                        "SELECT {EVENT_COLUMNS} FROM events WHERE position BETWEEN $1 AND $2"
                    ))
                    .await?;
                client.query(&statement, &[&low, &high]).await?
            }
            None => {
                let statement = client
                    .prepare_cached(&format!(
                        "SELECT {EVENT_COLUMNS} FROM events WHERE position = ANY($1)"
                    ))
                    .await?;
                client.query(&statement, &[&positions]).await?
            }
        };
        let mut by_position = HashMap::with_capacity(rows.len());
        for row in &rows {
            by_position.insert(row.try_get::<_, i64>(0)?, row);
        }
        for (sequence, position) in numbered {
            if let Some(row) = by_position.get(&position) {
                let mut event = decode_event(row)?;
                event.sequence = Some(sequence);
                events.push(event);
            }
        }
        Ok((count, last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_positions_are_one_range_and_scattered_ones_are_not() {
        assert_eq!(compact_range(&[]), None);
        assert_eq!(compact_range(&[7]), Some((7, 7)));
        assert_eq!(compact_range(&[12, 10, 11]), Some((10, 12)));
        let page: Vec<i64> = (1_000..2_000).collect();
        assert_eq!(compact_range(&page), Some((1_000, 1_999)));
        // Interleaved transactions leave holes: still one range.
        let holes: Vec<i64> = (0..1_000).map(|i| 5_000 + 3 * i).collect();
        assert_eq!(compact_range(&holes), Some((5_000, 7_997)));
        // One far-away event makes the range huge: looked up one by one.
        let mut far = page.clone();
        far.push(10_000_000);
        assert_eq!(compact_range(&far), None);
        assert_eq!(compact_range(&[1, i64::MAX]), None);
    }
}
