//! What the read-side benchmarks share: scratch databases, machine facts, percentiles, the
//! budget lines the scripts collect, and a small HTTP load generator.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use eventstore::testing::{admin_url, TestDatabase};
use tokio::sync::Semaphore;
use tokio_postgres::NoTls;

use crate::percentile;

/// The 1-, 5- and 15-minute load averages, as `/proc/loadavg` has them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

/// The 1-minute load average alone (for the budget lines).
pub fn load1() -> String {
    load_average()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_owned()
}

/// Sends the services' logs to stderr (stdout is the benchmark's report), filtered by
/// `RUST_LOG` (the scripts set `warn`); without `RUST_LOG` they log nothing, as in the e2e
/// tests.
pub fn init_logging_if_asked() {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// A fresh, migrated scratch database (`TestDatabase::create`), with a clear error. It is
/// dropped with the returned value unless `keep` (a benchmark's `--keep`).
pub async fn fresh_database(keep: bool) -> Result<TestDatabase> {
    let mut db = TestDatabase::create()
        .await
        .context("creating a scratch database (is scripts/postgres.sh start running?)")?;
    if keep {
        db.keep();
    }
    Ok(db)
}

/// Drops scratch databases by name (after their pools are done; `WITH (FORCE)` ends any
/// connection still open).
/// The release `agora` binary: `explicit`, else the one next to the running benchmark.
pub fn agora_binary(explicit: Option<&std::path::Path>) -> Result<std::path::PathBuf> {
    let agora = match explicit {
        Some(path) => path.to_path_buf(),
        None => std::env::current_exe()?
            .parent()
            .context("the benchmark's directory")?
            .join("agora"),
    };
    if !agora.is_file() {
        anyhow::bail!(
            "{} is missing: build it with `cargo build --release -p agora` (or pass --agora)",
            agora.display()
        );
    }
    Ok(agora)
}

/// Drops a benchmark's scratch database and removes its files, unless `keep`.
pub async fn clean_up(keep: bool, database: String, path: &std::path::Path) {
    if keep {
        println!("kept database {database} and {}", path.display());
        return;
    }
    let _ = std::fs::remove_dir_all(path).or_else(|_| std::fs::remove_file(path));
    if let Err(error) = drop_databases(&[database]).await {
        eprintln!("warning: could not drop the scratch database: {error:#}");
    }
}

pub async fn drop_databases(names: &[String]) -> Result<()> {
    let (client, connection) = tokio_postgres::connect(&admin_url(), NoTls).await?;
    let driver = tokio::spawn(connection);
    for name in names {
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .with_context(|| format!("dropping {name}"))?;
    }
    drop(client);
    let _ = driver.await;
    Ok(())
}

/// The PostgreSQL server's settings that matter for the numbers.
pub async fn postgres_facts(url: &str) -> Result<String> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    let driver = tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT current_setting('server_version') || ', fsync=' || current_setting('fsync') \
             || ', synchronous_commit=' || current_setting('synchronous_commit') \
             || ', shared_buffers=' || current_setting('shared_buffers')",
            &[],
        )
        .await?;
    drop(client);
    let _ = driver.await;
    Ok(row.get(0))
}

/// The machine in one line: cores, CPU model, memory.
pub fn machine_facts() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_else(|| "?".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1_048_576.0)
        .unwrap_or(0.0);
    format!("{cores} cores ({model}), {mem_gib:.0} GiB RAM")
}

/// Prints the machine, server and load lines every benchmark starts with.
pub async fn print_header(name: &str) -> Result<()> {
    println!("== {name}");
    println!("== machine: {}", machine_facts());
    println!(
        "== PostgreSQL {} at {}",
        postgres_facts(&admin_url()).await?,
        redact(&admin_url())
    );
    println!("== load average at start: {}", load_average());
    Ok(())
}

