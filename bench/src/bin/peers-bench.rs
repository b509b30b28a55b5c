//! `peers-bench`: the in-process contenders of the peer benchmark, and the command API's
//! stream-length curve and memory check. `scripts/bench-peers.sh` drives it (see
//! BENCHMARKS.md, "Command path vs peers"); every subcommand works on a database the caller
//! made for it.
//!
//! - `run --contender C --database-url URL`: sets up C's schema in the (empty, or for
//!   Message DB already installed) database, pre-creates `--streams` products split
//!   between `--clients` clients, runs them for `--warmup` + `--seconds` and prints
//!   commands/s and latency (one JSON line with `--json`).
//! - `create-products --database-url URL --count N --out FILE`: products for the HTTP
//!   contender (wrk), one id per line.
//! - `curve --database-url URL --api URL`: fills streams of each `--lengths` and measures
//!   sequential restocks through the command API serving that database.
//! - `memory --database-url URL --api URL --pid PID`: creates `--streams` products, touches
//!   each once through the command API and samples its resident memory.
//! - `summary --results FILE`: the report (tables, ratios, budgets) from those JSON lines.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bench::appender::{AppendOptions, Appender};
use bench::drive::{run_clients, CommandClient, TimedArgs, Totals};
use bench::peers::http::RestockApi;
use bench::peers::{agora_command, curve, memory, message_db, postgres_es, summary};
use bench::procfs::{mib, own_cpu_seconds, Memory};
use bench::scratch::admin_execute;
use bench::shop::create_products;
use bench::support::{group, load_average, ms, redact};
use bench::{millis, LatencySummary};
use clap::{Parser, Subcommand, ValueEnum};
use eventstore::{connect_pool, migrate, EventStore, GroupCommitLimits};
use serde_json::json;
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(
    name = "peers-bench",
    about = "Agora's write path next to its peers (Message DB, cqrs-es + postgres-es)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one in-process contender on a database made for it.
    Run(RunArgs),
    /// Create products for the HTTP contender and write their ids, one per line.
    CreateProducts(CreateArgs),
    /// Restock latency through the command API against stream length.
    Curve(CurveArgs),
    /// The command API's resident memory while it touches many distinct streams.
    Memory(MemoryArgs),
    /// Print the report of a run from the JSON lines its parts printed.
    Summary(SummaryArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Contender {
    /// Message DB: read the stream (get_stream_messages), then write_message at its version.
    MessageDb,
    /// Message DB: write_message at the version remembered from the last write.
    MessageDbKnown,
    /// cqrs-es + postgres-es: CqrsFramework::execute (load, handle, insert).
    CqrsEs,
    /// Agora: EventStore::append at the version remembered from the last append.
    AgoraAppend,
    /// Agora: EventStore::append at a known version, through group commit.
    AgoraAppendGrouped,
    /// Agora's command path in-process as the command API runs it: aggregate cache, decide,
    /// append through group commit.
    AgoraCommand,
    /// Agora's command path with the cache but one commit per command (AGORA_GROUP_COMMIT
    /// off).
    AgoraCommandSolo,
}

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::MessageDb => "message-db",
            Contender::MessageDbKnown => "message-db-known",
            Contender::CqrsEs => "cqrs-es",
            Contender::AgoraAppend => "agora-append",
            Contender::AgoraAppendGrouped => "agora-append-grouped",
            Contender::AgoraCommand => "agora-command",
            Contender::AgoraCommandSolo => "agora-command-solo",
        }
    }
}

#[derive(Debug, Parser)]
struct RunArgs {
    #[arg(long, value_enum)]
    contender: Contender,
    /// The contender's database (made for this run; Message DB installed in it).
    #[arg(long)]
    database_url: String,
    #[command(flatten)]
    timed: TimedArgs,
    /// Pre-created product streams, split between the clients.
    #[arg(long, default_value_t = 1024)]
    streams: usize,
    /// The round this run belongs to (only echoed in the report).
    #[arg(long, default_value_t = 1)]
    round: u32,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Parser)]
