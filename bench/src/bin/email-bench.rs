//! `email-bench`: how fast the email reactor works off a backlog, and how long an email takes
//! from its event's commit to the SMTP server's acceptance under a steady load.
//!
//! Starts the whole stack in this process with email going to a real SMTP server (aiosmtpd,
//! `scripts/tools.sh smtp`, on a port of its own), on a fresh database; `--customers`
//! customers set a profile.
//!
//! 1. **Backlog**, `--rounds` times: with the SMTP server stopped, `--backlog` orders are
//!    placed (one confirmation email each) and their ledger rows written; then every row is
//!    made due at once, the server started, and the time until all are `sent` measured:
//!    emails per second (composing with the customer's data opened, SMTP, recording).
//! 2. **Steady load**: orders at `--rate` per second for `--seconds`; per email, from the
//!    event's `occurred_at` (set just before its commit) to `sent_at` (recorded right after
//!    the SMTP server accepted it): percentiles.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bench::stack::{Stack, StackOptions};
use bench::support::{
    drop_databases, group, http_client, init_logging_if_asked, load1, load_average, open_loop,
    print_header,
};
use clap::Parser;
use command_api::emails::EmailSettings;
use platform::Role;
use serde_json::json;
use testkit::smtp::SmtpServer;
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(
    name = "email-bench",
    about = "Email backlog drain rate and commit-to-SMTP latency"
)]
struct Args {
    /// Backlog rounds.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Emails in each backlog.
    #[arg(long, default_value_t = 2000)]
    backlog: usize,
    /// Orders per second in the steady run.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds of the steady run.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Customers with a profile the orders are spread over.
    #[arg(long, default_value_t = 100)]
    customers: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.rounds == 0 || args.backlog == 0 || args.rate <= 0.0 || args.customers == 0 {
        bail!("--rounds, --backlog, --rate and --customers must be positive");
    }
    init_logging_if_asked();
    print_header("email-bench").await?;
    let mut smtp = SmtpServer::start()
        .await
        .context("aiosmtpd (scripts/tools.sh smtp)")?;
    let options = StackOptions {
        email: EmailSettings {
            smtp_url: Some(smtp.url()),
            mail_from: "shop@bench.example".into(),
            email_retry_base: Duration::from_secs(3600),
            email_max_attempts: 1000,
            ..EmailSettings::default()
        },
        ..StackOptions::default()
    };
    let stack = Stack::start(&options).await?;
    let name = stack.db.name.clone();
    let outcome = run(&args, &stack, &mut smtp).await;
    drop(stack);
    if let Err(error) = drop_databases(&[name]).await {
        eprintln!("warning: could not drop the scratch database: {error:#}");
    }
    println!("== load average at end: {}", load_average());
    outcome
}

struct Shop {
    http: reqwest::Client,
    command: String,
    tokens: Vec<String>,
    product: Uuid,
}

impl Shop {
    async fn place(&self, i: u64) -> Result<()> {
        let response = self
            .http
            .post(format!("{}/v1/orders", self.command))
            .bearer_auth(&self.tokens[i as usize % self.tokens.len()])
            .json(&json!({"lines": [{"product_id": self.product, "quantity": 1}]}))
            .send()
            .await?;
        if response.status() != reqwest::StatusCode::CREATED {
            bail!("place: {}", response.status());
        }
        Ok(())
    }
}

async fn count(stack: &Stack, sql: &str) -> Result<i64> {
    let client = stack.db.store.pool().get().await?;
    Ok(client.query_one(sql, &[]).await?.get(0))
}

