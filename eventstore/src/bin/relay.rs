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
    wait_for_signal().await?;
    let _ = stop.send(true);
    relay.await?;
    Ok(())
}

/// SIGTERM (docker stop, Kubernetes) or SIGINT (Ctrl-C).
async fn wait_for_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => Ok(()),
            outcome = tokio::signal::ctrl_c() => outcome,
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
