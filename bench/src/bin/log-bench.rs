//! `log-bench`: the verifiable log's costs at scale (default 1,000,000 events).
//!
//! Creates a fresh event store, fills it with `--events` events of a shop history
//! (`bench::shop::fill`, whose in-process append rate is printed as the reference), then:
//!
//! 1. sequencing: starts the sequencer (with a signing key) on the unsequenced log and times
//!    it to the last event: events/s, against the fill's append rate (it must keep up);
//! 2. checkpoint: the root of the whole tree from the stored nodes (`EventStore::tree_root`)
//!    and an Ed25519 signature, `--samples` times each: median and p99;
//! 3. proofs: inclusion proofs of random events and consistency proofs from random sizes to
//!    the whole tree, `--samples` each, with the number of stored nodes each one reads;
//! 4. export + full verification, `--rounds` times: `agora audit export --out FILE`, then
//!    `agora audit verify --file FILE --checkpoint C --public-key K` (every chain, every leaf,
//!    the root against the checkpoint), both release binaries timed around the process:
//!    events/s of each and of the two one after the other; then the two at once, `agora
//!    audit export --out - | agora audit verify --file - ...`, timed from the start of the
//!    export to the verdict (budget, both ways: at least 100,000 events/s).
//!
//! `--existing NAME` measures 2 to 4 on a database kept by an earlier run (`--keep`), on the
//! same server, instead of filling and sequencing a new one (the checkpoint is signed with a
//! new key over the root of its stored tree).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bench::shop::{fill, FillConfig};
use bench::support::{
    agora_binary, budget_line, clean_up, fresh_database, group, info_line, init_logging_if_asked,
    load1, load_span, print_header, Goal, Percentiles,
};
use clap::Parser;
use eventstore::checkpoint::LogSigningKey;
use eventstore::merkle::{self, nodes_needed};
use eventstore::sequencer::{run_sequencer, SequencerConfig};
use eventstore::testing::{admin_url, with_database};
use eventstore::{connect_pool, EventStore};
use tokio::sync::watch;

const EXPORT_VERIFY_BUDGET: f64 = 100_000.0;

#[derive(Debug, Parser)]
#[command(
    name = "log-bench",
    about = "Verifiable log: sequencing, checkpoints, proofs, export + verification"
)]
struct Args {
    /// Events to fill the store with (at least).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Products in the filled catalog.
    #[arg(long, default_value_t = 1_000)]
    products: usize,
    /// Samples of each checkpoint and proof measurement.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// The `agora` binary (default: next to this one).
    #[arg(long)]
    agora: Option<PathBuf>,
    /// Keep the scratch database and files.
    #[arg(long)]
    keep: bool,
    /// Rounds of export + verification (each: one after the other, then piped).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// A database kept by an earlier run (filled and sequenced): skip the fill and the
    /// sequencing, and keep it.
    #[arg(long, value_name = "NAME")]
    existing: Option<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let agora = agora_binary(args.agora.as_deref())?;
    init_logging_if_asked();
    print_header("log-bench").await?;
    // A fresh database (dropped at the end unless --keep), or the one --existing names.
    let (fresh, name, url, store) = match &args.existing {
        Some(name) => {
            let url = with_database(&admin_url(), name);
            let store = EventStore::new(connect_pool(&url, 8)?);
            (None, name.clone(), url, store)
        }
        None => {
            let db = fresh_database(args.keep).await?;
            let (name, url, store) = (db.name.clone(), db.url.clone(), db.store.clone());
            (Some(db), name, url, store)
        }
    };
    let dir = std::env::temp_dir().join(format!("{name}-files"));
    std::fs::create_dir_all(&dir)?;
    let outcome = run(&args, &agora, &url, &store, &dir).await;
    drop(store);
    drop(fresh);
    clean_up(args.keep || args.existing.is_some(), name, &dir).await;
    outcome
}

/// A small deterministic generator for sampled positions.
fn sample(state: &mut u64, below: u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state % below.max(1)
}

