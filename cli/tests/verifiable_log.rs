//! The verifiable log against an attacker with superuser access to PostgreSQL.
//!
//! An auditor kept a checkpoint (`agora audit checkpoint`) of a sequenced, signed log; then
//! the attacker rewrites the database. Every rewrite must be caught, naming what differs, by
//! all four verifiers: `agora audit verify --checkpoint` on the live store and on an export,
//! the query API's `GET /v1/audit/verify` with the checkpoint, and the independent Python
//! verifier on the export. An honest log that grew after the checkpoint verifies everywhere,
//! with an RFC 9162 consistency proof.
//!
//! The attacker is thorough where it matters: after changing events they renumber the
//! sequence, rebuild the whole Merkle tree from the rows and delete the stored checkpoints,
//! so nothing in the database betrays them; only the kept checkpoint (and its signature,
//! made with a key the database never held) does.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use eventstore::checkpoint::{Checkpoint, LogSigningKey};
use eventstore::envelope::leaf_bytes;
use eventstore::hashchain::{chain_hash, HashedFields};
use eventstore::merkle::{self, leaf_hash, CompactRange};
use eventstore::row::{decode_event, EVENT_COLUMNS, SEQUENCED_EVENTS};
use eventstore::sequencer::{run_sequencer, SequencerConfig};
use eventstore::testing::eventually_some;
use eventstore::{EventStore, Hash};
use platform::{JwtKeys, Role};
use serde_json::{json, Value};
use support::{agora, exit_code, filled_log, report, verifier_script, FilledLog, Scratch};
use tokio::sync::watch;
use uuid::Uuid;

const SECRET: &str = "verifiable-log-test-secret-0123456789abcdef";

/// A filled, sequenced and signed log, a query API on it, and an auditor's kept checkpoint.
struct Audited {
    log: FilledLog,
    key: LogSigningKey,
    scratch: Scratch,
    kept: PathBuf,
    checkpoint: Checkpoint,
    query_api: String,
    auditor: String,
    http: reqwest::Client,
    _stop_sequencer: watch::Sender<bool>,
}

impl Audited {
    async fn new() -> Audited {
        let log = filled_log().await.expect("a filled log");
        let key = LogSigningKey::generate();
        let mut config = SequencerConfig::new(&log.db.url, Some(key.clone()));
        config.checkpoint_interval = Duration::from_millis(50);
        config.idle_wait = Duration::from_millis(50);
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(run_sequencer(config, log.db.store.clone(), stopped));
        let store = log.db.store.clone();
        let events = log.events;
        eventually_some(
            "a checkpoint of the whole log",
            Duration::from_secs(30),
            || {
                let store = store.clone();
                async move {
                    let latest = store.latest_checkpoint().await.ok()??;
                    (latest.tree_size == events).then_some(())
                }
            },
        )
        .await;

        let scratch = Scratch::new();
        let kept = scratch.path("kept.json");
        let output = agora(&[
            "audit",
            "checkpoint",
            "--database-url",
            &log.db.url,
            "--out",
            kept.to_str().expect("utf-8 path"),
        ]);
        assert_eq!(exit_code(&output), 0, "{output:?}");
        let checkpoint: Checkpoint =
            serde_json::from_slice(&std::fs::read(&kept).expect("the kept checkpoint"))
                .expect("a checkpoint document");
        assert_eq!(checkpoint.tree_size, log.events);
        assert_eq!(checkpoint.verify(&key.public_key()), Ok(()));

        let app = query_api::startup::Application::build(query_api::config::Settings {
            read_database_url: None,
            database_url: Some(log.db.url.clone()),
            addr: "127.0.0.1:0".into(),
            auth: platform::auth::AuthSettings::hs256(SECRET),
            consistency_wait_ms: 1000,
            consistency_max_waiters: 256,
            pool_size: 4,
            workers: 1,
            tls: Default::default(),
            max_live_subscribers: 16,
            sse_heartbeat_secs: 15,
            pii: Default::default(),
        })
        .await
        .expect("the query API starts");
        let query_api = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        let auditor = JwtKeys::hs256(SECRET.as_bytes())
            .mint("auditor", &[Role::Auditor], 3600)
            .expect("a token");
        Audited {
            log,
            key,
            scratch,
            kept,
            checkpoint,
            query_api,
            auditor,
            http: reqwest::Client::new(),
            _stop_sequencer: stop,
        }
    }

