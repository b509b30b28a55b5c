//! The relay: publishes the event log to Kafka, in log order, without dual writes.
//!
//! The events table is the outbox. The relay follows the log gap-free (see [`crate::log`]),
//! publishes each event with the idempotent producer (`acks=all`), key = stream id, value =
//! the envelope, headers `event_type`, `schema_version`, `event_id`, `correlation_id`, to
//! topic `{prefix}.{stream_type}`, and saves its checkpoint only after the broker
//! acknowledged the whole batch. Exactly one relay publishes: the holder of a session-level
//! advisory lock; a standby retries the lock every second and takes over when the holder's
//! session ends. A crash between publishing and checkpointing republishes a batch: Kafka may
//! hold duplicates, which consumers drop by stream version.

use std::time::Duration;

use futures::future::join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::sync::watch;

use crate::envelope::to_json_line;
use crate::error::StoreError;
use crate::event::RecordedEvent;
use crate::listen::LogListener;
use crate::log::LogCheckpoint;
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
/// publishes. Errors are logged and retried; this only returns on shutdown.
pub async fn run_relay(
    config: RelayConfig,
    store: EventStore,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        match lead_while_possible(&config, &store, &mut shutdown).await {
            Ok(()) => {}
            Err(error) => tracing::warn!(%error, "relay interrupted; retrying"),
        }
        metrics::gauge!("relay_leader").set(0.0);
        tokio::select! {
            _ = tokio::time::sleep(config.standby_retry) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// One session: waits for the lock, then publishes until the session or shutdown ends it.
async fn lead_while_possible(
    config: &RelayConfig,
    store: &EventStore,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let listener = LogListener::connect(&config.database_url).await?;
    loop {
        let row = listener
            .client()
            .query_one("SELECT pg_try_advisory_lock($1)", &[&RELAY_LOCK_KEY])
            .await?;
        if row.try_get::<_, bool>(0)? {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(config.standby_retry) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return Ok(());
        }
    }
    tracing::info!(relay = %config.name, "relay is now the active publisher");
    metrics::gauge!("relay_leader").set(1.0);
    let client = listener.client();
    client
        .execute(
            "INSERT INTO relay_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
            &[&config.name],
        )
        .await?;
    let row = client
        .query_one(
            "SELECT transaction_id, position FROM relay_checkpoints WHERE name = $1",
            &[&config.name],
        )
        .await?;
    let mut checkpoint = LogCheckpoint {
        transaction_id: row.try_get::<_, i64>(0)? as u64,
        position: row.try_get(1)?,
    };
    let save = client
        .prepare(
            "UPDATE relay_checkpoints SET transaction_id = $2, position = $3, updated_at = now() \
             WHERE name = $1",
        )
        .await?;
    let mut producer = idempotent_producer(&config.brokers, config.delivery_timeout)
        .map_err(|e| StoreError::Config(format!("kafka producer: {e}")))?;
    while !*shutdown.borrow() {
        if listener.is_closed() {
            return Err(StoreError::Config("the relay's session ended".into()));
        }
        let events = store.read_log(checkpoint, config.batch_size).await?;
        let Some(last) = events.last() else {
            metrics::gauge!("relay_lag_events").set(0.0);
            metrics::gauge!("relay_lag_seconds").set(0.0);
            tokio::select! {
                _ = listener.wait(config.idle_wait) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        };
        if let Err(error) = publish(&producer, &config.topic_prefix, &events).await {
            metrics::counter!("relay_publish_failures_total").increment(1);
            tracing::warn!(%error, "publishing to Kafka failed; retrying the batch");
            // A fatal idempotence error leaves the producer unusable: start afresh.
            producer = idempotent_producer(&config.brokers, config.delivery_timeout)
                .map_err(|e| StoreError::Config(format!("kafka producer: {e}")))?;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let next = LogCheckpoint::after(last);
        client
            .execute(
                &save,
                &[&config.name, &(next.transaction_id as i64), &next.position],
            )
            .await?;
        checkpoint = next;
        metrics::counter!("relay_events_published_total").increment(events.len() as u64);
        let lag = (chrono::Utc::now() - last.occurred_at)
            .num_milliseconds()
            .max(0) as f64;
        metrics::gauge!("relay_lag_seconds").set(lag / 1000.0);
        metrics::gauge!("relay_lag_events").set(if events.len() as i64 == config.batch_size {
            config.batch_size as f64
        } else {
            0.0
        });
    }
    let _ = producer.flush(Duration::from_secs(5));
    Ok(())
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
