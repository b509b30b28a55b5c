//! `latency-bench`: command accepted → visible in the query API (budget: p99 under 100 ms
//! without Kafka, under 250 ms through Kafka, at 1,000 commands/s).
//!
//! Starts the command API, a projector and the query API in this process on a fresh
//! database, wired as the e2e tests' `Stack::start(kafka)` wires them (with `--kafka`: the
//! command API runs the relay and the projector consumes fresh topics). Creates
//! `--products` products straight through the store and waits until the read model has
//! them. Then drives restocks (one `StockAdded` each) round-robin over the products at
//! `--rate` commands/s, open loop (a command is sent when due, whether or not earlier ones
//! have answered), first `--warmup` seconds unrecorded, then `--seconds` recorded.
//!
//! For each command it measures, from the moment its 2xx answer (with the new `version`)
//! was read:
//! - `api`: until `GET /v1/products/{id}?min_version=V` on the query API answered 200 (the
//!   query API itself waits for the read model, polling after 2 ms and backing off to every
//!   20 ms, so this includes up to one poll interval);
//! - `sql`: until a watcher that polls the pending products' rows (`SELECT p.id, p.version
//!   FROM unnest(pending) JOIN read_model.products p ...`, one query for all of them) every
//!   millisecond saw version V (the row's own visibility, to within one poll).
//!
//! Prints p50/p90/p99/max of both, the command latency under this load, and the command
//! rate achieved, plus the longest-open write transactions seen during the run, in this
//! database and elsewhere on the server (any transaction still open anywhere on the server
//! holds every log reader back: the relay and the log-source projector read only below
//! `pg_snapshot_xmin`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bench::shop::create_products;
use bench::stack::{Stack, StackOptions};
use bench::support::{
    budget_line, drop_databases, group, http_client, init_logging_if_asked, load1, load_average,
    ms, open_loop, print_header, Goal, Percentiles,
};
use clap::{Parser, ValueEnum};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Observe {
    /// `GET /v1/products/{id}?min_version=V` on the query API.
    Api,
    /// A watcher polling the read model's row in SQL.
    Sql,
    /// Both, for the same commands.
    Both,
}

#[derive(Debug, Parser)]
#[command(
    name = "latency-bench",
    about = "Command accepted -> visible in the query API, under a steady command load"
)]
struct Args {
    /// Route events through the relay and Kafka (else the projector follows the log).
    #[arg(long)]
    kafka: bool,
    /// Kafka bootstrap servers (with --kafka).
    #[arg(
        long,
        env = "AGORA_TEST_KAFKA_BROKERS",
        default_value = "127.0.0.1:59092"
    )]
    kafka_brokers: String,
    /// Commands per second.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Recorded seconds.
    #[arg(long, default_value_t = 15.0)]
    seconds: f64,
    /// Unrecorded seconds of the same load first.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Products the restocks are spread over (round-robin).
    #[arg(long, default_value_t = 1000)]
    products: usize,
    /// Most commands in flight at once (each with its visibility check).
    #[arg(long, default_value_t = 1024)]
    max_in_flight: usize,
    /// How visibility is observed.
    #[arg(long, value_enum, default_value_t = Observe::Api)]
    observe: Observe,
    /// Diagnostic (with --kafka): also consume the product topic in a separate consumer
    /// group and report when each event arrived there (relay + broker + fetch, without the
    /// projector's apply).
    #[arg(long)]
    probe_kafka: bool,
    /// The projector's batch size (the e2e stack uses 500).
    #[arg(long, default_value_t = 500)]
    projector_batch: usize,
    /// Keep the scratch database.
    #[arg(long)]
    keep: bool,
    /// Run the command API with one commit per command (AGORA_GROUP_COMMIT=false).
    #[arg(long)]
    no_group_commit: bool,
}

/// What one recorded command measured.
#[derive(Debug, Clone, Copy)]
struct Sample {
    id: Uuid,
    version: i64,
    acked: Instant,
    command: Duration,
    api: Option<Duration>,
    sql: Option<Duration>,
}

