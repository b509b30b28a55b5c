//! The whole system in this process, wired as `e2e/tests/support/mod.rs` (`Stack::start`)
//! wires it: command API, projector and query API on one fresh database, and optionally the
//! relay (inside the command API) and a Kafka-source projector on fresh topics.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use eventstore::testing::TestDatabase;
use platform::{JwtKeys, Role};
use projector::service::Projector;
use uuid::Uuid;

use crate::support::fresh_database;

/// The secret the stack's tokens are signed with.
pub const SECRET: &str = "bench-test-secret-0123456789abcdef0123";

/// How to start the stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Route events through the relay and a Kafka consumer group on these brokers.
    pub kafka: Option<String>,
    /// Start the command API.
    pub command_api: bool,
    /// Start a projector.
    pub projector: bool,
    /// Start the query API.
    pub query_api: bool,
    /// The projector's batch size (the e2e stack uses 500).
    pub projector_batch: usize,
    /// Each API's pool size (the e2e stack uses 16).
    pub pool_size: usize,
    /// Each API's HTTP workers (the e2e stack uses 2).
    pub workers: usize,
    /// The command API's group commit (its default: on).
    pub group_commit: bool,
    /// Turn webhooks on with this key (and allow loopback receivers).
    pub webhook_key: Option<String>,
    /// The payment provider (default: the manual one).
    pub payments: command_api::payments::PaymentSettings,
    /// Email (default: off).
    pub email: command_api::emails::EmailSettings,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            kafka: None,
            command_api: true,
            projector: true,
            query_api: true,
            projector_batch: 500,
            pool_size: 16,
            workers: 2,
            group_commit: true,
            webhook_key: None,
            payments: Default::default(),
            email: Default::default(),
        }
    }
}

/// The master key of personal data in benchmark stacks (the command and query APIs share
/// it; personal fields are sealed as in production).
pub const PII_KEY: &str = "4f1c9e27b8d35a60e2f7c41b9d86a05e3c7b2f19d4e8a6c05b3f7e2d9a1c8b46";

/// The personal data settings of benchmark stacks.
pub fn pii_settings() -> platform::pii::PiiSettings {
    platform::pii::PiiSettings {
        pii_key: Some(PII_KEY.into()),
        pii_retired_keys: Vec::new(),
    }
}

/// A started stack.
pub struct Stack {
    pub db: TestDatabase,
    /// `http://127.0.0.1:PORT` of the command API (empty when not started).
    pub command: String,
    /// `http://127.0.0.1:PORT` of the query API (empty when not started).
    pub query: String,
    pub keys: JwtKeys,
    /// An admin token.
    pub admin: String,
    pub projector: Option<Projector>,
    pub topic_prefix: Option<String>,
}

impl Stack {
    /// Starts what `options` asks for on a fresh database.
    pub async fn start(options: &StackOptions) -> Result<Stack> {
        let db = fresh_database(false).await?;
        Self::start_on(db, options).await
    }

    /// Starts what `options` asks for on `db`.
    pub async fn start_on(db: TestDatabase, options: &StackOptions) -> Result<Stack> {
        let brokers = options.kafka.clone();
        let prefix = brokers
            .as_ref()
            .map(|_| format!("bench{}", Uuid::new_v4().simple()));
        let topic_prefix = prefix.clone().unwrap_or_else(|| "agora".into());
        let mut command = String::new();
        if options.command_api {
            let app = command_api::startup::Application::build(command_api::config::Settings {
                database_url: db.url.clone(),
                addr: "127.0.0.1:0".into(),
                auth: platform::AuthSettings {
                    // Benchmarks drive one subject far past any fair share.
                    rate_limit_per_subject: 0,
                    ..platform::AuthSettings::hs256(SECRET)
                },
                pool_size: options.pool_size,
                workers: options.workers,
                state_cache_mb: 64,
                group_commit: options.group_commit,
                group_commit_max_commands: 256,
                group_commit_in_flight: 2,
                kafka_brokers: brokers.clone(),
                topic_prefix: topic_prefix.clone(),
                shutdown_drain_ms: 0,
                tls: Default::default(),
                reactors: true,
                payment_ttl: std::time::Duration::from_secs(30 * 60),
                max_open_orders_per_customer: 0,
                webhook_key: options.webhook_key.clone(),
                webhook_allow_insecure: options.webhook_key.is_some(),
                webhook_max_attempts: 10,
                webhook_retry_base: std::time::Duration::from_secs(5),
                log_signing_key: None,
                checkpoint_interval: std::time::Duration::from_secs(10),
                sequencer: true,
                sequencer_database_url: None,
                payments: options.payments.clone(),
                pii: pii_settings(),
                email: options.email.clone(),
            })
            .await?;
            command = format!("http://127.0.0.1:{}", app.port());
            tokio::spawn(app.run_until_stopped());
        }
        let projector = if options.projector {
            Some(
                Projector::start(projector::config::Settings {
                    database_url: db.url.clone(),
                    read_database_url: None,
                    kafka_brokers: brokers.clone(),
                    topic_prefix: topic_prefix.clone(),
                    group_id: format!("bench-{}", Uuid::new_v4().simple()),
                    addr: "127.0.0.1:0".into(),
                    batch_size: options.projector_batch,
                    stall_after: std::time::Duration::from_secs(30),
                })
                .await?,
            )
        } else {
            None
        };
        let mut query = String::new();
        if options.query_api {
            let app = query_api::startup::Application::build(query_api::config::Settings {
                read_database_url: None,
                database_url: Some(db.url.clone()),
                addr: "127.0.0.1:0".into(),
                auth: platform::AuthSettings {
                    // Benchmarks drive one subject far past any fair share.
                    rate_limit_per_subject: 0,
                    ..platform::AuthSettings::hs256(SECRET)
                },
                consistency_wait_ms: 10_000,
                consistency_max_waiters: 256,
                pool_size: options.pool_size,
                workers: options.workers,
                tls: Default::default(),
                max_live_subscribers: 10_000,
                sse_heartbeat_secs: 15,
                pii: pii_settings(),
            })
            .await?;
            query = format!("http://127.0.0.1:{}", app.port());
            tokio::spawn(app.run_until_stopped());
        }
        let keys = JwtKeys::hs256(SECRET.as_bytes());
        let admin = keys.mint("root", &[Role::Admin], 24 * 3600)?;
        Ok(Stack {
            db,
            command,
            query,
            keys,
            admin,
            projector,
            topic_prefix: prefix,
        })
    }

    /// A token for `sub` with `roles`.
    pub fn token(&self, sub: &str, roles: &[Role]) -> Result<String> {
        Ok(self.keys.mint(sub, roles, 24 * 3600)?)
    }

    /// Waits until the products read model has `count` rows.
    pub async fn products_visible(&self, count: usize, deadline: Duration) -> Result<()> {
        let client = self.db.store.pool().get().await?;
        let until = Instant::now() + deadline;
        loop {
            let seen: i64 = client
                .query_one("SELECT count(*) FROM read_model.products", &[])
                .await?
                .get(0);
            if seen as usize >= count {
                return Ok(());
            }
            if Instant::now() > until {
                bail!("only {seen} of {count} products reached the read model in {deadline:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the projector (the HTTP servers end with the process).
    pub async fn stop_projector(&mut self) -> Result<()> {
        if let Some(projector) = self.projector.take() {
            projector.stop().await?;
        }
        Ok(())
    }
}