/// `url` without a password.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Latency percentiles (nearest rank) of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    pub count: usize,
    pub mean: Duration,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Percentiles {
    /// Sorts `samples` in place; `None` when empty.
    pub fn of(samples: &mut [Duration]) -> Option<Percentiles> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let total: Duration = samples.iter().sum();
        Some(Percentiles {
            count: samples.len(),
            mean: total / samples.len() as u32,
            p50: percentile(samples, 50.0),
            p90: percentile(samples, 90.0),
            p99: percentile(samples, 99.0),
            max: samples[samples.len() - 1],
        })
    }

    /// `p50 1.2 ms, p90 ..., p99 ..., max ... (n samples)`
    pub fn line(&self) -> String {
        format!(
            "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms, mean {:.1} ms ({} samples)",
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.max),
            ms(self.mean),
            self.count
        )
    }
}

/// The median of the values that are numbers (NaN when there are none).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let n = sorted.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Milliseconds as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Whether a figure meets its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// The figure must be at least the budget (a rate).
    AtLeast,
    /// The figure must be below the budget (a latency).
    Below,
}

/// Prints one budget line, which the scripts collect into their summary table:
/// `budget | what | measured | budget | met/NOT met | load`, where `load` is the 1-minute
/// load average around the measurement(s) (e.g. `2.5-2.7`, before-after).
pub fn budget_line(
    what: &str,
    measured: f64,
    unit: &str,
    goal: Goal,
    budget: f64,
    load: &str,
) -> bool {
    let met = match goal {
        Goal::AtLeast => measured >= budget,
        Goal::Below => measured < budget,
    };
    // Budgets like 0.5 or 1.5 keep their fraction; ratios (unit "x") get two decimals.
    let budget_number = if budget.fract() == 0.0 {
        group(budget)
    } else {
        budget.to_string()
    };
    let budget_text = match goal {
        Goal::AtLeast => format!(">= {budget_number} {unit}"),
        Goal::Below => format!("< {budget_number} {unit}"),
    };
    let measured_text = if measured.abs() >= 100.0 {
        format!("{} {unit}", group(measured))
    } else if unit == "x" {
        format!("{measured:.2} {unit}")
    } else {
        format!("{measured:.1} {unit}")
    };
    println!(
        "budget | {what} | {measured_text} | {budget_text} | {} | load {load}",
        if met { "met" } else { "NOT met" },
    );
    met
}

/// Prints a figure without a budget of its own in the same format as [`budget_line`], so
/// that it lands in the scripts' summary table too.
pub fn info_line(what: &str, measured: &str, load: &str) {
    println!("budget | {what} | {measured} | (none) | - | load {load}");
}

/// The 1-minute load average before and after a measurement: `2.51-2.67`.
pub fn load_span(before: &str) -> String {
    format!("{before}-{}", load1())
}

/// `12345.6` as `12,346`.
pub fn group(value: f64) -> String {
    let rounded = value.round() as i64;
    let digits = rounded.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if rounded < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// The outcome of a load run.
#[derive(Debug, Default)]
pub struct LoadRun {
    /// Requests that succeeded (the check passed).
    pub ok: u64,
    /// Requests that failed, with the first few reasons.
    pub failed: u64,
    pub errors: Vec<String>,
    /// Latency of each successful request.
    pub latencies: Vec<Duration>,
    /// From the first request sent to the last answer received.
    pub elapsed: Duration,
}

impl LoadRun {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn merge(&mut self, other: LoadRun) {
        self.ok += other.ok;
        self.failed += other.failed;
        for error in other.errors {
            if self.errors.len() < 5 {
                self.errors.push(error);
            }
        }
        self.latencies.extend(other.latencies);
    }
}

/// Closed loop: `concurrency` workers send `total` requests between them, each the next as
/// soon as the previous answered. `request(i)` sends request `i` and says whether it
/// succeeded. The latency of a request is from just before `request` to its return.
pub async fn closed_loop<F, Fut>(concurrency: usize, total: u64, request: F) -> LoadRun
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    closed_loop_until(concurrency, total, None, request).await
}

