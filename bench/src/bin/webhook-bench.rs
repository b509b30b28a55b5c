//! `webhook-bench`: webhook deliveries per second to a local receiver, and how far behind
//! the log they stay under a steady command load.
//!
//! Starts the command API in this process on a fresh database with webhooks on (no
//! projector, no query API), and a receiver (an actix-web server on a loopback port that
//! answers 204 and notes when each delivery arrived and the `occurred_at` of its event).
//! One subscription to `StockAdded`.
//!
//! 1. **Throughput**: appends `--backlog` `StockAdded` events straight through the store
//!    (restocks of `--products` products, in batches), then waits until every one was
//!    delivered. Reports deliveries/s from the first delivery to the last, and from the
//!    start of the appends.
//! 2. **Lag**: drives restocks over HTTP at `--rate` commands/s for `--seconds` (open loop,
//!    round-robin over the products), and reports, per delivery, the time from its event's
//!    `occurred_at` (taken just before the command's append) to its arrival at the receiver
//!    (p50/p90/p99/max), and the most deliveries pending at once (sampled every 100 ms).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::{bail, Result};
use bench::shop::create_products_with_history;
use bench::stack::{Stack, StackOptions};
use bench::support::{
    drop_databases, group, http_client, init_logging_if_asked, load1, load_average, open_loop,
    print_header, Percentiles,
};
use clap::Parser;
use serde_json::{json, Value};

#[derive(Debug, Parser)]
#[command(
    name = "webhook-bench",
    about = "Webhook deliveries/s and their lag behind the log"
)]
struct Args {
    /// Products the events are spread over (each its own stream).
    #[arg(long, default_value_t = 200)]
    products: usize,
    /// Events appended for the throughput run.
    #[arg(long, default_value_t = 20_000)]
    backlog: usize,
    /// Commands per second in the lag run.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Seconds of the lag run.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// The most commands in flight in the lag run.
    #[arg(long, default_value_t = 256)]
    max_in_flight: usize,
}

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    arrivals: Vec<Instant>,
    lags: Vec<Duration>,
}

async fn receive(seen: web::Data<Mutex<Seen>>, body: web::Bytes) -> HttpResponse {
    let now = chrono::Utc::now();
    let occurred = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["occurred_at"].as_str().map(str::to_owned))
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok());
    if let Ok(mut seen) = seen.lock() {
        seen.arrivals.push(Instant::now());
        if let Some(occurred) = occurred {
            let lag = (now - occurred.with_timezone(&chrono::Utc))
                .to_std()
                .unwrap_or_default();
            seen.lags.push(lag);
        }
    }
    HttpResponse::NoContent().finish()
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.products == 0 || args.rate <= 0.0 || args.seconds <= 0.0 {
        bail!("--products, --rate and --seconds must be positive");
    }
    init_logging_if_asked();
    print_header("webhook-bench").await?;
    let options = StackOptions {
        projector: false,
        query_api: false,
        webhook_key: Some(command_api::webhooks::secrets::SecretBox::generate_key()),
        ..StackOptions::default()
    };
    let stack = Stack::start(&options).await?;
    let name = stack.db.name.clone();
    let outcome = run(&args, &stack).await;
    drop(stack);
    if let Err(error) = drop_databases(&[name]).await {
        eprintln!("warning: could not drop the scratch database: {error:#}");
    }
    println!("== load average at end: {}", load_average());
    outcome
}

