//! Configuration from the environment (flags override), as in DESIGN.md.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use platform::AuthSettings;

/// Settings of the command API.
#[derive(Debug, Clone, Parser)]
#[command(name = "command-api", about = "Agora's command API")]
pub struct Settings {
    /// The event store.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Where to listen.
    #[arg(long, env = "COMMAND_API_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// How tokens are checked (an OpenID provider and/or an HS256 secret).
    #[command(flatten)]
    pub auth: AuthSettings,
    /// Connections to the event store.
    #[arg(long, env = "AGORA_DB_POOL_SIZE", default_value_t = 32)]
    pub pool_size: usize,
    /// Kafka bootstrap servers: when set, this process also runs a relay candidate that
    /// publishes the event log to Kafka (one relay is active at a time).
    #[arg(long, env = "KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// Kafka topic prefix.
    #[arg(long, env = "AGORA_TOPIC_PREFIX", default_value = "agora")]
    pub topic_prefix: String,
    /// On SIGTERM, how long `/readyz` reports unready before the server stops accepting
    /// (so load balancers drain this instance first). In-flight requests always finish.
    #[arg(long, env = "AGORA_SHUTDOWN_DRAIN_MS", default_value_t = 0)]
    pub shutdown_drain_ms: u64,
    /// Memory for the in-process aggregate cache, in MiB (0 turns it off).
    #[arg(long, env = "AGORA_STATE_CACHE_MB", default_value_t = 64)]
    pub state_cache_mb: usize,
    /// Group commit: concurrent commands share one transaction (each still all or
    /// nothing). `false` commits every command on its own.
    #[arg(long, env = "AGORA_GROUP_COMMIT", default_value_t = true, action = clap::ArgAction::Set)]
    pub group_commit: bool,
    /// The most commands in one group commit.
    #[arg(long, env = "AGORA_GROUP_COMMIT_MAX_COMMANDS", default_value_t = 256)]
    pub group_commit_max_commands: usize,
    /// Group commits in flight at once (one's WAL flush overlaps the next one's insert).
    #[arg(long, env = "AGORA_GROUP_COMMIT_IN_FLIGHT", default_value_t = 2)]
    pub group_commit_in_flight: usize,
    /// HTTP worker threads (0: one per core).
    #[arg(long, env = "AGORA_HTTP_WORKERS", default_value_t = 0)]
    pub workers: usize,
    /// HTTPS: `AGORA_TLS_CERT` and `AGORA_TLS_KEY` (plain HTTP without them).
    #[command(flatten)]
    pub tls: platform::tls::TlsSettings,
    /// Run the reactors (reservation expiry, webhook delivery) in this process; one
    /// instance of each is active across all processes.
    #[arg(long, env = "AGORA_REACTORS", default_value_t = true, action = clap::ArgAction::Set)]
    pub reactors: bool,
    /// An order still `placed` this long after it was placed is cancelled by the system
    /// (reason `payment_timeout`) and its stock released (`30m`, `90s`, `2h`, ...).
    #[arg(long, env = "AGORA_ORDER_PAYMENT_TTL", default_value = "30m", value_parser = humantime::parse_duration)]
    pub payment_ttl: Duration,
    /// The most orders one customer may hold in `placed` (0: no limit; at most 1000).
    #[arg(long, env = "AGORA_MAX_OPEN_ORDERS_PER_CUSTOMER", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub max_open_orders_per_customer: u32,
    /// The key webhook secrets are sealed with at rest: 64 hex digits (32 bytes). Without
    /// it, webhooks are off (`/v1/webhooks` answers 503).
    #[arg(long, env = "AGORA_WEBHOOK_KEY", hide_env_values = true)]
    pub webhook_key: Option<String>,
    /// Allow http and loopback/private webhook URLs (development, tests).
    #[arg(long, env = "AGORA_WEBHOOK_ALLOW_INSECURE", default_value_t = false, action = clap::ArgAction::Set)]
    pub webhook_allow_insecure: bool,
    /// Attempts of a webhook delivery before it is marked `failed`.
    #[arg(long, env = "AGORA_WEBHOOK_MAX_ATTEMPTS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub webhook_max_attempts: u32,
    /// The first retry's delay; each further retry doubles it (at most 1 h), with jitter.
    #[arg(long, env = "AGORA_WEBHOOK_RETRY_BASE", default_value = "5s", value_parser = humantime::parse_duration)]
    pub webhook_retry_base: Duration,
    /// The verifiable log's Ed25519 signing key, a PKCS#8 PEM file (never stored in the
    /// database). Unset: events are still sequenced into the Merkle tree, but no
    /// checkpoint is signed.
    #[arg(long, env = "AGORA_LOG_SIGNING_KEY", value_name = "PEM_FILE")]
    pub log_signing_key: Option<PathBuf>,
    /// Run a sequencer candidate in this process (numbers the log, grows its Merkle tree,
    /// signs checkpoints with `AGORA_LOG_SIGNING_KEY`; one is active across all processes).
    /// Set `false` on the replicas behind the load balancer when one process of its own
    /// holds the key (OPERATIONS.md "The log signer").
    #[arg(long, env = "AGORA_SEQUENCER", default_value_t = true, action = clap::ArgAction::Set)]
    pub sequencer: bool,
    /// The sequencer's own connection, as a role of `agora_sequencer` (the only role that
    /// may write the sequence, the tree, checkpoints and signing keys). Unset: `DATABASE_URL`.
    #[arg(long, env = "AGORA_SEQUENCER_DATABASE_URL", hide_env_values = true)]
    pub sequencer_database_url: Option<String>,
    /// The least time between two signed checkpoints (made only when the log grew), e.g.
    /// `10s`, `500ms`, `1m`.
    #[arg(long, env = "AGORA_CHECKPOINT_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub checkpoint_interval: Duration,
    /// The payment provider (`AGORA_PAYMENTS`, `AGORA_STRIPE_*`).
    #[command(flatten)]
    pub payments: crate::payments::PaymentSettings,
    /// The master key of customers' personal data (`AGORA_PII_KEY`).
    #[command(flatten)]
    pub pii: platform::pii::PiiSettings,
    /// Transactional email (`AGORA_SMTP_URL`, `AGORA_MAIL_FROM`, `AGORA_SHOP_NAME`, ...).
    #[command(flatten)]
    pub email: crate::emails::EmailSettings,
}
