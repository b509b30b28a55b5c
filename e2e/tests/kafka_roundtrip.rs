//! Proves the Kafka half of the test infrastructure against the real broker started by
//! `scripts/kafka.sh`: create a topic, publish keyed messages with headers through an
//! idempotent producer (the relay's settings), read them back through a consumer group with
//! manual commits (the projectors' settings), and check keys, payloads, headers, per-key
//! order and the committed offsets.
//!
//! Every wait has a deadline. An unreachable broker is a failure, never a skip.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::Offset;
use tokio::time::{timeout, timeout_at, Instant};
use uuid::Uuid;

/// Deadline for one admin / produce / commit step.
const STEP: Duration = Duration::from_secs(30);
/// Deadline for the consumer group to join and deliver every message.
const CONSUME: Duration = Duration::from_secs(90);
const PARTITIONS: i32 = 3;
const KEYS: [&str; 3] = ["product-1", "product-2", "order-7"];
const PER_KEY: u32 = 6;
const EVENT_TYPE: &str = "E2eRoundtripTested";

/// One message as sent, and where the broker said it landed.
#[derive(Debug, Clone)]
struct Sent {
    key: String,
    seq: u32,
    payload: String,
    headers: Vec<(String, String)>,
    partition: i32,
    offset: i64,
}

/// One message as consumed.
#[derive(Debug, Clone)]
struct Received {
    key: String,
    payload: String,
    headers: Vec<(String, String)>,
    partition: i32,
    offset: i64,
}

fn client_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", "agora-e2e-kafka-roundtrip")
        .set("broker.address.family", "v4");
    config
}

fn header_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_messages_with_headers_roundtrip_through_a_consumer_group() -> Result<()> {
    let brokers = e2e::kafka_brokers();
    let run = Uuid::new_v4().simple().to_string();
    let topic = format!("agora-e2e-roundtrip-{run}");
    let group = format!("agora-e2e-roundtrip-{run}");

    // 1. The broker must be reachable and serve metadata: fail loudly otherwise.
    let admin: AdminClient<DefaultClientContext> = client_config(&brokers)
        .create()
        .context("creating the Kafka admin client")?;
    let metadata =
        tokio::task::block_in_place(|| admin.inner().fetch_metadata(None, Duration::from_secs(20)))
            .map_err(|e| {
                anyhow!(
                    "Kafka broker at {brokers} is unreachable or serves no metadata ({e}); {}",
                    e2e::SERVICES_HINT
                )
            })?;
    ensure!(
        !metadata.brokers().is_empty(),
        "Kafka at {brokers} returned metadata without brokers"
    );

    // 2. A fresh topic for this run.
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    let created = timeout(
        STEP,
        admin.create_topics(
            &[NewTopic::new(
                &topic,
                PARTITIONS,
                TopicReplication::Fixed(1),
            )],
            &options,
        ),
    )
    .await
    .map_err(|_| anyhow!("creating topic {topic} took more than {STEP:?}"))?
    .context("create_topics request failed")?;
    for result in created {
        result.map_err(|(name, code)| anyhow!("creating topic {name} failed: {code}"))?;
    }

    let outcome = roundtrip(&brokers, &topic, &group).await;

    // Best-effort cleanup: the run's verdict is `outcome`.
    match timeout(STEP, admin.delete_topics(&[topic.as_str()], &options)).await {
        Ok(Ok(results)) => {
            for result in results {
                if let Err((name, code)) = result {
                    eprintln!("warning: deleting topic {name} failed: {code}");
                }
            }
        }
        Ok(Err(e)) => eprintln!("warning: deleting topic {topic} failed: {e}"),
        Err(_) => eprintln!("warning: deleting topic {topic} timed out"),
    }

    outcome
}

async fn roundtrip(brokers: &str, topic: &str, group: &str) -> Result<()> {
    let sent = produce(brokers, topic).await?;
    let received = consume_all(brokers, topic, group, &sent).await?;
    check(&sent, &received)
}

