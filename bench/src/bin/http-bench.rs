//! `http-bench`: the command API's and the query API's own HTTP rates and latencies.
//!
//! Budgets (DESIGN.md): command API at least 5,000 single-event commands/s, p99 under 20 ms
//! at 1,000/s; query API entity by id at least 20,000 requests/s, p99 under 10 ms.
//!
//! Starts the command API and the query API in this process on a fresh database (wired as
//! the e2e tests' `Stack`, 2 HTTP workers and 16 connections each), creates `--products`
//! products straight through the store, lets a projector put them in the read model and
//! stops it (so nothing else runs while the APIs are measured). Then, per round (each
//! command load on `--products` products of its own, created for it, so that every one
//! starts from streams of the same length: the command API loads the whole stream for
//! every command, and restocks make it longer):
//!
//! 1. query API: `--gets` `GET /v1/products/{id}` (round-robin over the products) from
//!    `--concurrency` clients in a closed loop (each sends its next request when the
//!    previous answered): requests/s and latency;
//! 2. command API: `--commands` restocks (`POST /v1/products/{id}/restock`, one
//!    `StockAdded` each), round-robin, closed loop with `--concurrency` clients: commands/s
//!    and latency;
//! 3. command API at a steady `--paced-rate` (1,000/s) for `--paced-seconds`, open loop,
//!    latency measured from when each command was due;
//! 4. with `--wrk PATH`: the same GET and restock loads from `wrk` (`-t2 -c<concurrency>
//!    -d<wrk-seconds>`, Lua scripts that set the Authorization header and spread the
//!    requests over the products), as a cross-check of the Rust load generator's own cost.
//!
//! The load generator shares the 2 cores with the services and PostgreSQL.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bench::shop::create_products;
use bench::stack::{Stack, StackOptions};
use bench::support::{
    budget_line, closed_loop, drop_databases, group, http_client, init_logging_if_asked, load1,
    load_average, load_span, median, ms, open_loop, print_header, report, Goal,
};
use clap::Parser;
use serde_json::json;
use std::time::Instant;
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(
    name = "http-bench",
    about = "Command API and query API HTTP rates and latencies"
)]
struct Args {
    /// Products the requests are spread over.
    #[arg(long, default_value_t = 1000)]
    products: usize,
    /// Concurrent clients of the closed-loop runs.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Query API GETs per closed-loop run.
    #[arg(long, default_value_t = 100_000)]
    gets: u64,
    /// Restock commands per closed-loop run.
    #[arg(long, default_value_t = 20_000)]
    commands: u64,
    /// Commands/s of the paced run.
    #[arg(long, default_value_t = 1000.0)]
    paced_rate: f64,
    /// Seconds of the paced run.
    #[arg(long, default_value_t = 10.0)]
    paced_seconds: f64,
    /// Rounds (each runs every load once, in the same order).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// `wrk` to cross-check with (e.g. /usr/bin/wrk); not run when absent.
    #[arg(long)]
    wrk: Option<PathBuf>,
    /// Seconds of each wrk run.
    #[arg(long, default_value_t = 8)]
    wrk_seconds: u64,
    /// Keep the scratch database.
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.concurrency == 0 || args.products == 0 || args.rounds == 0 {
        bail!("--concurrency, --products and --rounds must be positive");
    }
    init_logging_if_asked();
    print_header("http-bench").await?;
    let mut stack = Stack::start(&StackOptions::default()).await?;
    let name = stack.db.name.clone();
    let outcome = run(&args, &mut stack).await;
    if !args.keep {
        drop(stack);
        if let Err(error) = drop_databases(&[name]).await {
            eprintln!("warning: could not drop the scratch database: {error:#}");
        }
    }
    println!("== load average at end: {}", load_average());
    outcome
}

/// One run's figures: rate, p99 (ms), and the load around it.
#[derive(Debug, Clone)]
struct Figure {
    rate: f64,
    p99: f64,
    load: String,
}

