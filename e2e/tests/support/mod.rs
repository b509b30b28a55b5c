//! The whole system in one test process: command API, projector and query API on a fresh
//! database (and, optionally, the relay and a Kafka consumer group on fresh topics).

#![allow(dead_code)]

pub mod faults;
pub mod oidc;
pub mod personal;

use std::path::PathBuf;
use std::time::Duration;

use eventstore::testing::TestDatabase;
use platform::{AuthSettings, JwtKeys, Role};
use projector::service::Projector;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

/// The master key of personal data in the test stack (the command and query APIs share it).
pub const PII_KEY: &str = "83b3fead60d72ab9850be3d64a712a77e4bb2d53c434afe3d0b91a22e3cbe48b";

pub const SECRET: &str = "e2e-test-secret-0123456789abcdef0123";

/// The command API's settings for the test stack, on `database_url`.
pub fn command_settings(
    database_url: &str,
    kafka_brokers: Option<String>,
    topic_prefix: String,
) -> command_api::config::Settings {
    command_api::config::Settings {
        database_url: database_url.to_owned(),
        addr: "127.0.0.1:0".into(),
        auth: AuthSettings::hs256(SECRET),
        pool_size: 16,
        workers: 2,
        state_cache_mb: 64,
        group_commit: true,
        group_commit_max_commands: 256,
        group_commit_in_flight: 2,
        kafka_brokers,
        topic_prefix,
        shutdown_drain_ms: 0,
        tls: Default::default(),
        reactors: true,
        payment_ttl: std::time::Duration::from_secs(30 * 60),
        max_open_orders_per_customer: 0,
        webhook_key: None,
        webhook_allow_insecure: false,
        webhook_max_attempts: 10,
        webhook_retry_base: std::time::Duration::from_secs(5),
        log_signing_key: None,
        checkpoint_interval: std::time::Duration::from_secs(10),
        sequencer: true,
        sequencer_database_url: None,
        payments: Default::default(),
        pii: platform::pii::PiiSettings {
            pii_key: Some(PII_KEY.into()),
            pii_retired_keys: Vec::new(),
        },
        email: Default::default(),
    }
}

/// The query API's settings for the test stack: read models at `read_database_url`
/// (else the event store's database), the event store at `database_url`.
pub fn query_settings(
    read_database_url: Option<String>,
    database_url: Option<String>,
) -> query_api::config::Settings {
    query_api::config::Settings {
        read_database_url,
        database_url,
        addr: "127.0.0.1:0".into(),
        auth: AuthSettings::hs256(SECRET),
        consistency_wait_ms: 10_000,
        consistency_max_waiters: 256,
        pool_size: 16,
        workers: 2,
        tls: Default::default(),
        max_live_subscribers: 10_000,
        sse_heartbeat_secs: 15,
        pii: platform::pii::PiiSettings {
            pii_key: Some(PII_KEY.into()),
            pii_retired_keys: Vec::new(),
        },
    }
}

/// A workspace binary next to this test's executable (cargo test --workspace builds them).
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or_else(|| anyhow::anyhow!("unexpected test binary location"))?;
    let path = dir.join(name);
    anyhow::ensure!(
        path.exists(),
        "{} is not built: run `cargo build -p {name}` (scripts/test.sh builds it)",
        path.display()
    );
    Ok(path)
}

pub struct Stack {
    pub db: TestDatabase,
    pub command: String,
    pub query: String,
    pub keys: JwtKeys,
    pub admin: String,
    pub http: reqwest::Client,
    pub projector: Option<Projector>,
    pub topic_prefix: Option<String>,
}

impl Stack {
    /// Starts everything; `kafka` routes events through the relay and a consumer group.
    pub async fn start(kafka: bool) -> anyhow::Result<Stack> {
        Self::start_with(kafka, |_| {}).await
    }

    /// Starts everything with both APIs checking tokens as `auth` says.
    pub async fn start_with_auth(kafka: bool, auth: AuthSettings) -> anyhow::Result<Stack> {
        let query_auth = auth.clone();
        let db = TestDatabase::create().await?;
        let brokers = kafka.then(e2e::kafka_brokers);
        Self::start_configured(db, brokers, query_auth, |settings| settings.auth = auth).await
    }

    /// [`Stack::start`] with the command API's settings changed by `configure`.
    pub async fn start_with(
        kafka: bool,
        configure: impl FnOnce(&mut command_api::config::Settings),
    ) -> anyhow::Result<Stack> {
        let db = TestDatabase::create().await?;
        let brokers = kafka.then(e2e::kafka_brokers);
        Self::start_configured(db, brokers, AuthSettings::hs256(SECRET), configure).await
    }

    /// [`Stack::start`] on `db` (a database of another cluster: one a test crashes, or one
    /// behind a fault proxy).
    pub async fn start_on(db: TestDatabase, kafka: bool) -> anyhow::Result<Stack> {
        let brokers = kafka.then(e2e::kafka_brokers);
        Self::start_configured(db, brokers, AuthSettings::hs256(SECRET), |_| {}).await
    }

    /// [`Stack::start`] through Kafka at `brokers` (e.g. behind a fault proxy).
    pub async fn start_via(brokers: &str) -> anyhow::Result<Stack> {
        let db = TestDatabase::create().await?;
        let brokers = Some(brokers.to_owned());
        Self::start_configured(db, brokers, AuthSettings::hs256(SECRET), |_| {}).await
    }

