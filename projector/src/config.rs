//! Configuration from the environment (flags override), as in DESIGN.md.

use clap::Parser;

/// Settings of the projector.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "projector",
    about = "Agora's projector: builds the read models"
)]
pub struct Settings {
    /// The event store (the log source, and rebuilds).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// The read models' database (defaults to DATABASE_URL).
    #[arg(long, env = "READ_DATABASE_URL", hide_env_values = true)]
    pub read_database_url: Option<String>,
    /// Kafka bootstrap servers; unset: project from the Postgres log directly.
    #[arg(long, env = "KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// Kafka topic prefix.
    #[arg(long, env = "AGORA_TOPIC_PREFIX", default_value = "agora")]
    pub topic_prefix: String,
    /// The Kafka consumer group projectors share.
    #[arg(long, env = "AGORA_PROJECTOR_GROUP", default_value = "agora-projector")]
    pub group_id: String,
    /// Where /healthz, /readyz and /metrics are served.
    #[arg(long, env = "PROJECTOR_ADDR", default_value = "127.0.0.1:8082")]
    pub addr: String,
    /// Events per read-model transaction.
    #[arg(long, env = "AGORA_PROJECTOR_BATCH", default_value_t = 1000)]
    pub batch_size: usize,
    /// How long a projection may stop advancing while events wait for it (a batch in hand
    /// not committed; on the log source also a log head beyond what it applied) before
    /// `/readyz` answers 503 (`30s`, `2m`, ...).
    #[arg(long, env = "AGORA_PROJECTOR_STALL_AFTER", default_value = "30s",
          value_parser = humantime::parse_duration)]
    pub stall_after: std::time::Duration,
}

impl Settings {
    pub fn read_database_url(&self) -> &str {
        self.read_database_url
            .as_deref()
            .filter(|url| !url.is_empty())
            .unwrap_or(&self.database_url)
    }

    pub fn kafka_brokers(&self) -> Option<&str> {
        self.kafka_brokers.as_deref().filter(|b| !b.is_empty())
    }
}
