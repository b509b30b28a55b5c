//! `audit-bench`: the audit export rate (budget: at least 100,000 events/s).
//!
//! Creates a fresh event store, fills it with `--events` events of a shop history (as
//! `projector-bench` does; see `bench::shop`), then, per round, in this order:
//!
//! 1. reference, the database alone: `COPY (SELECT <the columns read_log reads> FROM events
//!    ORDER BY transaction_id, position) TO STDOUT`, rows/s, in this process;
//! 2. reference, the store's reader alone: `EventStore::read_log` in pages of 5,000 (the
//!    export's page size), decoded into `RecordedEvent`s and dropped;
//! 3. `agora audit export --database-url URL --out FILE` (the release binary, `--agora`),
//!    timed around the process (start-up included), and the rate it prints itself;
//! 4. `GET /v1/audit/events?limit=10000&after=P` on a query API started in this process,
//!    paged to the end of the log (each page read to its last line, whose `position` is the
//!    next `after`): events/s.
//!
//! Each export is checked to hold every event once.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bench::shop::{fill, FillConfig};
use bench::stack::{Stack, StackOptions};
use bench::support::{
    agora_binary, budget_line, clean_up, fresh_database, group, http_client, init_logging_if_asked,
    load1, load_average, load_span, median, print_header, Goal,
};
use clap::Parser;
use eventstore::LogCheckpoint;
use futures::StreamExt;
use platform::Role;

const BUDGET: f64 = 100_000.0;

#[derive(Debug, Parser)]
#[command(
    name = "audit-bench",
    about = "Audit export rate: agora audit export and GET /v1/audit/events"
)]
struct Args {
    /// Events to fill the store with (at least).
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Products in the filled catalog.
    #[arg(long, default_value_t = 1_000)]
    products: usize,
    /// The `agora` binary (default: next to this one).
    #[arg(long)]
    agora: Option<PathBuf>,
    /// Rounds (each runs every export once, in the same order).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// `limit` of each `GET /v1/audit/events` page.
    #[arg(long, default_value_t = 10_000)]
    page: u64,
    /// Keep the scratch database and the export file.
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.rounds == 0 || args.page == 0 {
        bail!("--rounds and --page must be positive");
    }
    let agora = agora_binary(args.agora.as_deref())?;
    init_logging_if_asked();
    print_header("audit-bench").await?;
    let db = fresh_database(args.keep).await?;
    let name = db.name.clone();
    let out = std::env::temp_dir().join(format!("{name}.ndjson"));
    let outcome = run(&args, &agora, db, &out).await;
    clean_up(args.keep, name, &out).await;
    println!("== load average at end: {}", load_average());
    outcome
}

#[derive(Default)]
struct Rates {
    copy: Vec<f64>,
    read_log: Vec<f64>,
    cli_wall: Vec<f64>,
    cli_own: Vec<f64>,
    http: Vec<f64>,
    cli_loads: Vec<String>,
    http_loads: Vec<String>,
}