/// Sends `PER_KEY` messages for each key, interleaving keys, all enqueued before any delivery
/// is awaited so the idempotent producer has several in flight at once.
async fn produce(brokers: &str, topic: &str) -> Result<Vec<Sent>> {
    let producer: FutureProducer = client_config(brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()
        .context("creating the idempotent producer")?;

    let mut pending: Vec<(Sent, DeliveryFuture)> = Vec::new();
    for seq in 0..PER_KEY {
        for key in KEYS {
            let event_id = Uuid::new_v4().to_string();
            let payload = format!(
                r#"{{"event_id":"{event_id}","stream_id":"{key}","seq":{seq},"note":"héllo ✓"}}"#
            );
            let headers = vec![
                ("event_type".to_owned(), EVENT_TYPE.to_owned()),
                ("schema_version".to_owned(), "1".to_owned()),
                ("event_id".to_owned(), event_id),
                ("seq".to_owned(), seq.to_string()),
            ];
            let mut owned = OwnedHeaders::new_with_capacity(headers.len());
            for (name, value) in &headers {
                owned = owned.insert(Header {
                    key: name,
                    value: Some(value.as_str()),
                });
            }
            let record = FutureRecord::to(topic)
                .key(key)
                .payload(&payload)
                .headers(owned);
            let delivery = producer
                .send_result(record)
                .map_err(|(e, _)| anyhow!("enqueueing message {key}#{seq} failed: {e}"))?;
            pending.push((
                Sent {
                    key: key.to_owned(),
                    seq,
                    payload,
                    headers,
                    partition: -1,
                    offset: -1,
                },
                delivery,
            ));
        }
    }

    let deadline = Instant::now() + STEP;
    let mut sent = Vec::with_capacity(pending.len());
    for (mut message, delivery) in pending {
        let what = format!("{}#{}", message.key, message.seq);
        let delivered = timeout_at(deadline, delivery)
            .await
            .map_err(|_| anyhow!("no delivery report for {what} within {STEP:?}"))?
            .map_err(|_| anyhow!("producer dropped the delivery of {what}"))?
            .map_err(|(e, _)| anyhow!("broker rejected {what}: {e}"))?;
        message.partition = delivered.partition;
        message.offset = delivered.offset;
        sent.push(message);
    }
    tokio::task::block_in_place(|| producer.flush(Duration::from_secs(10)))
        .context("flushing the producer")?;

    // The broker kept each key in one partition, in send order.
    let mut by_key: HashMap<&str, Vec<&Sent>> = HashMap::new();
    for message in &sent {
        by_key.entry(&message.key).or_default().push(message);
    }
    for (key, messages) in by_key {
        let partition = messages[0].partition;
        ensure!(
            messages.iter().all(|m| m.partition == partition),
            "key {key} was spread over several partitions: {messages:?}"
        );
        ensure!(
            messages.windows(2).all(|w| w[0].offset < w[1].offset),
            "key {key} was stored out of send order: {messages:?}"
        );
    }
    Ok(sent)
}

async fn consume_all(
    brokers: &str,
    topic: &str,
    group: &str,
    sent: &[Sent],
) -> Result<Vec<Received>> {
    let consumer: StreamConsumer = client_config(brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("creating the consumer")?;
    consumer
        .subscribe(&[topic])
        .with_context(|| format!("subscribing to {topic}"))?;

    let deadline = Instant::now() + CONSUME;
    let mut received = Vec::with_capacity(sent.len());
    while received.len() < sent.len() {
        let message = timeout_at(deadline, consumer.recv())
            .await
            .map_err(|_| {
                anyhow!(
                    "consumer group {group} got {}/{} messages within {CONSUME:?}",
                    received.len(),
                    sent.len()
                )
            })?
            .context("consumer error")?;
        let text = |bytes: Option<&[u8]>, what: &str| -> Result<String> {
            let bytes = bytes.ok_or_else(|| anyhow!("message without {what}"))?;
            String::from_utf8(bytes.to_vec()).with_context(|| format!("{what} is not UTF-8"))
        };
        let mut headers = Vec::new();
        if let Some(borrowed) = message.headers() {
            for header in borrowed.iter() {
                headers.push((
                    header.key.to_owned(),
                    text(header.value, &format!("value of header {}", header.key))?,
                ));
            }
        }
        received.push(Received {
            key: text(message.key(), "key")?,
            payload: text(message.payload(), "payload")?,
            headers,
            partition: message.partition(),
            offset: message.offset(),
        });
    }

    // Manual commit, then read the group's committed offsets back from the broker.
    tokio::task::block_in_place(|| consumer.commit_consumer_state(CommitMode::Sync))
        .context("committing the consumer group's offsets")?;
    let committed = tokio::task::block_in_place(|| consumer.committed(STEP))
        .context("reading the consumer group's committed offsets")?;
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for message in &received {
        let entry = last.entry(message.partition).or_insert(message.offset);
        *entry = (*entry).max(message.offset);
    }
    for (partition, offset) in last {
        let element = committed
            .find_partition(topic, partition)
            .ok_or_else(|| anyhow!("no committed offset for {topic}/{partition}"))?;
        ensure!(
            element.offset() == Offset::Offset(offset + 1),
            "committed offset of {topic}/{partition} is {:?}, expected {}",
            element.offset(),
            offset + 1
        );
    }
    consumer.unsubscribe();
    Ok(received)
}

fn check(sent: &[Sent], received: &[Received]) -> Result<()> {
    ensure!(
        received.len() == sent.len(),
        "received {} messages, sent {}",
        received.len(),
        sent.len()
    );

    let by_id: HashMap<&str, &Sent> = sent
        .iter()
        .map(|m| {
            (
                header_value(&m.headers, "event_id").expect("sent event_id"),
                m,
            )
        })
        .collect();
    let mut seen = HashSet::new();
    let mut seqs_by_key: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for message in received {
        let id = header_value(&message.headers, "event_id")
            .ok_or_else(|| anyhow!("received a message without event_id: {message:?}"))?;
        ensure!(seen.insert(id), "event {id} was delivered twice");
        let original = by_id
            .get(id)
            .ok_or_else(|| anyhow!("received an event that was never sent: {message:?}"))?;
        ensure!(
            message.key == original.key,
            "key mismatch for {id}: {message:?} vs {original:?}"
        );
        ensure!(
            message.payload == original.payload,
            "payload mismatch for {id}: {message:?} vs {original:?}"
        );
        ensure!(
            message.headers == original.headers,
            "headers mismatch for {id}: {message:?} vs {original:?}"
        );
        ensure!(
            (message.partition, message.offset) == (original.partition, original.offset),
            "{id} read at {}/{}, delivered at {}/{}",
            message.partition,
            message.offset,
            original.partition,
            original.offset
        );
        seqs_by_key
            .entry(&original.key)
            .or_default()
            .push(original.seq);
    }

    let expected: Vec<u32> = (0..PER_KEY).collect();
    ensure!(
        seqs_by_key.len() == KEYS.len(),
        "expected {} keys, got {seqs_by_key:?}",
        KEYS.len()
    );
    for (key, seqs) in seqs_by_key {
        ensure!(
            seqs == expected,
            "key {key} was consumed out of order: {seqs:?}"
        );
    }
    Ok(())
}
