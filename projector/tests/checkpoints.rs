//! A saved checkpoint never moves backwards: when two writers of one projection race (two
//! projectors on the log, a Kafka partition's old and new owner), the one that read the
//! checkpoint before the other committed a later one cannot put an earlier one back.

mod support;

use std::time::Duration;

use eventstore::testing::TestDatabase;
use eventstore::{connect_pool, LogCheckpoint};
use projector::apply::{apply_batch, apply_in, saved_positions, BatchItem, SourcePosition, Target};
use projector::projections;
use projector::source_log::batch_item;
use projector::worker::WorkerStatus;
use support::*;

/// Runs `ahead` and `behind` in two transactions that both read the saved checkpoint
/// before either writes: `ahead` writes first and holds its row until `behind` waits on
/// it, then commits; `behind` commits after it. Returns what is saved then.
async fn race(
    pool: &deadpool_postgres::Pool,
    target: &Target,
    ahead: Vec<BatchItem>,
    behind: Vec<BatchItem>,
) -> Result<projector::apply::SavedPositions> {
    let mut first = pool.get().await?;
    let first_tx = first.transaction().await?;
    apply_in(&first_tx, &ahead, std::slice::from_ref(target), false).await?;

    let (second_pool, second_target) = (pool.clone(), target.clone());
    let second = tokio::spawn(async move {
        let mut client = second_pool.get().await?;
        let tx = client.transaction().await?;
        apply_in(&tx, &behind, std::slice::from_ref(&second_target), false).await?;
        tx.commit().await?;
        anyhow::Ok(())
    });
    let observer = pool.get().await?;
    eventually(
        "the second writer to wait for the first one's checkpoint row",
        Duration::from_secs(30),
        || async {
            let waiting: i64 = observer
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    &[],
                )
                .await?
                .get(0);
            Ok(waiting > 0)
        },
    )
    .await?;
    first_tx.commit().await?;
    second.await??;
    Ok(saved_positions(&observer, target, ahead[0].position.source()).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_checkpoint_is_never_replaced_by_an_earlier_one() -> Result<()> {
    let events = TestDatabase::create().await?;
    let shop = Shop {
        store: events.store.clone(),
    };
    for n in 0..10 {
        shop.create_product(&format!("CP-{n}"), 100, 1).await?;
    }
    let log = whole_log(&events, 10).await?;
    assert_eq!(log.len(), 10);
    let read = TestDatabase::create().await?;
    readmodel::migrate(&read.url).await?;
    let pool = connect_pool(&read.url, 4)?;
    // `sales` writes no row for product events, so the two writers meet only at the
    // checkpoint (rows they both write would fail one of them as a conflict instead).
    let target = Target {
        projection: projections::by_name("sales").ok_or_else(|| anyhow::anyhow!("sales"))?,
        version: 1,
    };

    // From the log: a checkpoint saved, then a writer at event 10 and one at event 5.
    let items: Vec<BatchItem> = log.iter().map(batch_item).collect();
    apply_batch(
        &pool,
        &items[..1],
        Some(&target),
        &WorkerStatus::new("test"),
    )
    .await?;
    let saved = race(&pool, &target, items.clone(), items[..5].to_vec()).await?;
    assert_eq!(
        saved.log,
        Some(LogCheckpoint::after(&log[9])),
        "the log checkpoint stays at the later event"
    );

    // From Kafka: the same with offsets (the next offset to read, per partition).
    let on_kafka: Vec<BatchItem> = items
        .iter()
        .enumerate()
        .map(|(offset, item)| BatchItem {
            position: SourcePosition::Kafka {
                partition: "t.product/0".into(),
                offset: offset as i64,
            },
            ..item.clone()
        })
        .collect();
    apply_batch(
        &pool,
        &on_kafka[..1],
        Some(&target),
        &WorkerStatus::new("test"),
    )
    .await?;
    let saved = race(&pool, &target, on_kafka.clone(), on_kafka[..5].to_vec()).await?;
    assert_eq!(saved.kafka.get("t.product/0"), Some(&10));
    Ok(())
}
