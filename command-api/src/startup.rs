//! Building and running the HTTP server (Zero To Production style: tests build it on port
//! 0 with a fresh database and talk to it over real HTTP).

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use eventstore::checkpoint::LogSigningKey;
use eventstore::relay::{run_relay, RelayConfig};
use eventstore::sequencer::{run_sequencer, state_file_beside, SequencerConfig, SequencerStatus};
use eventstore::{connect_pool, migrate, EventStore, GroupCommitLimits};
use platform::telemetry::{metrics_endpoint, metrics_handle, track_requests};
use platform::{http, Authenticator};
use tokio::sync::watch;
use tracing_actix_web::TracingLogger;

use crate::config::Settings;
use crate::execution::{Engine, StreamLocks};
use crate::reactors::{ReactorStatuses, Reactors};
use crate::routes::{customers, emails, health, orders, payments, products, webhooks, AppState};
use crate::webhooks::secrets::SecretBox;
use crate::webhooks::WebhookSettings;
use eventstore::follower::FollowerStatus;

/// Connections of the sequencer's own pool (one batch transaction at a time, plus reads).
const SEQUENCER_POOL_SIZE: usize = 4;

/// A bound, not yet running server.
pub struct Application {
    port: u16,
    address: String,
    server: Server,
    relay: Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
    reactors: Option<Reactors>,
    sequencer: Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
    ready: Arc<AtomicBool>,
    drain: Duration,
    watcher: tokio::task::JoinHandle<()>,
    /// Hears changes of customers for what is kept of them ([`crate::customer_cache`]).
    customer_listener: (watch::Sender<bool>, tokio::task::JoinHandle<()>),
}

