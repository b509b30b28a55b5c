//! Kafka as a source: a consumer group over the stream-type topics. Auto-commit is off;
//! the offsets that count are the ones saved with each batch in the read-model
//! transaction, and on partition assignment the consumer seeks to them. (Offsets are
//! also committed to Kafka afterwards, only so that lag tools see progress.)
//!
//! The consumer lives on its own thread (rebalance callbacks run there and may block on
//! the database); batches are applied on the async runtime through a handle.
//!
//! Every event read is checked before it is applied ([`crate::chain`]): its hash must match
//! its content and be the one the event store recorded for its stream and version, so a
//! message altered or forged on the network is poison, never applied.
//!
//! The worker reports itself retrying while the brokers cannot be reached (a consumer
//! error, then a metadata request that fails; running again once one succeeds) and while
//! a batch or the saved offsets meet passing database trouble. It stops with an error on a
//! batch that fails for another reason (after poison events were isolated) and on a fatal
//! consumer error: skipping the batch would lose events, and a restarted process resumes
//! from the saved offsets.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use eventstore::{Envelope, EventStore, RecordedEvent};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;
use tokio::runtime::Handle;
use uuid::Uuid;

use crate::apply::{
    apply_batch, live_targets, saved_positions, ApplyError, BatchItem, EventFacts, SourcePosition,
};
use crate::chain::ChainGuard;
use crate::event::decode;
use crate::worker::WorkerStatus;

/// How the consumer runs.
#[derive(Debug, Clone)]
pub struct KafkaSourceConfig {
    pub brokers: String,
    pub group_id: String,
    pub topic_prefix: String,
    pub batch_size: usize,
    /// How long to gather a batch once the first message arrived.
    pub batch_linger: Duration,
}

/// `topic/partition`, the key offsets are saved under.
pub fn partition_key(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// Seeks newly assigned partitions to the offsets saved in the read models.
struct SeekingContext {
    pool: Pool,
    handle: Handle,
    assigned: Arc<Mutex<HashSet<String>>>,
    status: WorkerStatus,
    stop: Arc<AtomicBool>,
}

impl ClientContext for SeekingContext {}

impl SeekingContext {
    /// The offset to resume each partition from: the smallest saved among the live
    /// projections (they skip what they already have), or the beginning.
    async fn resume_offsets(
        &self,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Offset>, ApplyError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let targets = live_targets(&tx).await?;
        let mut saved = Vec::new();
        for target in &targets {
            saved.push(saved_positions(&tx, target, "kafka").await?);
        }
        tx.commit().await?;
        Ok(partitions
            .iter()
            .map(|(topic, partition)| {
                let key = partition_key(topic, *partition);
                let offsets: Option<Vec<i64>> =
                    saved.iter().map(|s| s.kafka.get(&key).copied()).collect();
                match offsets.and_then(|o| o.into_iter().min()) {
                    Some(offset) if !targets.is_empty() => Offset::Offset(offset),
                    _ => Offset::Beginning,
                }
            })
            .collect())
    }
}

impl ConsumerContext for SeekingContext {
    fn rebalance(
        &self,
        base_consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let partitions: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let mut assigned = self.assigned.lock().unwrap_or_else(|p| p.into_inner());
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let offsets = loop {
                    match self.handle.block_on(self.resume_offsets(&partitions)) {
                        Ok(offsets) => break offsets,
                        Err(_) if self.stop.load(Ordering::SeqCst) => return,
                        Err(error) => {
                            self.status.retrying();
                            tracing::warn!(%error, "cannot read saved offsets; retrying");
                            std::thread::sleep(Duration::from_millis(500));
                        }
                    }
                };
                for ((topic, partition), offset) in partitions.iter().zip(offsets) {
                    if let Err(error) = tpl.set_partition_offset(topic, *partition, offset) {
                        tracing::warn!(%error, topic, partition, "cannot set the resume offset");
                    }
                    assigned.insert(partition_key(topic, *partition));
                }
                metrics::gauge!("kafka_assigned_partitions").set(assigned.len() as f64);
                tracing::info!(?partitions, "partitions assigned");
                if let Err(error) = base_consumer.assign(tpl) {
                    tracing::error!(%error, "assigning partitions failed");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!(?partitions, "partitions revoked");
                assigned.clear();
                metrics::gauge!("kafka_assigned_partitions").set(0.0);
                if let Err(error) = base_consumer.unassign() {
                    tracing::error!(%error, "unassigning partitions failed");
                }
            }
            other => {
                tracing::error!(?other, "rebalance error");
                assigned.clear();
                let _ = base_consumer.unassign();
            }
        }
    }
}

