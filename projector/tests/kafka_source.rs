//! The projector on Kafka (fed by the relay): a SIGKILLed projector resumes exactly once,
//! two projectors in one consumer group split the partitions and together build the same
//! read models as a projector on the log, every unreadable message is recorded, and a
//! projector is ready only while its worker runs: unready while Kafka cannot be reached,
//! unready and unhealthy once the worker failed for good, when the binary exits non-zero.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use eventstore::relay::{run_relay, RelayConfig};
use eventstore::testing::{env, free_port, TestDatabase};
use projector::service::Projector;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::json;
use support::*;
use tokio::sync::watch;
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

fn spawn_projector(
    events: &TestDatabase,
    read: &TestDatabase,
    prefix: &str,
    group: &str,
    port: u16,
) -> Process {
    let mut command = Command::new(env!("CARGO_BIN_EXE_projector"));
    command
        .env("DATABASE_URL", &events.url)
        .env("READ_DATABASE_URL", &read.url)
        .env("KAFKA_BROKERS", env::kafka_brokers())
        .env("AGORA_TOPIC_PREFIX", prefix)
        .env("AGORA_PROJECTOR_GROUP", group)
        .env("PROJECTOR_ADDR", format!("127.0.0.1:{port}"))
        .env("AGORA_PROJECTOR_BATCH", "10")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Process(command.spawn().expect("the projector binary starts"))
}

async fn create_topics(prefix: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", env::kafka_brokers())
        .create()?;
    let names = [format!("{prefix}.product"), format!("{prefix}.order")];
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, 4, TopicReplication::Fixed(1)))
        .collect();
    for outcome in admin.create_topics(&topics, &AdminOptions::new()).await? {
        outcome.map_err(|(topic, code)| anyhow::anyhow!("creating {topic}: {code}"))?;
    }
    Ok(())
}

