//! The relay against real PostgreSQL and Kafka: every committed event reaches Kafka with
//! its key, envelope and headers, also when the relay is killed with SIGKILL mid-stream,
//! and a standby takes over when the active relay dies.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use eventstore::testing::{env, try_eventually, TestDatabase};
use eventstore::{AppendRequest, EventMetadata, EventStore, LoadedStream, NewEvent, StreamWrite};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;
use serde_json::json;
use uuid::Uuid;

/// A relay child process, SIGKILLed and reaped when dropped.
struct Relay(Child);

impl Relay {
    fn kill(&mut self) -> std::io::Result<()> {
        self.0.kill()?;
        self.0.wait().map(|_| ())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// The relay binary as a child process.
fn spawn_relay(database_url: &str, prefix: &str, name: &str) -> Relay {
    let url = format!("{database_url}?application_name={name}");
    let mut command = Command::new(env!("CARGO_BIN_EXE_relay"));
    command
        .env("DATABASE_URL", url)
        .env("KAFKA_BROKERS", env::kafka_brokers())
        .env("AGORA_TOPIC_PREFIX", prefix)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Relay(command.spawn().expect("the relay binary starts"))
}

/// Appends `commands` single-event commands round-robin over `streams`.
async fn write(
    store: &EventStore,
    streams: &mut [LoadedStream],
    commands: usize,
) -> anyhow::Result<()> {
    for n in 0..commands {
        let stream = &mut streams[n % streams.len()];
        let appended = store
            .append(AppendRequest {
                streams: vec![StreamWrite::after(
                    stream,
                    "product",
                    vec![NewEvent::new("StockAdded", 1, json!({ "quantity": 1 }))],
                )],
                metadata: EventMetadata {
                    actor: "relay-test".into(),
                    correlation_id: format!("corr-{n}"),
                    causation_id: None,
                    command_id: Uuid::new_v4(),
                },
                occurred_at: Utc::now(),
                claims: vec![],
                idempotency: None,
            })
            .await?;
        let event = appended
            .events
            .last()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no event"))?;
        stream.version = event.version;
        stream.last_hash = event.hash;
    }
    Ok(())
}

async fn relay_position(store: &EventStore) -> anyhow::Result<i64> {
    let client = store.pool().get().await?;
    let row = client
        .query_opt(
            "SELECT position FROM relay_checkpoints WHERE name = 'kafka'",
            &[],
        )
        .await?;
    Ok(row.map(|r| r.get::<_, i64>(0)).unwrap_or(0))
}

async fn max_position(store: &EventStore) -> anyhow::Result<i64> {
    let client = store.pool().get().await?;
    Ok(client
        .query_one("SELECT COALESCE(max(position), 0) FROM events", &[])
        .await?
        .get(0))
}

/// Reads the topic from the start until every id in `expected` was seen.
async fn consume_all(
    topic: &str,
    expected: &HashSet<Uuid>,
) -> anyhow::Result<Vec<(Uuid, Uuid, i64, HashMap<String, String>)>> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", env::kafka_brokers())
        .set("group.id", format!("relay-test-{}", Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    let mut seen = HashSet::new();
    let mut messages = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !expected.is_subset(&seen) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(remaining, consumer.recv())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "only {} of {} events reached Kafka",
                    seen.len(),
                    expected.len()
                )
            })??;
        let envelope: serde_json::Value =
            serde_json::from_slice(message.payload().unwrap_or_default())?;
        let event_id: Uuid = envelope["event_id"].as_str().unwrap_or_default().parse()?;
        let stream_id: Uuid = envelope["stream_id"].as_str().unwrap_or_default().parse()?;
        let key: Uuid = std::str::from_utf8(message.key().unwrap_or_default())?.parse()?;
        assert_eq!(key, stream_id, "the key is the stream id");
        let mut headers = HashMap::new();
        if let Some(h) = message.headers() {
            for header in h.iter() {
                let value = header
                    .value
                    .map(|v| String::from_utf8_lossy(v).into_owned());
                headers.insert(header.key.to_owned(), value.unwrap_or_default());
            }
        }
        seen.insert(event_id);
        messages.push((
            event_id,
            stream_id,
            envelope["version"].as_i64().unwrap_or(0),
            headers,
        ));
    }
    Ok(messages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_reaches_kafka_in_stream_order_despite_a_sigkilled_relay() -> anyhow::Result<()>
{
    let db = TestDatabase::create().await?;
    let prefix = format!("t{}", Uuid::new_v4().simple());
    let mut streams: Vec<LoadedStream> = (0..40)
        .map(|_| LoadedStream::empty(Uuid::new_v4()))
        .collect();

    let mut relay = spawn_relay(&db.url, &prefix, "relay-a");
    write(&db.store, &mut streams, 1500).await?;
    try_eventually::<anyhow::Error, _, _>(
        "the relay to publish",
        Duration::from_secs(60),
        || async { Ok(relay_position(&db.store).await? > 0) },
    )
    .await?;
    relay.kill()?; // SIGKILL
    write(&db.store, &mut streams, 1500).await?;
    let mut relay = spawn_relay(&db.url, &prefix, "relay-b");
    let head = max_position(&db.store).await?;
    try_eventually::<anyhow::Error, _, _>(
        "the restarted relay to catch up",
        Duration::from_secs(60),
        || async { Ok(relay_position(&db.store).await? == head) },
    )
    .await?;
    relay.kill()?;

    let stored = db
        .store
        .read_log(eventstore::LogCheckpoint::START, 1_000_000)
        .await?;
    assert_eq!(stored.len(), 3000);
    let expected: HashSet<Uuid> = stored.iter().map(|e| e.event_id).collect();
    let messages = consume_all(&format!("{prefix}.product"), &expected).await?;

    // Per stream, versions arrive in order (a replayed batch may repeat a run of them).
    let mut last: HashMap<Uuid, i64> = HashMap::new();
    for (_, stream_id, version, headers) in &messages {
        let previous = last.get(stream_id).copied().unwrap_or(0);
        assert!(
            *version == previous + 1 || *version <= previous,
            "stream {stream_id}: version {version} after {previous}"
        );
        last.insert(*stream_id, (*version).max(previous));
        assert_eq!(
            headers.get("event_type").map(String::as_str),
            Some("StockAdded")
        );
        assert_eq!(headers.get("schema_version").map(String::as_str), Some("1"));
        assert!(headers.contains_key("event_id") && headers.contains_key("correlation_id"));
    }
    for stream in &streams {
        assert_eq!(last.get(&stream.stream_id), Some(&stream.version));
    }
    Ok(())
}

/// The application name of the session holding the relay lock.
async fn lock_holder(store: &EventStore) -> anyhow::Result<Option<String>> {
    let client = store.pool().get().await?;
    let key = eventstore::relay::RELAY_LOCK_KEY;
    let row = client
        .query_opt(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.database = \
                   (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND l.classid = ($1::int8 >> 32)::oid AND l.objid = ($1::int8 & 4294967295)::oid",
            &[&key],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_relay_takes_over_within_seconds() -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    let prefix = format!("t{}", Uuid::new_v4().simple());
    let mut streams: Vec<LoadedStream> = (0..5)
        .map(|_| LoadedStream::empty(Uuid::new_v4()))
        .collect();
    let mut first = spawn_relay(&db.url, &prefix, "relay-first");
    let mut second = spawn_relay(&db.url, &prefix, "relay-second");
    write(&db.store, &mut streams, 50).await?;
    let head = max_position(&db.store).await?;
    try_eventually::<anyhow::Error, _, _>(
        "a relay to publish",
        Duration::from_secs(60),
        || async { Ok(relay_position(&db.store).await? == head) },
    )
    .await?;
    let holder = lock_holder(&db.store)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no relay holds the lock"))?;
    let (active, standby_name) = if holder == "relay-first" {
        (&mut first, "relay-second")
    } else {
        (&mut second, "relay-first")
    };
    active.kill()?;
    let killed_at = Instant::now();
    write(&db.store, &mut streams, 50).await?;
    let head = max_position(&db.store).await?;
    try_eventually::<anyhow::Error, _, _>(
        "the standby to take over",
        Duration::from_secs(15),
        || async { Ok(relay_position(&db.store).await? == head) },
    )
    .await?;
    assert_eq!(lock_holder(&db.store).await?.as_deref(), Some(standby_name));
    println!(
        "standby took over and caught up in {:?}",
        killed_at.elapsed()
    );
    Ok(())
}