async fn run(args: &Args, stack: &Stack, smtp: &mut SmtpServer) -> Result<()> {
    let http = http_client(64)?;
    let product = bench::shop::create_products(&stack.db.store, 1, "MAIL").await?[0];
    let mut tokens = Vec::with_capacity(args.customers);
    for n in 0..args.customers {
        let sub = format!("mail-customer-{n}");
        let token = stack.keys.mint(&sub, &[Role::Customer], 24 * 3600)?;
        let response = http
            .put(format!("{}/v1/me", stack.command))
            .bearer_auth(&token)
            .json(
                &json!({"email": format!("{sub}@bench.example"), "name": format!("Customer {n}"),
                          "address": {"line1": format!("Street {n}"), "postal_code": "1000",
                                      "city": "Lisboa", "country": "PT"}}),
            )
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("PUT /v1/me: {}", response.status());
        }
        tokens.push(token);
    }
    let shop = Arc::new(Shop {
        http,
        command: stack.command.clone(),
        tokens,
        product,
    });

    let mut rates = Vec::new();
    for round in 1..=args.rounds {
        // The backlog: the server down, the orders in, their ledger rows written.
        smtp.stop();
        let before = count(stack, "SELECT count(*) FROM emails").await?;
        let placed = bench::support::closed_loop(8, args.backlog as u64, {
            let shop = shop.clone();
            move |i| {
                let shop = shop.clone();
                async move { shop.place(i).await }
            }
        })
        .await;
        if placed.failed > 0 {
            bail!("placing the backlog: {:?}", placed.errors);
        }
        let target = before + args.backlog as i64;
        let deadline = Instant::now() + Duration::from_secs(300);
        while count(stack, "SELECT count(*) FROM emails").await? < target {
            if Instant::now() > deadline {
                bail!("the ledger did not reach {target} rows");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The server up, then everything due now: drain.
        smtp.resume().await?;
        let load = load1();
        let started = Instant::now();
        let client = stack.db.store.pool().get().await?;
        client
            .execute(
                "UPDATE emails SET status = 'pending', attempts = 0, next_attempt_at = now(), \
                     lease_until = NULL WHERE status <> 'sent'",
                &[],
            )
            .await?;
        while count(stack, "SELECT count(*) FROM emails WHERE status = 'sent'").await? < target {
            if started.elapsed() > Duration::from_secs(600) {
                bail!("the backlog was not sent within 10 minutes");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took = started.elapsed();
        let rate = args.backlog as f64 / took.as_secs_f64();
        println!(
            "round {round}: a backlog of {} emails sent in {:.2} s: {} emails/s (load {load} before, {} after)",
            group(args.backlog as f64),
            took.as_secs_f64(),
            group(rate),
            load1()
        );
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "== backlog drain, median of {} rounds: {} emails/s",
        rates.len(),
        group(rates[rates.len() / 2])
    );

    // Steady load: orders at --rate/s; commit → SMTP acceptance per email.
    let before = count(stack, "SELECT count(*) FROM emails").await?;
    let since = chrono::Utc::now();
    let load = load1();
    let steady = open_loop(args.rate, args.seconds, 256, {
        let shop = shop.clone();
        move |i, _due| {
            let shop = shop.clone();
            async move {
                shop.place(i).await?;
                Ok(None)
            }
        }
    })
    .await;
    if steady.failed > 0 {
        bail!("the steady run: {:?}", steady.errors);
    }
    let target = before + steady.ok as i64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while count(stack, "SELECT count(*) FROM emails WHERE status = 'sent'").await? < target {
        if Instant::now() > deadline {
            bail!("the steady run's emails were not all sent");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = stack.db.store.pool().get().await?;
    let row = client
        .query_one(
            "SELECT count(*), \
                 percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), \
                 percentile_cont(0.9) WITHIN GROUP (ORDER BY ms), \
                 percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms)::float8 \
             FROM (SELECT (extract(epoch FROM m.sent_at - e.occurred_at) * 1000)::float8 AS ms \
                   FROM emails m JOIN events e ON e.event_id = m.event_id \
                   WHERE e.occurred_at >= $1) x",
            &[&since],
        )
        .await?;
    let (n, p50, p90, p99, max): (i64, f64, f64, f64, f64) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    println!(
        "steady load: {} orders at {} /s for {:.0} s (load {load} before, {} after); commit → SMTP accepted over {n} emails: p50 {p50:.1} ms, p90 {p90:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
        group(steady.ok as f64),
        args.rate,
        args.seconds,
        load1()
    );
    Ok(())
}