/// A metric's value scraped from a projector's /metrics (0 when absent).
async fn metric(port: u16, name: &str) -> f64 {
    let Ok(response) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await else {
        return 0.0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The log-built reference read models of `events`.
async fn reference(events: &TestDatabase) -> Result<Vec<String>> {
    let read = TestDatabase::create().await?;
    let projector = Projector::start(settings(events, &read, None)).await?;
    caught_up_with_log(events, &read, Duration::from_secs(120)).await?;
    projector.stop().await?;
    dump(&read).await
}

/// Waits until `read` equals `expected`.
async fn converges(read: &TestDatabase, expected: &[String]) -> Result<()> {
    eventually(
        "the Kafka-built read models to converge",
        Duration::from_secs(120),
        || async { Ok(dump(read).await? == expected) },
    )
    .await
}

fn start_relay(
    events: &TestDatabase,
    prefix: &str,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (stop, stopped) = watch::channel(false);
    let config = RelayConfig::new(&events.url, &env::kafka_brokers(), prefix);
    let task = tokio::spawn(run_relay(config, events.store.clone(), stopped));
    (stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_projector_killed_mid_stream_resumes_exactly_once() -> Result<()> {
    let events = TestDatabase::create().await?;
    let prefix = format!("t{}", Uuid::new_v4().simple());
    create_topics(&prefix).await?;
    let shop = Shop {
        store: events.store.clone(),
    };
    workload(&shop, 3, 600).await?;
    let expected = reference(&events).await?;
    let (stop_relay, relay) = start_relay(&events, &prefix);

    let read = TestDatabase::create().await?;
    readmodel::migrate(&read.url).await?;
    let group = format!("g{}", Uuid::new_v4().simple());
    let client = read.store.pool().get().await?;
    let mut first = spawn_projector(
        &events,
        &read,
        &prefix,
        &group,
        free_port().expect("a free port"),
    );
    eventually(
        "the projector to get going",
        Duration::from_secs(60),
        || async {
            let row = client
                .query_one(
                    "SELECT count(*) FROM read_model.checkpoints WHERE source = 'kafka'",
                    &[],
                )
                .await?;
            Ok(row.get::<_, i64>(0) > 0)
        },
    )
    .await?;
    first.kill()?;
    assert_ne!(dump(&read).await?, expected, "killed before the end");

    let _second = spawn_projector(
        &events,
        &read,
        &prefix,
        &group,
        free_port().expect("a free port"),
    );
    converges(&read, &expected).await?;
    let _ = stop_relay.send(true);
    relay.await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_projectors_in_one_group_split_the_partitions() -> Result<()> {
    let events = TestDatabase::create().await?;
    let prefix = format!("t{}", Uuid::new_v4().simple());
    create_topics(&prefix).await?;
    let read = TestDatabase::create().await?;
    readmodel::migrate(&read.url).await?;
    let group = format!("g{}", Uuid::new_v4().simple());
    let (port_a, port_b) = (
        free_port().expect("a free port"),
        free_port().expect("a free port"),
    );
    let _a = spawn_projector(&events, &read, &prefix, &group, port_a);
    let _b = spawn_projector(&events, &read, &prefix, &group, port_b);
    eventually(
        "both projectors to own partitions",
        Duration::from_secs(60),
        || async {
            let (a, b) = (
                metric(port_a, "kafka_assigned_partitions").await,
                metric(port_b, "kafka_assigned_partitions").await,
            );
            Ok(a > 0.0 && b > 0.0 && a + b == 8.0)
        },
    )
    .await?;

    let shop = Shop {
        store: events.store.clone(),
    };
    workload(&shop, 4, 300).await?;
    let (stop_relay, relay) = start_relay(&events, &prefix);
    let expected = reference(&events).await?;
    converges(&read, &expected).await?;
    let applied_a = metric(port_a, "projector_events_applied_total").await;
    let applied_b = metric(port_b, "projector_events_applied_total").await;
    assert!(
        applied_a > 0.0 && applied_b > 0.0,
        "a: {applied_a}, b: {applied_b}"
    );
    let _ = stop_relay.send(true);
    relay.await?;
    Ok(())
}

/// Waits until every live projection saved `next` as the offset to read in `partition`.
async fn consumed(read: &TestDatabase, partition: &str, next: i64) -> Result<()> {
    let client = read.store.pool().get().await?;
    eventually(
        "every projection to consume the partition",
        Duration::from_secs(60),
        || async {
            let row = client
                .query_one(
                    "SELECT count(*) FROM read_model.checkpoints \
                     WHERE source = 'kafka' AND partition_key = $1 AND kafka_offset = $2",
                    &[&partition, &next],
                )
                .await?;
            Ok(row.get::<_, i64>(0) == projector::projections::all().len() as i64)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_worker_that_fails_for_good_is_unready_and_the_binary_exits_non_zero() -> Result<()>
{
    let events = TestDatabase::create().await?;
    let prefix = format!("t{}", Uuid::new_v4().simple());
    create_topics(&prefix).await?;
    let shop = Shop {
        store: events.store.clone(),
    };
    shop.create_product("FAIL-1", 100, 1).await?;
    let (stop_relay, relay) = start_relay(&events, &prefix);
    let read = TestDatabase::create().await?;
    readmodel::migrate(&read.url).await?;
    // The binary, and the library in this process, each in a consumer group of its own.
    let port = free_port().expect("a free port");
    let group = format!("g{}", Uuid::new_v4().simple());
    let mut binary = spawn_projector(&events, &read, &prefix, &group, port);
    let brokers = env::kafka_brokers();
    let other_group = format!("g{}", Uuid::new_v4().simple());
    let library = Projector::start(settings(
        &events,
        &read,
        Some((&brokers, &prefix, &other_group)),
    ))
    .await?;
    for port in [port, library.port] {
        eventually(
            "the projector to be ready",
            Duration::from_secs(60),
            || async {
                Ok(health(port, "/readyz").await.is_some_and(|(code, body)| {
                    code == 200 && body["workers"]["kafka"] == "running" && body["database"] == "ok"
                }))
            },
        )
        .await?;
    }
    let client = read.store.pool().get().await?;
    eventually(
        "the first event to be projected",
        Duration::from_secs(60),
        || async {
            let row = client
                .query_one("SELECT count(*) FROM read_model.products", &[])
                .await?;
            Ok(row.get::<_, i64>(0) == 1)
        },
    )
    .await?;

    // The read models' database turns read-only: no batch can be written any more.
    let _session = make_read_only(&read).await?;
    shop.create_product("FAIL-2", 100, 1).await?;

    eventually(
        "the library's worker to fail",
        Duration::from_secs(60),
        || async {
            Ok(health(library.port, "/readyz")
                .await
                .is_some_and(|(code, body)| {
                    code == 503 && body["workers"]["kafka"] == "failed" && body["database"] == "ok"
                }))
        },
    )
    .await?;
    assert_eq!(
        health(library.port, "/healthz")
            .await
            .map(|(code, body)| (code, body["status"].clone())),
        Some((503, json!("failed")))
    );
    assert!(
        library.stop().await.is_err(),
        "stopping reports the failure"
    );

    let mut exit = None;
    eventually("the binary to exit", Duration::from_secs(60), || {
        let exited = binary.0.try_wait();
        if let Ok(Some(status)) = &exited {
            exit = Some(*status);
        }
        async move { Ok(exited?.is_some()) }
    })
    .await?;
    let exit = exit.ok_or_else(|| anyhow::anyhow!("no exit status"))?;
    assert!(
        exit.code().is_some_and(|code| code != 0),
        "the binary exits with an error code, not {exit:?}"
    );
    let _ = stop_relay.send(true);
    relay.await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_that_cannot_reach_kafka_is_unready_but_alive() -> Result<()> {
    let events = TestDatabase::create().await?;
    let read = TestDatabase::create().await?;
    // Nothing listens there.
    let nowhere = format!("127.0.0.1:{}", free_port().expect("a free port"));
    let projector = Projector::start(settings(&events, &read, Some((&nowhere, "t", "g")))).await?;
    eventually(
        "the projector to say Kafka is unreachable",
        Duration::from_secs(60),
        || async {
            Ok(health(projector.port, "/readyz")
                .await
                .is_some_and(|(code, body)| {
                    code == 503
                        && body["workers"]["kafka"] == "retrying"
                        && body["database"] == "ok"
                }))
        },
    )
    .await?;
    assert_eq!(
        health(projector.port, "/healthz")
            .await
            .map(|(code, _)| code),
        Some(200),
        "a worker retrying is alive"
    );
    projector.stop().await?;
    Ok(())
}

/// Writes `messages`, in order, into partition 0 of `topic`, as anyone on the network could.
async fn produce(topic: &str, messages: &[Vec<u8>]) -> Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", env::kafka_brokers())
        .create()?;
    for message in messages {
        producer
            .send(
                FutureRecord::<[u8], [u8]>::to(topic)
                    .partition(0)
                    .payload(message),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(error, _)| anyhow::anyhow!("producing: {error}"))?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_unreadable_message_is_recorded_and_an_event_once() -> Result<()> {
    let events = TestDatabase::create().await?;
    let prefix = format!("t{}", Uuid::new_v4().simple());
    create_topics(&prefix).await?;
    let shop = Shop {
        store: events.store.clone(),
    };
    let product = shop.create_product("POISON-K", 500, 5).await?;
    shop.append_unreadable(product).await?;
    let log = whole_log(&events, 2).await?;
    let envelope = |n: usize| -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(&eventstore::Envelope::of(&log[n])?)?)
    };
    // Into one partition, in this order: the product, two unreadable messages, and the
    // bad event twice (a relay may publish an event again).
    let messages = [
        envelope(0)?,
        b"not json at all".to_vec(),
        envelope(1)?,
        br#"{"an": "object, but no envelope"}"#.to_vec(),
        envelope(1)?,
    ];
    let topic = format!("{prefix}.product");
    produce(&topic, &messages).await?;

    let read = TestDatabase::create().await?;
    let brokers = env::kafka_brokers();
    let group = format!("g{}", Uuid::new_v4().simple());
    let projector =
        Projector::start(settings(&events, &read, Some((&brokers, &prefix, &group)))).await?;
    consumed(&read, &format!("{topic}/0"), messages.len() as i64).await?;
    projector.stop().await?;

    let client = read.store.pool().get().await?;
    let rows = client
        .query(
            "SELECT projection, event_id, source_position FROM read_model.poison_events \
             ORDER BY projection, source_position",
            &[],
        )
        .await?;
    let recorded: Vec<(String, Uuid, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let mut expected = Vec::new();
    for projection in ["customers", "orders", "products", "sales", "top_products"] {
        // Each unreadable message at its offset; the bad event once, where first read.
        expected.push((
            projection.to_owned(),
            log[1].event_id,
            format!("kafka {topic}/0@2"),
        ));
        expected.push((
            projection.to_owned(),
            Uuid::nil(),
            format!("kafka {topic}/0@1"),
        ));
        expected.push((
            projection.to_owned(),
            Uuid::nil(),
            format!("kafka {topic}/0@3"),
        ));
    }
    expected.sort_by(|a, b| (&a.0, &a.2).cmp(&(&b.0, &b.2)));
    assert_eq!(recorded, expected);
    let stock = on_hand(&client, product).await?;
    assert_eq!(
        stock, 5,
        "the readable event is projected, the bad one skipped"
    );
    Ok(())
}

/// Anyone on the network can write to the topics: a message whose payload was changed in
/// transit, and a well-formed forgery with a recomputed hash, are refused as poison (not
/// applied); the real events around them are applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_and_forged_messages_are_refused_as_poison() -> Result<()> {
    let events = TestDatabase::create().await?;
    let prefix = format!("t{}", Uuid::new_v4().simple());
    create_topics(&prefix).await?;
    let shop = Shop {
        store: events.store.clone(),
    };
    let product = shop.create_product("FORGED-K", 500, 5).await?;
    shop.product_command(
        product,
        domain::ProductCommand::Restock {
            quantity: domain::RestockQuantity::parse(3).map_err(anyhow::Error::msg)?,
        },
    )
    .await?;
    let log = whole_log(&events, 2).await?;
    let envelope = |event: &eventstore::RecordedEvent| -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(&eventstore::Envelope::of(event)?)?)
    };
    // The restock, its quantity changed in transit (hash left as it was).
    let mut altered = log[1].clone();
    altered.payload["quantity"] = serde_json::json!(3000);
    // A forged third event: well formed, chained from the real second, hash recomputed.
    let mut forged = log[1].clone();
    forged.event_id = Uuid::new_v4();
    forged.version = 3;
    forged.position = log[1].position + 1000;
    forged.prev_hash = log[1].hash;
    forged.payload["quantity"] = serde_json::json!(1_000_000);
    forged.hash = eventstore::hashchain::chain_hash(
        &forged.prev_hash,
        &eventstore::hashchain::HashedFields::from(&forged),
    )?;
    let messages = [
        envelope(&log[0])?,
        envelope(&altered)?,
        envelope(&log[1])?,
        envelope(&forged)?,
    ];
    let topic = format!("{prefix}.product");
    produce(&topic, &messages).await?;

    let read = TestDatabase::create().await?;
    let brokers = env::kafka_brokers();
    let group = format!("g{}", Uuid::new_v4().simple());
    let projector =
        Projector::start(settings(&events, &read, Some((&brokers, &prefix, &group)))).await?;
    consumed(&read, &format!("{topic}/0"), messages.len() as i64).await?;
    projector.stop().await?;

    let client = read.store.pool().get().await?;
    let rows = client
        .query(
            "SELECT source_position, error FROM read_model.poison_events \
             WHERE projection = 'products' ORDER BY source_position",
            &[],
        )
        .await?;
    let poisoned: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(poisoned.len(), 2, "{poisoned:?}");
    assert_eq!(poisoned[0].0, format!("kafka {topic}/0@1"));
    assert!(poisoned[0].1.contains("altered"), "{poisoned:?}");
    assert_eq!(poisoned[1].0, format!("kafka {topic}/0@3"));
    assert!(poisoned[1].1.contains("forged"), "{poisoned:?}");
    assert_eq!(
        on_hand(&client, product).await?,
        8,
        "created with 5, restocked by 3"
    );
    Ok(())
}