/// What the summary needs from each round.
#[derive(Default)]
struct Figures {
    get: Vec<Figure>,
    command: Vec<Figure>,
    paced: Vec<Figure>,
    wrk_get: Vec<Figure>,
    wrk_command: Vec<Figure>,
}

impl Figures {
    fn rate(figures: &[Figure]) -> f64 {
        median(&figures.iter().map(|f| f.rate).collect::<Vec<_>>())
    }

    fn p99(figures: &[Figure]) -> f64 {
        median(&figures.iter().map(|f| f.p99).collect::<Vec<_>>())
    }

    fn loads(figures: &[Figure]) -> String {
        figures
            .iter()
            .map(|f| f.load.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

async fn run(args: &Args, stack: &mut Stack) -> Result<()> {
    let products = create_products(&stack.db.store, args.products, "GET").await?;
    stack
        .products_visible(products.len(), Duration::from_secs(60))
        .await?;
    stack.stop_projector().await?;
    println!(
        "{} products created and projected; projector stopped. Command API {}, query API {}, \
         2 HTTP workers and 16 connections each",
        products.len(),
        stack.command,
        stack.query
    );
    let products = Arc::new(products);
    let client = http_client(args.concurrency)?;

    let mut figures = Figures::default();
    for round in 1..=args.rounds {
        println!();
        println!("-- round {round}/{}", args.rounds);
        // Every command run gets products of its own, so that each starts from streams of
        // the same length (the command API loads the whole stream for every command).
        let mut fresh = Vec::new();
        for run in ["closed", "paced", "wrk"] {
            fresh.push(Arc::new(
                create_products(&stack.db.store, args.products, &format!("R{round}-{run}")).await?,
            ));
        }
        let scripts = match &args.wrk {
            Some(_) => Some(WrkScripts::write(&products, &fresh[2], &stack.admin)?),
            None => None,
        };

        let load_before = load1();
        let run = {
            let client = client.clone();
            let products = products.clone();
            let url = stack.query.clone();
            let token = stack.admin.clone();
            closed_loop(args.concurrency, args.gets, move |i| {
                let client = client.clone();
                let id = products[i as usize % products.len()];
                let url = format!("{url}/v1/products/{id}");
                let token = token.clone();
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
        let p = report(
            &format!(
                "query API GET /v1/products/{{id}}, closed loop, {} clients",
                args.concurrency
            ),
            &run,
            &load_before,
        );
        figures.get.push(Figure {
            rate: run.rate(),
            p99: p.map(|p| ms(p.p99)).unwrap_or(f64::NAN),
            load: load_span(&load_before),
        });

        let load_before = load1();
        let run = {
            let client = client.clone();
            let products = fresh[0].clone();
            let url = stack.command.clone();
            let token = stack.admin.clone();
            closed_loop(args.concurrency, args.commands, move |i| {
                let client = client.clone();
                let id = products[i as usize % products.len()];
                let url = format!("{url}/v1/products/{id}/restock");
                let token = token.clone();
                async move { restock(&client, &url, &token).await }
            })
            .await
        };
        let p = report(
            &format!(
                "command API POST /v1/products/{{id}}/restock, closed loop, {} clients",
                args.concurrency
            ),
            &run,
            &load_before,
        );
        figures.command.push(Figure {
            rate: run.rate(),
            p99: p.map(|p| ms(p.p99)).unwrap_or(f64::NAN),
            load: load_span(&load_before),
        });

        let load_before = load1();
        let run = {
            let client = client.clone();
            let products = fresh[1].clone();
            let url = stack.command.clone();
            let token = stack.admin.clone();
            open_loop(args.paced_rate, args.paced_seconds, 1024, move |i, due| {
                let client = client.clone();
                let id = products[i as usize % products.len()];
                let url = format!("{url}/v1/products/{id}/restock");
                let token = token.clone();
                async move {
                    restock(&client, &url, &token).await?;
                    Ok(Some(due.elapsed()))
                }
            })
            .await
        };
        let p = report(
            &format!(
                "command API restock paced at {}/s for {} s, open loop (latency from when due)",
                args.paced_rate, args.paced_seconds
            ),
            &run,
            &load_before,
        );
        figures.paced.push(Figure {
            rate: run.ok as f64 / args.paced_seconds,
            p99: p.map(|p| ms(p.p99)).unwrap_or(f64::NAN),
            load: load_span(&load_before),
        });

        if let (Some(wrk), Some(scripts)) = (&args.wrk, &scripts) {
            let load_before = load1();
            let result = run_wrk(wrk, args, &scripts.get, &stack.query)?;
            result.print("wrk: query API GET /v1/products/{id}", &load_before);
            figures.wrk_get.push(Figure {
                rate: result.rate,
                p99: result.p99_ms.unwrap_or(f64::NAN),
                load: load_span(&load_before),
            });
            let load_before = load1();
            let result = run_wrk(wrk, args, &scripts.restock, &stack.command)?;
            result.print("wrk: command API restock", &load_before);
            figures.wrk_command.push(Figure {
                rate: result.rate,
                p99: result.p99_ms.unwrap_or(f64::NAN),
                load: load_span(&load_before),
            });
        }
    }

    // wrk stops sending at its deadline with requests still in the server; let them
    // finish before the database is dropped.
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!();
    println!(
        "-- summary (medians over {} round(s); load average now {})",
        args.rounds,
        load_average()
    );
    budget_line(
        &format!(
            "command API restocks/s, closed loop, {} clients (Rust client)",
            args.concurrency
        ),
        Figures::rate(&figures.command),
        "cmds/s",
        Goal::AtLeast,
        5000.0,
        &Figures::loads(&figures.command),
    );
    if !figures.wrk_command.is_empty() {
        budget_line(
            &format!("command API restocks/s, wrk -t2 -c{}", args.concurrency),
            Figures::rate(&figures.wrk_command),
            "cmds/s",
            Goal::AtLeast,
            5000.0,
            &Figures::loads(&figures.wrk_command),
        );
    }
    budget_line(
        &format!(
            "command API p99 paced at {}/s ({} cmds/s achieved)",
            args.paced_rate,
            group(Figures::rate(&figures.paced))
        ),
        Figures::p99(&figures.paced),
        "ms",
        Goal::Below,
        20.0,
        &Figures::loads(&figures.paced),
    );
    budget_line(
        &format!(
            "query API GET by id req/s, closed loop, {} clients (Rust client)",
            args.concurrency
        ),
        Figures::rate(&figures.get),
        "req/s",
        Goal::AtLeast,
        20_000.0,
        &Figures::loads(&figures.get),
    );
    budget_line(
        &format!(
            "query API GET by id p99, closed loop, {} clients (Rust client)",
            args.concurrency
        ),
        Figures::p99(&figures.get),
        "ms",
        Goal::Below,
        10.0,
        &Figures::loads(&figures.get),
    );
    if !figures.wrk_get.is_empty() {
        budget_line(
            &format!("query API GET by id req/s, wrk -t2 -c{}", args.concurrency),
            Figures::rate(&figures.wrk_get),
            "req/s",
            Goal::AtLeast,
            20_000.0,
            &Figures::loads(&figures.wrk_get),
        );
        budget_line(
            &format!("query API GET by id p99, wrk -t2 -c{}", args.concurrency),
            Figures::p99(&figures.wrk_get),
            "ms",
            Goal::Below,
            10.0,
            &Figures::loads(&figures.wrk_get),
        );
    }
    Ok(())
}

async fn restock(client: &reqwest::Client, url: &str, token: &str) -> Result<()> {
    let response = client
        .post(url)
        .bearer_auth(token)
        .json(&json!({"quantity": 1}))
        .send()
        .await?;
    let status = response.status();
    let body = response.bytes().await?;
    if !status.is_success() {
        bail!("restock: {status} {}", String::from_utf8_lossy(&body));
    }
    Ok(())
}

/// The Lua scripts wrk runs, in a temporary directory removed on drop.
struct WrkScripts {
    dir: PathBuf,
    get: PathBuf,
    restock: PathBuf,
}

impl WrkScripts {
    /// GETs spread over `read`, restocks over `write`.
    fn write(read: &[Uuid], write: &[Uuid], token: &str) -> Result<WrkScripts> {
        let dir = std::env::temp_dir().join(format!("http-bench-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let lua_ids = |ids: &[Uuid]| {
            ids.iter()
                .map(|id| format!("\"{id}\""))
                .collect::<Vec<_>>()
                .join(",")
        };
        let common = |ids: &[Uuid]| {
            format!(
                "local ids = {{{}}}\nn = 0\nlocal threads = 0\n\
                 setup = function(thread)\n  threads = threads + 1\n  \
                 thread:set(\"n\", threads * 7919)\nend\n\
                 wrk.headers[\"Authorization\"] = \"Bearer {token}\"\n",
                lua_ids(ids)
            )
        };
        let get = dir.join("get.lua");
        std::fs::write(
            &get,
            format!(
                "{}request = function()\n  n = n + 1\n  \
                 return wrk.format(\"GET\", \"/v1/products/\" .. ids[(n % #ids) + 1])\nend\n",
                common(read)
            ),
        )?;
        let restock = dir.join("restock.lua");
        std::fs::write(
            &restock,
            format!(
                "{}wrk.method = \"POST\"\n\
                 wrk.headers[\"Content-Type\"] = \"application/json\"\n\
                 wrk.body = '{{\"quantity\": 1}}'\n\
                 request = function()\n  n = n + 1\n  \
                 return wrk.format(nil, \"/v1/products/\" .. ids[(n % #ids) + 1] .. \"/restock\")\nend\n",
                common(write)
            ),
        )?;
        Ok(WrkScripts { dir, get, restock })
    }
}

impl Drop for WrkScripts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What wrk reported.
struct WrkResult {
    rate: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    non_2xx: u64,
    errors: String,
}

impl WrkResult {
    fn print(&self, what: &str, load_before: &str) {
        println!(
            "{what}: {} /s, p50 {} ms, p99 {} ms, non-2xx {}{} (load {load_before} before, {} after)",
            group(self.rate),
            self.p50_ms.map_or("?".into(), |v| format!("{v:.1}")),
            self.p99_ms.map_or("?".into(), |v| format!("{v:.1}")),
            self.non_2xx,
            if self.errors.is_empty() {
                String::new()
            } else {
                format!(", {}", self.errors)
            },
            load1()
        );
    }
}

fn run_wrk(wrk: &PathBuf, args: &Args, script: &PathBuf, base: &str) -> Result<WrkResult> {
    let started = Instant::now();
    let output = Command::new(wrk)
        .arg("-t2")
        .arg(format!("-c{}", args.concurrency))
        .arg(format!("-d{}s", args.wrk_seconds))
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(base)
        .output()
        .with_context(|| format!("running {}", wrk.display()))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "wrk failed after {:?}: {}{}",
            started.elapsed(),
            text,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let rate = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .context("no Requests/sec in wrk's output")?;
    let percentile = |label: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(label))
            .and_then(|v| wrk_duration_ms(v.trim()))
    };
    let non_2xx = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let errors = text
        .lines()
        .find(|l| l.trim().starts_with("Socket errors:"))
        .map(|l| l.trim().to_owned())
        .unwrap_or_default();
    Ok(WrkResult {
        rate,
        p50_ms: percentile("50%"),
        p99_ms: percentile("99%"),
        non_2xx,
        errors,
    })
}

/// wrk's `1.23ms`, `456.00us`, `1.02s` in milliseconds.
fn wrk_duration_ms(text: &str) -> Option<f64> {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        return None;
    };
    number.trim().parse::<f64>().ok().map(|v| v * factor)
}
