//! Running the projector: migrations, the health and metrics endpoints, and one source
//! (Kafka when configured, else the Postgres log) until shutdown.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use deadpool_postgres::Pool;
use eventstore::{connect_pool, EventStore};
use platform::telemetry::{metrics_endpoint, metrics_handle};
use serde_json::json;
use tokio::sync::watch;

use crate::config::Settings;
use crate::source_kafka::{run_kafka_source, KafkaSourceConfig};
use crate::source_log::{run_log_source, LogSourceConfig};

struct Health {
    read_pool: Pool,
    ready: Arc<AtomicBool>,
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn readyz(health: web::Data<Health>) -> HttpResponse {
    let database = match health.read_pool.get().await {
        Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
        Err(_) => false,
    };
    if database && health.ready.load(Ordering::SeqCst) {
        HttpResponse::Ok().json(json!({"status": "ready"}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({"status": "unready", "database": database}))
    }
}

/// A started projector.
pub struct Projector {
    pub port: u16,
    shutdown: watch::Sender<bool>,
    stop: Arc<AtomicBool>,
    ready: Arc<AtomicBool>,
    worker: tokio::task::JoinHandle<anyhow::Result<()>>,
    server: actix_web::dev::ServerHandle,
    /// A projector dropped without [`Projector::stop`] still stops its worker (the Kafka
    /// source runs on a blocking thread that would otherwise keep its runtime alive).
    _stop_on_drop: StopOnDrop,
}

/// Raises the stop flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Projector {
    /// Migrates the read models and starts projecting.
    pub async fn start(settings: Settings) -> anyhow::Result<Projector> {
        let read_url = settings.read_database_url().to_owned();
        readmodel::migrate(&read_url).await?;
        let read_pool = connect_pool(&read_url, 8)?;
        let ready = Arc::new(AtomicBool::new(true));
        let listener = TcpListener::bind(&settings.addr)?;
        let port = listener.local_addr()?.port();
        let health = web::Data::new(Health {
            read_pool: read_pool.clone(),
            ready: ready.clone(),
        });
        let metrics = web::Data::new(metrics_handle());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(health.clone())
                .app_data(metrics.clone())
                .route("/healthz", web::get().to(healthz))
                .route("/readyz", web::get().to(readyz))
                .route("/metrics", web::get().to(metrics_endpoint))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        let server_handle = server.handle();
        tokio::spawn(server);

        let (shutdown, shutdown_rx) = watch::channel(false);
        let stop = Arc::new(AtomicBool::new(false));
        let worker = match settings.kafka_brokers() {
            Some(brokers) => {
                tracing::info!(brokers, group = %settings.group_id, "projecting from Kafka");
                let config = KafkaSourceConfig {
                    brokers: brokers.to_owned(),
                    group_id: settings.group_id.clone(),
                    topic_prefix: settings.topic_prefix.clone(),
                    batch_size: settings.batch_size,
                    batch_linger: Duration::from_millis(5),
                };
                let handle = tokio::runtime::Handle::current();
                let stop = stop.clone();
                tokio::task::spawn_blocking(move || {
                    run_kafka_source(config, read_pool, handle, stop)
                        .map_err(|e| anyhow::anyhow!("kafka source: {e}"))
                })
            }
            None => {
                tracing::info!("projecting from the Postgres log");
                let store = EventStore::new(connect_pool(&settings.database_url, 4)?);
                let config = LogSourceConfig {
                    database_url: settings.database_url.clone(),
                    batch_size: settings.batch_size as i64,
                    idle_wait: Duration::from_millis(100),
                };
                tokio::spawn(run_log_source(config, store, read_pool, shutdown_rx))
            }
        };
        Ok(Projector {
            port,
            shutdown,
            _stop_on_drop: StopOnDrop(stop.clone()),
            stop,
            ready,
            worker,
            server: server_handle,
        })
    }

    /// Stops after the batch in hand is committed.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.ready.store(false, Ordering::SeqCst);
        let _ = self.shutdown.send(true);
        self.stop.store(true, Ordering::SeqCst);
        let outcome = self.worker.await;
        self.server.stop(true).await;
        outcome?
    }

    /// Runs until SIGINT or SIGTERM, then stops gracefully.
    pub async fn run_until_signalled(self) -> anyhow::Result<()> {
        platform::shutdown::wait_for_signal().await;
        tracing::info!("stopping: finishing the batch in hand");
        self.stop().await
    }
}
