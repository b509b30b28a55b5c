//! A standalone relay process: publishes the event log to Kafka. (The command API runs
//! the same relay in-process when `KAFKA_BROKERS` is set; this binary is for deployments
//! that keep it apart, and for crash tests.)
//!
//! Environment: `DATABASE_URL`, `KAFKA_BROKERS`, `AGORA_TOPIC_PREFIX` (default `agora`).

use eventstore::relay::{run_relay, RelayConfig};
use eventstore::{connect_pool, migrate, EventStore};
use tokio::sync::watch;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let database_url = std::env::var("DATABASE_URL").map_err(|_| "DATABASE_URL is required")?;
    let brokers = std::env::var("KAFKA_BROKERS").map_err(|_| "KAFKA_BROKERS is required")?;
    let prefix = std::env::var("AGORA_TOPIC_PREFIX").unwrap_or_else(|_| "agora".into());
    migrate(&database_url).await?;
    let store = EventStore::new(connect_pool(&database_url, 4)?);
    let (stop, stopped) = watch::channel(false);
    let relay = tokio::spawn(run_relay(
        RelayConfig::new(&database_url, &brokers, &prefix),
        store,
        stopped,
    ));
    tokio::signal::ctrl_c().await?;
    let _ = stop.send(true);
    relay.await?;
    Ok(())
}