/// A Kafka message as a batch item, with the recorded event it carries when it is readable
/// (for [`ChainGuard`]).
fn batch_item(
    topic: &str,
    partition: i32,
    offset: i64,
    payload: Option<&[u8]>,
) -> (BatchItem, Option<RecordedEvent>) {
    let position = SourcePosition::Kafka {
        partition: partition_key(topic, partition),
        offset,
    };
    let envelope = payload
        .ok_or_else(|| "message has no payload".to_owned())
        .and_then(|bytes| serde_json::from_slice::<Envelope>(bytes).map_err(|e| e.to_string()));
    match envelope {
        Ok(envelope) => {
            let facts = EventFacts {
                position: envelope.position,
                event_id: envelope.event_id,
                stream_id: envelope.stream_id,
                version: envelope.version,
                event_type: envelope.event_type.clone(),
            };
            let recorded = envelope.to_recorded();
            let event = recorded.as_ref().map_err(Clone::clone).and_then(decode);
            // Of the log once the chain check says so (guard_batch).
            let item = BatchItem {
                facts,
                event,
                position,
                of_the_log: false,
            };
            (item, recorded.ok())
        }
        Err(reason) => (
            BatchItem {
                facts: EventFacts {
                    position: 0,
                    event_id: Uuid::nil(),
                    stream_id: Uuid::nil(),
                    version: offset,
                    event_type: format!("unreadable message at {topic}/{partition}@{offset}"),
                },
                event: Err(format!("cannot read the envelope: {reason}")),
                position,
                of_the_log: false,
            },
            None,
        ),
    }
}

