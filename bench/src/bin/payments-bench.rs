//! `payments-bench`: the payment paths beside their references, in interleaved rounds.
//!
//! Starts the whole stack in this process (command API with `AGORA_PAYMENTS=stripe` against
//! localstripe from `scripts/payments.sh`, projector on the Postgres log, query API) on a
//! fresh database, creates `--products` products and places orders for the rounds.
//!
//! Each round, in this order:
//! 1. **Checkout**: `POST /v1/orders/{id}/payment` for `--checkouts` placed orders,
//!    `--concurrency` at a time: a PaymentIntent created at the provider, then
//!    `PaymentRequested` appended. Beside it, its reference: the same number of
//!    `POST /v1/payment_intents` straight to the provider (what the checkout cannot go
//!    below).
//! 2. **Webhook ingestion**: signed `payment_intent.succeeded` events for `--webhooks`
//!    placed orders, posted to `POST /v1/payments/stripe/webhook` `--concurrency` at a
//!    time (signature check, claim, `OrderPaid`); beside it, its reference: an admin's
//!    `POST /v1/orders/{id}/pay` (the same append without the webhook) for as many orders.
//! 3. **Receipt → paid visible**: an open loop at `--rate` webhooks/s for `--seconds`; each
//!    sample is from just before the webhook is sent to the answer of
//!    `GET /v1/orders/{id}?min_version=2` on the query API (the order read as `paid`).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use bench::stack::{Stack, StackOptions};
use bench::support::{
    closed_loop, drop_databases, group, http_client, init_logging_if_asked, load1, load_average,
    open_loop, print_header, report,
};
use clap::Parser;
use command_api::payments::{PaymentSettings, ProviderKind};
use command_api::webhooks::signing::signature;
use platform::Role;
use serde_json::{json, Value};
use uuid::Uuid;

const SECRET_KEY: &str = "sk_test_bench";
const WEBHOOK_SECRET: &str = "whsec_bench_0123456789";

