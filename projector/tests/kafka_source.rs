//! The projector on Kafka (fed by the relay): a SIGKILLed projector resumes exactly once,
//! and two projectors in one consumer group split the partitions and together build the
//! same read models as a projector on the log.

mod support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use eventstore::relay::{run_relay, RelayConfig};
use eventstore::testing::TestDatabase;
use projector::service::Projector;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use support::*;
use tokio::sync::watch;
use uuid::Uuid;

fn brokers() -> String {
    std::env::var("AGORA_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:59092".into())
}

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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
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
        .env("KAFKA_BROKERS", brokers())
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
        .set("bootstrap.servers", brokers())
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
    let config = RelayConfig::new(&events.url, &brokers(), prefix);
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
    let mut first = spawn_projector(&events, &read, &prefix, &group, free_port());
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

    let _second = spawn_projector(&events, &read, &prefix, &group, free_port());
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
    let (port_a, port_b) = (free_port(), free_port());
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