    fn public_key(&self) -> String {
        self.key.public_key().to_base64()
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.query_api))
            .bearer_auth(&self.auditor)
            .query(query)
            .send()
            .await
            .expect("the query API answers");
        assert_eq!(response.status(), 200, "{path}");
        response.json().await.expect("JSON")
    }

    /// The verdicts of the four verifiers against `checkpoint` (a file): (name, exit code or
    /// HTTP "ok", report).
    async fn verdicts(&self, checkpoint: &PathBuf) -> Vec<(&'static str, bool, Value)> {
        let url = &self.log.db.url;
        let key = self.public_key();
        let kept = checkpoint.to_str().expect("utf-8 path");
        let mut verdicts = Vec::new();

        let live = agora(&[
            "audit",
            "verify",
            "--database-url",
            url,
            "--checkpoint",
            kept,
            "--public-key",
            &key,
        ]);
        let code = exit_code(&live);
        assert!(code == 0 || code == 1, "{live:?}");
        verdicts.push(("agora audit verify (live)", code == 0, report(&live)));

        let export = self
            .scratch
            .path(&format!("export-{}.ndjson", Uuid::new_v4()));
        let exported = agora(&[
            "audit",
            "export",
            "--database-url",
            url,
            "--out",
            export.to_str().expect("utf-8 path"),
        ]);
        assert_eq!(exit_code(&exported), 0, "{exported:?}");
        let file = agora(&[
            "audit",
            "verify",
            "--file",
            export.to_str().expect("utf-8 path"),
            "--checkpoint",
            kept,
            "--public-key",
            &key,
        ]);
        let code = exit_code(&file);
        assert!(code == 0 || code == 1, "{file:?}");
        verdicts.push(("agora audit verify --file", code == 0, report(&file)));

        let python = Command::new("python3")
            .arg(verifier_script())
            .arg(&export)
            .args(["--checkpoint", kept, "--public-key", &key])
            .output()
            .expect("python3 runs");
        let code = exit_code(&python);
        assert!(code == 0 || code == 1, "{python:?}");
        verdicts.push(("verify_chain.py", code == 0, report(&python)));

        let held: Checkpoint =
            serde_json::from_slice(&std::fs::read(checkpoint).expect("checkpoint")).expect("json");
        let http = self
            .get(
                "/v1/audit/verify",
                &[
                    ("tree_size", held.tree_size.to_string()),
                    ("root_hash", held.root_hash.clone()),
                    ("timestamp", held.timestamp.clone()),
                    ("key_id", held.key_id.clone()),
                    ("signature", held.signature.clone()),
                ],
            )
            .await;
        let ok = http["ok"] == true;
        verdicts.push(("GET /v1/audit/verify", ok, http));
        verdicts
    }

    /// Asserts every verifier rejects the log against the kept checkpoint, each naming the
    /// difference with one of `reasons` (substrings).
    async fn assert_detected(&self, reasons: &[&str]) {
        for (verifier, ok, report) in self.verdicts(&self.kept.clone()).await {
            assert!(!ok, "{verifier} accepted the tampered log: {report}");
            assert_eq!(report["ok"], false, "{verifier}: {report}");
            let failures = report["failures"].as_array().expect("failures");
            let named = failures.iter().any(|failure| {
                let reason = failure["reason"].as_str().unwrap_or_default();
                reasons.iter().any(|wanted| reason.contains(wanted))
            });
            assert!(named, "{verifier} does not name {reasons:?}: {report}");
        }
    }

    /// A superuser session on the test database.
    /// A superuser session with triggers off: the append-only guard of `events` does not
    /// stop this attacker.
    async fn superuser(&self) -> tokio_postgres::Client {
        eventstore::testing::attacker_session(&self.log.db.url)
            .await
            .expect("the attacker connects")
    }
}

