//! `append-bench`: commands per second through `EventStore::append` (no HTTP).
//!
//! Creates a fresh database on the given server, migrates it, then runs `--clients`
//! concurrent writers for `--seconds` (after a short warm-up). Each client owns its share of
//! `--streams` streams and appends to them in turn at the version it remembers from its
//! own last append (a command that knows its version), or, with `--load-each`, loads the
//! stream first as the command API does. Prints commands/s, events/s and latency
//! percentiles; `--json` prints one machine-readable line instead.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bench::{millis, LatencySummary};
use chrono::Utc;
use clap::Parser;
use eventstore::testing::with_database;
use eventstore::{
    connect_pool, migrate, AppendError, AppendRequest, EventMetadata, EventStore, Hash,
    IdempotencyRecord, NewEvent, StreamWrite,
};
use serde_json::json;
use tokio_postgres::NoTls;
use uuid::Uuid;

const STREAM_TYPE: &str = "product";
const EVENT_TYPE: &str = "StockAdded";

#[derive(Debug, Clone, Parser)]
#[command(
    name = "append-bench",
    about = "Single-event commands per second through the Agora event store (no HTTP)"
)]
struct Args {
    /// Admin URL of the PostgreSQL server; a fresh scratch database is created on it.
    #[arg(
        long,
        env = "AGORA_TEST_DATABASE_URL",
        default_value = eventstore::testing::DEFAULT_TEST_DATABASE_URL
    )]
    database_url: String,
    /// Concurrent writers (each with its own connection).
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Measured duration in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Unmeasured warm-up in seconds before the measured window.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Events each command appends (to one stream, in one statement).
    #[arg(long, default_value_t = 1)]
    events_per_command: usize,
    /// Distinct streams in total, split evenly between the clients, each client appending
    /// to its own in turn (so clients never race). 0: every command starts a new stream.
    #[arg(long, default_value_t = 1024)]
    streams: usize,
    /// Load the stream before every append, as the command API does, instead of appending
    /// at the version remembered from the previous append.
    #[arg(long)]
    load_each: bool,
    /// Also write an idempotency record with every command (as with `Idempotency-Key`).
    #[arg(long)]
    idempotency: bool,
    /// Diagnostic: no follower wake-ups at all. By default the store notifies log followers
    /// after each append commits, as the command API's does (`notifying_followers`), and
    /// an `events_appended` NOTIFY trigger, where the migrations still have one (before V3),
    /// fires too; this turns both off, to measure what they cost.
    #[arg(long)]
    no_notify: bool,
    /// Connections in the pool (default: one per client, plus one for the notifier).
    #[arg(long)]
    pool_size: Option<usize>,
    /// Keep the scratch database afterwards (it is dropped by default).
    #[arg(long)]
    keep_database: bool,
    /// Print one JSON object instead of the human-readable report.
    #[arg(long)]
    json: bool,
}

/// A stream a client owns and what it knows about it.
struct Owned {
    id: Uuid,
    version: i64,
    last_hash: Hash,
}

impl Owned {
    fn new() -> Self {
        Owned {
            id: Uuid::now_v7(),
            version: 0,
            last_hash: Hash::GENESIS,
        }
    }
}

/// What one client measured.
#[derive(Default)]
struct ClientReport {
    commands: u64,
    events: u64,
    conflicts: u64,
    latencies: Vec<Duration>,
}

#[derive(Clone, Copy)]
struct Window {
    measure_from: Instant,
    until: Instant,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.clients == 0 || args.events_per_command == 0 || args.seconds == 0 {
        bail!("--clients, --events-per-command and --seconds must be at least 1");
    }
    if args.streams != 0 && args.streams < args.clients {
        bail!(
            "--streams {} is fewer than --clients {}: clients would race on shared streams \
             (use at least one stream per client, or 0 for a new stream per command)",
            args.streams,
            args.clients
        );
    }

    let scratch = Scratch::create(&args.database_url).await?;
    let outcome = run(&args, &scratch).await;
    if args.keep_database {
        eprintln!("kept database {} ({})", scratch.name, scratch.url);
    } else if let Err(error) = scratch.drop_database().await {
        eprintln!("warning: could not drop {}: {error:#}", scratch.name);
    }
    let (server, reports, elapsed) = outcome?;
    print_report(&args, &scratch, &server, reports, elapsed);
    Ok(())
}

/// The server's facts that matter for comparing runs.
struct ServerFacts {
    version: String,
    fsync: String,
    synchronous_commit: String,
    notify_trigger: &'static str,
    notifier: &'static str,
}

