//! `append-bench`: commands per second through `EventStore::append` (no HTTP).
//!
//! Creates a fresh database on the given server, migrates it, then runs `--clients`
//! concurrent writers for `--seconds` (after a short warm-up). Each client owns its share of
//! `--streams` streams and appends to them in turn at the version it remembers from its
//! own last append (a command that knows its version), or, with `--load-each`, loads the
//! stream first as the command API does. Prints commands/s, events/s and latency
//! percentiles; `--json` prints one machine-readable line instead.

use anyhow::{bail, Context, Result};
use bench::appender::{split, AppendOptions, Appender, Owned};
use bench::drive::{run_clients, TimedArgs, Totals};
use bench::millis;
use bench::scratch::Scratch;
use clap::Parser;
use eventstore::{connect_pool, migrate, EventStore};
use serde_json::json;

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
    #[command(flatten)]
    timed: TimedArgs,
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

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.timed.clients == 0 || args.events_per_command == 0 || args.timed.seconds == 0 {
        bail!("--clients, --events-per-command and --seconds must be at least 1");
    }
    if args.streams != 0 && args.streams < args.timed.clients {
        bail!(
            "--streams {} is fewer than --clients {}: clients would race on shared streams \
             (use at least one stream per client, or 0 for a new stream per command)",
            args.streams,
            args.timed.clients
        );
    }

    let scratch = Scratch::create(&args.database_url).await?;
    let outcome = run(&args, &scratch).await;
    if args.keep_database {
        eprintln!("kept database {} ({})", scratch.name, scratch.url);
    } else if let Err(error) = scratch.drop_database().await {
        eprintln!("warning: could not drop {}: {error:#}", scratch.name);
    }
    let (server, totals) = outcome?;
    print_report(&args, &scratch, &server, &totals);
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

async fn run(args: &Args, scratch: &Scratch) -> Result<(ServerFacts, Totals)> {
    migrate(&scratch.url)
        .await
        .context("migrating the scratch database")?;
    let pool = connect_pool(
        &scratch.url,
        args.pool_size.unwrap_or(args.timed.clients + 1),
    )?;
    let mut store = EventStore::new(pool);
    if !args.no_notify {
        store = store.notifying_followers();
    }
    let server = server_facts(&store, args.no_notify).await?;

    let options = AppendOptions {
        events_per_command: args.events_per_command,
        load_each: args.load_each,
        idempotency: args.idempotency,
        actor: "append-bench",
    };
    let streams: Vec<Owned> = (0..args.streams).map(|_| Owned::fresh()).collect();
    let clients = split(&streams, args.timed.clients)
        .into_iter()
        .map(|share| Appender::new(store.clone(), share.to_vec(), options))
        .collect();
    let window = args.timed.window();
    let totals = Totals::of(run_clients(clients, window).await?, &window);
    store.pool().close();
    Ok((server, totals))
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

fn print_report(args: &Args, scratch: &Scratch, server: &ServerFacts, totals: &Totals) {
    let commands = totals.commands;
    let events = commands * args.events_per_command as u64;
    let conflicts = totals.conflicts;
    let summary = totals.latency;
    let seconds = totals.seconds;
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
            "clients": args.timed.clients,
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
            args.streams / args.timed.clients
        )
    };
    println!(
        "append-bench: {} clients, {} s measured after {} s warm-up, {} event(s)/command, {streams}, {mode}{}",
        args.timed.clients,
        args.timed.seconds,
        args.timed.warmup,
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
