//! `pii-bench`: the command path with personal data sealed beside the same path without,
//! in interleaved rounds; then erasure latency and the verify rate of the log it leaves.
//!
//! Starts the whole stack in this process (command API, projector on the Postgres log,
//! query API; `AGORA_PII_KEY` set) on a fresh database. `--customers` customers set a profile
//! with an address (`PUT /v1/me`); as many others never do.
//!
//! Each round, `--orders` orders of one line, `--concurrency` at a time, per contender:
//! 1. **reference**: a customer without a profile places an order naming no address (what
//!    placing cost before personal data; the customer stream is still looked up);
//! 2. **to the profile's address**: a customer with a profile places an order naming none,
//!    so it ships to the profile's sealed address (copied as sealed);
//! 3. **address given**: a customer without a profile names an address: their data key is
//!    read (made on first use) and the address sealed.
//!
//! Then `--erasures` customers are erased one at a time (`POST /v1/customers/{id}/erasure`:
//! the key destroyed, `CustomerErased` appended), each also timed until the query API shows
//! it (`GET /v1/customers/{id}?min_version=2`); and `agora audit verify` checks the whole log
//! (sealed fields included), timed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bench::stack::{Stack, StackOptions};
use bench::support::{
    agora_binary, closed_loop, drop_databases, group, http_client, init_logging_if_asked, load1,
    load_average, print_header, report, Percentiles,
};
use clap::Parser;
use platform::Role;
use serde_json::{json, Value};
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(
    name = "pii-bench",
    about = "Sealed personal data beside none; erasure; verify"
)]
struct Args {
    /// Interleaved rounds.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Orders per contender per round.
    #[arg(long, default_value_t = 3000)]
    orders: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Customers with a profile (and as many without).
    #[arg(long, default_value_t = 200)]
    customers: usize,
    /// Customers erased at the end.
    #[arg(long, default_value_t = 100)]
    erasures: usize,
    /// Products the orders are spread over.
    #[arg(long, default_value_t = 200)]
    products: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.rounds == 0
        || args.concurrency == 0
        || args.customers == 0
        || args.products == 0
        || args.erasures > args.customers
    {
        bail!("--rounds, --concurrency, --customers and --products must be positive, and --erasures at most --customers");
    }
    init_logging_if_asked();
    print_header("pii-bench").await?;
    let stack = Stack::start(&StackOptions::default()).await?;
    let name = stack.db.name.clone();
    let outcome = run(&args, &stack).await;
    drop(stack);
    if let Err(error) = drop_databases(&[name]).await {
        eprintln!("warning: could not drop the scratch database: {error:#}");
    }
    println!("== load average at end: {}", load_average());
    outcome
}

/// How an order is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contender {
    Reference,
    ToProfile,
    AddressGiven,
}

impl Contender {
    fn label(self) -> &'static str {
        match self {
            Contender::Reference => "reference: no personal data (no profile, no address)",
            Contender::ToProfile => "to the profile's address (sealed, copied)",
            Contender::AddressGiven => "address given (key read, address sealed)",
        }
    }
}

struct Shop {
    http: reqwest::Client,
    command: String,
    query: String,
    admin: String,
    with_profile: Vec<(String, String)>,
    without_profile: Vec<String>,
    products: Vec<Uuid>,
}

fn address(n: u64) -> Value {
    json!({"line1": format!("Rua do Benchmark {n}"), "line2": "3º esq.",
           "postal_code": "1000-001", "city": "Lisboa", "country": "PT"})
}

impl Shop {
    async fn place(
        self: &Arc<Self>,
        contender: Contender,
        count: usize,
        concurrency: usize,
    ) -> bench::support::LoadRun {
        let shop = self.clone();
        closed_loop(concurrency, count as u64, move |i| {
            let shop = shop.clone();
            async move {
                let product = shop.products[i as usize % shop.products.len()];
                let lines = json!([{"product_id": product, "quantity": 1}]);
                let (token, body) = match contender {
                    Contender::Reference => (
                        &shop.without_profile[i as usize % shop.without_profile.len()],
                        json!({"lines": lines}),
                    ),
                    Contender::ToProfile => (
                        &shop.with_profile[i as usize % shop.with_profile.len()].1,
                        json!({"lines": lines}),
                    ),
                    Contender::AddressGiven => (
                        &shop.without_profile[i as usize % shop.without_profile.len()],
                        json!({"lines": lines, "shipping_address": address(i)}),
                    ),
                };
                let response = shop
                    .http
                    .post(format!("{}/v1/orders", shop.command))
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await?;
                if response.status() != reqwest::StatusCode::CREATED {
                    bail!("place: {} {}", response.status(), response.text().await?);
                }
                Ok(())
            }
        })
        .await
    }
}