/// A version to watch for, and where to answer when it is seen.
type Waiter = (i64, oneshot::Sender<Instant>);

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.rate <= 0.0 || args.seconds <= 0.0 || args.products == 0 {
        bail!("--rate, --seconds and --products must be positive");
    }
    init_logging_if_asked();
    print_header("latency-bench").await?;
    let mode = if args.kafka {
        "through Kafka"
    } else {
        "log source, no Kafka"
    };
    let options = StackOptions {
        kafka: args.kafka.then(|| args.kafka_brokers.clone()),
        projector_batch: args.projector_batch,
        group_commit: !args.no_group_commit,
        ..StackOptions::default()
    };
    let mut stack = Stack::start(&options).await?;
    let name = stack.db.name.clone();
    let outcome = run(&args, &stack, mode).await;
    let _ = stack.stop_projector().await;
    if !args.keep {
        if let Some(prefix) = &stack.topic_prefix {
            let topics = [
                format!("{prefix}.{}", domain::product::STREAM_TYPE),
                format!("{prefix}.{}", domain::order::STREAM_TYPE),
            ];
            bench::support::delete_topics(&args.kafka_brokers, &topics).await;
        }
        drop(stack);
        if let Err(error) = drop_databases(&[name]).await {
            eprintln!("warning: could not drop the scratch database: {error:#}");
        }
    }
    println!("== load average at end: {}", load_average());
    outcome
}

async fn run(args: &Args, stack: &Stack, mode: &str) -> Result<()> {
    println!(
        "== {mode}: command API + projector (batch {}) + query API in-process, {} HTTP workers \
         and {} connections each",
        args.projector_batch,
        StackOptions::default().workers,
        StackOptions::default().pool_size
    );
    let products = create_products(&stack.db.store, args.products, "LAT").await?;
    stack
        .products_visible(products.len(), Duration::from_secs(60))
        .await
        .context("waiting for the products to be projected")?;
    println!("{} products created and projected", products.len());

    let client = http_client(args.max_in_flight)?;
    let watcher = spawn_watcher(&stack.db.url).await?;
    let products = Arc::new(products);
    let longest_open = spawn_transaction_sampler(&stack.db.url).await?;
    let probe = match (&stack.topic_prefix, args.probe_kafka) {
        (Some(prefix), true) => Some(KafkaProbe::start(
            &args.kafka_brokers,
            &format!("{prefix}.{}", domain::product::STREAM_TYPE),
        )?),
        _ => None,
    };

    println!(
        "warm-up: {} s at {} commands/s (load {})",
        args.warmup,
        args.rate,
        load1()
    );
    if args.warmup > 0.0 {
        let warm = drive(args, stack, &client, &products, &watcher, args.warmup, None).await;
        if warm.failed > 0 {
            println!("warm-up failures: {} ({:?})", warm.failed, warm.errors);
        }
    }
    longest_open
        .lock()
        .map(|mut l| *l = OpenTransactions::default())
        .ok();
    let load_before = load1();
    let samples = Arc::new(Mutex::new(Vec::new()));
    let run = drive(
        args,
        stack,
        &client,
        &products,
        &watcher,
        args.seconds,
        Some(samples.clone()),
    )
    .await;
    let load_after = load1();
    let oldest = longest_open.lock().map(|l| *l).unwrap_or_default();
    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();

    println!();
    println!(
        "-- {mode}: {} commands due at {} /s over {} s (load {load_before} before, \
         {load_after} after)",
        group((args.rate * args.seconds).round()),
        args.rate,
        args.seconds
    );
    let achieved = run.ok as f64 / run.elapsed.as_secs_f64();
    println!(
        "commands answered 2xx and observed visible: {} ({} failed{}); achieved {} commands/s",
        group(run.ok as f64),
        run.failed,
        if run.errors.is_empty() {
            String::new()
        } else {
            format!(": {:?}", run.errors)
        },
        group(achieved)
    );
    println!(
        "longest-open write transaction during the run (each holds every log reader's horizon \
         back): {:.0} ms in this database, {:.0} ms in other databases on the server",
        oldest.here * 1000.0,
        oldest.elsewhere * 1000.0
    );
    let mut command: Vec<Duration> = samples.iter().map(|s| s.command).collect();
    if let Some(p) = Percentiles::of(&mut command) {
        println!("command latency (due -> 2xx read): {}", p.line());
    }
    let budget = if args.kafka { 250.0 } else { 100.0 };
    let label = if args.kafka {
        "through Kafka"
    } else {
        "without Kafka"
    };
    let mut api: Vec<Duration> = samples.iter().filter_map(|s| s.api).collect();
    let api = Percentiles::of(&mut api);
    if let Some(p) = api {
        println!(
            "visible via query API (2xx -> GET ?min_version 200): {}",
            p.line()
        );
    }
    if let Some(probe) = probe {
        let seen = probe.stop();
        let mut published: Vec<Duration> = samples
            .iter()
            .filter_map(|s| {
                seen.get(&(s.id, s.version))
                    .map(|at| at.saturating_duration_since(s.acked))
            })
            .collect();
        if let Some(p) = Percentiles::of(&mut published) {
            println!(
                "diagnostic: 2xx -> a separate Kafka consumer (fetch.wait.max.ms=10) received \
                 the event: {}",
                p.line()
            );
        }
    }
    let mut sql: Vec<Duration> = samples.iter().filter_map(|s| s.sql).collect();
    let sql = Percentiles::of(&mut sql);
    if let Some(p) = sql {
        println!(
            "visible in the read-model row (2xx -> SQL poll sees V): {}",
            p.line()
        );
    }
    println!(
        "JSON {}",
        json!({
            "mode": if args.kafka { "kafka" } else { "log" },
            "rate": args.rate,
            "achieved": achieved,
            "ok": run.ok,
            "failed": run.failed,
            "api": api.map(summary),
            "sql": sql.map(summary),
            "longest_open_tx_ms": oldest.here * 1000.0,
            "longest_open_tx_elsewhere_ms": oldest.elsewhere * 1000.0,
            "load_before": load_before,
            "load_after": load_after,
        })
    );
    if let Some(p) = api {
        budget_line(
            &format!(
                "accepted -> visible p99, {label}, query API ?min_version ({} cmds/s)",
                group(achieved)
            ),
            ms(p.p99),
            "ms",
            Goal::Below,
            budget,
            &format!("{load_before}-{load_after}"),
        );
    }
    if let Some(p) = sql {
        budget_line(
            &format!(
                "accepted -> visible p99, {label}, read-model row via SQL ({} cmds/s)",
                group(achieved)
            ),
            ms(p.p99),
            "ms",
            Goal::Below,
            budget,
            &format!("{load_before}-{load_after}"),
        );
    }
    if run.failed > 0 {
        bail!("{} commands failed", run.failed);
    }
    Ok(())
}

