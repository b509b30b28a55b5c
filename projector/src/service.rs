//! Running the projector: migrations, the health and metrics endpoints, and one source
//! worker (Kafka when configured, else the Postgres log) until shutdown.
//!
//! `/readyz` is ready while the read-model database answers and every worker runs; a
//! worker retrying a passing failure makes it unready until the worker recovers (the
//! process keeps going: restarting it would not help). A worker that fails for good makes
//! `/readyz` and `/healthz` answer 503, and [`Projector::run_until_signalled`] returns
//! its error, so the `projector` binary exits non-zero and its orchestrator restarts it.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;
use deadpool_postgres::Pool;
use eventstore::{connect_pool, EventStore};
use platform::telemetry::{metrics_endpoint, metrics_handle};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::source_kafka::{run_kafka_source, KafkaSourceConfig};
use crate::source_log::{run_log_source, LogSourceConfig};
use crate::worker::{WorkerState, WorkerStatus};

struct Health {
    read_pool: Pool,
    /// False once stopping.
    ready: Arc<AtomicBool>,
    workers: Vec<WorkerStatus>,
    /// How long a projection may stop advancing while work waits before it is unready.
    stall_after: Duration,
}

impl Health {
    /// Each worker's state by name.
    fn workers(&self) -> BTreeMap<&'static str, &'static str> {
        self.workers
            .iter()
            .map(|w| (w.name(), w.get().as_str()))
            .collect()
    }

    /// The projections stalled longer than allowed, and for how many seconds.
    fn stalled(&self) -> BTreeMap<String, u64> {
        self.workers
            .iter()
            .flat_map(|w| w.progress().stalled_longer_than(self.stall_after))
            .collect()
    }

    fn any_failed(&self) -> bool {
        self.workers.iter().any(|w| w.get() == WorkerState::Failed)
    }
}

/// Alive, unless a worker failed for good (`{"status": "failed"}`, 503).
async fn healthz(health: web::Data<Health>) -> HttpResponse {
    if health.any_failed() {
        HttpResponse::ServiceUnavailable()
            .json(json!({"status": "failed", "workers": health.workers()}))
    } else {
        HttpResponse::Ok().json(json!({"status": "ok"}))
    }
}

