//! `soak`: the services as real processes (command API with the relay, projector through
//! Kafka, query API) under the mixed shop workload for minutes or hours, reported per window:
//! throughput, p99 per route, RSS and open files of every process, follower lag, time from a
//! command to its visibility, open database connections. Exits non-zero on a leak (RSS or
//! connections growing steadily across the windows after the warm-up), on any 5xx or lost
//! request, never on absolute speed. Driven by `scripts/soak.sh`; see BENCHMARKS.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bench::procfs::{mib, Memory};
use bench::soak::{p99_ms, steady_growth, Recorder};
use bench::support::{drop_databases, fresh_database, load_average};
use clap::Parser;
use platform::{JwtKeys, Role};
use rand::seq::IndexedRandom;
use rand::Rng;
use serde_json::{json, Value};
use tokio::process::{Child, Command};
use uuid::Uuid;

const SECRET: &str = "soak-test-secret-0123456789abcdef012345";

#[derive(Parser, Debug)]
#[command(about = "Agora's soak run: the services as processes under the mixed shop workload")]
struct Args {
    /// How long to run, in minutes.
    #[arg(long, default_value_t = 3.0)]
    minutes: f64,
    /// Seconds per reported window.
    #[arg(long, default_value_t = 20)]
    window: u64,
    /// Target commands per second (paced; the load stays moderate on purpose).
    #[arg(long, default_value_t = 150.0)]
    commands_per_second: f64,
    /// Target reads per second.
    #[arg(long, default_value_t = 300.0)]
    reads_per_second: f64,
    /// Directory with the command-api, projector and query-api binaries.
    #[arg(long)]
    bin_dir: PathBuf,
    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = "AGORA_TEST_KAFKA_BROKERS",
        default_value = "127.0.0.1:59092"
    )]
    kafka: String,
    /// Where the services' logs go.
    #[arg(long, default_value = "/tmp/agora-soak")]
    log_dir: PathBuf,
    /// Keep the scratch database afterwards.
    #[arg(long)]
    keep: bool,
}

struct Service {
    name: &'static str,
    child: Child,
    pid: u32,
    base: String,
}

fn spawn(
    name: &'static str,
    binary: &Path,
    env: &[(&str, String)],
    port: u16,
    log_dir: &Path,
) -> Result<Service> {
    let log = std::fs::File::create(log_dir.join(format!("{name}.log")))?;
    let mut command = Command::new(binary);
    command
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    let child = command
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let pid = child.id().context("a pid")?;
    Ok(Service {
        name,
        child,
        pid,
        base: format!("http://127.0.0.1:{port}"),
    })
}

