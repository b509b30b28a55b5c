//! Zero-downtime rebuilds: while a live projector runs and queries hammer the views, each
//! projection is rebuilt into a new version; no query sees a half-built model, the new
//! model equals the one it replaced, and the live projector carries on into it.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eventstore::connect_pool;
use eventstore::testing::TestDatabase;
use projector::rebuild::rebuild;
use projector::service::Projector;
use support::*;

/// What the queries must always see while the log stands still.
async fn snapshot(client: &deadpool_postgres::Object) -> Result<(i64, i64, i64, i64, i64)> {
    let products = client
        .query_one(
            "SELECT count(*), COALESCE(sum(on_hand), 0)::int8 FROM read_model.products",
            &[],
        )
        .await?;
    let orders = client
        .query_one(
            "SELECT count(*), COALESCE(sum(total_cents), 0)::int8 FROM read_model.orders",
            &[],
        )
        .await?;
    let sales = client
        .query_one(
            "SELECT COALESCE(sum(orders_placed), 0)::int8 FROM read_model.sales WHERE bucket = 'day'",
            &[],
        )
        .await?;
    Ok((
        products.get(0),
        products.get(1),
        orders.get(0),
        orders.get(1),
        sales.get(0),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuilding_every_projection_under_queries_is_invisible() -> Result<()> {
    let events = TestDatabase::create().await?;
    let read = TestDatabase::create().await?;
    let shop = Shop {
        store: events.store.clone(),
    };
    workload(&shop, 5, 400).await?;
    let live = Projector::start(settings(&events, &read, None)).await?;
    caught_up_with_log(&events, &read, Duration::from_secs(60)).await?;
    let before = dump_version(&read, 1).await?;
    let expected = snapshot(&read.store.pool().get().await?).await?;

    // Readers that must never see anything but the complete model.
    let stop = Arc::new(AtomicBool::new(false));
    let queries = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let pool = read.store.pool().clone();
        let (stop, queries) = (stop.clone(), queries.clone());
        readers.push(tokio::spawn(async move {
            let client = pool.get().await?;
            while !stop.load(Ordering::SeqCst) {
                let seen = snapshot(&client).await?;
                anyhow::ensure!(
                    seen == expected,
                    "a query saw {seen:?}, expected {expected:?}"
                );
                queries.fetch_add(1, Ordering::SeqCst);
            }
            anyhow::Ok(())
        }));
    }

    let read_pool = connect_pool(&read.url, 4)?;
    for name in ["products", "orders", "sales", "top_products"] {
        let mut reports = 0;
        let report = rebuild(&events.store, &read_pool, name, 700, true, |p| {
            reports += 1;
            assert!(p.applied <= p.total + 1_000);
        })
        .await?;
        assert_eq!((report.from_version, report.to_version), (1, 2));
        assert!(reports >= 2, "progress was reported");
        println!(
            "rebuilt {name}: {} events at {:.0}/s",
            report.events,
            report.events_per_second()
        );
    }
    stop.store(true, Ordering::SeqCst);
    for reader in readers {
        reader.await??;
    }
    assert!(
        queries.load(Ordering::SeqCst) > 10,
        "queries ran during the rebuilds"
    );
    assert_eq!(
        dump_version(&read, 2).await?,
        before,
        "the new model equals the old one"
    );

    // The live projector carries on into the new versions.
    workload(&shop, 6, 50).await?;
    eventually(
        "the live projector to feed version 2",
        Duration::from_secs(60),
        || async {
            let checkpoints = log_checkpoints(&read).await?;
            let head = log_head(&events).await?;
            Ok(checkpoints.len() == 4 && checkpoints.iter().all(|c| *c == head))
        },
    )
    .await?;
    let reference = TestDatabase::create().await?;
    let fresh = Projector::start(settings(&events, &reference, None)).await?;
    caught_up_with_log(&events, &reference, Duration::from_secs(60)).await?;
    assert_eq!(
        dump_version(&read, 2).await?,
        dump_version(&reference, 1).await?
    );
    fresh.stop().await?;
    live.stop().await?;
    Ok(())
}
