//! `dashboard-bench`: GraphQL next to REST, and the live dashboards' fan-out.
//!
//! Starts the command API, a projector and the query API in this process on a fresh
//! database (as `http-bench`: 2 HTTP workers and 16 connections each), creates
//! `--products` products, lets the projector put them in the read model and stops it.
//! Then, per round:
//!
//! 1. `--gets` `GET /v1/products/{id}` (round-robin over the products) from `--concurrency`
//!    clients in a closed loop, then the same number of GraphQL requests for the same
//!    products (`POST /graphql`, `product(id:)` with every field REST answers), so both
//!    rates come from the same run: requests/s and latency of each, and their ratio;
//! 2. SSE fan-out: `--subscribers` clients open `GET /v1/dashboard/stream` and read their
//!    first events; then, `--changes` times, a read-model change is committed the way the
//!    projector commits one (a `top_products` row and its NOTIFY in one transaction), and
//!    the time from that commit until each subscriber has the new `top_products` event is
//!    taken: p50, p99 and the time until all have it;
//! 3. amplification: `--attacks` times the reported attack on GraphQL (one viewer request
//!    of 3,000 aliases of six months of hourly `sales` buckets), one after another, beside
//!    the same number of one-alias requests (each a real 4,368-bucket read): the time to
//!    refuse it and this process's resident memory before and after (the services run in
//!    this process, so the query API's growth is in it).
//!
//! The load generator and the subscribers share the 2 cores with the services and
//! PostgreSQL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bench::shop::create_products;
use bench::stack::{Stack, StackOptions};
use bench::support::{
    budget_line, closed_loop, drop_databases, group, http_client, init_logging_if_asked, load1,
    load_average, median, ms, print_header, report, Goal, Percentiles,
};
use clap::Parser;
use query_api::testing::SseReader;
use serde_json::json;
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(
    name = "dashboard-bench",
    about = "GraphQL vs REST product-by-id, and SSE fan-out"
)]
struct Args {
    /// Products the requests are spread over.
    #[arg(long, default_value_t = 1000)]
    products: usize,
    /// Concurrent clients of the closed-loop runs.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Requests per closed-loop run (each of REST and GraphQL).
    #[arg(long, default_value_t = 50_000)]
    gets: u64,
    /// SSE subscribers.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Read-model changes timed per round.
    #[arg(long, default_value_t = 5)]
    changes: usize,
    /// Amplification attacks sent per round.
    #[arg(long, default_value_t = 50)]
    attacks: usize,
    /// Rounds.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
}

const PRODUCT_QUERY: &str = "query($id: UUID!) { product(id: $id) { id sku name priceCents \
     currency onHand reserved available discontinued version } }";

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.concurrency == 0 || args.products == 0 || args.rounds == 0 || args.subscribers == 0 {
        bail!("--concurrency, --products, --subscribers and --rounds must be positive");
    }
    init_logging_if_asked();
    print_header("dashboard-bench").await?;
    let mut stack = Stack::start(&StackOptions::default()).await?;
    let name = stack.db.name.clone();
    let outcome = run(&args, &mut stack).await;
    drop(stack);
    if let Err(error) = drop_databases(&[name]).await {
        eprintln!("warning: could not drop the scratch database: {error:#}");
    }
    println!("== load average at end: {}", load_average());
    outcome
}