fn summary(p: Percentiles) -> Value {
    json!({
        "p50_ms": ms(p.p50), "p90_ms": ms(p.p90), "p99_ms": ms(p.p99),
        "max_ms": ms(p.max), "mean_ms": ms(p.mean), "count": p.count,
    })
}

/// Runs the open-loop command load for `seconds`; records samples when `samples` is given.
async fn drive(
    args: &Args,
    stack: &Stack,
    client: &reqwest::Client,
    products: &Arc<Vec<Uuid>>,
    watcher: &mpsc::UnboundedSender<(Uuid, Waiter)>,
    seconds: f64,
    samples: Option<Arc<Mutex<Vec<Sample>>>>,
) -> bench::support::LoadRun {
    let client = client.clone();
    let products = products.clone();
    let watcher = watcher.clone();
    let command_url = stack.command.clone();
    let query_url = stack.query.clone();
    let token = stack.admin.clone();
    let observe = args.observe;
    open_loop(args.rate, seconds, args.max_in_flight, move |i, due| {
        let client = client.clone();
        let id = products[i as usize % products.len()];
        let watcher = watcher.clone();
        let command_url = command_url.clone();
        let query_url = query_url.clone();
        let token = token.clone();
        let samples = samples.clone();
        async move {
            let response = client
                .post(format!("{command_url}/v1/products/{id}/restock"))
                .bearer_auth(&token)
                .json(&json!({"quantity": 1}))
                .send()
                .await?;
            let status = response.status();
            let body: Value = response.json().await?;
            let acked = Instant::now();
            if !status.is_success() {
                bail!("restock: {status} {body}");
            }
            let version = body["version"]
                .as_i64()
                .context("no version in the answer")?;
            let sql = if observe != Observe::Api {
                let (reply, seen) = oneshot::channel();
                watcher
                    .send((id, (version, reply)))
                    .map_err(|_| anyhow::anyhow!("the watcher stopped"))?;
                Some(seen)
            } else {
                None
            };
            let api = if observe != Observe::Sql {
                let response = client
                    .get(format!(
                        "{query_url}/v1/products/{id}?min_version={version}"
                    ))
                    .bearer_auth(&token)
                    .send()
                    .await?;
                let status = response.status();
                let _ = response.bytes().await?;
                if status != reqwest::StatusCode::OK {
                    bail!("GET product at version {version}: {status}");
                }
                Some(acked.elapsed())
            } else {
                None
            };
            let sql = match sql {
                Some(seen) => Some(seen.await?.saturating_duration_since(acked)),
                None => None,
            };
            if let Some(samples) = samples {
                if let Ok(mut samples) = samples.lock() {
                    samples.push(Sample {
                        id,
                        version,
                        acked,
                        command: acked.saturating_duration_since(due),
                        api,
                        sql,
                    });
                }
            }
            Ok(None)
        }
    })
    .await
}