async fn run(args: &Args, scratch: &Scratch) -> Result<(ServerFacts, Vec<ClientReport>, Duration)> {
    migrate(&scratch.url)
        .await
        .context("migrating the scratch database")?;
    let pool = connect_pool(&scratch.url, args.pool_size.unwrap_or(args.clients + 1))?;
    let mut store = EventStore::new(pool);
    if !args.no_notify {
        store = store.notifying_followers();
    }
    let server = server_facts(&store, args.no_notify).await?;

    let start = Instant::now();
    let window = Window {
        measure_from: start + Duration::from_secs(args.warmup),
        until: start + Duration::from_secs(args.warmup + args.seconds),
    };
    let per_client = args.streams / args.clients;
    let mut tasks = Vec::with_capacity(args.clients);
    for client in 0..args.clients {
        // Spread the remainder so that exactly `--streams` streams exist.
        let owned = per_client + usize::from(client < args.streams % args.clients);
        let store = store.clone();
        let args = args.clone();
        tasks.push(tokio::spawn(async move {
            run_client(&store, &args, owned, window).await
        }));
    }
    let mut reports = Vec::with_capacity(tasks.len());
    for task in futures::future::join_all(tasks).await {
        reports.push(task.context("a client panicked")??);
    }
    let elapsed = window.until.duration_since(window.measure_from);
    store.pool().close();
    Ok((server, reports, elapsed))
}

async fn server_facts(store: &EventStore, no_notify: bool) -> Result<ServerFacts> {
    let client = store.pool().get().await?;
    let show = async |name: &str| -> Result<String> {
        let row = client
            .query_one(&format!("SHOW {name}"), &[])
            .await
            .with_context(|| format!("SHOW {name}"))?;
        Ok(row.try_get::<_, String>(0)?)
    };
    let version = show("server_version").await?;
    let fsync = show("fsync").await?;
    let synchronous_commit = show("synchronous_commit").await?;
    let has_trigger = client
        .query_one(
            "SELECT count(*) FROM pg_trigger WHERE tgname = 'events_appended'",
            &[],
        )
        .await?
        .try_get::<_, i64>(0)?
        > 0;
    let notify_trigger = match (has_trigger, no_notify) {
        (false, _) => "absent",
        (true, false) => "enabled",
        (true, true) => {
            client
                .batch_execute("ALTER TABLE events DISABLE TRIGGER events_appended")
                .await?;
            "disabled (--no-notify)"
        }
    };
    Ok(ServerFacts {
        version,
        fsync,
        synchronous_commit,
        notify_trigger,
        notifier: if no_notify {
            "off (--no-notify)"
        } else {
            "after commit, coalesced"
        },
    })
}

async fn run_client(
    store: &EventStore,
    args: &Args,
    owned: usize,
    window: Window,
) -> Result<ClientReport> {
    let mut streams: Vec<Owned> = (0..owned).map(|_| Owned::new()).collect();
    let mut report = ClientReport {
        latencies: Vec::with_capacity(1 << 16),
        ..ClientReport::default()
    };
    let mut turn = 0usize;
    loop {
        let started = Instant::now();
        if started >= window.until {
            return Ok(report);
        }
        let mut fresh;
        let stream = if streams.is_empty() {
            fresh = Owned::new();
            &mut fresh
        } else {
            turn = (turn + 1) % streams.len();
            &mut streams[turn]
        };
        loop {
            if args.load_each {
                let loaded = store.load_stream(stream.id).await?;
                stream.version = loaded.version;
                stream.last_hash = loaded.last_hash;
            }
            match store.append(command(args, stream)).await {
                Ok(appended) => {
                    if let Some(last) = appended.events.last() {
                        stream.version = last.version;
                        stream.last_hash = last.hash;
                    }
                    break;
                }
                // Cannot happen while clients own disjoint streams; counted, reloaded and
                // retried like the command API would, should it ever.
                Err(AppendError::Conflict { .. }) => {
                    report.conflicts += 1;
                    let loaded = store.load_stream(stream.id).await?;
                    stream.version = loaded.version;
                    stream.last_hash = loaded.last_hash;
                }
                Err(other) => return Err(other).context("append failed"),
            }
        }
        let finished = Instant::now();
        if started >= window.measure_from && finished <= window.until {
            report.commands += 1;
            report.events += args.events_per_command as u64;
            report.latencies.push(finished - started);
        }
    }
}