async fn wait_ready(http: &reqwest::Client, service: &mut Service) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = service.child.try_wait()? {
            anyhow::bail!("{} exited during start-up: {status}", service.name);
        }
        let ready = http
            .get(format!("{}/readyz", service.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < until,
            "{} not ready after 60 s",
            service.name
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sleeps so that a loop of `workers` workers runs at `rate` per second in total.
async fn pace(rate: f64, workers: usize, started: Instant) {
    let period = Duration::from_secs_f64(workers as f64 / rate.max(0.001));
    if let Some(rest) = period.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
}

struct Shop {
    http: reqwest::Client,
    command: String,
    query: String,
    admin: String,
    viewer: String,
    auditor: String,
    customers: Vec<String>,
    products: Vec<(Uuid, i64)>,
    recorder: Recorder,
    commands: AtomicU64,
    reads: AtomicU64,
    exported: AtomicU64,
    stop: AtomicBool,
}

impl Shop {
    /// Sends a command; records it under `route`. A 4xx is a business answer (recorded, not
    /// a failure); a 5xx or no answer is a failure.
    async fn command(
        &self,
        route: &'static str,
        path: &str,
        token: &str,
        body: Value,
    ) -> Option<Value> {
        let started = Instant::now();
        let answer = self
            .http
            .post(format!("{}{path}", self.command))
            .bearer_auth(token)
            .header("Idempotency-Key", Uuid::new_v4().simple().to_string())
            .json(&body)
            .send()
            .await;
        self.commands.fetch_add(1, Ordering::Relaxed);
        let (failure, value) = answered(answer).await;
        self.recorder.record(route, started.elapsed(), failure);
        value.and_then(|text| serde_json::from_str(&text).ok())
    }

    async fn read(&self, route: &'static str, path: &str, token: &str) -> Option<Value> {
        let started = Instant::now();
        let answer = self
            .http
            .get(format!("{}{path}", self.query))
            .bearer_auth(token)
            .send()
            .await;
        self.reads.fetch_add(1, Ordering::Relaxed);
        let (failure, value) = answered(answer).await;
        self.recorder.record(route, started.elapsed(), failure);
        value.map(|text| serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// Why a request failed (a 5xx other than `not_yet_consistent`, or no answer), and the
/// body of a 2xx answer.
async fn answered(answer: reqwest::Result<reqwest::Response>) -> (Option<String>, Option<String>) {
    match answer {
        Ok(response) => {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if status.is_success() {
                (None, Some(text))
            } else if status.is_server_error() && !text.contains("not_yet_consistent") {
                (Some(format!("{status} {text}")), None)
            } else {
                (None, None)
            }
        }
        Err(error) => (
            Some(format!("no answer: {:#}", anyhow::Error::from(error))),
            None,
        ),
    }
}

async fn writer(shop: Arc<Shop>, index: usize, workers: usize, rate: f64) {
    let customer = shop.customers[index % shop.customers.len()].clone();
    // Each order this writer placed, and whether it is paid.
    let mut orders: Vec<(Uuid, bool)> = Vec::new();
    while !shop.stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let (choice, lines) = {
            let mut rng = rand::rng();
            let count = rng.random_range(1..=2usize);
            let lines: Vec<((Uuid, i64), i64)> = shop
                .products
                .choose_multiple(&mut rng, count)
                .map(|p| (*p, rng.random_range(1..=3)))
                .collect();
            (rng.random_range(0..100u32), lines)
        };
        if choice < 2 {
            let sku = format!("SOAK-{}", Uuid::new_v4().simple());
            shop.command("POST /v1/products", "/v1/products", &shop.admin,
                json!({"sku": sku, "name": "Soak", "price_cents": 100, "currency": "EUR", "initial_stock": 1})).await;
        } else if choice < 15 {
            let (id, _) = lines[0].0;
            shop.command(
                "POST restock",
                &format!("/v1/products/{id}/restock"),
                &shop.admin,
                json!({"quantity": 10}),
            )
            .await;
        } else if choice < 50 || orders.is_empty() {
            let body = json!({"lines": lines.iter()
                .map(|((id, _), q)| json!({"product_id": id, "quantity": q})).collect::<Vec<_>>()});
            if let Some(answer) = shop
                .command("POST /v1/orders", "/v1/orders", &customer, body)
                .await
            {
                if let Some(id) = answer["id"].as_str().and_then(|id| id.parse().ok()) {
                    orders.push((id, false));
                }
            }
        } else {
            let at = rand::rng().random_range(0..orders.len());
            let (id, paid) = orders[at];
            if choice < 75 && !paid {
                // The storefront's payment: the customer checks out at the (development)
                // provider, an admin confirms it.
                let checkout = shop
                    .command(
                        "POST payment",
                        &format!("/v1/orders/{id}/payment"),
                        &customer,
                        json!({}),
                    )
                    .await;
                let paid_now = if checkout.is_some() {
                    shop.command(
                        "POST payment/confirm",
                        &format!("/v1/orders/{id}/payment/confirm"),
                        &shop.admin,
                        json!({}),
                    )
                    .await
                } else {
                    None
                };
                if paid_now.is_some() {
                    orders[at].1 = true;
                } else {
                    orders.swap_remove(at);
                }
            } else if choice < 90 && paid {
                shop.command(
                    "POST ship",
                    &format!("/v1/orders/{id}/ship"),
                    &shop.admin,
                    json!({"carrier": "DHL", "tracking_number": "SOAK1"}),
                )
                .await;
                orders.swap_remove(at);
            } else {
                shop.command(
                    "POST cancel",
                    &format!("/v1/orders/{id}/cancel"),
                    &customer,
                    json!({"reason": "soak"}),
                )
                .await;
                orders.swap_remove(at);
            }
        }
        pace(rate, workers, started).await;
    }
}

async fn reader(shop: Arc<Shop>, workers: usize, rate: f64) {
    while !shop.stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let choice = rand::rng().random_range(0..100u32);
        if choice < 60 {
            let id = shop
                .products
                .choose(&mut rand::rng())
                .map(|p| p.0)
                .unwrap_or_default();
            shop.read(
                "GET /v1/products/{id}",
                &format!("/v1/products/{id}"),
                &shop.viewer,
            )
            .await;
        } else if choice < 85 {
            shop.read("GET /v1/orders", "/v1/orders?limit=20", &shop.viewer)
                .await;
        } else if choice < 95 {
            shop.read(
                "GET /v1/dashboard/sales",
                "/v1/dashboard/sales?bucket=hour",
                &shop.viewer,
            )
            .await;
        } else {
            shop.read(
                "GET /v1/dashboard/top-products",
                "/v1/dashboard/top-products",
                &shop.viewer,
            )
            .await;
        }
        pace(rate, workers, started).await;
    }
}

/// Exports the new part of the log every few seconds, page by page (`after_sequence`).
async fn auditor(shop: Arc<Shop>) {
    let mut after = 0i64;
    while !shop.stop.load(Ordering::Relaxed) {
        loop {
            let started = Instant::now();
            let answer = shop
                .http
                .get(format!(
                    "{}/v1/audit/events?after_sequence={after}&limit=1000",
                    shop.query
                ))
                .bearer_auth(&shop.auditor)
                .send()
                .await;
            let (failure, text) = answered(answer).await;
            let text = text.unwrap_or_default();
            shop.recorder
                .record("GET /v1/audit/events", started.elapsed(), failure);
            let sequences: Vec<i64> = text
                .lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .filter_map(|event| event["sequence"].as_i64())
                .collect();
            shop.exported
                .fetch_add(sequences.len() as u64, Ordering::Relaxed);
            match sequences.iter().max() {
                Some(last) if sequences.len() == 1000 => after = *last,
                Some(last) => {
                    after = *last;
                    break;
                }
                None => break,
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Restocks a product and times until the query API shows it (`min_version`), once a second.
async fn visibility_probe(shop: Arc<Shop>, samples: Arc<std::sync::Mutex<Vec<Duration>>>) {
    let id = shop.products[0].0;
    while !shop.stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        if let Some(answer) = shop
            .command(
                "POST restock",
                &format!("/v1/products/{id}/restock"),
                &shop.admin,
                json!({"quantity": 1}),
            )
            .await
        {
            let version = answer["version"].as_i64().unwrap_or_default();
            if shop
                .read(
                    "GET /v1/products/{id}",
                    &format!("/v1/products/{id}?min_version={version}"),
                    &shop.viewer,
                )
                .await
                .is_some()
            {
                if let Ok(mut samples) = samples.lock() {
                    samples.push(started.elapsed());
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn database_figures(
    client: &tokio_postgres::Client,
    database: &str,
) -> Result<(i64, String)> {
    let connections: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
            &[&database],
        )
        .await?
        .get(0);
    let rows = client
        .query(
            "SELECT r.name, (SELECT count(*) FROM events e WHERE e.position > r.position) \
             FROM relay_checkpoints r ORDER BY r.name",
            &[],
        )
        .await?;
    let lag = rows
        .iter()
        .map(|row| format!("{} {}", row.get::<_, String>(0), row.get::<_, i64>(1)))
        .collect::<Vec<_>>()
        .join(", ");
    Ok((connections, lag))
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| dir.count())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.log_dir)?;
    let db = fresh_database(args.keep).await?;
    let database = db.name.clone();
    let url = db.url.clone();
    let prefix = format!("soak{}", Uuid::new_v4().simple());
    let (command_port, projector_port, query_port) = (
        eventstore::testing::free_port()?,
        eventstore::testing::free_port()?,
        eventstore::testing::free_port()?,
    );
    let common = vec![
        ("DATABASE_URL", url.clone()),
        ("AGORA_JWT_SECRET", SECRET.to_owned()),
        ("KAFKA_BROKERS", args.kafka.clone()),
        ("AGORA_TOPIC_PREFIX", prefix.clone()),
        ("AGORA_DB_POOL_SIZE", "16".to_owned()),
    ];
    let with = |extra: &[(&'static str, String)]| {
        let mut env = common.clone();
        env.extend_from_slice(extra);
        env
    };
    let mut services = vec![
        spawn(
            "command-api",
            &args.bin_dir.join("command-api"),
            &with(&[
                ("COMMAND_API_ADDR", format!("127.0.0.1:{command_port}")),
                ("AGORA_STATE_CACHE_MB", "16".to_owned()),
                ("AGORA_MAX_OPEN_ORDERS_PER_CUSTOMER", "0".to_owned()),
            ]),
            command_port,
            &args.log_dir,
        )?,
        spawn(
            "projector",
            &args.bin_dir.join("projector"),
            &with(&[
                ("PROJECTOR_ADDR", format!("127.0.0.1:{projector_port}")),
                ("AGORA_PROJECTOR_GROUP", format!("{prefix}-projector")),
            ]),
            projector_port,
            &args.log_dir,
        )?,
        spawn(
            "query-api",
            &args.bin_dir.join("query-api"),
            &with(&[("QUERY_API_ADDR", format!("127.0.0.1:{query_port}"))]),
            query_port,
            &args.log_dir,
        )?,
    ];
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(64)
        // Below the services' keep-alive, as a client should be: the pool drops an
        // idle connection before the server may close it under a request.
        .pool_idle_timeout(platform::http::KEEP_ALIVE / 2)
        .build()?;
    for service in &mut services {
        wait_ready(&http, service).await?;
    }

    let keys = JwtKeys::hs256(SECRET.as_bytes());
    let hours = 24 * 3600;
    let admin = keys.mint("soak-admin", &[Role::Admin], hours)?;
    let mut shop = Shop {
        http: http.clone(),
        command: services[0].base.clone(),
        query: services[2].base.clone(),
        viewer: keys.mint("soak-viewer", &[Role::Viewer], hours)?,
        auditor: keys.mint("soak-auditor", &[Role::Auditor], hours)?,
        customers: (0..50)
            .map(|i| keys.mint(&format!("soak-customer-{i}"), &[Role::Customer], hours))
            .collect::<Result<_, _>>()?,
        admin,
        products: Vec::new(),
        recorder: Recorder::default(),
        commands: AtomicU64::new(0),
        reads: AtomicU64::new(0),
        exported: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    };
    for index in 0..20 {
        let price = 300 + 100 * index;
        let answer = shop
            .command("POST /v1/products", "/v1/products", &shop.admin.clone(),
                json!({"sku": format!("SOAK-P{index}"), "name": "Soak product", "price_cents": price, "currency": "EUR", "initial_stock": 1000}))
            .await
            .context("creating the soak's products")?;
        let id = answer["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .context("a product id")?;
        shop.products.push((id, price));
    }
    shop.recorder.take();
    let shop = Arc::new(shop);
    let visible = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (writers, readers) = (8, 4);
    let mut tasks = Vec::new();
    for index in 0..writers {
        tasks.push(tokio::spawn(writer(
            shop.clone(),
            index,
            writers,
            args.commands_per_second,
        )));
    }
    for _ in 0..readers {
        tasks.push(tokio::spawn(reader(
            shop.clone(),
            readers,
            args.reads_per_second,
        )));
    }
    tasks.push(tokio::spawn(auditor(shop.clone())));
    tasks.push(tokio::spawn(visibility_probe(
        shop.clone(),
        visible.clone(),
    )));

    let (monitor, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    println!(
        "# soak: {} min, windows of {} s, target {} commands/s and {} reads/s; load {}",
        args.minutes,
        args.window,
        args.commands_per_second,
        args.reads_per_second,
        load_average()
    );
    let header_routes: Vec<&str> = vec![
        "POST /v1/orders",
        "POST payment",
        "POST payment/confirm",
        "GET /v1/products/{id}",
        "GET /v1/orders",
        "GET /v1/audit/events",
    ];
    println!("\n| window | commands/s | reads/s | 5xx or lost | p99 ms: {} | visible p99 ms | RSS MiB: command-api, projector, query-api, soak | open files | DB connections | follower lag (events) | load |",
        header_routes.join(", "));
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let windows = ((args.minutes * 60.0) / args.window as f64).ceil().max(1.0) as usize;
    let mut rss: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut connections_series = Vec::new();
    let mut failures_total = 0;
    let me = std::process::id();
    let (mut last_commands, mut last_reads) = (0, 0);
    for window in 1..=windows {
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(args.window)).await;
        let elapsed = started.elapsed().as_secs_f64();
        for service in &mut services {
            if let Some(status) = service.child.try_wait()? {
                anyhow::bail!(
                    "{} exited during the soak: {status}; see {}",
                    service.name,
                    args.log_dir.display()
                );
            }
        }
        let routes = shop.recorder.take();
        let failures: u64 = routes.values().map(|r| r.failures).sum();
        failures_total += failures;
        for (route, answers) in &routes {
            for sample in &answers.failure_samples {
                eprintln!("window {window}: {route} failed: {sample}");
            }
        }
        let p99s: Vec<String> = header_routes
            .iter()
            .map(|route| {
                routes
                    .get(route)
                    .and_then(p99_ms)
                    .map_or("-".into(), |p| format!("{p:.1}"))
            })
            .collect();
        let visible_p99 = {
            let mut samples = visible
                .lock()
                .map(|mut s| std::mem::take(&mut *s))
                .unwrap_or_default();
            bench::support::Percentiles::of(&mut samples).map_or("-".into(), |p| {
                format!("{:.1}", p.p99.as_secs_f64() * 1000.0)
            })
        };
        let mut memory = Vec::new();
        let mut files = Vec::new();
        for (name, pid) in services
            .iter()
            .map(|s| (s.name, s.pid))
            .chain([("soak", me)])
        {
            let resident = Memory::of(pid).map(|m| mib(m.rss_kib)).unwrap_or(f64::NAN);
            rss.entry(name).or_default().push(resident);
            memory.push(format!("{resident:.0}"));
            files.push(open_files(pid).to_string());
        }
        let (connections, lag) = database_figures(&monitor, &database).await?;
        connections_series.push(connections as f64);
        let commands = shop.commands.load(Ordering::Relaxed);
        let reads = shop.reads.load(Ordering::Relaxed);
        println!("| {window} | {:.0} | {:.0} | {failures} | {} | {visible_p99} | {} | {} | {connections} | {lag} | {} |",
            (commands - last_commands) as f64 / elapsed,
            (reads - last_reads) as f64 / elapsed,
            p99s.join(", "), memory.join(", "), files.join(", "), load_average());
        (last_commands, last_reads) = (commands, reads);
    }
    shop.stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
    }
    println!(
        "\ntotals: {} commands, {} reads, {} events exported by the auditor",
        shop.commands.load(Ordering::Relaxed),
        shop.reads.load(Ordering::Relaxed),
        shop.exported.load(Ordering::Relaxed)
    );

    let warmup = (windows / 3).max(1);
    let mut problems = Vec::new();
    for (name, series) in &rss {
        if let Some(why) = steady_growth(series, warmup, 16.0, 0.25) {
            problems.push(format!("RSS of {name} {why} MiB"));
        }
    }
    if let Some(why) = steady_growth(&connections_series, warmup, 4.0, 0.0) {
        problems.push(format!("database connections {why}"));
    }
    if failures_total > 0 {
        problems.push(format!(
            "{failures_total} requests failed (5xx or no answer); see {}",
            args.log_dir.display()
        ));
    }
    for mut service in services {
        let _ = service.child.kill().await;
    }
    drop(monitor);
    if !args.keep {
        let _ = drop_databases(&[database]).await;
        bench::support::delete_topics(
            &args.kafka,
            &[
                eventstore::relay::topic_for(&prefix, "product"),
                eventstore::relay::topic_for(&prefix, "order"),
            ],
        )
        .await;
    }
    if problems.is_empty() {
        println!("verdict: no leak (judged after {warmup} warm-up windows), no failed request");
        Ok(())
    } else {
        for problem in &problems {
            println!("verdict: {problem}");
        }
        anyhow::bail!("the soak found {} problem(s)", problems.len())
    }
}