/// A task that polls the read model for the versions it was asked to watch for, every
/// millisecond while any is pending, and answers each with the time it saw it.
async fn spawn_watcher(url: &str) -> Result<mpsc::UnboundedSender<(Uuid, Waiter)>> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let statement = client
        .prepare(
            "SELECT p.id, p.version FROM unnest($1::uuid[]) AS w(id) \
             JOIN read_model.products p ON p.id = w.id",
        )
        .await?;
    let (sender, mut requests) = mpsc::unbounded_channel::<(Uuid, Waiter)>();
    tokio::spawn(async move {
        let mut pending: HashMap<Uuid, Vec<Waiter>> = HashMap::new();
        loop {
            if pending.is_empty() {
                match requests.recv().await {
                    Some((id, waiter)) => pending.entry(id).or_default().push(waiter),
                    None => return,
                }
            }
            while let Ok((id, waiter)) = requests.try_recv() {
                pending.entry(id).or_default().push(waiter);
            }
            let ids: Vec<Uuid> = pending.keys().copied().collect();
            let Ok(rows) = client.query(&statement, &[&ids]).await else {
                return;
            };
            let seen_at = Instant::now();
            for row in rows {
                let id: Uuid = row.get(0);
                let version: i64 = row.get(1);
                if let Some(waiters) = pending.get_mut(&id) {
                    let mut kept = Vec::new();
                    for (wanted, reply) in waiters.drain(..) {
                        if version >= wanted {
                            let _ = reply.send(seen_at);
                        } else {
                            kept.push((wanted, reply));
                        }
                    }
                    *waiters = kept;
                }
            }
            pending.retain(|_, waiters| !waiters.is_empty());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    Ok(sender)
}

/// The longest-open write transactions seen, in seconds: in this benchmark's database, and
/// anywhere else on the server.
#[derive(Debug, Clone, Copy, Default)]
struct OpenTransactions {
    here: f64,
    elsewhere: f64,
}

/// Samples, every 100 ms, how long the oldest write transaction has been open, in this
/// database and in the others on the server (every one of them holds the log horizon of
/// every database back), and keeps the largest of each.
async fn spawn_transaction_sampler(url: &str) -> Result<Arc<Mutex<OpenTransactions>>> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let longest = Arc::new(Mutex::new(OpenTransactions::default()));
    let shared = longest.clone();
    tokio::spawn(async move {
        loop {
            let Ok(row) = client
                .query_one(
                    "SELECT COALESCE(EXTRACT(EPOCH FROM max(now() - xact_start) \
                                FILTER (WHERE datname = current_database())), 0)::float8, \
                            COALESCE(EXTRACT(EPOCH FROM max(now() - xact_start) \
                                FILTER (WHERE datname IS DISTINCT FROM current_database())), 0)::float8 \
                     FROM pg_stat_activity WHERE backend_xid IS NOT NULL \
                     AND pid <> pg_backend_pid()",
                    &[],
                )
                .await
            else {
                return;
            };
            let here: f64 = row.get(0);
            let elsewhere: f64 = row.get(1);
            if let Ok(mut longest) = shared.lock() {
                longest.here = longest.here.max(here);
                longest.elsewhere = longest.elsewhere.max(elsewhere);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    Ok(longest)
}

/// A separate consumer of a topic that notes when each (stream, version) arrived.
struct KafkaProbe {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<HashMap<(Uuid, i64), Instant>>,
}

impl KafkaProbe {
    fn start(brokers: &str, topic: &str) -> Result<KafkaProbe> {
        use rdkafka::config::ClientConfig;
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::message::Message;
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set(
                "group.id",
                format!("bench-probe-{}", Uuid::new_v4().simple()),
            )
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "latest")
            .set("fetch.wait.max.ms", "10")
            .create()?;
        consumer.subscribe(&[topic])?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = HashMap::new();
            while !stopping.load(std::sync::atomic::Ordering::SeqCst) {
                if let Some(Ok(message)) = consumer.poll(Duration::from_millis(50)) {
                    let at = Instant::now();
                    if let Some(Ok(envelope)) = message
                        .payload()
                        .map(serde_json::from_slice::<eventstore::Envelope>)
                    {
                        seen.insert((envelope.stream_id, envelope.version), at);
                    }
                }
            }
            seen
        });
        Ok(KafkaProbe { stop, thread })
    }

    fn stop(self) -> HashMap<(Uuid, i64), Instant> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().unwrap_or_default()
    }
}