async fn run(args: &Args, stack: &Stack) -> Result<()> {
    let seen = web::Data::new(Mutex::new(Seen::default()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let data = seen.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/hook", web::post().to(receive))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    tokio::spawn(server);

    let http = http_client(args.max_in_flight)?;
    let response = http
        .post(format!("{}/v1/webhooks", stack.command))
        .bearer_auth(&stack.admin)
        .json(&json!({"url": url, "event_types": ["StockAdded"], "secret": "bench-secret-0123456789"}))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!(
            "subscribing: {} {}",
            response.status(),
            response.text().await?
        );
    }

    // 1. Throughput.
    let per_product = args.backlog.div_ceil(args.products);
    let expected = per_product * args.products;
    let load_before = load1();
    let started = Instant::now();
    let products =
        create_products_with_history(&stack.db.store, args.products, per_product + 1, 2000, "WH")
            .await?;
    let appended_in = started.elapsed();
    wait_for(&seen, expected, Duration::from_secs(600)).await?;
    let (first, last) = {
        let seen = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        (seen.arrivals[0], seen.arrivals[seen.arrivals.len() - 1])
    };
    let span = last.duration_since(first).as_secs_f64().max(1e-9);
    let total = last.duration_since(started).as_secs_f64();
    println!(
        "-- throughput: {} StockAdded events over {} streams appended in {:.2} s; all delivered \
         {:.2} s after the appends began (load {load_before} before, {} after)",
        group(expected as f64),
        args.products,
        appended_in.as_secs_f64(),
        total,
        load1()
    );
    println!(
        "webhook deliveries: {} /s (first to last delivery), {} /s (from the first append)",
        group(expected as f64 / span),
        group(expected as f64 / total)
    );

    // 2. Lag at a steady command rate.
    if let Ok(mut seen) = seen.lock() {
        *seen = Seen::default();
    }
    let pending_max = Arc::new(Mutex::new(0i64));
    let sampler = {
        let store = stack.db.store.clone();
        let pending_max = pending_max.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(client) = store.pool().get().await {
                    if let Ok(row) = client
                        .query_one(
                            "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'",
                            &[],
                        )
                        .await
                    {
                        let pending: i64 = row.get(0);
                        if let Ok(mut max) = pending_max.lock() {
                            *max = (*max).max(pending);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let products = Arc::new(products);
    let (command, admin) = (stack.command.clone(), stack.admin.clone());
    let load_before = load1();
    let run = open_loop(
        args.rate,
        args.seconds,
        args.max_in_flight,
        move |i, _due| {
            let (http, products, command, admin) = (
                http.clone(),
                products.clone(),
                command.clone(),
                admin.clone(),
            );
            async move {
                let product = products[i as usize % products.len()];
                let response = http
                    .post(format!("{command}/v1/products/{product}/restock"))
                    .bearer_auth(&admin)
                    .json(&json!({"quantity": 1}))
                    .send()
                    .await?;
                if !response.status().is_success() {
                    bail!("restock: {}", response.status());
                }
                Ok(None)
            }
        },
    )
    .await;
    wait_for(&seen, run.ok as usize, Duration::from_secs(120)).await?;
    sampler.abort();
    let mut lags = seen.lock().map(|s| s.lags.clone()).unwrap_or_default();
    println!(
        "-- lag: {} commands due at {} /s over {} s, {} answered 2xx ({} failed), achieved {} \
         commands/s (load {load_before} before, {} after)",
        group((args.rate * args.seconds).round()),
        args.rate,
        args.seconds,
        group(run.ok as f64),
        run.failed,
        group(run.rate()),
        load1()
    );
    if let Some(p) = Percentiles::of(&mut lags) {
        println!("event occurred -> delivered at the receiver: {}", p.line());
    }
    println!(
        "most deliveries pending at once (sampled every 100 ms): {}",
        pending_max.lock().map(|m| *m).unwrap_or_default()
    );
    Ok(())
}

/// Waits until the receiver saw `count` deliveries.
async fn wait_for(seen: &web::Data<Mutex<Seen>>, count: usize, deadline: Duration) -> Result<()> {
    let until = Instant::now() + deadline;
    loop {
        let got = seen.lock().map(|s| s.arrivals.len()).unwrap_or_default();
        if got >= count {
            return Ok(());
        }
        if Instant::now() > until {
            bail!("only {got} of {count} deliveries arrived within {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
