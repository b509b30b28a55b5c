//! The stream-length curve: restock latency through the command API on products whose
//! streams already hold 10, 1,000, 10,000, 100,000 ... events.
//!
//! The streams are filled directly with [`crate::shop::create_products_with_history`]
//! (domain-decided events, valid hash chains). Each measured restock adds an event, so a
//! length gets as many products as keep every stream within 10 % of its nominal length
//! (`products_for`): the restocks go round-robin over them, one at a time (one client),
//! after a few unmeasured warm-up restocks.

use std::sync::Arc;

use anyhow::{bail, Result};
use eventstore::EventStore;
use uuid::Uuid;

use super::http::RestockApi;
use crate::shop::create_products_with_history;
use crate::support::{closed_loop, Percentiles};

/// Events per append when filling.
const FILL_BATCH: usize = 1_000;

/// One point of the curve.
#[derive(Debug, Clone)]
pub struct Point {
    /// Events in each stream before the first restock.
    pub length: usize,
    /// Products of that length the restocks went round-robin over.
    pub products: usize,
    pub latency: Percentiles,
    pub failed: u64,
}

/// Products of `length` events for `restocks` round-robin restocks to grow none of them
/// by more than a tenth of `length` (at least 1, at most `restocks`).
pub fn products_for(length: usize, restocks: usize) -> usize {
    let growth_allowed = (length / 10).max(1);
    restocks.div_ceil(growth_allowed).clamp(1, restocks.max(1))
}

/// Fills the products of every length; returns them per length.
pub async fn prepare(
    store: &EventStore,
    lengths: &[usize],
    restocks: usize,
) -> Result<Vec<(usize, Vec<Uuid>)>> {
    let mut prepared = Vec::with_capacity(lengths.len());
    for &length in lengths {
        if length == 0 {
            bail!("a stream length must be at least 1");
        }
        let count = products_for(length, restocks);
        let ids = create_products_with_history(
            store,
            count,
            length,
            FILL_BATCH,
            &format!("CURVE{length}"),
        )
        .await?;
        prepared.push((length, ids));
    }
    Ok(prepared)
}

/// Measures `restocks` sequential restocks per length (after `warmup` unmeasured ones).
pub async fn measure(
    api: Arc<RestockApi>,
    prepared: &[(usize, Vec<Uuid>)],
    restocks: usize,
    warmup: usize,
) -> Result<Vec<Point>> {
    let mut points = Vec::with_capacity(prepared.len());
    for (length, ids) in prepared {
        let ids = Arc::new(ids.clone());
        let run = |total: usize, offset: usize| {
            let api = api.clone();
            let ids = ids.clone();
            closed_loop(1, total as u64, move |i| {
                let api = api.clone();
                let id = ids[(offset + i as usize) % ids.len()];
                async move { api.restock(id).await }
            })
        };
        run(warmup, 0).await;
        let mut measured = run(restocks, warmup).await;
        let Some(latency) = Percentiles::of(&mut measured.latencies) else {
            bail!(
                "no restock succeeded at length {length}: {:?}",
                measured.errors
            );
        };
        points.push(Point {
            length: *length,
            products: ids.len(),
            latency,
            failed: measured.failed,
        });
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enough_products_to_keep_streams_near_their_length() {
        assert_eq!(products_for(10, 300), 300);
        assert_eq!(products_for(1_000, 300), 3);
        assert_eq!(products_for(10_000, 300), 1);
        assert_eq!(products_for(100_000, 300), 1);
        assert_eq!(products_for(5, 0), 1);
    }
}