/// One command's append: `--events-per-command` restocks of the stream at its version.
fn command(args: &Args, stream: &Owned) -> AppendRequest {
    let command_id = Uuid::now_v7();
    let events = (0..args.events_per_command)
        .map(|_| NewEvent::new(EVENT_TYPE, 1, json!({ "quantity": 1 })))
        .collect();
    let idempotency = args.idempotency.then(|| IdempotencyRecord {
        caller: "append-bench".into(),
        key: command_id.to_string(),
        request_hash: vec![0; 32],
        status_code: 200,
        resource_id: stream.id,
        resource_version: stream.version + args.events_per_command as i64,
    });
    AppendRequest {
        streams: vec![StreamWrite {
            stream_type: STREAM_TYPE.into(),
            stream_id: stream.id,
            expected_version: stream.version,
            prev_hash: stream.last_hash,
            events,
        }],
        metadata: EventMetadata {
            actor: "append-bench".into(),
            correlation_id: command_id.to_string(),
            causation_id: None,
            command_id,
        },
        occurred_at: Utc::now(),
        claims: vec![],
        idempotency,
    }
}

fn print_report(
    args: &Args,
    scratch: &Scratch,
    server: &ServerFacts,
    reports: Vec<ClientReport>,
    elapsed: Duration,
) {
    let commands: u64 = reports.iter().map(|r| r.commands).sum();
    let events: u64 = reports.iter().map(|r| r.events).sum();
    let conflicts: u64 = reports.iter().map(|r| r.conflicts).sum();
    let mut latencies: Vec<Duration> = reports.into_iter().flat_map(|r| r.latencies).collect();
    let summary = LatencySummary::from_samples(&mut latencies);
    let seconds = elapsed.as_secs_f64();
    let commands_per_sec = commands as f64 / seconds;
    let events_per_sec = events as f64 / seconds;
    let (p50, p99, mean, max) = summary
        .map(|s| (millis(s.p50), millis(s.p99), millis(s.mean), millis(s.max)))
        .unwrap_or_default();
    let mode = if args.load_each {
        "load-each"
    } else {
        "known-version"
    };
    if args.json {
        let line = json!({
            "clients": args.clients,
            "seconds": seconds,
            "events_per_command": args.events_per_command,
            "streams": args.streams,
            "mode": mode,
            "idempotency": args.idempotency,
            "notify_trigger": server.notify_trigger,
            "follower_notifier": server.notifier,
            "commands": commands,
            "events": events,
            "conflicts": conflicts,
            "commands_per_sec": commands_per_sec,
            "events_per_sec": events_per_sec,
            "latency_ms": { "mean": mean, "p50": p50, "p99": p99, "max": max },
            "server_version": server.version,
            "fsync": server.fsync,
            "synchronous_commit": server.synchronous_commit,
        });
        println!("{line}");
        return;
    }
    let streams = if args.streams == 0 {
        "a new stream per command".to_owned()
    } else {
        format!(
            "{} streams (~{} per client)",
            args.streams,
            args.streams / args.clients
        )
    };
    println!(
        "append-bench: {} clients, {} s measured after {} s warm-up, {} event(s)/command, {streams}, {mode}{}",
        args.clients,
        args.seconds,
        args.warmup,
        args.events_per_command,
        if args.idempotency { ", with idempotency records" } else { "" },
    );
    println!(
        "server:       PostgreSQL {}, fsync={}, synchronous_commit={}; scratch database {}",
        server.version, server.fsync, server.synchronous_commit, scratch.name
    );
    println!(
        "wake-ups:     NOTIFY trigger {}; follower notifier {}",
        server.notify_trigger, server.notifier
    );
    println!("commands:     {commands} in {seconds:.2} s = {commands_per_sec:.0} commands/s");
    println!("events:       {events} = {events_per_sec:.0} events/s");
    println!("latency:      mean {mean:.2} ms, p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms");
    println!("conflicts:    {conflicts}");
}

/// A database made for one run on the given server.
struct Scratch {
    admin_url: String,
    name: String,
    url: String,
}

impl Scratch {
    async fn create(admin_url: &str) -> Result<Scratch> {
        let name = format!("agora_bench_{}", Uuid::new_v4().simple());
        admin_execute(admin_url, &format!("CREATE DATABASE {name}")).await?;
        Ok(Scratch {
            admin_url: admin_url.to_owned(),
            url: with_database(admin_url, &name),
            name,
        })
    }

    async fn drop_database(&self) -> Result<()> {
        admin_execute(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
        .await
    }
}

async fn admin_execute(admin_url: &str, sql: &str) -> Result<()> {
    let (client, connection) = tokio_postgres::connect(admin_url, NoTls)
        .await
        .with_context(|| {
            format!(
                "cannot reach PostgreSQL at {admin_url} (start it with scripts/postgres.sh start)"
            )
        })?;
    let driver = tokio::spawn(connection);
    client
        .batch_execute(sql)
        .await
        .with_context(|| sql.to_owned())?;
    drop(client);
    let _ = driver.await;
    Ok(())
}