struct CreateArgs {
    /// The command API's database.
    #[arg(long)]
    database_url: String,
    #[arg(long, default_value_t = 1024)]
    count: usize,
    /// Where to write the ids.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Parser)]
struct ApiArgs {
    /// The database the command API serves (the streams are filled in it directly).
    #[arg(long)]
    database_url: String,
    /// The command API, `http://127.0.0.1:PORT`.
    #[arg(long)]
    api: String,
    /// The command API's HS256 secret (to sign an admin token).
    #[arg(long, env = "AGORA_JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,
    /// Print JSON lines instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Parser)]
struct CurveArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Stream lengths (events already in the stream), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,1000,10000,100000")]
    lengths: Vec<usize>,
    /// Measured sequential restocks per length.
    #[arg(long, default_value_t = 200)]
    restocks: usize,
    /// Unmeasured restocks per length before them.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
}

#[derive(Debug, Parser)]
struct MemoryArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// The command API's process id.
    #[arg(long)]
    pid: u32,
    /// Distinct streams (products) to touch, one restock each.
    #[arg(long, default_value_t = 1_000_000)]
    streams: usize,
    /// Sample the memory every this many restocks.
    #[arg(long, default_value_t = 50_000)]
    every: u64,
    /// Concurrent HTTP callers.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Stop touching streams after this many seconds (the figures say how far it got).
    #[arg(long, default_value_t = 900)]
    max_seconds: u64,
    /// The `AGORA_STATE_CACHE_MB` the command API was started with (only echoed).
    #[arg(long)]
    cache_mb: Option<u64>,
}

#[derive(Debug, Parser)]
struct SummaryArgs {
    /// The JSON lines (other lines are skipped).
    #[arg(long)]
    results: PathBuf,
    /// The load average around the run, for the budget lines (e.g. `2.1-2.6`).
    #[arg(long, default_value = "?")]
    load: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run(args).await,
        Command::CreateProducts(args) => create(args).await,
        Command::Curve(args) => curve(args).await,
        Command::Memory(args) => memory(args).await,
        Command::Summary(args) => summary(args),
    }
}

/// The event store on `url` as the command API builds it (migrated, follower wake-ups on),
/// with `pool` connections.
async fn agora_store(url: &str, pool: usize) -> Result<EventStore> {
    migrate(url).await.context("migrating the database")?;
    Ok(EventStore::new(connect_pool(url, pool)?).notifying_followers())
}

async fn run(args: RunArgs) -> Result<()> {
    let TimedArgs {
        clients, seconds, ..
    } = args.timed;
    if clients == 0 || seconds == 0 || args.streams < clients {
        bail!("--clients and --seconds must be at least 1, --streams at least --clients");
    }
    let url = &args.database_url;
    let streams = args.streams;
    let started = Instant::now();
    let (totals, cpu) = match args.contender {
        Contender::MessageDb | Contender::MessageDbKnown => {
            let mode = if args.contender == Contender::MessageDb {
                message_db::Mode::LoadAndWrite
            } else {
                message_db::Mode::KnownVersion
            };
            measure(
                &args,
                message_db::clients(url, clients, streams, mode).await?,
            )
            .await?
        }
        Contender::CqrsEs => {
            admin_execute(url, postgres_es::SCHEMA).await?;
            measure(&args, postgres_es::clients(url, clients, streams).await?).await?
        }
        Contender::AgoraAppend | Contender::AgoraAppendGrouped => {
            let mut store = agora_store(url, clients + 1).await?;
            let ids = create_products(&store, streams, "PEER").await?;
            let options = AppendOptions {
                events_per_command: 1,
                load_each: false,
                idempotency: false,
                actor: "peers-bench",
            };
            if args.contender == Contender::AgoraAppendGrouped {
                store = store.grouping_commits(GroupCommitLimits::default());
            }
            let appenders = Appender::for_streams(&store, &ids, clients, options).await?;
            measure(&args, appenders).await?
        }
        Contender::AgoraCommand | Contender::AgoraCommandSolo => {
            let mut store = agora_store(url, clients + 1).await?;
            let ids = create_products(&store, streams, "PEER").await?;
            if args.contender == Contender::AgoraCommand {
                store = store.grouping_commits(GroupCommitLimits::default());
            }
            measure(&args, agora_command::clients(&store, &ids, clients)).await?
        }
    };
    report_run(&args, &totals, cpu, started.elapsed());
    Ok(())
}