async fn run(args: &Args, stack: &mut Stack) -> Result<()> {
    let products = Arc::new(create_products(&stack.db.store, args.products, "DASH").await?);
    stack
        .products_visible(products.len(), Duration::from_secs(60))
        .await?;
    stack.stop_projector().await?;
    println!(
        "{} products created and projected; projector stopped. Query API {}",
        products.len(),
        stack.query
    );
    let client = http_client(args.concurrency)?;
    let (mut rest_rates, mut graphql_rates, mut ratios, mut all_have_it) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut refusals = Vec::new();
    for round in 1..=args.rounds {
        println!();
        println!("-- round {round}/{}", args.rounds);
        let load_before = load1();
        let rest = {
            let (client, products) = (client.clone(), products.clone());
            let (url, token) = (stack.query.clone(), stack.admin.clone());
            closed_loop(args.concurrency, args.gets, move |i| {
                let client = client.clone();
                let id = products[i as usize % products.len()];
                let (url, token) = (format!("{url}/v1/products/{id}"), token.clone());
                async move {
                    let response = client.get(url).bearer_auth(&token).send().await?;
                    let status = response.status();
                    let _ = response.bytes().await?;
                    if status != reqwest::StatusCode::OK {
                        bail!("GET product: {status}");
                    }
                    Ok(())
                }
            })
            .await
        };
        report(
            &format!("REST GET /v1/products/{{id}}, {} clients", args.concurrency),
            &rest,
            &load_before,
        );
        let load_before = load1();
        let graphql = {
            let (client, products) = (client.clone(), products.clone());
            let (url, token) = (format!("{}/graphql", stack.query), stack.admin.clone());
            closed_loop(args.concurrency, args.gets, move |i| {
                let client = client.clone();
                let id = products[i as usize % products.len()];
                let (url, token) = (url.clone(), token.clone());
                async move {
                    let body = json!({"query": PRODUCT_QUERY, "variables": {"id": id}});
                    let response = client.post(url).bearer_auth(&token).json(&body).send();
                    let answer: serde_json::Value = response.await?.json().await?;
                    if answer["data"]["product"]["id"] != json!(id) {
                        bail!("GraphQL product: {answer}");
                    }
                    Ok(())
                }
            })
            .await
        };
        report(
            &format!("GraphQL product(id:), {} clients", args.concurrency),
            &graphql,
            &load_before,
        );
        rest_rates.push(rest.rate());
        graphql_rates.push(graphql.rate());
        ratios.push(graphql.rate() / rest.rate().max(1e-9));
        println!(
            "  GraphQL / REST: {:.2}",
            graphql.rate() / rest.rate().max(1e-9)
        );

        all_have_it.extend(fan_out(args, stack).await?);
        refusals.push(amplification(args, stack).await?);
    }

    println!();
    println!(
        "-- summary (medians over {} round(s); load average now {})",
        args.rounds,
        load_average()
    );
    println!(
        "REST product by id {} req/s, GraphQL {} req/s, ratio {:.2}",
        group(median(&rest_rates)),
        group(median(&graphql_rates)),
        median(&ratios)
    );
    budget_line(
        "GraphQL amplification (3,000 aliases of 4,368 buckets) refused, p99",
        median(&refusals),
        "ms",
        Goal::Below,
        100.0,
        "",
    );
    budget_line(
        &format!(
            "SSE fan-out: read-model change -> all {} subscribers have it",
            args.subscribers
        ),
        median(&all_have_it),
        "ms",
        Goal::Below,
        1000.0,
        "",
    );
    Ok(())
}

/// Sends the reported amplification attack `--attacks` times, one after another, and as
/// many single-alias requests beside it; prints both and the memory; returns the refusals'
/// p99 in ms.
async fn amplification(args: &Args, stack: &Stack) -> Result<f64> {
    let viewer = stack.token("bench-attacker", &[platform::Role::Viewer])?;
    let client = http_client(1)?;
    let url = format!("{}/graphql", stack.query);
    let sales = "sales(from: $f, to: $t) { buckets { start } }";
    let aliases: String = (0..3000).map(|i| format!("s{i}: {sales} ")).collect();
    let attack = format!("query($f: DateTime, $t: DateTime) {{ {aliases} }}");
    let single = format!("query($f: DateTime, $t: DateTime) {{ {sales} }}");
    let six_months = json!({"f": "2024-01-01T00:00:00Z", "t": "2024-07-01T00:00:00Z"});
    let before = bench::procfs::Memory::of(std::process::id())?;
    let (mut refused, mut answered) = (Vec::new(), Vec::new());
    for _ in 0..args.attacks {
        for (query, times) in [(&attack, &mut refused), (&single, &mut answered)] {
            let started = Instant::now();
            let body = json!({"query": query, "variables": six_months});
            let answer: serde_json::Value = client
                .post(&url)
                .bearer_auth(&viewer)
                .json(&body)
                .send()
                .await?
                .json()
                .await?;
            times.push(started.elapsed());
            let is_attack = std::ptr::eq(query, &attack);
            if is_attack && answer["data"].as_object().is_some_and(|d| !d.is_empty()) {
                bail!("the amplification attack was answered");
            }
            if !is_attack
                && answer["data"]["sales"]["buckets"].as_array().map(Vec::len) != Some(4368)
            {
                bail!("the single sales query: {answer}");
            }
        }
    }
    let after = bench::procfs::Memory::of(std::process::id())?;
    let (Some(refused), Some(answered)) = (
        Percentiles::of(&mut refused),
        Percentiles::of(&mut answered),
    ) else {
        bail!("--attacks must be positive");
    };
    println!(
        "  amplification: {} attacks (3,000 aliases, {} KiB body) refused in p50 {:.1} ms, \
         p99 {:.1} ms, max {:.1} ms; one alias (4,368 buckets read) p50 {:.1} ms, p99 {:.1} ms",
        args.attacks,
        attack.len() / 1024,
        ms(refused.p50),
        ms(refused.p99),
        ms(refused.max),
        ms(answered.p50),
        ms(answered.p99)
    );
    println!(
        "  memory of this process: before {}, after {}",
        before.line(),
        after.line()
    );
    Ok(ms(refused.p99))
}