async fn run(args: &Args, stack: &Stack) -> Result<()> {
    let http = http_client(args.concurrency.max(64))?;
    let products = bench::shop::create_products(&stack.db.store, args.products, "PII").await?;
    let mut with_profile = Vec::with_capacity(args.customers);
    let mut without_profile = Vec::with_capacity(args.customers);
    for n in 0..args.customers {
        let sub = format!("pii-customer-{n}");
        let token = stack.keys.mint(&sub, &[Role::Customer], 24 * 3600)?;
        let response = http
            .put(format!("{}/v1/me", stack.command))
            .bearer_auth(&token)
            .json(
                &json!({"email": format!("{sub}@example.org"), "name": format!("Customer {n}"),
                          "address": address(n as u64)}),
            )
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("PUT /v1/me: {}", response.status());
        }
        with_profile.push((sub, token));
        without_profile.push(stack.keys.mint(
            &format!("plain-customer-{n}"),
            &[Role::Customer],
            24 * 3600,
        )?);
    }
    let shop = Arc::new(Shop {
        http: http.clone(),
        command: stack.command.clone(),
        query: stack.query.clone(),
        admin: stack.admin.clone(),
        with_profile,
        without_profile,
        products,
    });

    // Warm-up: every contender once (the keys of the customers who give an address are
    // made here, as on a customer's first order).
    for contender in [
        Contender::Reference,
        Contender::ToProfile,
        Contender::AddressGiven,
    ] {
        let warm = shop
            .place(contender, args.customers, args.concurrency)
            .await;
        if warm.failed > 0 {
            bail!("warm-up {}: {:?}", contender.label(), warm.errors);
        }
    }

    let mut ratios: Vec<(f64, f64)> = Vec::new();
    for round in 1..=args.rounds {
        println!("== round {round}");
        let mut rates = [0.0; 3];
        // Rotate who goes first, so none always runs on the freshest machine.
        let order = [
            Contender::Reference,
            Contender::ToProfile,
            Contender::AddressGiven,
        ];
        for k in 0..3 {
            let contender = order[(k + round - 1) % 3];
            let load = load1();
            let run = shop.place(contender, args.orders, args.concurrency).await;
            report(contender.label(), &run, &load);
            if run.failed > 0 {
                bail!("{}: {:?}", contender.label(), run.errors);
            }
            let slot = order.iter().position(|c| *c == contender).unwrap_or(0);
            rates[slot] = run.rate();
        }
        let (profile, given) = (rates[1] / rates[0], rates[2] / rates[0]);
        println!(
            "  round {round}: to the profile's address {:.3} × the reference, address given {:.3} ×",
            profile, given
        );
        ratios.push((profile, given));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "== median ratio to the reference over {} rounds: to the profile's address {:.3}, address given {:.3}",
        args.rounds,
        median(ratios.iter().map(|r| r.0).collect()),
        median(ratios.iter().map(|r| r.1).collect())
    );

    // Erasure: one at a time, each timed to its answer and to the query API showing it.
    let mut answered = Vec::with_capacity(args.erasures);
    let mut visible = Vec::with_capacity(args.erasures);
    let load = load1();
    for (sub, token) in shop.with_profile.iter().take(args.erasures) {
        let started = Instant::now();
        let response = shop
            .http
            .post(format!("{}/v1/customers/{sub}/erasure", shop.command))
            .bearer_auth(token)
            .json(&json!({"reason": "benchmark"}))
            .send()
            .await?;
        if response.status() != reqwest::StatusCode::ACCEPTED {
            bail!("erasure: {}", response.status());
        }
        answered.push(started.elapsed());
        loop {
            let shown = shop
                .http
                .get(format!("{}/v1/customers/{sub}?min_version=2", shop.query))
                .bearer_auth(&shop.admin)
                .send()
                .await?;
            if shown.status().is_success() {
                let body: Value = shown.json().await?;
                if body["erased"] == true {
                    break;
                }
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("erasure of {sub} not visible after 30 s");
            }
        }
        visible.push(started.elapsed());
    }
    println!(
        "erasure, one at a time ({} customers; load {load} before, {} after)",
        args.erasures,
        load1()
    );
    if let Some(p) = Percentiles::of(&mut answered) {
        println!(
            "  answered (key destroyed, CustomerErased appended): {}",
            p.line()
        );
    }
    if let Some(p) = Percentiles::of(&mut visible) {
        println!(
            "  until GET /v1/customers/{{id}} shows it erased: {}",
            p.line()
        );
    }

    // The verify rate over the log as it is (sealed fields included).
    let client = stack.db.store.pool().get().await?;
    let events: i64 = client
        .query_one("SELECT count(*) FROM events", &[])
        .await?
        .get(0);
    let sealed: i64 = client
        .query_one(
            "SELECT count(*) FROM events WHERE payload::text LIKE '%pii1.%'",
            &[],
        )
        .await?
        .get(0);
    let agora = agora_binary(None)?;
    let load = load1();
    let started = Instant::now();
    let output = std::process::Command::new(agora)
        .args(["audit", "verify", "--database-url", &stack.db.url])
        .output()?;
    let took = started.elapsed();
    if !output.status.success() {
        bail!(
            "agora audit verify failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    println!(
        "agora audit verify: {} events ({} with sealed fields) in {:.2} s: {} events/s (load {load} before, {} after)",
        group(events as f64),
        group(sealed as f64),
        took.as_secs_f64(),
        group(events as f64 / took.as_secs_f64()),
        load1()
    );
    Ok(())
}