/// Runs `clients` through the window `args` ask for; returns the totals and the CPU seconds
/// this process used in the measured window.
async fn measure<C: CommandClient>(args: &RunArgs, clients: Vec<C>) -> Result<(Totals, f64)> {
    let window = args.timed.window();
    // This process's CPU over the measured window (from a task woken at its start).
    let cpu_at_start = tokio::spawn(async move {
        tokio::time::sleep_until(window.measure_from.into()).await;
        own_cpu_seconds().unwrap_or(f64::NAN)
    });
    let reports = run_clients(clients, window).await?;
    let cpu = own_cpu_seconds().unwrap_or(f64::NAN) - cpu_at_start.await.unwrap_or(f64::NAN);
    Ok((Totals::of(reports, &window), cpu))
}

fn report_run(args: &RunArgs, totals: &Totals, cpu: f64, wall: Duration) {
    let (p50, p99, mean, max) = totals
        .latency
        .map(|s: LatencySummary| (millis(s.p50), millis(s.p99), millis(s.mean), millis(s.max)))
        .unwrap_or_default();
    if args.json {
        let line = json!({
            "bench": "peers",
            "round": args.round,
            "contender": args.contender.name(),
            "clients": args.timed.clients,
            "seconds": totals.seconds,
            "streams": args.streams,
            "commands": totals.commands,
            "conflicts": totals.conflicts,
            "commands_per_sec": totals.rate(),
            "latency_ms": { "p50": p50, "p99": p99, "mean": mean, "max": max },
            "bench_process_cpu_seconds": cpu,
            "bench_process_wall_seconds": wall.as_secs_f64(),
        });
        println!("{line}");
    } else {
        println!(
            "{}: {} clients, {:.0} s: {} commands/s, p50 {p50:.2} ms, p99 {p99:.2} ms, \
             {} conflicts; this process used {cpu:.1} s of CPU in the window",
            args.contender.name(),
            args.timed.clients,
            totals.seconds,
            group(totals.rate()),
            totals.conflicts,
        );
    }
}

async fn create(args: CreateArgs) -> Result<()> {
    let store = agora_store(&args.database_url, 4).await?;
    let ids = create_products(&store, args.count, "HTTP").await?;
    write_ids(&args.out, &ids)
}

fn write_ids(path: &PathBuf, ids: &[Uuid]) -> Result<()> {
    let text: String = ids.iter().map(|id| format!("{id}\n")).collect();
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

async fn curve(args: CurveArgs) -> Result<()> {
    let store = agora_store(&args.api.database_url, 4).await?;
    let api = Arc::new(RestockApi::new(&args.api.api, &args.api.jwt_secret, 1)?);
    api.wait_ready(Duration::from_secs(30)).await?;
    let filling = Instant::now();
    let prepared = curve::prepare(&store, &args.lengths, args.restocks + args.warmup).await?;
    let events: usize = prepared.iter().map(|(l, ids)| l * ids.len()).sum();
    eprintln!(
        "curve: filled {} events in {:.1} s on {}",
        group(events as f64),
        filling.elapsed().as_secs_f64(),
        redact(&args.api.database_url)
    );
    let points = curve::measure(api, &prepared, args.restocks, args.warmup).await?;
    for point in &points {
        if args.api.json {
            let line = json!({
                "bench": "peers-curve",
                "length": point.length,
                "products": point.products,
                "restocks": point.latency.count,
                "failed": point.failed,
                "latency_ms": { "p50": ms(point.latency.p50), "p90": ms(point.latency.p90),
                                "p99": ms(point.latency.p99), "max": ms(point.latency.max),
                                "mean": ms(point.latency.mean) },
            });
            println!("{line}");
        } else {
            println!(
                "length {:>7} ({} product(s)): {}{}",
                group(point.length as f64),
                point.products,
                point.latency.line(),
                if point.failed > 0 {
                    format!(", {} failed", point.failed)
                } else {
                    String::new()
                },
            );
        }
    }
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let ratio = ms(last.latency.p50) / ms(first.latency.p50).max(1e-9);
        let verdict = if ratio <= 1.5 { "MET" } else { "NOT MET" };
        if args.api.json {
            println!(
                "{}",
                json!({ "bench": "peers-curve-ratio", "from": first.length, "to": last.length,
                        "p50_ratio": ratio, "budget": 1.5, "met": ratio <= 1.5 })
            );
        } else {
            println!(
                "p50({}) / p50({}) = {ratio:.2} (budget <= 1.5: {verdict})",
                last.length, first.length
            );
        }
    }
    store.pool().close();
    Ok(())
}

