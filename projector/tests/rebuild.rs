//! Zero-downtime rebuilds: while a live projector runs and queries hammer the views, each
//! projection is rebuilt into a new version; no query sees a half-built model, the new
//! model equals the one it replaced, and the live projector carries on into it. One
//! rebuild per projection at a time: a second one is refused, other projections' proceed.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eventstore::connect_pool;
use eventstore::testing::TestDatabase;
use projector::rebuild::{rebuild, rebuild_lock_key, RebuildError, RebuildReport};
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
    for name in ["products", "orders", "sales", "top_products", "customers"] {
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
            Ok(checkpoints.len() == projector::projections::all().len()
                && checkpoints.iter().all(|c| *c == head))
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

/// How many rebuild locks sessions hold in `read`'s database.
async fn rebuild_locks_held(client: &deadpool_postgres::Object) -> Result<i64> {
    let (class, _) = rebuild_lock_key("");
    Ok(client
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND objsubid = 2 AND classid = $1::int4::oid",
            &[&class],
        )
        .await?
        .get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_is_rebuilt_by_one_rebuild_at_a_time() -> Result<()> {
    let events = TestDatabase::create().await?;
    let read = TestDatabase::create().await?;
    readmodel::migrate(&read.url).await?;
    let shop = Shop {
        store: events.store.clone(),
    };
    workload(&shop, 8, 40).await?;
    let pool = connect_pool(&read.url, 8)?;
    let observer = pool.get().await?;
    // Rebuilds read which version is live right after taking their lock: holding that
    // table keeps a rebuild that got its lock from going further, so the two below are
    // certainly concurrent.
    let mut holder = pool.get().await?;
    let hold = holder.transaction().await?;
    hold.batch_execute("LOCK TABLE read_model.projections IN ACCESS EXCLUSIVE MODE")
        .await?;
    let start = |name: &'static str| {
        let (store, pool) = (events.store.clone(), pool.clone());
        tokio::spawn(async move { rebuild(&store, &pool, name, 500, false, |_| {}).await })
    };
    let (one, two) = (start("orders"), start("orders"));
    let other = start("products");
    eventually(
        "one of the two rebuilds of orders to end",
        Duration::from_secs(30),
        || async { Ok(one.is_finished() || two.is_finished()) },
    )
    .await?;
    eventually(
        "the rebuild locks of orders and products to be held together",
        Duration::from_secs(30),
        || async { Ok(rebuild_locks_held(&observer).await? == 2) },
    )
    .await?;
    assert!(
        !(one.is_finished() && two.is_finished()),
        "the rebuild holding the lock goes on"
    );
    hold.rollback().await?;

    let outcomes: Vec<std::result::Result<RebuildReport, RebuildError>> =
        vec![one.await?, two.await?];
    let refused: Vec<&RebuildError> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(
        matches!(refused.as_slice(), [RebuildError::Busy(name)] if name == "orders"),
        "exactly one rebuild of orders is refused, as busy: {outcomes:?}"
    );
    let done: Vec<&RebuildReport> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].from_version, done[0].to_version), (1, 2));
    let report = other.await??;
    assert_eq!((report.from_version, report.to_version), (1, 2));
    assert_eq!(
        rebuild_locks_held(&observer).await?,
        0,
        "the locks are released"
    );

    // Free again: the next rebuild of orders proceeds, and builds what the first one did.
    let report = rebuild(&events.store, &pool, "orders", 500, true, |_| {}).await?;
    assert_eq!((report.from_version, report.to_version), (2, 3));
    let orders = |version: i32| {
        let observer = &observer;
        async move {
            let rows = observer
                .query(
                    &format!(
                        "SELECT row_to_json(t)::text FROM read_model.orders_v{version} t ORDER BY 1"
                    ),
                    &[],
                )
                .await?;
            anyhow::Ok(
                rows.iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect::<Vec<_>>(),
            )
        }
    };
    let built = orders(2).await?;
    assert!(!built.is_empty());
    assert_eq!(orders(3).await?, built);
    Ok(())
}
