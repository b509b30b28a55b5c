//! Shared helpers of the `agora` CLI tests: a filled event store on the test PostgreSQL,
//! running the real binary and the Python verifier, scratch files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use chrono::Utc;
use eventstore::testing::TestDatabase;
use eventstore::{AppendRequest, EventMetadata, EventStore, LogCheckpoint, NewEvent, StreamWrite};
use serde_json::{json, Value};
use uuid::Uuid;

/// Runs the `agora` binary with `args`, without inheriting the variables it reads.
pub fn agora(args: &[&str]) -> Output {
    agora_with_env(args, &[])
}

/// Runs the `agora` binary with `args` and `env`.
pub fn agora_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_agora"));
    command
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("READ_DATABASE_URL")
        .env_remove("AGORA_JWT_SECRET");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("cannot run the agora binary")
}

/// The repository's Python verifier.
pub fn verifier_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/verify_chain.py")
}

/// Runs `python3 scripts/verify_chain.py <file>`.
pub fn python_verify(file: &Path) -> Output {
    Command::new("python3")
        .arg(verifier_script())
        .arg(file)
        .output()
        .expect("cannot run python3")
}

/// Asserts the process did not panic and returns its exit code.
pub fn exit_code(output: &Output) -> i32 {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("panicked"),
        "the process panicked: {stderr}"
    );
    assert!(!stderr.contains("Traceback"), "python raised: {stderr}");
    output.status.code().expect("killed by a signal")
}

/// The JSON report a verifier printed on stdout.
pub fn report(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "stdout is not a JSON report ({error}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// A directory for one test's files, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("agora-cli-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("cannot create a scratch directory");
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn metadata(causation: Option<&str>) -> EventMetadata {
    EventMetadata {
        actor: "auditor-test".into(),
        correlation_id: Uuid::new_v4().to_string(),
        causation_id: causation.map(str::to_owned),
        command_id: Uuid::new_v4(),
    }
}

/// Events for one stream of a command: (stream id, stream type, [(event type, payload)]).
pub type Write<'a> = (Uuid, &'a str, Vec<(&'a str, Value)>);

/// Appends `events` (type, payload) to each of `streams` in one command.
pub async fn append(
    store: &EventStore,
    streams: &[Write<'_>],
    causation: Option<&str>,
) -> anyhow::Result<()> {
    let ids: Vec<Uuid> = streams.iter().map(|(id, _, _)| *id).collect();
    let loaded = store.load_streams(&ids).await?;
    let writes = streams
        .iter()
        .map(|(id, stream_type, events)| {
            StreamWrite::after(
                &loaded[id],
                *stream_type,
                events
                    .iter()
                    .map(|(event_type, payload)| NewEvent::new(*event_type, 1, payload.clone()))
                    .collect(),
            )
        })
        .collect();
    store
        .append(AppendRequest {
            streams: writes,
            metadata: metadata(causation),
            occurred_at: Utc::now(),
            claims: vec![],
            idempotency: None,
        })
        .await?;
    Ok(())
}

/// Waits until the log reader sees `events` events. It reads only below the oldest running
/// transaction of the whole cluster, so a transaction open elsewhere (another test's
/// database) briefly hides events that are already committed here.
pub async fn wait_until_readable(store: &EventStore, events: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let visible = store.read_log(LogCheckpoint::START, 100_000).await?.len() as u64;
        if visible >= events {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("only {visible} of {events} events became readable within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A log of several interleaved streams, written by single- and multi-stream commands.
pub struct FilledLog {
    pub db: TestDatabase,
    /// The product streams, then the order stream.
    pub products: Vec<Uuid>,
    pub order: Uuid,
    pub streams: u64,
    pub events: u64,
}

/// Fills a fresh database: 4 products (created, restocked several times, some in commands
/// that touch two streams), one order that reserves stock on two products in the same
/// command, payloads with non-ASCII text, control characters and nested objects.
pub async fn filled_log() -> anyhow::Result<FilledLog> {
    let db = TestDatabase::create().await?;
    let store = &db.store;
    let products: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    let order = Uuid::new_v4();
    let mut events = 0;
    for (i, product) in products.iter().enumerate() {
        append(
            store,
            &[(
                *product,
                "product",
                vec![
                    (
                        "ProductCreated",
                        json!({"sku": format!("SKU-{i}"), "name": format!("Thé vert n°{i} \u{1F375}"),
                               "description": "tab\there, newline\nthere, quote \" backslash \\ bell \u{7}",
                               "price": {"amount_cents": 1250 + i as i64, "currency": "EUR"}}),
                    ),
                    ("StockAdded", json!({"quantity": 10})),
                ],
            )],
            None,
        )
        .await?;
        events += 2;
    }
    for round in 0..3 {
        append(
            store,
            &[
                (
                    products[round],
                    "product",
                    vec![("StockAdded", json!({"quantity": round + 1}))],
                ),
                (
                    products[round + 1],
                    "product",
                    vec![
                        ("StockAdded", json!({"quantity": 5})),
                        (
                            "StockRemoved",
                            json!({"quantity": 2, "reason": "casse — broken"}),
                        ),
                    ],
                ),
            ],
            Some("restock-batch"),
        )
        .await?;
        events += 3;
    }
    append(
        store,
        &[
            (
                order,
                "order",
                vec![(
                    "OrderPlaced",
                    json!({"customer_id": "alice", "lines": [
                        {"product_id": products[0], "quantity": 2, "unit_price_cents": 1250},
                        {"product_id": products[2], "quantity": 1, "unit_price_cents": 1252}],
                        "notes": {"ключ": "значение", "日本": ["ok", null, true]}}),
                )],
            ),
            (
                products[0],
                "product",
                vec![("StockReserved", json!({"order_id": order, "quantity": 2}))],
            ),
            (
                products[2],
                "product",
                vec![("StockReserved", json!({"order_id": order, "quantity": 1}))],
            ),
        ],
        Some("cart-42"),
    )
    .await?;
    events += 3;
    append(
        store,
        &[(order, "order", vec![("OrderPaid", json!({}))])],
        None,
    )
    .await?;
    events += 1;
    wait_until_readable(store, events).await?;
    Ok(FilledLog {
        db,
        products,
        order,
        streams: 5,
        events,
    })
}