async fn run(
    args: &Args,
    agora: &PathBuf,
    url: &str,
    store: &EventStore,
    dir: &std::path::Path,
) -> Result<()> {
    let key = LogSigningKey::generate();
    let total = match &args.existing {
        Some(_) => {
            let total = store.tree_size().await?;
            println!(
                "\n-- the existing log: {} sequenced events",
                group(total as f64)
            );
            total
        }
        None => fill_and_sequence(args, url, store, &key).await?,
    };

    // 2. Checkpoint: the root from the stored nodes, and a signature.
    let load = load1();
    let mut roots = Vec::with_capacity(args.samples);
    let mut root = store.tree_root(total).await?;
    for _ in 0..args.samples {
        let started = Instant::now();
        root = store.tree_root(total).await?;
        roots.push(started.elapsed());
    }
    let mut signs = Vec::with_capacity(args.samples);
    let mut checkpoint = key.sign(total, root, chrono::Utc::now());
    for _ in 0..args.samples {
        let started = Instant::now();
        checkpoint = key.sign(total, root, chrono::Utc::now());
        signs.push(started.elapsed());
    }
    let nodes = nodes_needed(|get| merkle::root(total, get)).len();
    info_line(
        &format!(
            "checkpoint root at {} events ({nodes} stored nodes, one query)",
            group(total as f64)
        ),
        &percentiles(&mut roots),
        &load_span(&load),
    );
    info_line(
        "checkpoint Ed25519 signature",
        &percentiles(&mut signs),
        &load_span(&load),
    );

    // 3. Proofs.
    let load = load1();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let (mut inclusion, mut consistency) = (Vec::new(), Vec::new());
    let (mut inclusion_nodes, mut consistency_nodes) = (0, 0);
    for _ in 0..args.samples {
        let sequence = 1 + sample(&mut state, total);
        let started = Instant::now();
        let proof = store.inclusion_proof(sequence, total).await?;
        inclusion.push(started.elapsed());
        if !merkle::verify_inclusion(
            sequence - 1,
            total,
            &proof.leaf_hash,
            &proof.audit_path,
            &root,
        ) {
            bail!("the inclusion proof of {sequence} does not verify");
        }
        inclusion_nodes = inclusion_nodes
            .max(nodes_needed(|get| merkle::inclusion_proof(sequence - 1, total, get)).len());
        let from = 1 + sample(&mut state, total);
        let from_root = store.tree_root(from).await?;
        let started = Instant::now();
        let proof = store.consistency_proof(from, total).await?;
        consistency.push(started.elapsed());
        if !merkle::verify_consistency(from, total, &from_root, &root, &proof) {
            bail!("the consistency proof from {from} does not verify");
        }
        consistency_nodes = consistency_nodes
            .max(nodes_needed(|get| merkle::consistency_proof(from, total, get)).len());
    }
    info_line(
        &format!(
            "inclusion proof at {} events (at most {inclusion_nodes} nodes)",
            group(total as f64)
        ),
        &percentiles(&mut inclusion),
        &load_span(&load),
    );
    info_line(
        &format!(
            "consistency proof to {} events (at most {consistency_nodes} nodes)",
            group(total as f64)
        ),
        &percentiles(&mut consistency),
        &load_span(&load),
    );

    // 4. Export + full verification with the release CLI, one after the other and piped.
    let kept = dir.join("checkpoint.json");
    std::fs::write(&kept, serde_json::to_string(&checkpoint)?)?;
    let verify_args = |file: &Path| -> Vec<std::ffi::OsString> {
        let mut verify: Vec<std::ffi::OsString> = vec![
            "audit".into(),
            "verify".into(),
            "--file".into(),
            file.into(),
        ];
        verify.extend(["--checkpoint".into(), kept.clone().into_os_string()]);
        verify.extend(["--public-key".into(), key.public_key().to_base64().into()]);
        verify
    };
    for round in 1..=args.rounds {
        println!(
            "\n-- export + full verification, round {round} of {}",
            args.rounds
        );
        let export = dir.join("export.ndjson");
        let load = load1();
        let started = Instant::now();
        let exported = Command::new(agora)
            .args(["audit", "export", "--database-url", url, "--out"])
            .arg(&export)
            .output()?;
        let export_seconds = started.elapsed().as_secs_f64();
        if !exported.status.success() {
            bail!(
                "export failed: {}",
                String::from_utf8_lossy(&exported.stderr)
            );
        }
        let started = Instant::now();
        let verified = Command::new(agora).args(verify_args(&export)).output()?;
        let verify_seconds = started.elapsed().as_secs_f64();
        check_verdict(&verified, total)?;
        std::fs::remove_file(&export)?;
        println!(
            "export {export_seconds:.1} s, verify (chains + tree + checkpoint) {verify_seconds:.1} s"
        );
        info_line(
            "agora audit export (events/s)",
            &group(total as f64 / export_seconds),
            &load_span(&load),
        );
        info_line(
            "agora audit verify --file --checkpoint (events/s)",
            &group(total as f64 / verify_seconds),
            &load_span(&load),
        );
        budget_line(
            "export + full verification, one after the other",
            total as f64 / (export_seconds + verify_seconds),
            "events/s",
            Goal::AtLeast,
            EXPORT_VERIFY_BUDGET,
            &load_span(&load),
        );

        let load = load1();
        let started = Instant::now();
        let mut exporting = Command::new(agora)
            .args(["audit", "export", "--database-url", url, "--out", "-"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let piped = exporting
            .stdout
            .take()
            .context("the export's standard output")?;
        let verified = Command::new(agora)
            .args(verify_args(Path::new("-")))
            .stdin(piped)
            .output()?;
        let exported = exporting.wait_with_output()?;
        let seconds = started.elapsed().as_secs_f64();
        if !exported.status.success() {
            bail!(
                "piped export failed: {}",
                String::from_utf8_lossy(&exported.stderr)
            );
        }
        check_verdict(&verified, total)?;
        println!("export | verify {seconds:.1} s");
        budget_line(
            "export + full verification, piped (export --out - | verify --file -)",
            total as f64 / seconds,
            "events/s",
            Goal::AtLeast,
            EXPORT_VERIFY_BUDGET,
            &load_span(&load),
        );
    }
    Ok(())
}

/// Fails unless `agora audit verify` found the whole log of `total` events intact.
fn check_verdict(verified: &Output, total: u64) -> Result<()> {
    let verdict: serde_json::Value = serde_json::from_slice(&verified.stdout)
        .with_context(|| String::from_utf8_lossy(&verified.stderr).into_owned())?;
    if verdict["ok"] != true || verdict["tree_size"] != total || verdict["events_checked"] != total
    {
        bail!("the export does not verify: {verdict}");
    }
    Ok(())
}

/// Fills the store with at least `--events` events and times the sequencer over them: the
/// number of events.
async fn fill_and_sequence(
    args: &Args,
    url: &str,
    store: &EventStore,
    key: &LogSigningKey,
) -> Result<u64> {
    println!(
        "\n-- fill: at least {} events, {} products (load {})",
        group(args.events as f64),
        args.products,
        load1()
    );
    let report = fill(
        store,
        &FillConfig {
            events: args.events,
            products: args.products,
            ..FillConfig::default()
        },
    )
    .await?;
    let total = report.events;
    let append_rate = report.events_per_second();
    println!(
        "filled {} events in {:.1} s: {} events/s (the append rate to keep up with)",
        group(total as f64),
        report.seconds,
        group(append_rate)
    );

    // 1. Sequencing the whole backlog.
    let mut config = SequencerConfig::new(url, Some(key.clone()));
    config.checkpoint_interval = Duration::from_secs(3600);
    let (stop, stopped) = watch::channel(false);
    let load = load1();
    let started = Instant::now();
    let task = tokio::spawn(run_sequencer(config, store.clone(), stopped));
    loop {
        if store.tree_size().await? >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let rate = total as f64 / seconds;
    println!(
        "sequenced {} events in {seconds:.1} s (one transaction per 5,000)",
        group(total as f64)
    );
    budget_line(
        "sequencing (events/s) vs the fill's append rate",
        rate,
        "events/s",
        Goal::AtLeast,
        append_rate.round(),
        &load_span(&load),
    );
    let _ = stop.send(true);
    let _ = task.await;
    Ok(total)
}

fn percentiles(samples: &mut [Duration]) -> String {
    Percentiles::of(samples).map_or_else(|| "no samples".to_owned(), |p| p.line())
}
