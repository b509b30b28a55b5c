//! `projector-bench`: projector catch-up and rebuild rates (budgets: at least 30,000
//! events/s each), from the Postgres log and through Kafka.
//!
//! 1. Creates a fresh event store and fills it with `--events` events of a shop history
//!    decided by the domain (products, orders with reservations, payments, shipments,
//!    cancellations, restocks, price changes; see `bench::shop`), many events per append.
//! 2. Reference: reads the whole log with `EventStore::read_log` in pages of 5,000 without
//!    applying anything (what reading and decoding alone cost).
//! 3. Catch-up from the log: for each `--batches` size (interleaved over `--rounds`), a fresh
//!    read-model database, then `projector::service::Projector::start` (log source) from
//!    empty read models, timed until every live projection's log checkpoint is at the head
//!    of the log.
//! 4. Rebuild: `projector::rebuild::rebuild(store, read_pool, name, 5000, false, ..)` of
//!    each projection on the last catch-up's read models.
//! 5. Through Kafka (unless `--no-kafka`): the relay (`eventstore::relay::run_relay`) publishes
//!    the log to fresh topics, timed until its checkpoint is at the head; then a
//!    Kafka-source projector from empty read models, timed until every projection's saved
//!    offset of every partition is at the partition's high watermark.
//!
//! Scratch databases and topics are dropped at the end unless `--keep`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bench::shop::{fill, FillConfig};
use bench::support::{
    budget_line, drop_databases, fresh_database, group, info_line, init_logging_if_asked, load1,
    load_average, load_span, median, ms, print_header, Goal,
};
use clap::Parser;
use eventstore::relay::{run_relay, RelayConfig};
use eventstore::testing::TestDatabase;
use eventstore::{connect_pool, LogCheckpoint};
use projector::config::Settings;
use projector::service::Projector;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::sync::watch;
use uuid::Uuid;

const BUDGET: f64 = 30_000.0;

#[derive(Debug, Parser)]
#[command(
    name = "projector-bench",
    about = "Projector catch-up and rebuild rates over a filled event store"
)]
struct Args {
    /// Events to fill the store with (at least).
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Products in the filled catalog.
    #[arg(long, default_value_t = 1_000)]
    products: usize,
    /// Events per append while filling.
    #[arg(long, default_value_t = 500)]
    fill_batch: usize,
    /// Projector batch sizes to time catch-up with (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1000, 5000])]
    batches: Vec<usize>,
    /// Catch-up rounds (each round runs every batch size, interleaved).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Batch size of the rebuilds.
    #[arg(long, default_value_t = 5000)]
    rebuild_batch: i64,
    /// Skip the rebuilds.
    #[arg(long)]
    no_rebuild: bool,
    /// Kafka bootstrap servers for the relay and the Kafka-source catch-up.
    #[arg(
        long,
        env = "AGORA_TEST_KAFKA_BROKERS",
        default_value = "127.0.0.1:59092"
    )]
    kafka_brokers: String,
    /// Skip the Kafka part.
    #[arg(long)]
    no_kafka: bool,
    /// Give up on a phase after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Keep the scratch databases and topics.
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.batches.is_empty() || args.batches.contains(&0) || args.rounds == 0 {
        bail!("--batches needs positive sizes and --rounds at least 1");
    }
    init_logging_if_asked();
    print_header("projector-bench").await?;
    let deadline = Duration::from_secs(args.timeout);
    let mut scratch = Vec::new();
    let outcome = run(&args, deadline, &mut scratch).await;
    if !args.keep {
        let names: Vec<String> = scratch
            .iter()
            .map(|db: &TestDatabase| db.name.clone())
            .collect();
        drop(scratch);
        if let Err(error) = drop_databases(&names).await {
            eprintln!("warning: could not drop the scratch databases: {error:#}");
        }
    } else {
        for db in &scratch {
            println!("kept database {}", db.name);
        }
    }
    println!("== load average at end: {}", load_average());
    outcome
}