impl Application {
    /// Migrates the store, connects, and binds `settings.addr`.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let authenticator = settings.auth.authenticator()?;
        let payments = Arc::new(settings.payments.payments().map_err(anyhow::Error::msg)?);
        let signing_key = settings
            .log_signing_key
            .as_deref()
            .map(LogSigningKey::from_pem_file)
            .transpose()
            .map_err(|error| anyhow::anyhow!("AGORA_LOG_SIGNING_KEY: {error}"))?;
        if signing_key.is_none() && settings.sequencer {
            tracing::warn!(
                "AGORA_LOG_SIGNING_KEY is unset: the log is sequenced, but no checkpoint is signed"
            );
        }
        migrate(&settings.database_url).await?;
        let mut store = EventStore::new(connect_pool(&settings.database_url, settings.pool_size)?)
            .notifying_followers();
        if settings.group_commit {
            store = store.grouping_commits(GroupCommitLimits {
                max_commands: settings.group_commit_max_commands.max(1),
                in_flight: settings.group_commit_in_flight.max(1),
                ..GroupCommitLimits::default()
            });
        }
        let tls = settings.tls.server_config()?;
        let keyring = settings.pii.keyring().map_err(anyhow::Error::msg)?;
        let vault = platform::pii::Vault::new(keyring, store.pool().clone()).caching();
        let customers = Arc::new(crate::customer_cache::CustomerCache::default());
        let customer_listener = {
            let (stop, stopped) = watch::channel(false);
            (
                stop,
                tokio::spawn(crate::customer_cache::run_listener(
                    settings.database_url.clone(),
                    customers.clone(),
                    vault.clone(),
                    stopped,
                )),
            )
        };
        let mailer = crate::emails::mailer::Mailer::from_settings(&settings.email)
            .map_err(anyhow::Error::msg)?;
        let listener = TcpListener::bind(&settings.addr)?;
        let local = listener.local_addr()?;
        let relay = settings
            .kafka_brokers
            .as_deref()
            .filter(|brokers| !brokers.is_empty())
            .map(|brokers| {
                let config =
                    RelayConfig::new(&settings.database_url, brokers, &settings.topic_prefix);
                let (stop, stopped) = watch::channel(false);
                let task = tokio::spawn(run_relay(config, store.clone(), stopped));
                (stop, task)
            });
        let sequencer_status = SequencerStatus::default();
        let sequencer = if settings.sequencer {
            // The sequencer writes the sequence, the tree and the checkpoints over a
            // connection of its own: in production a role of `agora_sequencer`, the only one
            // that may (deploy/postgres/roles.sql).
            let (url, sequencer_store) = match settings.sequencer_database_url.as_deref() {
                Some(url) => (
                    url,
                    EventStore::new(connect_pool(url, SEQUENCER_POOL_SIZE)?),
                ),
                None => (settings.database_url.as_str(), store.clone()),
            };
            let mut config = SequencerConfig::new(url, signing_key);
            config.checkpoint_interval = settings.checkpoint_interval;
            config.state_file = settings.log_signing_key.as_deref().map(state_file_beside);
            config.status = sequencer_status.clone();
            let (stop, stopped) = watch::channel(false);
            Some((
                stop,
                tokio::spawn(run_sequencer(config, sequencer_store, stopped)),
            ))
        } else {
            if signing_key.is_some() {
                anyhow::bail!(
                    "AGORA_LOG_SIGNING_KEY is set but AGORA_SEQUENCER=false: only the process \
                     that runs the sequencer needs (and should hold) the key"
                );
            }
            None
        };
        let ready = Arc::new(AtomicBool::new(true));
        let watcher = tokio::spawn(watch_open_transactions(store.clone()));
        let webhooks = match settings.webhook_key.as_deref().filter(|k| !k.is_empty()) {
            Some(key) => Some(WebhookSettings {
                secrets: SecretBox::from_hex(key).map_err(anyhow::Error::msg)?,
                allow_insecure: settings.webhook_allow_insecure,
                max_attempts: settings.webhook_max_attempts,
                retry_base: settings.webhook_retry_base,
            }),
            None => None,
        };
        let statuses = if settings.reactors {
            ReactorStatuses {
                expiry: Some(FollowerStatus::default()),
                webhooks: webhooks.as_ref().map(|_| FollowerStatus::default()),
                emails: mailer.as_ref().map(|_| FollowerStatus::default()),
            }
        } else {
            ReactorStatuses::default()
        };
        let state = web::Data::new(AppState {
            engine: Arc::new(Engine::new(store, settings.state_cache_mb)),
            ready: ready.clone(),
            max_open_orders: settings.max_open_orders_per_customer,
            customer_locks: StreamLocks::default(),
            webhooks: webhooks.clone(),
            reactors: statuses.clone(),
            sequencer: sequencer_status,
            payments: payments.clone(),
            vault,
            customers,
            mail_domain: settings
                .email
                .mail_from
                .rsplit_once('@')
                .map_or("agora.invalid", |(_, domain)| domain)
                .to_owned(),
        });
        let reactors = settings.reactors.then(|| {
            Reactors::spawn(
                &settings.database_url,
                state.engine.clone(),
                settings.payment_ttl,
                payments.clone(),
                webhooks,
                mailer.map(|mailer| crate::emails::reactor::Sender {
                    store: state.engine.store.clone(),
                    vault: state.vault.clone(),
                    mailer,
                    settings: settings.email.clone(),
                }),
                &statuses,
            )
        });
        let server = run(listener, state, authenticator, settings.workers, tls)?;
        Ok(Application {
            port: local.port(),
            address: local.to_string(),
            server,
            relay,
            reactors,
            sequencer,
            ready,
            drain: Duration::from_millis(settings.shutdown_drain_ms),
            watcher,
            customer_listener,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Serves until SIGTERM or SIGINT, then stops gracefully: `/readyz` turns unready,
    /// after the drain period the listener closes, in-flight requests finish, and the
    /// relay publishes its batch in hand and stops.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let ready = self.ready.clone();
        let drain = self.drain;
        let signals = tokio::spawn(async move {
            platform::shutdown::wait_for_signal().await;
            tracing::info!("shutting down: draining, then finishing in-flight requests");
            ready.store(false, Ordering::SeqCst);
            tokio::time::sleep(drain).await;
            handle.stop(true).await;
        });
        let outcome = self.server.await;
        signals.abort();
        self.watcher.abort();
        for (stop, task) in self
            .relay
            .into_iter()
            .chain(self.sequencer)
            .chain([self.customer_listener])
        {
            let _ = stop.send(true);
            let _ = task.await;
        }
        if let Some(reactors) = self.reactors {
            reactors.stop().await;
        }
        outcome
    }
}

/// The routes of API.md's command API, plus health, metrics, the OpenAPI document
/// (`/openapi.json`) and Swagger UI (`/docs/`).
pub fn configure(config: &mut web::ServiceConfig) {
    crate::openapi::docs().configure(config);
    config
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(metrics_endpoint))
        .service(
            web::scope("/v1")
                .route("/products", web::post().to(products::create))
                .route(
                    "/products/{id}/price",
                    web::post().to(products::change_price),
                )
                .route("/products/{id}/restock", web::post().to(products::restock))
                .route(
                    "/products/{id}/discontinue",
                    web::post().to(products::discontinue),
                )
                .route("/orders", web::post().to(orders::place))
                .route("/me", web::put().to(customers::set_profile))
                .route("/emails", web::get().to(emails::list))
                .route("/emails/{id}/retry", web::post().to(emails::retry))
                .route("/customers/{id}/erasure", web::post().to(customers::erase))
                .route("/orders/{id}/pay", web::post().to(orders::pay))
                .route("/orders/{id}/payment", web::post().to(payments::checkout))
                .route(
                    "/orders/{id}/payment/confirm",
                    web::post().to(payments::confirm),
                )
                .route("/orders/{id}/refunds", web::post().to(payments::refund))
                .route(
                    "/payments/stripe/webhook",
                    web::post().to(payments::stripe_webhook),
                )
                .route("/orders/{id}/ship", web::post().to(orders::ship))
                .route("/orders/{id}/cancel", web::post().to(orders::cancel))
                .route("/webhooks", web::post().to(webhooks::create))
                .route("/webhooks", web::get().to(webhooks::list))
                .route("/webhooks/{id}", web::get().to(webhooks::get))
                .route("/webhooks/{id}", web::delete().to(webhooks::delete))
                .route(
                    "/webhooks/{id}/deliveries",
                    web::get().to(webhooks::deliveries),
                )
                .route(
                    "/webhooks/{id}/deliveries/{event_id}/retry",
                    web::post().to(webhooks::retry),
                ),
        );
}