async fn run(
    args: &Args,
    agora: &PathBuf,
    db: eventstore::testing::TestDatabase,
    out: &PathBuf,
) -> Result<()> {
    let store = db.store.clone();
    let url = db.url.clone();
    println!();
    println!(
        "-- fill: at least {} events, {} products (load {})",
        group(args.events as f64),
        args.products,
        load1()
    );
    let report = fill(
        &store,
        &FillConfig {
            events: args.events,
            products: args.products,
            ..FillConfig::default()
        },
    )
    .await?;
    let total = report.events;
    println!(
        "filled {} events in {:.1} s ({} events/s); mix: {}",
        group(total as f64),
        report.seconds,
        group(report.events_per_second()),
        report.mix_line()
    );
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client.batch_execute("VACUUM ANALYZE events").await?;
    let size: String = client
        .query_one(
            "SELECT pg_size_pretty(pg_total_relation_size('events'))",
            &[],
        )
        .await?
        .get(0);
    println!("events table with indexes: {size}");

    let stack = Stack::start_on(
        db,
        &StackOptions {
            command_api: false,
            projector: false,
            ..StackOptions::default()
        },
    )
    .await?;
    let auditor = stack.token("auditor", &[Role::Auditor])?;
    let http = http_client(4)?;

    let mut rates = Rates::default();
    for round in 1..=args.rounds {
        println!();
        println!("-- round {round}/{}", args.rounds);

        let load_before = load1();
        let started = Instant::now();
        let stream = client
            .copy_out(
                "COPY (SELECT position, transaction_id, event_id, stream_type, stream_id, \
                 version, event_type, schema_version, payload, metadata, occurred_at, \
                 prev_hash, hash FROM events ORDER BY transaction_id, position) TO STDOUT",
            )
            .await?;
        let mut stream = std::pin::pin!(stream);
        let mut bytes = 0usize;
        let mut rows = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            bytes += chunk.len();
            rows += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "reference, database alone (COPY ... TO STDOUT in log order): {} rows, {} MB in \
             {secs:.2} s: {} rows/s (load {load_before} before, {} after)",
            group(rows as f64),
            bytes / 1_000_000,
            group(rows as f64 / secs),
            load1()
        );
        rates.copy.push(rows as f64 / secs);

        let load_before = load1();
        let started = Instant::now();
        let mut checkpoint = LogCheckpoint::START;
        let mut read = 0u64;
        loop {
            let page = store.read_log(checkpoint, 5000).await?;
            let Some(last) = page.last() else { break };
            checkpoint = LogCheckpoint::after(last);
            read += page.len() as u64;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "reference, EventStore::read_log alone (pages of 5000, decoded, no JSON out): {} \
             events in {secs:.2} s: {} events/s (load {load_before} before, {} after)",
            group(read as f64),
            group(read as f64 / secs),
            load1()
        );
        rates.read_log.push(read as f64 / secs);

        let load_before = load1();
        let started = Instant::now();
        let output = Command::new(agora)
            .args(["audit", "export", "--out"])
            .arg(out)
            .env("DATABASE_URL", &url)
            .output()
            .context("running agora audit export")?;
        let secs = started.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if !output.status.success() {
            bail!("agora audit export failed: {stderr}");
        }
        let lines = count_lines(out)?;
        if lines != total {
            bail!("the export has {lines} lines, the store {total} events");
        }
        let file_mb = std::fs::metadata(out)?.len() / 1_000_000;
        let own = stderr
            .split('(')
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse::<f64>().ok());
        println!(
            "agora audit export --out FILE: {} events, {file_mb} MB in {secs:.2} s wall \
             (process start-up included): {} events/s; it reports: {} (load {load_before} \
             before, {} after)",
            group(lines as f64),
            group(lines as f64 / secs),
            stderr.trim(),
            load1()
        );
        rates.cli_wall.push(lines as f64 / secs);
        rates.cli_loads.push(load_span(&load_before));
        if let Some(own) = own {
            rates.cli_own.push(own);
        }

        let load_before = load1();
        let started = Instant::now();
        let mut after = 0i64;
        let mut events = 0u64;
        let mut pages = 0u64;
        let mut first_page = Duration::ZERO;
        loop {
            let page_started = Instant::now();
            let response = http
                .get(format!(
                    "{}/v1/audit/events?limit={}&after={after}",
                    stack.query, args.page
                ))
                .bearer_auth(&auditor)
                .send()
                .await?;
            let status = response.status();
            let body = response.bytes().await?;
            if status != reqwest::StatusCode::OK {
                bail!(
                    "GET /v1/audit/events: {status} {}",
                    String::from_utf8_lossy(&body)
                );
            }
            if pages == 0 {
                first_page = page_started.elapsed();
            }
            pages += 1;
            let count = body.iter().filter(|b| **b == b'\n').count() as u64;
            events += count;
            if count == 0 {
                break;
            }
            let last = body[..body.len() - 1]
                .rsplit(|b| *b == b'\n')
                .next()
                .context("an empty page")?;
            let last: serde_json::Value = serde_json::from_slice(last)?;
            after = last["position"]
                .as_i64()
                .context("a line without position")?;
            if count < args.page {
                break;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        if events != total {
            bail!("the HTTP export returned {events} events, the store has {total}");
        }
        println!(
            "GET /v1/audit/events?limit={} paged: {} events in {pages} pages, {secs:.2} s: {} \
             events/s; first page {:.0} ms (load {load_before} before, {} after)",
            args.page,
            group(events as f64),
            group(events as f64 / secs),
            first_page.as_secs_f64() * 1000.0,
            load1()
        );
        rates.http.push(events as f64 / secs);
        rates.http_loads.push(load_span(&load_before));
    }

    println!();
    println!(
        "-- summary (medians over {} round(s); load average now {})",
        args.rounds,
        load_average()
    );
    println!(
        "reference: COPY {} rows/s; read_log {} events/s",
        group(median(&rates.copy)),
        group(median(&rates.read_log))
    );
    if !rates.cli_own.is_empty() {
        println!(
            "agora audit export, its own figure (from its start, after process start-up): {} events/s",
            group(median(&rates.cli_own))
        );
    }
    budget_line(
        "audit export: agora audit export --out FILE (wall clock)",
        median(&rates.cli_wall),
        "events/s",
        Goal::AtLeast,
        BUDGET,
        &rates.cli_loads.join(", "),
    );
    budget_line(
        &format!(
            "audit export: GET /v1/audit/events?limit={} paged",
            args.page
        ),
        median(&rates.http),
        "events/s",
        Goal::AtLeast,
        BUDGET,
        &rates.http_loads.join(", "),
    );
    Ok(())
}

fn count_lines(path: &PathBuf) -> Result<u64> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut lines = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(lines);
        }
        lines += buffer[..n].iter().filter(|b| **b == b'\n').count() as u64;
    }
}
