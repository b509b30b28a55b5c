//! Stall detection that cannot lie: an idle projector stays ready however long nothing
//! happens; a projector whose read model is blocked (a lock held by another session, as a
//! migration or a stuck transaction would: its batch cannot commit), or whose log is held
//! back by an open transaction in the event store (events wait, nothing advances), turns
//! unready within the bound (`AGORA_PROJECTOR_STALL_AFTER`, here 2 s) and says which
//! projections stalled; once the block lifts it is ready again and nothing was lost.

mod support;

use std::time::{Duration, Instant};

use anyhow::Result;
use domain::{ProductCommand, RestockQuantity};
use eventstore::testing::TestDatabase;
use projector::service::Projector;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_read_model_is_reported_stalled_and_recovers_with_nothing_lost() -> Result<()> {
    let events = TestDatabase::create().await?;
    let read = TestDatabase::create().await?;
    let shop = Shop {
        store: events.store.clone(),
    };
    let product = shop.create_product("STALL-1", 500, 5).await?;
    let mut config = settings(&events, &read, None);
    config.stall_after = Duration::from_secs(2);
    let projector = Projector::start(config).await?;
    let port = projector.port;
    caught_up_with_log(&events, &read, Duration::from_secs(60)).await?;

    // Idle for longer than the bound: still ready (nothing waits for it).
    let idle_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < idle_until {
        let (code, body) = health(port, "/readyz").await.expect("an answer");
        assert_eq!(code, 200, "an idle projector is not stalled: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Another session holds the products table against writes: the next batch cannot
    // commit. (EXCLUSIVE, not ACCESS EXCLUSIVE: that one takes a transaction id, which would
    // hold the log back instead; the second part below does that on purpose.)
    let mut blocker = read.store.pool().get().await?;
    let lock = blocker.transaction().await?;
    lock.batch_execute("LOCK TABLE read_model.products_v1 IN EXCLUSIVE MODE")
        .await?;
    let blocked_at = Instant::now();
    shop.product_command(
        product,
        ProductCommand::Restock {
            quantity: RestockQuantity::parse(7)?,
        },
    )
    .await?;
    let body = eventstore::testing::eventually_some(
        "the projector to report the stall",
        Duration::from_secs(30),
        || async {
            let (code, body) = health(port, "/readyz").await?;
            (code == 503 && body["stalled"]["products"].as_u64().is_some()).then_some(body)
        },
    )
    .await;
    let took = blocked_at.elapsed();
    assert_eq!(body["workers"]["log"], "running", "{body}");
    assert!(
        took < Duration::from_secs(10),
        "reported {took:?} after the block (bound 2 s, checked every second)"
    );
    // The gauge (refreshed every second) shows it too.
    eventually(
        "the stall gauge to pass the bound",
        Duration::from_secs(10),
        || async {
            let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
                .await?
                .text()
                .await?;
            let stalled: f64 = metrics
                .lines()
                .find(|l| l.starts_with("projection_stalled_seconds{projection=\"products\"}"))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            Ok(stalled >= 2.0)
        },
    )
    .await?;

    // The block lifts: ready again, and the restock is there.
    lock.rollback().await?;
    drop(blocker);
    caught_up_with_log(&events, &read, Duration::from_secs(60)).await?;
    eventually(
        "the projector to be ready again",
        Duration::from_secs(30),
        || async {
            Ok(health(port, "/readyz")
                .await
                .is_some_and(|(code, _)| code == 200))
        },
    )
    .await?;
    let client = read.store.pool().get().await?;
    assert_eq!(on_hand(&client, product).await?, 12);

    // An open transaction in the event store (it has a transaction id) holds the gap-free
    // reader back while a later one commits: events wait, nothing advances.
    let mut holder = events.store.pool().get().await?;
    let open = holder.transaction().await?;
    open.query_one("SELECT pg_current_xact_id()", &[]).await?;
    shop.product_command(
        product,
        ProductCommand::Restock {
            quantity: RestockQuantity::parse(1)?,
        },
    )
    .await?;
    eventstore::testing::eventually_some(
        "the projector to report the log held back",
        Duration::from_secs(30),
        || async {
            let (code, body) = health(port, "/readyz").await?;
            (code == 503 && body["stalled"]["orders"].as_u64().is_some()).then_some(())
        },
    )
    .await;
    open.rollback().await?;
    drop(holder);
    caught_up_with_log(&events, &read, Duration::from_secs(60)).await?;
    eventually(
        "the projector to be ready again",
        Duration::from_secs(30),
        || async {
            Ok(health(port, "/readyz")
                .await
                .is_some_and(|(code, _)| code == 200))
        },
    )
    .await?;
    assert_eq!(on_hand(&client, product).await?, 13);
    projector.stop().await?;
    Ok(())
}