/// Starts serving `state` on `listener`: HTTPS with `tls`, else plain HTTP.
pub fn run(
    listener: TcpListener,
    state: web::Data<AppState>,
    authenticator: Authenticator,
    workers: usize,
    tls: Option<platform::tls::ServerConfig>,
) -> std::io::Result<Server> {
    let authenticator = web::Data::new(authenticator);
    let metrics = web::Data::new(metrics_handle());
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(http::refuse_control_characters))
            .wrap(from_fn(track_requests))
            .wrap(TracingLogger::default())
            .app_data(state.clone())
            .app_data(authenticator.clone())
            .app_data(metrics.clone())
            .app_data(http::json_config())
            .app_data(http::path_config())
            .app_data(http::query_config())
            .configure(configure)
            .default_service(web::to(http::no_such_route))
    })
    .keep_alive(http::KEEP_ALIVE)
    .disable_signals()
    .shutdown_timeout(30);
    server = match tls {
        Some(tls) => server.listen_rustls_0_23(listener, tls)?,
        None => server.listen(listener)?,
    };
    if workers > 0 {
        server = server.workers(workers);
    }
    Ok(server.run())
}

/// Publishes the age of the oldest open transaction: it holds back every log reader.
async fn watch_open_transactions(store: EventStore) {
    loop {
        match store.oldest_open_transaction_age().await {
            Ok(age) => metrics::gauge!("oldest_open_transaction_seconds").set(age),
            Err(error) => tracing::debug!(%error, "cannot read the oldest transaction's age"),
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}