async fn run(args: &Args, deadline: Duration, scratch: &mut Vec<TestDatabase>) -> Result<()> {
    let events_db = fresh_database(args.keep).await?;
    let store = events_db.store.clone();
    let events_url = events_db.url.clone();
    scratch.push(events_db);

    println!();
    println!(
        "-- fill: at least {} events, {} products, ~{} events per append (load {})",
        group(args.events as f64),
        args.products,
        args.fill_batch,
        load1()
    );
    let report = fill(
        &store,
        &FillConfig {
            events: args.events,
            products: args.products,
            batch_events: args.fill_batch,
            seed: 42,
        },
    )
    .await?;
    let total = report.events;
    println!(
        "filled {} events ({} orders) in {} appends, {:.1} s: {} events/s",
        group(total as f64),
        group(report.orders as f64),
        report.appends,
        report.seconds,
        group(report.events_per_second())
    );
    println!("mix: {}", report.mix_line());
    let head = log_head(&events_url).await?;
    let size = table_size(&events_url).await?;
    println!("events table with indexes: {size}");
    // Settle: let autovacuum/analyze of the fresh table not land inside a timed run.
    vacuum_analyze(&events_url).await?;

    println!();
    println!("-- reference: read_log alone (no projection), pages of 5000");
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
        "read {} events in {:.2} s: {} events/s (load {})",
        group(read as f64),
        secs,
        group(read as f64 / secs),
        load1()
    );

    println!();
    println!(
        "-- catch-up from the log: Projector::start (log source) from empty read models, \
         batch sizes {:?}, {} round(s), interleaved",
        args.batches, args.rounds
    );
    let mut rates: HashMap<usize, Vec<(f64, String)>> = HashMap::new();
    let mut last_read: Option<TestDatabase> = None;
    for round in 1..=args.rounds {
        for &batch in &args.batches {
            let read_db = fresh_database(args.keep).await?;
            readmodel::migrate(&read_db.url).await?;
            let load_before = load1();
            let started = Instant::now();
            let projector =
                Projector::start(settings(&events_url, &read_db.url, None, batch)).await?;
            wait_for(
                deadline,
                "the log-source projector to reach the head",
                || async {
                    Ok(log_checkpoints(&read_db.url)
                        .await?
                        .iter()
                        .filter(|c| **c == head)
                        .count()
                        == projector::projections::all().len())
                },
            )
            .await?;
            let secs = started.elapsed().as_secs_f64();
            projector.stop().await?;
            let rate = total as f64 / secs;
            let load = load_span(&load_before);
            println!(
                "round {round}, batch {batch}: {} events in {secs:.2} s: {} events/s (load {load})",
                group(total as f64),
                group(rate),
            );
            rates.entry(batch).or_default().push((rate, load));
            if let Some(previous) = last_read.replace(read_db) {
                scratch.push(previous);
            }
        }
    }
    let read_db = last_read.context("no catch-up ran")?;
    check_read_models(&read_db.url, &report).await?;

    let mut rebuild_rates = Vec::new();
    if !args.no_rebuild {
        println!();
        println!(
            "-- rebuild: projector::rebuild::rebuild(store, read_pool, name, {}, false), \
             each projection on the read models just built",
            args.rebuild_batch
        );
        let read_pool = connect_pool(&read_db.url, 8)?;
        for projection in projector::projections::all() {
            let name = projection.name();
            let load_before = load1();
            let report = projector::rebuild::rebuild(
                &store,
                &read_pool,
                name,
                args.rebuild_batch,
                false,
                |_| {},
            )
            .await
            .with_context(|| format!("rebuilding {name}"))?;
            let load = load_span(&load_before);
            println!(
                "{name}: v{} -> v{}, {} events in {:.2} s: {} events/s (load {load})",
                report.from_version,
                report.to_version,
                group(report.events as f64),
                report.seconds,
                group(report.events_per_second()),
            );
            rebuild_rates.push((name, report.events_per_second(), load));
        }
        read_pool.close();
    }
    scratch.push(read_db);

    let mut kafka_rates = None;
    if !args.no_kafka {
        kafka_rates =
            Some(kafka(args, deadline, &events_url, &store, head, &report, scratch).await?);
    }

    println!();
    println!("-- summary (load average now {})", load_average());
    for &batch in &args.batches {
        let all = &rates[&batch];
        let values: Vec<f64> = all.iter().map(|(r, _)| *r).collect();
        let median = median(&values);
        println!(
            "catch-up from the log, batch {batch}: median {} events/s, rounds [{}]",
            group(median),
            values
                .iter()
                .map(|r| group(*r))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let loads: Vec<&str> = all.iter().map(|(_, l)| l.as_str()).collect();
        budget_line(
            &format!(
                "projector catch-up, log source, batch {batch}{}",
                if all.len() > 1 { " (median)" } else { "" }
            ),
            median,
            "events/s",
            Goal::AtLeast,
            BUDGET,
            &loads.join(", "),
        );
    }
    for (name, rate, load) in &rebuild_rates {
        budget_line(
            &format!("projector rebuild {name} (batch {})", args.rebuild_batch),
            *rate,
            "events/s",
            Goal::AtLeast,
            BUDGET,
            load,
        );
    }
    if let Some(kafka) = kafka_rates {
        info_line(
            "relay, log -> Kafka (no budget of its own)",
            &format!("{} events/s", group(kafka.relay)),
            &kafka.relay_load,
        );
        budget_line(
            "projector catch-up, Kafka source, batch 1000",
            kafka.consumer,
            "events/s",
            Goal::AtLeast,
            BUDGET,
            &kafka.consumer_load,
        );
    }
    Ok(())
}

