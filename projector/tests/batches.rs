//! Set-based batches compose like single events: applying the log in batches that hold
//! several events of one stream, with replayed (older, already applied) events inside the
//! batch and across batches, gives exactly the rows that applying it one event per
//! transaction gives.

mod support;

use eventstore::testing::TestDatabase;
use eventstore::{connect_pool, LogCheckpoint};
use projector::apply::{apply_batch, BatchItem};
use projector::source_log::batch_item;
use projector::worker::WorkerStatus;
use support::*;

async fn fresh_read_models() -> Result<(TestDatabase, deadpool_postgres::Pool)> {
    let read = TestDatabase::create().await?;
    readmodel::migrate(&read.url).await?;
    let pool = connect_pool(&read.url, 2)?;
    Ok((read, pool))
}

async fn forget_checkpoints(pool: &deadpool_postgres::Pool) -> Result<()> {
    pool.get()
        .await?
        .execute("DELETE FROM read_model.checkpoints", &[])
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_with_replays_give_the_rows_of_one_event_at_a_time() -> Result<()> {
    let events = TestDatabase::create().await?;
    let shop = Shop {
        store: events.store.clone(),
    };
    workload(&shop, 11, 60).await?;
    let log = events
        .store
        .read_log(LogCheckpoint::START, 1_000_000)
        .await?;
    let items: Vec<BatchItem> = log.iter().map(batch_item).collect();
    assert!(items.len() > 200, "a few hundred events ({})", items.len());
    let status = WorkerStatus::new("test");

    // Reference: one event per transaction, as the projector did before set-based batches.
    let (one_by_one, pool) = fresh_read_models().await?;
    for item in &items {
        apply_batch(&pool, std::slice::from_ref(item), None, &status).await?;
    }
    let reference = dump(&one_by_one).await?;

    // The whole log as one batch: every stream's events fold together.
    let (whole, pool) = fresh_read_models().await?;
    apply_batch(&pool, &items, None, &status).await?;
    assert_eq!(dump(&whole).await?, reference, "one batch of everything");

    // Overlapping batches with the checkpoints forgotten in between: each batch starts with
    // events already applied and holds a second copy of some, so rows must skip events at
    // or below their version, inside a batch and across batches.
    for (size, overlap) in [(7usize, 3usize), (50, 20), (181, 90)] {
        let (replayed, pool) = fresh_read_models().await?;
        let mut start = 0;
        while start < items.len() {
            let end = (start + size).min(items.len());
            let from = start.saturating_sub(overlap);
            let mut batch: Vec<BatchItem> = items[from..end].to_vec();
            batch.extend_from_slice(&items[start..end.min(start + overlap)]);
            batch.extend_from_slice(&items[end.saturating_sub(2)..end]);
            forget_checkpoints(&pool).await?;
            apply_batch(&pool, &batch, None, &status).await?;
            start = end;
        }
        assert_eq!(
            dump(&replayed).await?,
            reference,
            "batches of {size} overlapping by {overlap}"
        );
    }

    // Replaying the whole log onto the built models changes nothing.
    let (again, pool) = fresh_read_models().await?;
    apply_batch(&pool, &items, None, &status).await?;
    forget_checkpoints(&pool).await?;
    apply_batch(&pool, &items, None, &status).await?;
    assert_eq!(dump(&again).await?, reference, "the log applied twice");
    Ok(())
}