/// Ready while the read-model database answers, every worker is running and no projection
/// has stalled (stopped advancing while work waits, [`crate::progress`]) longer than
/// `AGORA_PROJECTOR_STALL_AFTER`.
async fn readyz(health: web::Data<Health>) -> HttpResponse {
    if !health.ready.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().json(json!({"status": "stopping"}));
    }
    let database = match health.read_pool.get().await {
        Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
        Err(_) => false,
    };
    let running = health
        .workers
        .iter()
        .all(|w| w.get() == WorkerState::Running);
    let stalled = health.stalled();
    let ready = database && running && stalled.is_empty();
    let mut body = json!({
        "status": if ready { "ready" } else { "unready" },
        "database": if database { "ok" } else { "unreachable" },
        "workers": health.workers(),
    });
    if !stalled.is_empty() {
        body["stalled"] = json!(stalled);
    }
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// A started projector.
pub struct Projector {
    pub port: u16,
    shutdown: watch::Sender<bool>,
    stop: Arc<AtomicBool>,
    ready: Arc<AtomicBool>,
    worker: JoinHandle<anyhow::Result<()>>,
    /// Drains parked streams ([`crate::parked::run`]); ends with the shutdown signal.
    parked: JoinHandle<()>,
    status: WorkerStatus,
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

/// Records how a worker ended: stopped when it was asked to and returned without error,
/// else failed.
fn record_end(status: &WorkerStatus, outcome: &anyhow::Result<()>, asked: bool) {
    match outcome {
        Ok(()) if asked => status.stopped(),
        Ok(()) => {
            tracing::error!(worker = status.name(), "the worker ended unasked");
            status.failed();
        }
        Err(error) => {
            tracing::error!(
                worker = status.name(),
                error = format!("{error:#}"),
                "the worker failed for good"
            );
            status.failed();
        }
    }
}

impl Projector {
    /// Migrates the read models and starts projecting.
    pub async fn start(settings: Settings) -> anyhow::Result<Projector> {
        let read_url = settings.read_database_url().to_owned();
        readmodel::migrate(&read_url).await?;
        let read_pool = connect_pool(&read_url, 8)?;
        let ready = Arc::new(AtomicBool::new(true));
        let status = WorkerStatus::new(if settings.kafka_brokers().is_some() {
            "kafka"
        } else {
            "log"
        });
        let listener = TcpListener::bind(&settings.addr)?;
        let port = listener.local_addr()?.port();
        let health = web::Data::new(Health {
            read_pool: read_pool.clone(),
            ready: ready.clone(),
            workers: vec![status.clone()],
            stall_after: settings.stall_after,
        });
        let names: Vec<String> = crate::projections::all()
            .iter()
            .map(|p| p.name().to_owned())
            .collect();
        status.progress().know(names.iter().map(String::as_str));
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
        .keep_alive(platform::http::KEEP_ALIVE)
        .disable_signals()
        .listen(listener)?
        .run();
        let server_handle = server.handle();
        tokio::spawn(server);

        let (shutdown, shutdown_rx) = watch::channel(false);
        let stop = Arc::new(AtomicBool::new(false));
        // Stall detection: the log's head against what the projections applied.
        tokio::spawn(crate::progress::watch(
            status.progress().clone(),
            EventStore::new(connect_pool(&settings.database_url, 1)?),
            shutdown_rx.clone(),
        ));
        // Parked streams: retried at start, then as admins ask (crate::parked).
        let parked = tokio::spawn(crate::parked::run(
            read_pool.clone(),
            EventStore::new(connect_pool(&settings.database_url, 2)?),
            shutdown_rx.clone(),
        ));
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
                let (stop, status) = (stop.clone(), status.clone());
                // The event store, for checking what Kafka delivers (crate::chain).
                let store = EventStore::new(connect_pool(&settings.database_url, 2)?);
                tokio::task::spawn_blocking(move || {
                    let _ended = status.until_ended();
                    let outcome = run_kafka_source(
                        config,
                        read_pool,
                        store,
                        handle,
                        stop.clone(),
                        status.clone(),
                    )
                    .context("kafka source");
                    record_end(&status, &outcome, stop.load(Ordering::SeqCst));
                    outcome
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
                let status = status.clone();
                tokio::spawn(async move {
                    let _ended = status.until_ended();
                    let asked = shutdown_rx.clone();
                    let outcome =
                        run_log_source(config, store, read_pool, shutdown_rx, status.clone())
                            .await
                            .context("log source");
                    record_end(&status, &outcome, *asked.borrow());
                    outcome
                })
            }
        };
        Ok(Projector {
            port,
            shutdown,
            _stop_on_drop: StopOnDrop(stop.clone()),
            stop,
            ready,
            worker,
            parked,
            status,
            server: server_handle,
        })
    }

    /// Stops after the batch in hand is committed. An error is the worker's, if it failed.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.ready.store(false, Ordering::SeqCst);
        let _ = self.shutdown.send(true);
        self.stop.store(true, Ordering::SeqCst);
        let outcome = self.worker.await;
        let _ = self.parked.await;
        self.server.stop(true).await;
        outcome?
    }

    /// Runs until SIGINT or SIGTERM, then stops gracefully; or until the worker fails for
    /// good, then stops serving and returns its error (the binary exits non-zero).
    pub async fn run_until_signalled(mut self) -> anyhow::Result<()> {
        tokio::select! {
            _ = platform::shutdown::wait_for_signal() => {
                tracing::info!("stopping: finishing the batch in hand");
                self.stop().await
            }
            outcome = &mut self.worker => {
                self.ready.store(false, Ordering::SeqCst);
                self.parked.abort();
                self.server.stop(true).await;
                let error = match outcome {
                    Ok(Ok(())) => anyhow::anyhow!("the {} worker ended unasked", self.status.name()),
                    Ok(Err(error)) => error,
                    Err(panicked) => anyhow::anyhow!("the {} worker panicked: {panicked}", self.status.name()),
                };
                Err(error.context("the projector cannot go on"))
            }
        }
    }
}