#[derive(Debug, Parser)]
#[command(
    name = "payments-bench",
    about = "Checkout and webhook ingestion beside their references"
)]
struct Args {
    /// Interleaved rounds.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Checkouts (and direct provider calls) per round.
    #[arg(long, default_value_t = 300)]
    checkouts: usize,
    /// Webhooks (and admin payments) per round.
    #[arg(long, default_value_t = 2000)]
    webhooks: usize,
    /// Requests in flight at once (closed loops).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Webhooks per second in the receipt-to-visible run.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Seconds of the receipt-to-visible run.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Products the orders are spread over.
    #[arg(long, default_value_t = 200)]
    products: usize,
    /// The provider's API (localstripe).
    #[arg(
        long,
        env = "AGORA_TEST_STRIPE_API_BASE",
        default_value = "http://127.0.0.1:58420"
    )]
    provider: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.rounds == 0 || args.concurrency == 0 || args.rate <= 0.0 || args.products == 0 {
        bail!("--rounds, --concurrency, --rate and --products must be positive");
    }
    init_logging_if_asked();
    print_header("payments-bench").await?;
    let options = StackOptions {
        payments: PaymentSettings {
            provider: ProviderKind::Stripe,
            stripe_api_base: args.provider.clone(),
            stripe_secret_key: Some(SECRET_KEY.into()),
            stripe_webhook_secrets: Some(WEBHOOK_SECRET.into()),
            ..PaymentSettings::default()
        },
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

/// What every request needs.
struct Shop {
    http: reqwest::Client,
    command: String,
    query: String,
    provider: String,
    admin: String,
    customer: String,
    products: Vec<Uuid>,
}

impl Shop {
    /// Places `count` orders of one unit each (price 1000 cents), `concurrency` at a time.
    async fn place(self: &Arc<Self>, count: usize, concurrency: usize) -> Result<Vec<Uuid>> {
        let ids = Arc::new(std::sync::Mutex::new(Vec::with_capacity(count)));
        let shop = self.clone();
        let sink = ids.clone();
        let run = closed_loop(concurrency, count as u64, move |i| {
            let shop = shop.clone();
            let sink = sink.clone();
            async move {
                let product = shop.products[i as usize % shop.products.len()];
                let response = shop
                    .http
                    .post(format!("{}/v1/orders", shop.command))
                    .bearer_auth(&shop.customer)
                    .json(&json!({"lines": [{"product_id": product, "quantity": 1}]}))
                    .send()
                    .await?;
                if !response.status().is_success() {
                    bail!("place: {}", response.status());
                }
                let body: Value = response.json().await?;
                let id: Uuid = body["id"].as_str().context("an id")?.parse()?;
                sink.lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .push(id);
                Ok(())
            }
        })
        .await;
        if run.failed > 0 {
            bail!("placing orders failed: {:?}", run.errors);
        }
        let ids = ids.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
        Ok(ids)
    }

    /// A signed `payment_intent.succeeded` for `order` (1000 EUR cents).
    fn succeeded(order: Uuid) -> (Vec<u8>, String) {
        let event = json!({
            "id": format!("evt_{}", Uuid::new_v4().simple()), "type": "payment_intent.succeeded",
            "data": {"object": {"id": format!("pi_{}", Uuid::new_v4().simple()), "amount": 1000,
                                "currency": "eur", "status": "succeeded",
                                "metadata": {"order_id": order.to_string()}}}
        });
        let body = serde_json::to_vec(&event).unwrap_or_default();
        let t = chrono::Utc::now().timestamp();
        let header = format!(
            "t={t},v1={}",
            signature(WEBHOOK_SECRET.as_bytes(), t, &body)
        );
        (body, header)
    }

    async fn deliver(&self, order: Uuid) -> Result<()> {
        let (body, header) = Self::succeeded(order);
        let response = self
            .http
            .post(format!("{}/v1/payments/stripe/webhook", self.command))
            .header("Content-Type", "application/json")
            .header("Stripe-Signature", header)
            .body(body)
            .send()
            .await?;
        if response.status() != reqwest::StatusCode::OK {
            bail!("webhook: {}", response.status());
        }
        Ok(())
    }
}

async fn run(args: &Args, stack: &Stack) -> Result<()> {
    let http = http_client(args.concurrency.max(64))?;
    // The products: 1000 cents each, plenty of stock.
    let mut products = Vec::with_capacity(args.products);
    for n in 0..args.products {
        let response = http
            .post(format!("{}/v1/products", stack.command))
            .bearer_auth(&stack.admin)
            .json(
                &json!({"sku": format!("PAY-{n}"), "name": format!("Product {n}"),
                          "price_cents": 1000, "currency": "EUR", "initial_stock": 1_000_000}),
            )
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("creating products: {}", response.status());
        }
        let body: Value = response.json().await?;
        products.push(body["id"].as_str().context("an id")?.parse()?);
    }
    let shop = Arc::new(Shop {
        http: http.clone(),
        command: stack.command.clone(),
        query: stack.query.clone(),
        provider: args.provider.clone(),
        admin: stack.admin.clone(),
        customer: stack.keys.mint("bench-buyer", &[Role::Customer], 3600)?,
        products,
    });

    let mut checkout_ratios = Vec::new();
    let mut webhook_ratios = Vec::new();
    for round in 1..=args.rounds {
        println!("== round {round}");
        // 1. Checkout beside the provider alone.
        let orders = Arc::new(shop.place(args.checkouts, args.concurrency).await?);
        let load = load1();
        let s = shop.clone();
        let o = orders.clone();
        let checkout = closed_loop(args.concurrency, orders.len() as u64, move |i| {
            let (s, o) = (s.clone(), o.clone());
            async move {
                let response = s
                    .http
                    .post(format!("{}/v1/orders/{}/payment", s.command, o[i as usize]))
                    .bearer_auth(&s.customer)
                    .json(&json!({}))
                    .send()
                    .await?;
                if !response.status().is_success() {
                    bail!("checkout: {} {}", response.status(), response.text().await?);
                }
                Ok(())
            }
        })
        .await;
        report(
            "checkout (POST /payment: provider + append)",
            &checkout,
            &load,
        );
        let load = load1();
        let s = shop.clone();
        let direct = closed_loop(args.concurrency, args.checkouts as u64, move |_| {
            let s = s.clone();
            async move {
                let response = s
                    .http
                    .post(format!("{}/v1/payment_intents", s.provider))
                    .bearer_auth(SECRET_KEY)
                    .form(&[
                        ("amount", "1000"),
                        ("currency", "eur"),
                        ("metadata[order_id]", "bench"),
                    ])
                    .send()
                    .await?;
                if !response.status().is_success() {
                    bail!("provider: {}", response.status());
                }
                Ok(())
            }
        })
        .await;
        report(
            "reference: the provider alone (POST /v1/payment_intents)",
            &direct,
            &load,
        );
        if direct.rate() > 0.0 {
            checkout_ratios.push(checkout.rate() / direct.rate());
        }

        // 2. Webhook ingestion beside an admin's /pay.
        let paid_by_webhook = Arc::new(shop.place(args.webhooks, args.concurrency).await?);
        let paid_by_admin = Arc::new(shop.place(args.webhooks, args.concurrency).await?);
        let load = load1();
        let s = shop.clone();
        let o = paid_by_webhook.clone();
        let webhooks = closed_loop(args.concurrency, o.len() as u64, move |i| {
            let (s, o) = (s.clone(), o.clone());
            async move { s.deliver(o[i as usize]).await }
        })
        .await;
        report(
            "webhook ingestion (signed payment_intent.succeeded → OrderPaid)",
            &webhooks,
            &load,
        );
        let load = load1();
        let s = shop.clone();
        let o = paid_by_admin.clone();
        let admin = closed_loop(args.concurrency, o.len() as u64, move |i| {
            let (s, o) = (s.clone(), o.clone());
            async move {
                let response = s
                    .http
                    .post(format!("{}/v1/orders/{}/pay", s.command, o[i as usize]))
                    .bearer_auth(&s.admin)
                    .json(&json!({"amount_cents": 1000, "currency": "EUR",
                                  "payment_ref": "bench", "reason": "benchmark reference"}))
                    .send()
                    .await?;
                if !response.status().is_success() {
                    bail!("pay: {}", response.status());
                }
                Ok(())
            }
        })
        .await;
        report(
            "reference: an admin's POST /pay (the same append)",
            &admin,
            &load,
        );
        if admin.rate() > 0.0 {
            webhook_ratios.push(webhooks.rate() / admin.rate());
        }

        // 3. Receipt → paid visible in the query API.
        let count = (args.rate * args.seconds).round() as usize;
        let orders = Arc::new(shop.place(count, args.concurrency).await?);
        let load = load1();
        let s = shop.clone();
        let o = orders.clone();
        let visible = open_loop(args.rate, args.seconds, 256, move |i, due| {
            let (s, o) = (s.clone(), o.clone());
            async move {
                let order = *o.get(i as usize).context("an order")?;
                s.deliver(order).await?;
                let response = s
                    .http
                    .get(format!("{}/v1/orders/{order}?min_version=2", s.query))
                    .bearer_auth(&s.admin)
                    .send()
                    .await?;
                if !response.status().is_success() {
                    bail!("read: {}", response.status());
                }
                let body: Value = response.json().await?;
                if body["status"] != "paid" {
                    bail!("not paid: {body}");
                }
                Ok(Some(Instant::now().duration_since(due)))
            }
        })
        .await;
        report(
            &format!(
                "receipt → paid visible in the query API at {} webhooks/s",
                group(args.rate)
            ),
            &visible,
            &load,
        );
    }
    let fmt = |ratios: &[f64]| {
        ratios
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "== checkout / provider alone, per round: {}",
        fmt(&checkout_ratios)
    );
    println!(
        "== webhook ingestion / admin /pay, per round: {}",
        fmt(&webhook_ratios)
    );
    Ok(())
}
