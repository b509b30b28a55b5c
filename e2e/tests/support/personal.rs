//! Personal data in the tests: a customer's plaintext, and the places it must never be
//! found (a `pg_dump`, Kafka topics read by a real consumer, logs, API answers).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;
use serde_json::{json, Value};

pub const EMAIL: &str = "ana.apagada.e2e@example.org";
pub const NAME: &str = "Ana Apagada Quaresma";
pub const STREET: &str = "Travessa do Segredo 77";
pub const CITY: &str = "Vila Nova de Segredo";
pub const GIVEN_STREET: &str = "Beco Escondido 5";

/// Every piece of plaintext the tests give.
pub const PLAINTEXT: [&str; 5] = [EMAIL, NAME, STREET, CITY, GIVEN_STREET];

/// The profile `PUT /v1/me` gets.
pub fn profile() -> Value {
    json!({"email": EMAIL, "name": NAME, "address": {"line1": STREET, "line2": null,
           "postal_code": "4321-987", "city": CITY, "country": "PT"}})
}

/// Another address, given with an order.
pub fn given_address() -> Value {
    json!({"line1": GIVEN_STREET, "postal_code": "4321-988", "city": CITY, "country": "PT"})
}

/// Fails naming `where_` and the plaintext found in `bytes`.
pub fn assert_no_plaintext(where_: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for secret in PLAINTEXT {
        assert!(
            !text.contains(secret),
            "{where_} holds the plaintext {secret:?}"
        );
    }
}

/// The newest `pg_dump` of this machine's PostgreSQL (`scripts/postgres.sh` installs it).
fn pg_dump_binary() -> PathBuf {
    if let Ok(found) = which("pg_dump") {
        return found;
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|version| version.path().join("bin/pg_dump"))
                .filter(|path| path.exists())
                .collect()
        })
        .unwrap_or_default();
    candidates.sort();
    candidates
        .pop()
        .expect("pg_dump is installed with PostgreSQL (scripts/postgres.sh)")
}

fn which(program: &str) -> Result<PathBuf, ()> {
    let output = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map_err(drop)?;
    let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if output.status.success() && !path.is_empty() {
        Ok(PathBuf::from(path))
    } else {
        Err(())
    }
}

/// A full `pg_dump` (schema and data) of the database at `url`.
pub fn pg_dump(url: &str) -> Vec<u8> {
    let output = Command::new(pg_dump_binary())
        .args(["--no-owner", "--dbname", url])
        .output()
        .expect("pg_dump runs");
    assert!(
        output.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stdout.len() > 1000, "a dump with content");
    output.stdout
}

/// Every key, value and header of every message in `topics`, read from the beginning by a
/// consumer of its own, once at least `expected` messages arrived.
pub fn kafka_bytes(brokers: &str, topics: &[String], expected: usize) -> Vec<u8> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("broker.address.family", "v4")
        .set("group.id", format!("pii-{}", uuid::Uuid::new_v4().simple()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("a Kafka consumer");
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names).expect("subscribed");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut bytes = Vec::new();
    let mut messages = 0;
    while messages < expected {
        assert!(
            Instant::now() < deadline,
            "only {messages} of {expected} messages in {topics:?}"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                messages += 1;
                bytes.extend(message.key().unwrap_or_default());
                bytes.extend(message.payload().unwrap_or_default());
                if let Some(headers) = message.headers() {
                    for header in headers.iter() {
                        bytes.extend(header.key.as_bytes());
                        bytes.extend(header.value.unwrap_or_default());
                    }
                }
            }
            Some(Err(error)) => panic!("reading {topics:?}: {error}"),
            None => {}
        }
    }
    bytes
}