/// What the Kafka part measured.
struct KafkaRates {
    relay: f64,
    relay_load: String,
    consumer: f64,
    consumer_load: String,
}

/// What the Kafka source's check of every event ([`projector::chain::ChainGuard`]: its hash
/// recomputed from its content, and the store's hash at its stream and version read in one
/// query per batch) costs: the whole log checked in batches of 1000, alone, beside the
/// catch-up's own time per batch of 1000.
async fn chain_check_cost(store: &eventstore::EventStore, catch_up_rate: f64) -> Result<()> {
    let guard = projector::chain::ChainGuard::new(store.clone());
    let mut at = eventstore::LogCheckpoint::START;
    let (mut checked, mut spent) = (0usize, Duration::ZERO);
    loop {
        let events = store.read_log(at, 1000).await?;
        let Some(last) = events.last() else { break };
        at = eventstore::LogCheckpoint::after(last);
        let batch: Vec<&eventstore::RecordedEvent> = events.iter().collect();
        let started = Instant::now();
        let verdicts = guard.check(&batch).await?;
        spent += started.elapsed();
        if let Some(refused) = verdicts.iter().find_map(|v| v.as_ref().err()) {
            anyhow::bail!("the chain check refused a stored event: {refused}");
        }
        checked += events.len();
    }
    let per_batch = ms(spent) / (checked as f64 / 1000.0).max(1e-9);
    let catch_up_per_batch = 1000.0 / catch_up_rate.max(1e-9) * 1000.0;
    println!(
        "chain check of Kafka events: {} events checked in {:.2} s: {:.2} ms per batch of 1000 \
         ({} events/s alone), {:.0}% of the Kafka catch-up's {:.1} ms per batch of 1000",
        group(checked as f64),
        spent.as_secs_f64(),
        per_batch,
        group(checked as f64 / spent.as_secs_f64().max(1e-9)),
        per_batch / catch_up_per_batch * 100.0,
        catch_up_per_batch
    );
    Ok(())
}