/// Checks every message of `items` that carries a recorded event with [`ChainGuard`]: one it
/// refuses becomes poison, one it accepts is of the log (so failing to apply it parks its
/// stream). Waits (retrying) while the event store cannot be read; false when stopped
/// meanwhile.
fn guard_batch(
    guard: &ChainGuard,
    handle: &Handle,
    items: &mut [BatchItem],
    recorded: &[Option<RecordedEvent>],
    status: &WorkerStatus,
    stop: &AtomicBool,
) -> bool {
    let checked: Vec<(usize, &RecordedEvent)> = items
        .iter()
        .zip(recorded)
        .enumerate()
        .filter_map(|(index, (_, recorded))| recorded.as_ref().map(|r| (index, r)))
        .collect();
    let events: Vec<&RecordedEvent> = checked.iter().map(|(_, event)| *event).collect();
    let verdicts = loop {
        match handle.block_on(guard.check(&events)) {
            Ok(verdicts) => break verdicts,
            Err(_) if stop.load(Ordering::SeqCst) => return false,
            Err(error) => {
                status.retrying();
                tracing::warn!(%error, "cannot check events against the event store; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    };
    for ((index, _), verdict) in checked.iter().zip(verdicts) {
        match verdict {
            Ok(()) => items[*index].of_the_log = true,
            Err(reason) => {
                metrics::counter!("projector_refused_messages_total").increment(1);
                tracing::warn!(position = %items[*index].position, %reason, "a message from Kafka refused");
                items[*index].event = Err(reason);
            }
        }
    }
    true
}

/// True when the brokers answer a metadata request for `topic` within a few seconds.
fn brokers_answer(consumer: &BaseConsumer<SeekingContext>, topic: &str) -> bool {
    match consumer.fetch_metadata(Some(topic), Duration::from_secs(2)) {
        Ok(_) => true,
        Err(error) => {
            tracing::warn!(%error, "the Kafka brokers do not answer");
            false
        }
    }
}

/// Consumes until `stop` turns true, applying each batch before polling again, and
/// reports to `status` as it goes. Runs on the calling (non-runtime) thread. Returns an
/// error (and stops) on a failure retrying cannot mend (see the module documentation).
pub fn run_kafka_source(
    config: KafkaSourceConfig,
    read_pool: Pool,
    store: EventStore,
    handle: Handle,
    stop: Arc<AtomicBool>,
    status: WorkerStatus,
) -> anyhow::Result<()> {
    let guard = ChainGuard::new(store);
    let assigned = Arc::new(Mutex::new(HashSet::new()));
    let context = SeekingContext {
        pool: read_pool.clone(),
        handle: handle.clone(),
        assigned: assigned.clone(),
        status: status.clone(),
        stop: stop.clone(),
    };
    let consumer: BaseConsumer<SeekingContext> = eventstore::kafka::client_config(&config.brokers)
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("fetch.wait.max.ms", "10")
        .set("topic.metadata.refresh.interval.ms", "2000")
        .create_with_context(context)?;
    let topics = [
        eventstore::relay::topic_for(&config.topic_prefix, domain::product::STREAM_TYPE),
        eventstore::relay::topic_for(&config.topic_prefix, domain::order::STREAM_TYPE),
        eventstore::relay::topic_for(&config.topic_prefix, domain::customer::STREAM_TYPE),
    ];
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topic_refs)?;
    // Whether the brokers were last seen unreachable (checked again each round until not).
    let mut unreachable = true;
    while !stop.load(Ordering::SeqCst) {
        if unreachable {
            unreachable = !brokers_answer(&consumer, &topics[0]);
            if unreachable {
                status.retrying();
            } else {
                status.running();
            }
        }
        let mut items = Vec::new();
        let mut recorded = Vec::new();
        let started = Instant::now();
        while items.len() < config.batch_size {
            let timeout = if items.is_empty() {
                Duration::from_millis(100)
            } else {
                let spent = started.elapsed();
                if spent >= config.batch_linger {
                    break;
                }
                config.batch_linger - spent
            };
            match consumer.poll(timeout) {
                None => {
                    if items.is_empty() && stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if !items.is_empty() || started.elapsed() > Duration::from_millis(100) {
                        break;
                    }
                }
                Some(Err(error @ rdkafka::error::KafkaError::MessageConsumptionFatal(_))) => {
                    tracing::error!(%error, "fatal Kafka consumer error; stopping");
                    return Err(anyhow::Error::new(error).context("fatal Kafka consumer error"));
                }
                // A topic nobody has published to yet (`customer` before the first profile)
                // has no events: not a fault.
                Some(Err(rdkafka::error::KafkaError::MessageConsumption(
                    rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition
                    | rdkafka::types::RDKafkaErrorCode::UnknownTopic,
                ))) => {
                    tracing::debug!("a subscribed topic does not exist yet");
                    break;
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, "kafka consumer error");
                    unreachable = true;
                    break;
                }
                Some(Ok(message)) => {
                    let (item, event) = batch_item(
                        message.topic(),
                        message.partition(),
                        message.offset(),
                        message.payload(),
                    );
                    items.push(item);
                    recorded.push(event);
                }
            }
        }
        // Drop what was fetched for partitions revoked while gathering.
        {
            let assigned = assigned.lock().unwrap_or_else(|p| p.into_inner());
            let keep: Vec<bool> = items
                .iter()
                .map(|item| match &item.position {
                    SourcePosition::Kafka { partition, .. } => assigned.contains(partition),
                    SourcePosition::Log(_) => true,
                })
                .collect();
            let mut kept = keep.iter();
            items.retain(|_| kept.next().copied().unwrap_or(false));
            let mut kept = keep.iter();
            recorded.retain(|_| kept.next().copied().unwrap_or(false));
        }
        if items.is_empty() {
            continue;
        }
        if !guard_batch(&guard, &handle, &mut items, &recorded, &status, &stop) {
            break;
        }
        if let Err(error) = handle.block_on(apply_batch(&read_pool, &items, None, &status)) {
            // Not transient and not poison: stop rather than skip events.
            let error = anyhow::Error::new(error).context("applying a batch");
            tracing::error!(error = format!("{error:#}"), "stopping");
            return Err(error);
        }
        status.running();
        if let Err(error) = consumer.commit_consumer_state(CommitMode::Async) {
            tracing::debug!(%error, "committing offsets to Kafka failed (informational only)");
        }
    }
    Ok(())
}
