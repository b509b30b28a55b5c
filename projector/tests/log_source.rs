//! The projector on the Postgres log: read models equal what the domain says, replays
//! change nothing, a SIGKILLed projector resumes exactly once, a poison event parks its stream,
//! and a worker retrying a passing failure is unready until it recovers.

mod support;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use eventstore::testing::TestDatabase;
use projector::service::Projector;
use support::*;
use uuid::Uuid;

/// A projector child process, SIGKILLed and reaped when dropped.
struct Process(Child);

impl Process {
    fn kill(&mut self) -> std::io::Result<()> {
        self.0.kill()?;
        self.0.wait().map(|_| ())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

fn spawn_projector(events: &TestDatabase, read: &TestDatabase, batch: usize) -> Process {
    let mut command = Command::new(env!("CARGO_BIN_EXE_projector"));
    command
        .env("DATABASE_URL", &events.url)
        .env("READ_DATABASE_URL", &read.url)
        .env("PROJECTOR_ADDR", "127.0.0.1:0")
        .env("AGORA_PROJECTOR_BATCH", batch.to_string())
        .env_remove("KAFKA_BROKERS")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Process(command.spawn().expect("the projector binary starts"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_models_agree_with_the_domain_and_replays_change_nothing() -> Result<()> {
    let events = TestDatabase::create().await?;
    let read = TestDatabase::create().await?;
    let shop = Shop {
        store: events.store.clone(),
    };
    workload(&shop, 1, 120).await?;
    let projector = Projector::start(settings(&events, &read, None)).await?;
    caught_up_with_log(&events, &read, Duration::from_secs(60)).await?;

    let client = read.store.pool().get().await?;
    let all = events
        .store
        .read_log(eventstore::LogCheckpoint::START, 1_000_000)
        .await?;
    let types: HashSet<&str> = all.iter().map(|e| e.event_type.as_str()).collect();
    for order_event in domain::OrderEvent::EVENT_TYPES {
        assert!(
            types.contains(order_event),
            "the workload records {order_event}"
        );
    }
    let mut streams: HashMap<Uuid, Vec<&eventstore::RecordedEvent>> = HashMap::new();
    for event in &all {
        streams.entry(event.stream_id).or_default().push(event);
    }
    let (mut placed, mut paid, mut revenue, mut units) = (0i64, 0i64, 0i64, 0i64);
    let mut sold: HashMap<Uuid, (i64, i64)> = HashMap::new();
    for (id, stream) in &streams {
        let version = stream.len() as i64;
        if stream[0].stream_type == "product" {
            let product = domain::Product::from_events(stream.iter().map(|e| {
                domain::ProductEvent::from_stored(&e.event_type, 1, &e.payload).expect("decodes")
            }));
            let row = client
                .query_one(
                    "SELECT on_hand, reserved, price_cents, discontinued, version \
                     FROM read_model.products WHERE id = $1",
                    &[id],
                )
                .await?;
            let got: (i64, i64, i64, bool, i64) =
                (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
            let price = product.price().map(|p| p.get()).unwrap_or_default();
            assert_eq!(
                got,
                (
                    product.on_hand(),
                    product.reserved(),
                    price,
                    product.is_discontinued(),
                    version
                ),
                "product {id}"
            );
        } else {
            let order = domain::Order::from_events(stream.iter().map(|e| {
                domain::OrderEvent::from_stored(&e.event_type, e.schema_version as u32, &e.payload)
                    .expect("decodes")
            }));
            assert_order_row(&client, *id, &order, version).await?;
            placed += 1;
            let sale = sale_of(&order);
            paid += i64::from(sale.paid);
            revenue += sale.revenue_cents;
            for (product, line_units, line_revenue) in sale.sold {
                units += line_units;
                let entry = sold.entry(product).or_default();
                entry.0 += line_units;
                entry.1 += line_revenue;
            }
        }
    }
    for bucket in ["hour", "day"] {
        let row = client
            .query_one(
                "SELECT sum(orders_placed)::int8, sum(orders_paid)::int8, sum(revenue_cents)::int8, \
                 sum(units_sold)::int8 FROM read_model.sales WHERE bucket = $1",
                &[&bucket],
            )
            .await?;
        let got: (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
        assert_eq!(got, (placed, paid, revenue, units), "{bucket} buckets");
    }
    for (product, (units, revenue)) in &sold {
        let row = client
            .query_one(
                "SELECT units_sold, revenue_cents, sku FROM read_model.top_products WHERE product_id = $1",
                &[product],
            )
            .await?;
        let got: (i64, i64) = (row.get(0), row.get(1));
        assert_eq!(got, (*units, *revenue), "top product {product}");
        assert!(!row.get::<_, String>(2).is_empty());
    }

    // Replaying the whole log onto the built models changes nothing.
    let before = dump(&read).await?;
    projector.stop().await?;
    client
        .execute("DELETE FROM read_model.checkpoints", &[])
        .await?;
    let projector = Projector::start(settings(&events, &read, None)).await?;
    caught_up_with_log(&events, &read, Duration::from_secs(60)).await?;
    assert_eq!(dump(&read).await?, before);
    projector.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_killed_mid_stream_resumes_exactly_once() -> Result<()> {
    let events = TestDatabase::create().await?;
    let shop = Shop {
        store: events.store.clone(),
    };
    workload(&shop, 2, 700).await?;
    // Counted without the log horizon: an open transaction anywhere on the server hides
    // the tail of the log from readers for a moment.
    let total: i64 = events
        .store
        .pool()
        .get()
        .await?
        .query_one("SELECT count(*) FROM events", &[])
        .await?
        .get(0);
    assert!(total > 3000, "several thousand events ({total})");

    let reference = TestDatabase::create().await?;
    let uninterrupted = Projector::start(settings(&events, &reference, None)).await?;
    caught_up_with_log(&events, &reference, Duration::from_secs(120)).await?;
    uninterrupted.stop().await?;

    let read = TestDatabase::create().await?;
    readmodel::migrate(&read.url).await?;
    let head = log_head(&events).await?;
    let mut killed = spawn_projector(&events, &read, 10);
    eventually(
        "the projector to get going",
        Duration::from_secs(60),
        || async { Ok(log_checkpoints(&read).await?.iter().any(|c| c.1 > 0)) },
    )
    .await?;
    killed.kill()?;
    let at_kill = log_checkpoints(&read).await?;
    assert!(
        at_kill.iter().any(|c| *c != head),
        "killed before the end: {at_kill:?}"
    );

    let _restarted = spawn_projector(&events, &read, 10);
    caught_up_with_log(&events, &read, Duration::from_secs(120)).await?;
    assert_eq!(dump(&read).await?, dump(&reference).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_is_recorded_and_parks_its_stream_only() -> Result<()> {
    let events = TestDatabase::create().await?;
    let read = TestDatabase::create().await?;
    let shop = Shop {
        store: events.store.clone(),
    };
    let product = shop.create_product("POISON-1", 500, 5).await?;
    shop.append_unreadable(product).await?;
    let after = shop.create_product("POISON-2", 700, 3).await?;

    let projector = Projector::start(settings(&events, &read, None)).await?;
    caught_up_with_log(&events, &read, Duration::from_secs(60)).await?;
    let client = read.store.pool().get().await?;
    let poison = client
        .query(
            "SELECT projection, stream_id, stream_version, error FROM read_model.poison_events ORDER BY 1",
            &[],
        )
        .await?;
    // Every projection decodes every event, so each records it once.
    let names: Vec<String> = poison.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        names,
        ["customers", "orders", "products", "sales", "top_products"]
    );
    for row in &poison {
        assert_eq!(row.get::<_, Uuid>(1), product);
        assert_eq!(row.get::<_, i64>(2), 2);
        assert!(
            row.get::<_, String>(3).contains("StockAdded"),
            "{}",
            row.get::<_, String>(3)
        );
    }
    let stock = on_hand(&client, product).await?;
    assert_eq!(stock, 5);
    let later: i64 = on_hand(&client, after).await?;
    assert_eq!(later, 3, "events after the poison one are projected");
    // Its stream is parked for every projection, the unreadable event held.
    let parked: i64 = client
        .query_one(
            "SELECT count(*) FROM read_model.parked_streams s JOIN read_model.held_events h \
             USING (projection, version, stream_id) WHERE s.stream_id = $1 AND h.stream_version = 2",
            &[&product],
        )
        .await?
        .get(0);
    assert_eq!(parked, names.len() as i64);
    projector.stop().await?;
    Ok(())
}

/// A read model the projector cannot write (here: a table gone) is not a poison event: the
/// worker fails for good and says so, instead of skipping every event as poison.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_read_model_fails_the_worker_instead_of_poisoning_events() -> Result<()> {
    let events = TestDatabase::create().await?;
    let read = TestDatabase::create().await?;
    let shop = Shop {
        store: events.store.clone(),
    };
    shop.create_product("BROKEN-1", 100, 1).await?;
    let projector = Projector::start(settings(&events, &read, None)).await?;
    caught_up_with_log(&events, &read, Duration::from_secs(60)).await?;
    let client = read.store.pool().get().await?;
    client
        .batch_execute("ALTER TABLE read_model.products_v1 RENAME TO products_v1_gone")
        .await?;
    shop.create_product("BROKEN-2", 100, 2).await?;
    let port = projector.port;
    eventually(
        "the projector to report its worker failed",
        Duration::from_secs(30),
        || async move {
            Ok(health(port, "/readyz")
                .await
                .is_some_and(|(code, body)| code == 503 && body["workers"]["log"] == "failed"))
        },
    )
    .await?;
    let poison: i64 = client
        .query_one("SELECT count(*) FROM read_model.poison_events", &[])
        .await?
        .get(0);
    assert_eq!(poison, 0, "no event was skipped as poison");
    assert!(
        projector.stop().await.is_err(),
        "the worker's failure is reported"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_retrying_a_passing_failure_is_unready_until_it_recovers() -> Result<()> {
    let events = TestDatabase::create().await?;
    let read = TestDatabase::create().await?;
    readmodel::migrate(&read.url).await?;
    // Lock waits on the read models give up quickly: a passing failure (55P03).
    let client = read.store.pool().get().await?;
    client
        .batch_execute(&format!(
            "ALTER DATABASE {} SET lock_timeout = '200ms'",
            read.name
        ))
        .await?;
    let shop = Shop {
        store: events.store.clone(),
    };
    shop.create_product("RETRY-1", 100, 1).await?;
    let projector = Projector::start(settings(&events, &read, None)).await?;
    caught_up_with_log(&events, &read, Duration::from_secs(60)).await?;
    let ready = |code: u16, worker: &'static str| {
        let port = projector.port;
        move || async move {
            Ok(health(port, "/readyz").await.is_some_and(|(c, body)| {
                c == code && body["workers"]["log"] == worker && body["database"] == "ok"
            }))
        }
    };
    eventually(
        "the projector to be ready",
        Duration::from_secs(30),
        ready(200, "running"),
    )
    .await?;

    // Something holds the products table: the next batch cannot take its write lock. (A
    // share lock: an exclusive one would take a transaction id, which holds every log
    // reader back until it ends.)
    let mut holder = read.store.pool().get().await?;
    let hold = holder.transaction().await?;
    hold.batch_execute(
        "SET LOCAL lock_timeout = 0; LOCK TABLE read_model.products_v1 IN SHARE MODE",
    )
    .await?;
    let product = shop.create_product("RETRY-2", 100, 7).await?;
    eventually(
        "the projector to say its worker is retrying",
        Duration::from_secs(30),
        ready(503, "retrying"),
    )
    .await?;
    assert_eq!(
        health(projector.port, "/healthz")
            .await
            .map(|(code, _)| code),
        Some(200),
        "a worker retrying is alive"
    );

    hold.rollback().await?;
    eventually(
        "the projector to recover",
        Duration::from_secs(30),
        ready(200, "running"),
    )
    .await?;
    caught_up_with_log(&events, &read, Duration::from_secs(30)).await?;
    let stock = on_hand(&client, product).await?;
    assert_eq!(stock, 7);
    projector.stop().await?;
    Ok(())
}