/// The relay's rate, then the Kafka-source catch-up's.
async fn kafka(
    args: &Args,
    deadline: Duration,
    events_url: &str,
    store: &eventstore::EventStore,
    head: (i64, i64),
    report: &bench::shop::FillReport,
    scratch: &mut Vec<TestDatabase>,
) -> Result<KafkaRates> {
    let total = report.events;
    let prefix = format!("bench{}", Uuid::new_v4().simple());
    println!();
    println!(
        "-- through Kafka ({}): relay to fresh topics {prefix}.product/.order, then a \
         Kafka-source projector (batch 1000) from empty read models",
        args.kafka_brokers
    );
    let mut config = RelayConfig::new(events_url, &args.kafka_brokers, &prefix);
    config.name = format!("bench-{}", Uuid::new_v4().simple());
    let relay_name = config.name.clone();
    let (stop, stopped) = watch::channel(false);
    let load_before = load1();
    let started = Instant::now();
    let relay = tokio::spawn(run_relay(config, store.clone(), stopped));
    let outcome = wait_for(deadline, "the relay to publish the whole log", || async {
        Ok(relay_checkpoint(events_url, &relay_name).await? == Some(head))
    })
    .await;
    let relay_secs = started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let _ = relay.await;
    outcome?;
    let relay_rate = total as f64 / relay_secs;
    let relay_load = load_span(&load_before);
    println!(
        "relay: {} events in {relay_secs:.2} s: {} events/s (load {relay_load})",
        group(total as f64),
        group(relay_rate),
    );

    let topics = [format!("{prefix}.product"), format!("{prefix}.order")];
    let watermarks = high_watermarks(&args.kafka_brokers, &topics)?;
    let published: i64 = watermarks.values().sum();
    println!(
        "published: {} messages in {} partitions",
        group(published as f64),
        watermarks.len()
    );

    let read_db = fresh_database(args.keep).await?;
    readmodel::migrate(&read_db.url).await?;
    let load_before = load1();
    let started = Instant::now();
    let projector = Projector::start(settings(
        events_url,
        &read_db.url,
        Some((&args.kafka_brokers, &prefix)),
        1000,
    ))
    .await?;
    let mut first_batch: Option<f64> = None;
    let until = Instant::now() + deadline;
    let outcome = loop {
        let saved = match kafka_checkpoints(&read_db.url).await {
            Ok(saved) => saved,
            Err(error) => break Err(error),
        };
        if first_batch.is_none() && !saved.is_empty() {
            first_batch = Some(started.elapsed().as_secs_f64());
        }
        let done = saved.len() == projector::projections::all().len()
            && saved.values().all(|offsets| {
                watermarks
                    .iter()
                    .filter(|(_, high)| **high > 0)
                    .all(|(key, high)| offsets.get(key).is_some_and(|o| o >= high))
            });
        if done {
            break Ok(());
        }
        if Instant::now() > until {
            break Err(anyhow::anyhow!(
                "timed out after {deadline:?} waiting for the Kafka-source projector"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let secs = started.elapsed().as_secs_f64();
    projector.stop().await?;
    outcome?;
    let rate = total as f64 / secs;
    let first = first_batch.unwrap_or(0.0);
    let consumer_load = load_span(&load_before);
    println!(
        "Kafka-source catch-up: {} events in {secs:.2} s: {} events/s; first batch committed \
         after {first:.2} s (group join, assignment), {} events/s after it (load {consumer_load})",
        group(total as f64),
        group(rate),
        group(total as f64 / (secs - first).max(1e-9)),
    );
    let checked = check_read_models(&read_db.url, report).await;
    scratch.push(read_db);
    checked?;
    chain_check_cost(store, rate).await?;
    if !args.keep {
        bench::support::delete_topics(&args.kafka_brokers, &topics).await;
    }
    Ok(KafkaRates {
        relay: relay_rate,
        relay_load,
        consumer: rate,
        consumer_load,
    })
}

fn settings(events: &str, read: &str, kafka: Option<(&str, &str)>, batch: usize) -> Settings {
    Settings {
        database_url: events.to_owned(),
        read_database_url: Some(read.to_owned()),
        kafka_brokers: kafka.map(|(brokers, _)| brokers.to_owned()),
        topic_prefix: kafka
            .map(|(_, prefix)| prefix.to_owned())
            .unwrap_or_else(|| "agora".into()),
        group_id: format!("bench-{}", Uuid::new_v4().simple()),
        addr: "127.0.0.1:0".into(),
        batch_size: batch,
        stall_after: Duration::from_secs(30),
    }
}

async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The last event in log order, as the checkpoints store it.
async fn log_head(url: &str) -> Result<(i64, i64)> {
    let row = connect(url)
        .await?
        .query_one(
            "SELECT transaction_id::text::int8, position FROM events \
             ORDER BY transaction_id DESC, position DESC LIMIT 1",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

async fn table_size(url: &str) -> Result<String> {
    let row = connect(url)
        .await?
        .query_one(
            "SELECT pg_size_pretty(pg_total_relation_size('events'))",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

async fn vacuum_analyze(url: &str) -> Result<()> {
    connect(url)
        .await?
        .batch_execute("VACUUM ANALYZE events")
        .await?;
    Ok(())
}

/// The log checkpoints of the live projections.
async fn log_checkpoints(read_url: &str) -> Result<Vec<(i64, i64)>> {
    let rows = connect(read_url)
        .await?
        .query(
            "SELECT c.transaction_id, c.position FROM read_model.checkpoints c \
             JOIN read_model.projections p ON p.name = c.projection AND p.active_version = c.version \
             WHERE c.source = 'log'",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Per live projection, its saved next offset per `topic/partition`.
async fn kafka_checkpoints(read_url: &str) -> Result<HashMap<String, HashMap<String, i64>>> {
    let rows = connect(read_url)
        .await?
        .query(
            "SELECT c.projection, c.partition_key, c.kafka_offset FROM read_model.checkpoints c \
             JOIN read_model.projections p ON p.name = c.projection AND p.active_version = c.version \
             WHERE c.source = 'kafka'",
            &[],
        )
        .await?;
    let mut saved: HashMap<String, HashMap<String, i64>> = HashMap::new();
    for row in rows {
        saved
            .entry(row.get(0))
            .or_default()
            .insert(row.get(1), row.get(2));
    }
    Ok(saved)
}

async fn relay_checkpoint(url: &str, name: &str) -> Result<Option<(i64, i64)>> {
    let row = connect(url)
        .await?
        .query_opt(
            "SELECT transaction_id::int8, position FROM relay_checkpoints WHERE name = $1",
            &[&name],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// The high watermark of every partition of `topics`, keyed `topic/partition`.
fn high_watermarks(brokers: &str, topics: &[String]) -> Result<HashMap<String, i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set(
            "group.id",
            format!("bench-watermarks-{}", Uuid::new_v4().simple()),
        )
        .create()?;
    let mut marks = HashMap::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        for t in metadata.topics() {
            for p in t.partitions() {
                let (_, high) =
                    consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
                marks.insert(projector::source_kafka::partition_key(topic, p.id()), high);
            }
        }
    }
    Ok(marks)
}

/// Sanity check of a finished catch-up: products and orders rows against the fill.
async fn check_read_models(read_url: &str, report: &bench::shop::FillReport) -> Result<()> {
    let client = connect(read_url).await?;
    let products: i64 = client
        .query_one("SELECT count(*) FROM read_model.products", &[])
        .await?
        .get(0);
    let orders: i64 = client
        .query_one("SELECT count(*) FROM read_model.orders", &[])
        .await?
        .get(0);
    let poison: i64 = client
        .query_one("SELECT count(*) FROM read_model.poison_events", &[])
        .await?
        .get(0);
    println!("read models: {products} products, {orders} orders, {poison} poison events");
    if !report.products.is_empty()
        && (products != report.products.len() as i64 || orders != report.orders as i64)
    {
        bail!(
            "the read models do not match the fill: {products} products, {orders} orders \
             (expected {}, {})",
            report.products.len(),
            report.orders
        );
    }
    if poison != 0 {
        bail!("{poison} poison events");
    }
    Ok(())
}

async fn wait_for<F, Fut>(deadline: Duration, what: &str, mut condition: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let until = Instant::now() + deadline;
    loop {
        if condition().await? {
            return Ok(());
        }
        if Instant::now() > until {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