/// The attacker recomputes one stream's chain from the stored rows (after changing them).
async fn recompute_chain(client: &tokio_postgres::Client, stream_id: Uuid) {
    let rows = client
        .query(
            &format!("SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 ORDER BY version"),
            &[&stream_id],
        )
        .await
        .expect("read the stream");
    let mut prev = Hash::GENESIS;
    for row in rows {
        let event = decode_event(&row).expect("an event");
        let hash = chain_hash(&prev, &HashedFields::from(&event)).expect("hash");
        client
            .execute(
                "UPDATE events SET prev_hash = $2, hash = $3 WHERE position = $1",
                &[&event.position, &prev.0.as_slice(), &hash.0.as_slice()],
            )
            .await
            .expect("rewrite the chain");
        prev = hash;
    }
}

/// The attacker renumbers the sequence densely in its current order, rebuilds the whole
/// Merkle tree from the rows as they now are, and deletes every stored checkpoint.
async fn rebuild_tree(client: &tokio_postgres::Client) {
    client
        .batch_execute(
            "DELETE FROM event_sequence
                 WHERE event_position NOT IN (SELECT position FROM events);
             UPDATE event_sequence SET sequence = sequence + 1000000000;
             UPDATE event_sequence SET sequence = r.n FROM (
                 SELECT event_position, row_number() OVER (ORDER BY sequence) AS n
                 FROM event_sequence) r
             WHERE event_sequence.event_position = r.event_position;
             DELETE FROM merkle_nodes; DELETE FROM log_checkpoints;",
        )
        .await
        .expect("renumber");
    let rows = client
        .query(
            &format!("SELECT {EVENT_COLUMNS} FROM {SEQUENCED_EVENTS} ORDER BY sequence"),
            &[],
        )
        .await
        .expect("read the log");
    let mut tree = CompactRange::new();
    for row in rows {
        let event = decode_event(&row).expect("an event");
        for (id, hash) in tree.push(leaf_hash(&leaf_bytes(&event).expect("leaf"))) {
            client
                .execute(
                    "INSERT INTO merkle_nodes (level, idx, hash) VALUES ($1, $2, $3)",
                    &[&i16::from(id.level), &(id.index as i64), &hash.0.as_slice()],
                )
                .await
                .expect("store a node");
        }
    }
    client
        .execute(
            "UPDATE log_sequencer SET tree_size = $1",
            &[&(tree.size() as i64)],
        )
        .await
        .expect("resize");
}

#[tokio::test]
async fn an_intact_log_verifies_everywhere_and_proofs_check_out() {
    let audited = Audited::new().await;
    for (verifier, ok, report) in audited.verdicts(&audited.kept.clone()).await {
        assert!(ok, "{verifier}: {report}");
        assert_eq!(report["tree_size"], audited.log.events, "{verifier}");
        assert_eq!(
            report["root_hash"], audited.checkpoint.root_hash,
            "{verifier}"
        );
    }
    // The published key and checkpoint, and an inclusion proof of every event.
    let key = audited.get("/v1/audit/public-key", &[]).await;
    assert_eq!(key["public_key"], audited.public_key());
    assert_eq!(key["algorithm"], "Ed25519");
    let latest: Checkpoint =
        serde_json::from_value(audited.get("/v1/audit/checkpoint", &[]).await).expect("json");
    assert_eq!(latest, audited.checkpoint);
    let root = latest.root().expect("root");
    let lines = audited
        .get_lines(&[("after_sequence", "0".into()), ("limit", "10000".into())])
        .await;
    assert_eq!(lines.len() as u64, audited.log.events);
    for (index, line) in lines.iter().enumerate() {
        let sequence = index as u64 + 1;
        assert_eq!(line["sequence"], sequence, "{line}");
        let proof = audited
            .get(
                "/v1/audit/proofs/inclusion",
                &[
                    ("sequence", sequence.to_string()),
                    ("tree_size", latest.tree_size.to_string()),
                ],
            )
            .await;
        let mut leaf = line.clone();
        leaf.as_object_mut().expect("object").remove("sequence");
        let expected_leaf = leaf_hash(&serde_jcs::to_vec(&leaf).expect("jcs"));
        assert_eq!(proof["leaf_hash"], expected_leaf.to_hex());
        let path: Vec<Hash> = proof["audit_path"]
            .as_array()
            .expect("path")
            .iter()
            .map(|h| Hash::from_hex(h.as_str().expect("hex")).expect("hash"))
            .collect();
        assert!(merkle::verify_inclusion(
            index as u64,
            latest.tree_size,
            &expected_leaf,
            &path,
            &root
        ));
    }
}

