//! The relay: publishes the event log to Kafka, in log order, without dual writes.
//!
//! The events table is the outbox. The relay follows the log gap-free (see [`crate::log`]),
//! publishes each event with the idempotent producer (`acks=all`), key = stream id, value =
//! the envelope, headers `event_type`, `schema_version`, `event_id`, `correlation_id`, to
//! topic `{prefix}.{stream_type}`, and saves its checkpoint only after the broker
//! acknowledged the whole batch. Exactly one relay publishes: it is a
//! [`crate::follower`] (advisory-lock leadership with a standby that takes over within
//! seconds when the holder's session ends). A crash between publishing and checkpointing republishes a batch: Kafka may
//! hold duplicates, which consumers drop by stream version.

use std::time::Duration;

use futures::future::join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::sync::watch;

use tokio_postgres::Client;

use crate::envelope::to_json_line;
use crate::event::RecordedEvent;
use crate::follower::{run_follower, BatchHandler, FollowerConfig, FollowerStatus};
use crate::EventStore;

/// Fixed key of the advisory lock that elects the active relay.
pub const RELAY_LOCK_KEY: i64 = 0x4147_4f52_415f_524c;

/// How the relay runs.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub database_url: String,
    pub brokers: String,
    pub topic_prefix: String,
    /// The checkpoint's name (one per relay deployment).
    pub name: String,
    pub batch_size: i64,
    /// How long a standby waits between tries for the lock.
    pub standby_retry: Duration,
    /// The longest wait for new events without a notification.
    pub idle_wait: Duration,
    /// How long the broker may take to acknowledge before a batch is retried.
    pub delivery_timeout: Duration,
}

impl RelayConfig {
    pub fn new(database_url: &str, brokers: &str, topic_prefix: &str) -> Self {
        RelayConfig {
            database_url: database_url.to_owned(),
            brokers: brokers.to_owned(),
            topic_prefix: topic_prefix.to_owned(),
            name: "kafka".to_owned(),
            batch_size: 2000,
            standby_retry: Duration::from_secs(1),
            idle_wait: Duration::from_millis(100),
            delivery_timeout: Duration::from_secs(10),
        }
    }
}

/// The topic of a stream type.
pub fn topic_for(prefix: &str, stream_type: &str) -> String {
    format!("{prefix}.{stream_type}")
}

/// An idempotent producer with `acks=all`.
pub fn idempotent_producer(
    brokers: &str,
    delivery_timeout: Duration,
) -> Result<FutureProducer, rdkafka::error::KafkaError> {
    crate::kafka::client_config(brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "500000")
        .set(
            "message.timeout.ms",
            delivery_timeout.as_millis().to_string(),
        )
        .create()
}

/// Runs the relay until `shutdown` turns true: standby until it holds the lock, then
/// publishes. Errors are logged and retried; this only returns on shutdown. The relay is a
/// [`crate::follower`]: it saves its checkpoint only after the broker acknowledged.
pub async fn run_relay(config: RelayConfig, store: EventStore, shutdown: watch::Receiver<bool>) {
    let mut follower =
        FollowerConfig::new(&config.database_url, &config.name, RELAY_LOCK_KEY, "relay");
    follower.batch_size = config.batch_size;
    follower.standby_retry = config.standby_retry;
    follower.idle_wait = config.idle_wait;
    let producer = match idempotent_producer(&config.brokers, config.delivery_timeout) {
        Ok(producer) => producer,
        Err(error) => {
            tracing::error!(%error, "cannot create the Kafka producer; the relay does not run");
            return;
        }
    };
    let publisher = Publisher {
        producer,
        config: config.clone(),
    };
    run_follower(
        follower,
        store,
        publisher,
        FollowerStatus::default(),
        shutdown,
    )
    .await;
}

/// The relay's batch handler: publishes and waits for the broker's acknowledgements.
struct Publisher {
    producer: FutureProducer,
    config: RelayConfig,
}

impl BatchHandler for Publisher {
    async fn handle<'a>(
        &'a mut self,
        _session: &'a Client,
        events: &'a [RecordedEvent],
    ) -> Result<(), String> {
        if let Err(error) = publish(&self.producer, &self.config.topic_prefix, events).await {
            metrics::counter!("relay_publish_failures_total").increment(1);
            // A fatal idempotence error leaves the producer unusable: start afresh.
            let _ = self.producer.flush(Duration::from_secs(1));
            self.producer = idempotent_producer(&self.config.brokers, self.config.delivery_timeout)
                .map_err(|e| format!("kafka producer: {e}"))?;
            return Err(format!("publishing to Kafka failed: {error}"));
        }
        metrics::counter!("relay_events_published_total").increment(events.len() as u64);
        Ok(())
    }
}

/// Publishes a batch and waits until the broker acknowledged every message.
async fn publish(
    producer: &FutureProducer,
    prefix: &str,
    events: &[RecordedEvent],
) -> Result<(), String> {
    let mut deliveries = Vec::with_capacity(events.len());
    for event in events {
        let topic = topic_for(prefix, &event.stream_type);
        let key = event.stream_id.to_string();
        let value = to_json_line(event).map_err(|e| e.to_string())?;
        let schema_version = event.schema_version.to_string();
        let event_id = event.event_id.to_string();
        let headers = OwnedHeaders::new_with_capacity(4)
            .insert(Header {
                key: "event_type",
                value: Some(event.event_type.as_str()),
            })
            .insert(Header {
                key: "schema_version",
                value: Some(schema_version.as_str()),
            })
            .insert(Header {
                key: "event_id",
                value: Some(event_id.as_str()),
            })
            .insert(Header {
                key: "correlation_id",
                value: Some(event.metadata.correlation_id.as_str()),
            });
        let mut record = FutureRecord::to(&topic)
            .key(&key)
            .payload(&value)
            .headers(headers);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                Err((error, returned)) => {
                    if error.rdkafka_error_code()
                        != Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                    {
                        return Err(error.to_string());
                    }
                    record = returned;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
    for outcome in join_all(deliveries).await {
        match outcome {
            Ok(Ok(_)) => {}
            Ok(Err((error, _))) => return Err(error.to_string()),
            Err(_) => return Err("the producer dropped a delivery".into()),
        }
    }
    Ok(())
}