    async fn start_configured(
        db: TestDatabase,
        brokers: Option<String>,
        auth: AuthSettings,
        configure: impl FnOnce(&mut command_api::config::Settings),
    ) -> anyhow::Result<Stack> {
        let kafka = brokers.is_some();
        let prefix = kafka.then(|| format!("e2e{}", Uuid::new_v4().simple()));
        let mut settings = command_settings(
            &db.url,
            brokers.clone(),
            prefix.clone().unwrap_or_else(|| "agora".into()),
        );
        configure(&mut settings);
        let command = command_api::startup::Application::build(settings).await?;
        let command_url = format!("http://127.0.0.1:{}", command.port());
        tokio::spawn(command.run_until_stopped());
        let projector = Projector::start(projector::config::Settings {
            database_url: db.url.clone(),
            read_database_url: None,
            kafka_brokers: brokers.clone(),
            topic_prefix: prefix.clone().unwrap_or_else(|| "agora".into()),
            group_id: format!("e2e-{}", Uuid::new_v4().simple()),
            addr: "127.0.0.1:0".into(),
            batch_size: 500,
            stall_after: std::time::Duration::from_secs(30),
        })
        .await?;
        let mut settings = query_settings(None, Some(db.url.clone()));
        settings.auth = auth;
        let query = query_api::startup::Application::build(settings).await?;
        let query_url = format!("http://127.0.0.1:{}", query.port());
        tokio::spawn(query.run_until_stopped());
        let keys = JwtKeys::hs256(SECRET.as_bytes());
        let admin = keys.mint("root", &[Role::Admin], 3600)?;
        Ok(Stack {
            db,
            command: command_url,
            query: query_url,
            keys,
            admin,
            http: reqwest::Client::new(),
            projector: Some(projector),
            topic_prefix: prefix,
        })
    }

    pub fn token(&self, sub: &str, roles: &[Role]) -> String {
        self.keys.mint(sub, roles, 3600).expect("a token")
    }

    /// POSTs a command; returns status and body.
    pub async fn command(
        &self,
        path: &str,
        token: &str,
        body: Value,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let response = self
            .http
            .post(format!("{}{path}", self.command))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        Ok((status, response.json().await?))
    }

    /// POSTs a command that must succeed; returns (id, version).
    pub async fn ok(&self, path: &str, token: &str, body: Value) -> anyhow::Result<(Uuid, i64)> {
        let (status, body) = self.command(path, token, body).await?;
        anyhow::ensure!(status.is_success(), "{path}: {status} {body}");
        let id = body["id"].as_str().unwrap_or_default().parse()?;
        let version = body["version"].as_i64().unwrap_or_default();
        Ok((id, version))
    }

    /// `token` checks `order` out at the payment provider (`POST /v1/orders/{id}/payment`
    /// with `{}`); the checkout answer (`payment_id`, `amount_cents`, ...).
    pub async fn checkout(&self, order: Uuid, token: &str) -> anyhow::Result<Value> {
        let path = format!("/v1/orders/{order}/payment");
        let (status, body) = self.command(&path, token, json!({})).await?;
        anyhow::ensure!(status == StatusCode::OK, "{path}: {status} {body}");
        Ok(body)
    }

    /// An admin confirms `order`'s open payment (the development provider, which every
    /// stack runs); returns (id, version) like [`Stack::ok`].
    pub async fn confirm_payment(&self, order: Uuid) -> anyhow::Result<(Uuid, i64)> {
        let path = format!("/v1/orders/{order}/payment/confirm");
        self.ok(&path, &self.admin, json!({})).await
    }

    /// How a customer's order gets paid: `token` (its owner) checks out, an admin confirms.
    /// Returns the checkout answer and the order's version once paid.
    pub async fn pay(&self, order: Uuid, token: &str) -> anyhow::Result<(Value, i64)> {
        let checkout = self.checkout(order, token).await?;
        let (_, version) = self.confirm_payment(order).await?;
        Ok((checkout, version))
    }

    /// GETs from the query API.
    pub async fn get(&self, path: &str, token: &str) -> anyhow::Result<Response> {
        Ok(self
            .http
            .get(format!("{}{path}", self.query))
            .bearer_auth(token)
            .send()
            .await?)
    }

    /// The day buckets of `/v1/dashboard/sales` summed per field:
    /// (orders_placed, orders_paid, revenue_cents, units_sold).
    pub async fn sales_totals(&self, token: &str) -> anyhow::Result<(i64, i64, i64, i64)> {
        let sales: Value = self
            .get("/v1/dashboard/sales?bucket=day", token)
            .await?
            .json()
            .await?;
        let buckets = sales["buckets"].as_array().cloned().unwrap_or_default();
        let sum = |field: &str| {
            buckets
                .iter()
                .filter_map(|b| b[field].as_i64())
                .sum::<i64>()
        };
        Ok((
            sum("orders_placed"),
            sum("orders_paid"),
            sum("revenue_cents"),
            sum("units_sold"),
        ))
    }

    /// GETs an entity once it reflects `version` (read-your-writes).
    pub async fn read_at(&self, path: &str, token: &str, version: i64) -> anyhow::Result<Value> {
        let response = self
            .get(&format!("{path}?min_version={version}"), token)
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        anyhow::ensure!(
            status == StatusCode::OK,
            "{path}@{version}: {status} {body}"
        );
        anyhow::ensure!(body["version"].as_i64() >= Some(version), "{body}");
        Ok(body)
    }

    /// Polls `condition` until it holds (its error ends the wait at once); fails the test
    /// once `deadline` passed.
    pub async fn eventually<F, Fut>(
        &self,
        what: &str,
        deadline: Duration,
        condition: F,
    ) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<bool>>,
    {
        testkit::try_eventually(what, deadline, condition).await
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(projector) = self.projector.take() {
            projector.stop().await?;
        }
        Ok(())
    }
}
