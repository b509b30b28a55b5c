//! Parked streams: an event a projection cannot apply (here: a read-model constraint broken
//! on purpose for large stock) parks that product's stream only; later events of the stream
//! are held while every other product keeps converging; a retry while the cause is still
//! there parks it again; after the fix a retry drains the held events in order and the read
//! model equals the fold of the log; a skip leaves the parked event out, records who skipped
//! what, and applies the rest. Requests are written as the query API writes them.

mod support;

use std::time::Duration;

use anyhow::Result;
use domain::{ProductCommand, RestockQuantity};
use eventstore::testing::TestDatabase;
use projector::service::Projector;
use support::*;
use uuid::Uuid;

async fn restock(shop: &Shop, product: Uuid, quantity: i64) -> Result<()> {
    shop.product_command(
        product,
        ProductCommand::Restock {
            quantity: RestockQuantity::parse(quantity)?,
        },
    )
    .await
}

/// `(event versions held, error)` of `product` parked in `products`, if it is.
async fn parked(
    client: &tokio_postgres::Client,
    product: Uuid,
) -> Result<Option<(Vec<i64>, String)>> {
    let Some(row) = client
        .query_opt(
            "SELECT error FROM read_model.parked_streams \
             WHERE projection = 'products' AND stream_id = $1",
            &[&product],
        )
        .await?
    else {
        return Ok(None);
    };
    let held = client
        .query(
            "SELECT stream_version FROM read_model.held_events \
             WHERE projection = 'products' AND stream_id = $1 ORDER BY stream_version",
            &[&product],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(Some((held, row.get(0))))
}

/// Records an admin's request as the query API does; waits until the projector carried it
/// out; its outcome.
async fn request(
    client: &tokio_postgres::Client,
    product: Uuid,
    action: &str,
    reason: &str,
) -> Result<(String, Option<Uuid>)> {
    let id: i64 = client
        .query_one(
            "INSERT INTO read_model.parked_actions (projection, stream_id, action, reason, \
             requested_by) VALUES ('products', $1, $2, $3, 'root') RETURNING id",
            &[&product, &action, &reason],
        )
        .await?
        .get(0);
    Ok(eventstore::testing::eventually_some(
        "the projector to carry out the request",
        Duration::from_secs(30),
        || async {
            let row = client
                .query_one(
                    "SELECT outcome, skipped_event_id FROM read_model.parked_actions WHERE id = $1",
                    &[&id],
                )
                .await
                .ok()?;
            row.get::<_, Option<String>>(0)
                .map(|o| (o, row.get::<_, Option<Uuid>>(1)))
        },
    )
    .await)
}

/// An event store and read models whose products table refuses large stock (a fault of the
/// read side, not of the events), a session on the read models, and a shop on the store.
async fn refusing_large_stock(
) -> Result<(TestDatabase, TestDatabase, deadpool_postgres::Object, Shop)> {
    let events = TestDatabase::create().await?;
    let read = TestDatabase::create().await?;
    readmodel::migrate(&read.url).await?;
    let client = read.store.pool().get().await?;
    client
        .batch_execute(
            "ALTER TABLE read_model.products_v1 ADD CONSTRAINT test_small_stock CHECK (on_hand < 1000)",
        )
        .await?;
    let shop = Shop {
        store: events.store.clone(),
    };
    Ok((events, read, client, shop))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_cannot_be_applied_parks_alone_and_drains_after_the_fix() -> Result<()> {
    let (events, read, client, shop) = refusing_large_stock().await?;
    let stuck = shop.create_product("PARK-1", 500, 5).await?;
    let other = shop.create_product("PARK-2", 700, 3).await?;
    restock(&shop, stuck, 2000).await?; // version 2: refused by the read model
    restock(&shop, stuck, 1).await?; // version 3: held, never applied past version 2
    restock(&shop, other, 4).await?;

    let projector = Projector::start(settings(&events, &read, None)).await?;
    caught_up_with_log(&events, &read, Duration::from_secs(60)).await?;
    let (held, error) = parked(&client, stuck).await?.expect("the stream is parked");
    assert_eq!(
        held,
        [2, 3],
        "the failing event and the one after it are held"
    );
    assert!(error.contains("test_small_stock"), "{error}");
    assert_eq!(
        on_hand(&client, stuck).await?,
        5,
        "nothing past version 1 applied"
    );
    assert_eq!(
        on_hand(&client, other).await?,
        7,
        "the other stream goes on"
    );
    let poison: i64 = client
        .query_one(
            "SELECT count(*) FROM read_model.poison_events \
             WHERE projection = 'products' AND stream_id = $1 AND stream_version = 2",
            &[&stuck],
        )
        .await?
        .get(0);
    assert_eq!(poison, 1, "the failing event is recorded as poison too");
    // The parked stream keeps holding what comes; others keep converging.
    restock(&shop, stuck, 2).await?;
    restock(&shop, other, 1).await?;
    caught_up_with_log(&events, &read, Duration::from_secs(60)).await?;
    assert_eq!(
        parked(&client, stuck).await?.map(|p| p.0),
        Some(vec![2, 3, 4])
    );
    assert_eq!(on_hand(&client, other).await?, 8);

    // A retry while the cause is still there: parked again, at the same event.
    let (outcome, _) = request(&client, stuck, "retry", "try again").await?;
    assert!(
        outcome.starts_with("parked again at version 2"),
        "{outcome}"
    );
    assert_eq!(on_hand(&client, stuck).await?, 5);

    // The fix, then a retry: the held events apply in order, the stream goes on.
    client
        .batch_execute("ALTER TABLE read_model.products_v1 DROP CONSTRAINT test_small_stock")
        .await?;
    let (outcome, _) = request(&client, stuck, "retry", "constraint dropped").await?;
    assert_eq!(outcome, "drained: 3 held events applied");
    assert_eq!(parked(&client, stuck).await?, None);
    assert_eq!(on_hand(&client, stuck).await?, 5 + 2000 + 1 + 2);
    restock(&shop, stuck, 10).await?;
    caught_up_with_log(&events, &read, Duration::from_secs(60)).await?;
    eventually(
        "the unparked stream to go on",
        Duration::from_secs(30),
        || async { Ok(on_hand(&client, stuck).await? == 2018) },
    )
    .await?;
    // The read models equal a rebuild-free fold of the whole log.
    let reference = TestDatabase::create().await?;
    let fresh = Projector::start(settings(&events, &reference, None)).await?;
    caught_up_with_log(&events, &reference, Duration::from_secs(60)).await?;
    fresh.stop().await?;
    assert_eq!(dump(&read).await?, dump(&reference).await?);
    projector.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skip_leaves_the_parked_event_out_and_records_who_skipped_what() -> Result<()> {
    let (events, read, client, shop) = refusing_large_stock().await?;
    let product = shop.create_product("SKIP-1", 500, 5).await?;
    restock(&shop, product, 5000).await?;
    restock(&shop, product, 1).await?;
    let projector = Projector::start(settings(&events, &read, None)).await?;
    caught_up_with_log(&events, &read, Duration::from_secs(60)).await?;
    assert!(parked(&client, product).await?.is_some());
    let skipped_event: Uuid = events
        .store
        .load_stream(product)
        .await?
        .events
        .iter()
        .find(|e| e.version == 2)
        .map(|e| e.event_id)
        .expect("version 2");

    let (outcome, skipped) =
        request(&client, product, "skip", "bad restock, to be corrected").await?;
    assert_eq!(outcome, "drained: 1 held events applied");
    assert_eq!(skipped, Some(skipped_event));
    assert_eq!(parked(&client, product).await?, None);
    assert_eq!(
        on_hand(&client, product).await?,
        6,
        "everything but the skipped event"
    );
    let audit = client
        .query_one(
            "SELECT requested_by, reason, done_at IS NOT NULL FROM read_model.parked_actions \
             WHERE action = 'skip'",
            &[],
        )
        .await?;
    assert_eq!(audit.get::<_, String>(0), "root");
    assert_eq!(audit.get::<_, String>(1), "bad restock, to be corrected");
    assert!(audit.get::<_, bool>(2));
    // A request for a stream that is not parked does nothing but say so.
    let (outcome, skipped) = request(&client, product, "skip", "again").await?;
    assert_eq!((outcome.as_str(), skipped), ("not parked", None));
    assert_eq!(on_hand(&client, product).await?, 6);
    projector.stop().await?;
    Ok(())
}

/// A projector that starts again retries every parked stream on its own: the cause may be
/// gone (here: the constraint dropped while it was down).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_projector_drains_streams_whose_cause_is_gone() -> Result<()> {
    let (events, read, client, shop) = refusing_large_stock().await?;
    let product = shop.create_product("RESTART-1", 500, 5).await?;
    restock(&shop, product, 3000).await?;
    let projector = Projector::start(settings(&events, &read, None)).await?;
    caught_up_with_log(&events, &read, Duration::from_secs(60)).await?;
    assert!(parked(&client, product).await?.is_some());
    projector.stop().await?;
    client
        .batch_execute("ALTER TABLE read_model.products_v1 DROP CONSTRAINT test_small_stock")
        .await?;
    let projector = Projector::start(settings(&events, &read, None)).await?;
    eventually(
        "the parked stream to drain at start",
        Duration::from_secs(30),
        || async { Ok(parked(&client, product).await?.is_none()) },
    )
    .await?;
    assert_eq!(on_hand(&client, product).await?, 3005);
    projector.stop().await?;
    Ok(())
}