/// Opens the subscribers, then times `--changes` read-model changes reaching all of them;
/// returns each change's time until the last subscriber had it, in ms.
async fn fan_out(args: &Args, stack: &Stack) -> Result<Vec<f64>> {
    // A viewer each: live streams are capped per subject (one viewer cannot take everyone's
    // share), and a dashboard is one person's.
    // No overall timeout: the streams stay open for the whole run.
    let sse_client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .no_proxy()
        .tcp_nodelay(true)
        .build()?;
    let url = format!("{}/v1/dashboard/stream", stack.query);
    let opened = Instant::now();
    let mut readers = Vec::with_capacity(args.subscribers);
    for i in 0..args.subscribers {
        let viewer = stack.token(&format!("bench-viewer-{i}"), &[platform::Role::Viewer])?;
        let mut reader = SseReader::open(&sse_client, &url, &viewer)
            .await
            .map_err(|response| anyhow::anyhow!("stream: {}", response.status()))?;
        reader
            .next_event_where("top_products", Duration::from_secs(30), |_| true)
            .await
            .context("a subscriber's first top_products event")?;
        readers.push(reader);
    }
    println!(
        "{} subscribers connected and caught up in {:.1} s",
        args.subscribers,
        opened.elapsed().as_secs_f64()
    );
    let readers = Arc::new(tokio::sync::Mutex::new(readers));
    let mut last = Vec::new();
    for change in 1..=args.changes {
        let sku = format!("FAN-{}", Uuid::new_v4().simple());
        // Every subscriber waits for the event naming this change's product.
        let mut waiting = Vec::new();
        let taken: Vec<SseReader> = readers.lock().await.drain(..).collect();
        let (started_tx, started_rx) = tokio::sync::watch::channel(None::<Instant>);
        for mut reader in taken {
            let sku = sku.clone();
            let mut started = started_rx.clone();
            waiting.push(tokio::spawn(async move {
                let got = reader
                    .next_event_where("top_products", Duration::from_secs(30), |top| {
                        top["items"][0]["sku"] == sku.as_str()
                    })
                    .await
                    .is_some();
                let arrived = Instant::now();
                let at = (*started.wait_for(Option::is_some).await.ok()?)?;
                got.then(|| (arrived.saturating_duration_since(at), reader))
            }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        // The change, committed as the projector commits a batch.
        let mut db = stack.db.store.pool().get().await?;
        let tx = db.transaction().await?;
        tx.execute(
            "INSERT INTO read_model.top_products_v1 \
             (product_id, sku, name, units_sold, revenue_cents, product_version) \
             SELECT $1, $2, 'fan-out', 1, \
                    GREATEST(max(revenue_cents) + 1, $3), 1 FROM read_model.top_products_v1",
            // Above every row so far (earlier rounds' too): this product tops the list.
            &[&Uuid::new_v4(), &sku, &(i64::MAX / 2)],
        )
        .await?;
        readmodel::notify_progress(&tx, "top_products").await?;
        tx.commit().await?;
        let _ = started_tx.send(Some(Instant::now()));
        let mut latencies = Vec::new();
        let mut back = Vec::new();
        for task in waiting {
            if let Some((latency, reader)) = task.await? {
                latencies.push(latency);
                back.push(reader);
            }
        }
        let missing = args.subscribers - latencies.len();
        let p = Percentiles::of(&mut latencies).context("no subscriber got the change")?;
        println!(
            "change {change}: {} of {} subscribers had it; {}",
            latencies.len(),
            args.subscribers,
            p.line()
        );
        if missing > 0 {
            bail!("{missing} subscribers missed the change");
        }
        last.push(ms(p.max));
        *readers.lock().await = back;
    }
    Ok(last)
}