async fn memory(args: MemoryArgs) -> Result<()> {
    let store = agora_store(&args.api.database_url, 4).await?;
    let api = Arc::new(RestockApi::new(
        &args.api.api,
        &args.api.jwt_secret,
        args.clients,
    )?);
    api.wait_ready(Duration::from_secs(30)).await?;
    let creating = Instant::now();
    let ids = create_products(&store, args.streams, "MEM").await?;
    store.pool().close();
    eprintln!(
        "memory: created {} products in {:.1} s (load average {})",
        group(ids.len() as f64),
        creating.elapsed().as_secs_f64(),
        load_average()
    );
    let walk = memory::walk(
        api,
        args.pid,
        Arc::new(ids),
        args.clients,
        args.every,
        Duration::from_secs(args.max_seconds),
    )
    .await?;
    let mem_json = |m: &Memory| json!({ "rss_mib": mib(m.rss_kib), "hwm_mib": mib(m.hwm_kib) });
    let touched = walk.run.ok;
    if args.api.json {
        let during: Vec<_> = walk
            .during
            .iter()
            .map(|s| {
                json!({ "touched": s.touched, "seconds": s.seconds,
                             "rss_mib": mib(s.memory.rss_kib), "hwm_mib": mib(s.memory.hwm_kib) })
            })
            .collect();
        let line = json!({
            "bench": "peers-memory",
            "streams": args.streams,
            "touched": touched,
            "failed": walk.run.failed,
            "errors": walk.run.errors,
            "cut_short": walk.cut_short,
            "seconds": walk.run.elapsed.as_secs_f64(),
            "restocks_per_sec": walk.run.rate(),
            "before": mem_json(&walk.before),
            "during": during,
            "after": mem_json(&walk.after),
            "after_5s_idle": mem_json(&walk.settled),
            "cache_mb": args.cache_mb,
        });
        println!("{line}");
    } else {
        println!("before:          {}", walk.before.line());
        for sample in &walk.during {
            println!(
                "after {:>9} restocks ({:>5.0} s): {}",
                group(sample.touched as f64),
                sample.seconds,
                sample.memory.line()
            );
        }
        println!("after:           {}", walk.after.line());
        println!("after 5 s idle:  {}", walk.settled.line());
        println!(
            "touched {} of {} streams in {:.0} s ({}/s), {} failed{}",
            group(touched as f64),
            group(args.streams as f64),
            walk.run.elapsed.as_secs_f64(),
            group(walk.run.rate()),
            walk.run.failed,
            if walk.cut_short {
                " (stopped at --max-seconds)"
            } else {
                ""
            }
        );
    }
    if !walk.run.errors.is_empty() {
        eprintln!("memory: first errors: {:?}", walk.run.errors);
    }
    Ok(())
}

fn summary(args: SummaryArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.results)
        .with_context(|| format!("reading {}", args.results.display()))?;
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    summary::print_peers(&summary::runs(&lines), &args.load);
    println!();
    summary::print_curve(&lines, &args.load);
    println!();
    summary::print_memory(&lines);
    Ok(())
}