impl Audited {
    async fn get_lines(&self, query: &[(&str, String)]) -> Vec<Value> {
        let body = self
            .http
            .get(format!("{}/v1/audit/events", self.query_api))
            .bearer_auth(&self.auditor)
            .query(query)
            .send()
            .await
            .expect("answer")
            .text()
            .await
            .expect("body");
        body.lines()
            .map(|line| serde_json::from_str(line).expect("an envelope"))
            .collect()
    }
}

#[tokio::test]
async fn an_honest_log_that_grew_verifies_with_a_consistency_proof() {
    let audited = Audited::new().await;
    let store: &EventStore = &audited.log.db.store;
    let product = audited.log.products[1];
    support::append(
        store,
        &[(
            product,
            "product",
            vec![("StockAdded", json!({"quantity": 7}))],
        )],
        None,
    )
    .await
    .expect("append");
    let grown = audited.log.events + 1;
    let latest = eventually_some(
        "the grown log signed",
        Duration::from_secs(30),
        || async move {
            let latest = store.latest_checkpoint().await.ok()??;
            (latest.tree_size == grown).then_some(latest)
        },
    )
    .await;
    for (verifier, ok, report) in audited.verdicts(&audited.kept.clone()).await {
        assert!(ok, "{verifier}: {report}");
        assert_eq!(report["tree_size"], grown, "{verifier}");
        if verifier == "agora audit verify (live)" || verifier == "GET /v1/audit/verify" {
            assert!(
                report["consistency_proof"].is_array(),
                "{verifier}: {report}"
            );
        }
    }
    // The Python verifier checks the proof the query API serves, against both checkpoints.
    let proof = audited
        .get(
            "/v1/audit/proofs/consistency",
            &[
                ("from", audited.checkpoint.tree_size.to_string()),
                ("to", grown.to_string()),
            ],
        )
        .await;
    let proof_file = audited.scratch.path("proof.json");
    let latest_file = audited.scratch.path("latest.json");
    std::fs::write(&proof_file, proof.to_string()).expect("write");
    std::fs::write(&latest_file, serde_json::to_string(&latest).expect("json")).expect("write");
    let export = audited.scratch.path("grown.ndjson");
    let exported = agora(&[
        "audit",
        "export",
        "--database-url",
        &audited.log.db.url,
        "--out",
        export.to_str().expect("utf-8"),
    ]);
    assert_eq!(exit_code(&exported), 0);
    let python = |proof: &PathBuf| {
        Command::new("python3")
            .arg(verifier_script())
            .arg(&export)
            .args(["--checkpoint", audited.kept.to_str().expect("utf-8")])
            .args(["--public-key", &audited.public_key()])
            .args(["--latest", latest_file.to_str().expect("utf-8")])
            .args(["--consistency-proof", proof.to_str().expect("utf-8")])
            .output()
            .expect("python3")
    };
    let output = python(&proof_file);
    assert_eq!(
        exit_code(&output),
        0,
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    // A proof with a hash changed, or one element short, does not hold.
    let mut bad = proof.clone();
    bad["proof"][0] = json!(Hash::GENESIS.to_hex());
    std::fs::write(&proof_file, bad.to_string()).expect("write");
    let output = python(&proof_file);
    assert_eq!(exit_code(&output), 1);
    assert!(report(&output).to_string().contains("consistency proof"));
}

#[tokio::test]
async fn a_an_edited_payload_with_its_chain_recomputed_is_detected() {
    let audited = Audited::new().await;
    let client = audited.superuser().await;
    let product = audited.log.products[0];
    client
        .execute(
            "UPDATE events SET payload = jsonb_set(payload, '{quantity}', '1000') \
             WHERE stream_id = $1 AND version = 2",
            &[&product],
        )
        .await
        .expect("edit");
    recompute_chain(&client, product).await;
    rebuild_tree(&client).await;
    audited
        .assert_detected(&["the kept checkpoint signed root"])
        .await;
}

#[tokio::test]
async fn b_a_deleted_stream_is_detected() {
    let audited = Audited::new().await;
    let client = audited.superuser().await;
    client
        .execute(
            "DELETE FROM events WHERE stream_id = $1",
            &[&audited.log.order],
        )
        .await
        .expect("delete");
    rebuild_tree(&client).await;
    audited
        .assert_detected(&[
            "the kept checkpoint covers",
            "the kept checkpoint signed root",
        ])
        .await;
}

#[tokio::test]
async fn b_a_deleted_stream_leaves_a_gap_in_the_sequence() {
    let audited = Audited::new().await;
    let client = audited.superuser().await;
    client
        .execute(
            "DELETE FROM events WHERE stream_id = $1",
            &[&audited.log.order],
        )
        .await
        .expect("delete");
    audited.assert_detected(&["are missing"]).await;
}

#[tokio::test]
async fn c_the_last_events_deleted_are_detected() {
    let audited = Audited::new().await;
    let client = audited.superuser().await;
    client
        .execute(
            "DELETE FROM events WHERE position IN \
             (SELECT event_position FROM event_sequence WHERE sequence > $1)",
            &[&(audited.log.events as i64 - 3)],
        )
        .await
        .expect("delete");
    rebuild_tree(&client).await;
    audited.assert_detected(&["are gone"]).await;
}

#[tokio::test]
async fn d_two_events_swapped_in_order_are_detected() {
    let audited = Audited::new().await;
    let client = audited.superuser().await;
    // Two events of different streams, so every chain still holds.
    client
        .batch_execute(
            "UPDATE event_sequence SET sequence = 1000000000 WHERE sequence = 1;
             UPDATE event_sequence SET sequence = 1 WHERE sequence = 3;
             UPDATE event_sequence SET sequence = 3 WHERE sequence = 1000000000;",
        )
        .await
        .expect("swap");
    rebuild_tree(&client).await;
    audited
        .assert_detected(&["the kept checkpoint signed root", "out of order"])
        .await;
}

#[tokio::test]
async fn e_a_key_added_to_metadata_is_detected() {
    let audited = Audited::new().await;
    let client = audited.superuser().await;
    let product = audited.log.products[3];
    client
        .execute(
            "UPDATE events SET metadata = metadata || '{\"approved_by\": \"mallory\"}' \
             WHERE stream_id = $1 AND version = 1",
            &[&product],
        )
        .await
        .expect("edit metadata");
    audited.assert_detected(&["metadata as stored"]).await;
    // ... and the export keeps the key instead of dropping it.
    let lines = audited
        .get_lines(&[("after_sequence", "0".into()), ("limit", "10000".into())])
        .await;
    assert!(lines
        .iter()
        .any(|line| line["metadata"]["approved_by"] == "mallory"));
}

#[tokio::test]
async fn f_a_checkpoint_signed_by_another_key_is_detected() {
    let audited = Audited::new().await;
    let other = LogSigningKey::generate();
    let root = audited.checkpoint.root().expect("root");
    // A checkpoint of the right tree, signed by someone else.
    let foreign = other.sign(audited.checkpoint.tree_size, root, chrono::Utc::now());
    let foreign_file = audited.scratch.path("foreign.json");
    std::fs::write(
        &foreign_file,
        serde_json::to_string(&foreign).expect("json"),
    )
    .expect("write");
    // And one that claims the log's key id but carries the other key's signature.
    let mut claimed = foreign.clone();
    claimed.key_id = audited.checkpoint.key_id.clone();
    let claimed_file = audited.scratch.path("claimed.json");
    std::fs::write(
        &claimed_file,
        serde_json::to_string(&claimed).expect("json"),
    )
    .expect("write");
    for (file, reason) in [
        (&foreign_file, "but the log's key is"),
        (&claimed_file, "signature does not verify"),
    ] {
        for (verifier, ok, report) in audited.verdicts(file).await {
            assert!(!ok, "{verifier} accepted a foreign checkpoint: {report}");
            assert!(report.to_string().contains(reason), "{verifier}: {report}");
        }
    }
}