/// [`closed_loop`] that also stops sending at `deadline` (when given): requests not yet
/// sent by then are not sent (nor counted).
pub async fn closed_loop_until<F, Fut>(
    concurrency: usize,
    total: u64,
    deadline: Option<Instant>,
    request: F,
) -> LoadRun
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let request = Arc::new(request);
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let request = request.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut run = LoadRun::default();
            loop {
                if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    break;
                }
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let sent = Instant::now();
                match request(i).await {
                    Ok(()) => {
                        run.ok += 1;
                        run.latencies.push(sent.elapsed());
                    }
                    Err(error) => {
                        run.failed += 1;
                        if run.errors.len() < 5 {
                            run.errors.push(format!("{error:#}"));
                        }
                    }
                }
            }
            run
        }));
    }
    let mut run = LoadRun::default();
    for worker in workers {
        if let Ok(part) = worker.await {
            run.merge(part);
        }
    }
    run.elapsed = started.elapsed();
    run
}

/// Open loop: request `i` is due at `start + i / rate`, whether or not earlier ones have
/// answered, for `seconds`; at most `max_in_flight` at once (a request that must wait for a
/// slot is late, and its lateness counts). `request(i, due)` sends it and returns the
/// latency it measured (from `due`, so waiting for a slot or the scheduler counts too:
/// no coordinated omission), or `None` for a sample not to record.
pub async fn open_loop<F, Fut>(rate: f64, seconds: f64, max_in_flight: usize, request: F) -> LoadRun
where
    F: Fn(u64, Instant) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Duration>>> + Send + 'static,
{
    let request = Arc::new(request);
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let total = (rate * seconds).round() as u64;
    let period = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = started + period.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let outcome = request(i, due).await;
            drop(permit);
            outcome
        }));
    }
    let mut run = LoadRun::default();
    for task in tasks {
        match task.await {
            Ok(Ok(Some(latency))) => {
                run.ok += 1;
                run.latencies.push(latency);
            }
            Ok(Ok(None)) => run.ok += 1,
            Ok(Err(error)) => {
                run.failed += 1;
                if run.errors.len() < 5 {
                    run.errors.push(format!("{error:#}"));
                }
            }
            Err(error) => {
                run.failed += 1;
                if run.errors.len() < 5 {
                    run.errors.push(error.to_string());
                }
            }
        }
    }
    run.elapsed = started.elapsed();
    run
}

/// Deletes Kafka topics, warning (not failing) when it cannot.
pub async fn delete_topics(brokers: &str, topics: &[String]) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;
    let admin: Result<AdminClient<DefaultClientContext>, _> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create();
    match admin {
        Ok(admin) => {
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            if let Err(error) = admin.delete_topics(&names, &AdminOptions::new()).await {
                eprintln!("warning: could not delete the topics: {error}");
            }
        }
        Err(error) => eprintln!("warning: could not delete the topics: {error}"),
    }
}

/// An HTTP client for load runs: connections kept alive, a pool large enough for
/// `concurrency`, no proxy.
pub fn http_client(concurrency: usize) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency.max(1))
        .no_proxy()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Prints a load run: its rate and latency percentiles (and errors); returns the percentiles.
pub fn report(what: &str, run: &LoadRun, load_before: &str) -> Option<Percentiles> {
    let mut latencies = run.latencies.clone();
    let p = Percentiles::of(&mut latencies);
    println!(
        "{what}: {} ok, {} failed in {:.2} s: {} /s (load {load_before} before, {} after)",
        group(run.ok as f64),
        run.failed,
        run.elapsed.as_secs_f64(),
        group(run.rate()),
        load1()
    );
    if let Some(p) = p {
        println!("  latency: {}", p.line());
    }
    if !run.errors.is_empty() {
        println!("  errors: {:?}", run.errors);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(group(0.0), "0");
        assert_eq!(group(999.4), "999");
        assert_eq!(group(1000.0), "1,000");
        assert_eq!(group(1234567.8), "1,234,568");
        assert_eq!(group(-20000.0), "-20,000");
    }

    #[test]
    fn medians_skip_nan() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, f64::NAN, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn percentiles_nearest_rank() {
        let mut samples: Vec<Duration> = (1..=1000).map(Duration::from_micros).collect();
        let p = Percentiles::of(&mut samples).unwrap();
        assert_eq!(p.p50, Duration::from_micros(500));
        assert_eq!(p.p90, Duration::from_micros(900));
        assert_eq!(p.p99, Duration::from_micros(990));
        assert_eq!(p.max, Duration::from_micros(1000));
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
