//! The command API runs the verifiable log's sequencer: every event it appends gets the
//! next sequence, in log order, and with a signing key the log is checkpointed and signed.

mod support;

use std::time::{Duration, Instant};

use eventstore::checkpoint::LogSigningKey;
use eventstore::{LogCheckpoint, RecordedEvent};
use serde_json::json;
use support::TestApp;

/// A scratch key file, removed when dropped.
struct KeyFile(std::path::PathBuf);

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_file(eventstore::sequencer::state_file_beside(&self.0));
    }
}

fn key_file(pem: &str) -> KeyFile {
    let path = std::env::temp_dir().join(format!("agora-log-key-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&path, pem).expect("write the key");
    KeyFile(path)
}

#[tokio::test]
async fn appended_events_are_sequenced_in_log_order_and_checkpoints_signed() {
    let key = LogSigningKey::generate();
    let file = key_file(&key.to_pem().expect("pem"));
    let path = file.0.clone();
    let app = TestApp::spawn_with(|settings| {
        settings.log_signing_key = Some(path);
        settings.checkpoint_interval = Duration::from_millis(100);
    })
    .await;
    let mug = app.create_product("MUG-1", 1299, 10).await;
    app.create_product("CAP-1", 1500, 3).await;
    let customer = app.token("alice", &[platform::Role::Customer]);
    let placed = app
        .place_order(&customer, json!([{"product_id": mug, "quantity": 2}]))
        .await;
    assert_eq!(placed.status(), 201);
    let events = app.event_count().await as u64;
    assert_eq!(events, 4);

    let store = &app.db.store;
    let deadline = Instant::now() + Duration::from_secs(30);
    let checkpoint = loop {
        if let Some(latest) = store.latest_checkpoint().await.expect("read") {
            if latest.tree_size == events {
                break latest;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of all {events} events"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(checkpoint.verify(&key.public_key()), Ok(()));
    assert_eq!(
        store.published_key().await.expect("read"),
        Some(key.public_key())
    );
    let mut log = store
        .read_log(LogCheckpoint::START, 100)
        .await
        .expect("read");
    store.attach_sequences(&mut log).await.expect("sequences");
    assert_eq!(numbers(&log), (1..=4).map(Some).collect::<Vec<_>>());
    let verified = store.verify_log(None, None).await.expect("verify");
    assert_eq!(verified.tree.failures, vec![], "{verified:?}");
    assert_eq!(verified.tree.root.to_hex(), checkpoint.root_hash);
}

#[tokio::test]
async fn without_a_key_events_are_sequenced_but_nothing_is_signed() {
    let app = TestApp::spawn().await;
    app.create_product("MUG-1", 1299, 10).await;
    let store = &app.db.store;
    sequenced(store, 1).await;
    assert_eq!(store.latest_checkpoint().await.expect("read"), None);
}

#[tokio::test]
async fn a_bad_signing_key_file_stops_the_start_with_a_clear_error() {
    for contents in [
        "",
        "not a key",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ] {
        let file = key_file(contents);
        let db = eventstore::testing::TestDatabase::create()
            .await
            .expect("db");
        let settings = command_api::config::Settings {
            log_signing_key: Some(file.0.clone()),
            ..support::settings(&db.url)
        };
        let error = match command_api::startup::Application::build(settings).await {
            Ok(_) => panic!("a bad key file {contents:?} was accepted"),
            Err(error) => error.to_string(),
        };
        assert!(error.contains("AGORA_LOG_SIGNING_KEY"), "{error}");
    }
}

/// The audit reads take each event's number from its own `event_sequence` row: a page in
/// sequence order stays full across an event missing from `events` (the gap is left for a
/// verifier to see), and numbers are attached right whether a page's positions lie close
/// together (one range scan) or far apart (looked up one by one).
#[tokio::test]
async fn sequence_reads_skip_missing_events_and_number_scattered_pages() {
    let app = TestApp::spawn().await;
    for index in 0..5 {
        app.create_product(&format!("SEQ-{index}"), 100, 1).await;
    }
    // Positions far beyond the others, as after a long-open transaction.
    let attacker = eventstore::testing::attacker_session(&app.db.url)
        .await
        .expect("superuser");
    attacker
        .batch_execute("ALTER TABLE events ALTER COLUMN position RESTART WITH 1000000")
        .await
        .expect("move the identity");
    app.create_product("SEQ-FAR", 100, 1).await;
    let store = &app.db.store;
    sequenced(store, 6).await;

    let mut log = store
        .read_log(LogCheckpoint::START, 100)
        .await
        .expect("read");
    assert!(log.iter().all(|event| event.sequence.is_none()));
    let positions: Vec<i64> = log.iter().map(|event| event.position).collect();
    assert!(positions[5] >= 1_000_000, "{positions:?}");
    store.attach_sequences(&mut log).await.expect("sequences");
    assert_eq!(numbers(&log), (1..=6).map(Some).collect::<Vec<_>>());
    let mut close = log[1..4].to_vec();
    close.iter_mut().for_each(|event| event.sequence = None);
    store.attach_sequences(&mut close).await.expect("sequences");
    assert_eq!(numbers(&close), vec![Some(2), Some(3), Some(4)]);

    let in_order = store.read_sequenced(0, 10).await.expect("read");
    let placed = |events: &[RecordedEvent]| -> Vec<(i64, Option<i64>)> {
        events
            .iter()
            .map(|event| (event.position, event.sequence))
            .collect()
    };
    assert_eq!(placed(&in_order), placed(&log));

    attacker
        .execute("DELETE FROM events WHERE position = $1", &[&positions[1]])
        .await
        .expect("delete an event");
    let page = store.read_sequenced(0, 3).await.expect("read");
    assert_eq!(
        numbers(&page),
        vec![Some(1), Some(3), Some(4)],
        "a full page past the gap"
    );
    let rest = store.read_sequenced(4, 3).await.expect("read");
    assert_eq!(numbers(&rest), vec![Some(5), Some(6)]);
}

/// The reported forgery: a database user who may write the tree's tables inserts one node
/// at level 20 and sets the tree's size to 2^20. The signer must not sign the forged tree;
/// it halts, says why on `/readyz`, and keeps the last good checkpoint as the newest. The
/// recovery command rebuilds the tree from the events, and the next checkpoint is a proven
/// extension of the one before the forgery.
#[tokio::test]
async fn a_forged_tree_is_never_signed_and_the_rebuild_recovers() {
    for forgery in [
        "INSERT INTO merkle_nodes (level, idx, hash) VALUES (20, 0, decode(repeat('ab', 32), 'hex')); \
         UPDATE log_sequencer SET tree_size = 1048576",
        // A junk node where the next real one goes: the next batch cannot insert it.
        "INSERT INTO merkle_nodes (level, idx, hash) \
         SELECT 0, tree_size, decode(repeat('cd', 32), 'hex') FROM log_sequencer",
    ] {
        let key = LogSigningKey::generate();
        let file = key_file(&key.to_pem().expect("pem"));
        let path = file.0.clone();
        let app = TestApp::spawn_with(|settings| {
            settings.log_signing_key = Some(path);
            settings.checkpoint_interval = Duration::from_millis(100);
        })
        .await;
        app.create_product("GOOD-1", 100, 1).await;
        app.create_product("GOOD-2", 100, 1).await;
        let store = &app.db.store;
        let before = checkpoint_of(store, 2).await;

        let owner = eventstore::testing::attacker_session(&app.db.url)
            .await
            .expect("a superuser");
        owner.batch_execute(forgery).await.expect("forge the tree");
        app.create_product("AFTER-1", 100, 1).await;
        let halted = eventstore::testing::eventually_some(
            "the signer halts",
            Duration::from_secs(30),
            || async {
                readiness(&app).await["signer_halted"]
                    .as_str()
                    .map(str::to_owned)
            },
        )
        .await;
        assert!(halted.contains("tree"), "{halted}");
        let latest = store.latest_checkpoint().await.expect("read");
        assert_eq!(latest.as_ref(), Some(&before), "{forgery}");
        let signed: i64 = owner
            .query_one("SELECT COALESCE(max(tree_size), 0) FROM log_checkpoints", &[])
            .await
            .expect("read")
            .get(0);
        assert_eq!(signed, 2, "nothing beyond the real log was signed");

        eventstore::sequencer::rebuild_tree(&app.db.url)
            .await
            .expect("the recovery command");
        app.create_product("AFTER-2", 100, 1).await;
        let after = checkpoint_of(store, 4).await;
        assert_eq!(after.verify(&key.public_key()), Ok(()));
        let proof = store.consistency_proof(2, 4).await.expect("proof");
        assert!(eventstore::merkle::verify_consistency(
            2,
            4,
            &before.root().expect("root"),
            &after.root().expect("root"),
            &proof,
        ));
        eventstore::testing::eventually("the signer is healthy again", Duration::from_secs(30), || async {
            let ready = readiness(&app).await;
            ready.get("signer_halted").is_none() && ready["status"] == "ready"
        })
        .await;
    }
}

/// The command API's `/readyz` answer (null when there is none).
async fn readiness(app: &TestApp) -> serde_json::Value {
    match app.http.get(format!("{}/readyz", app.address)).send().await {
        Ok(response) => response.json().await.unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    }
}

/// Waits for a signed checkpoint of exactly `events` events.
async fn checkpoint_of(
    store: &eventstore::EventStore,
    events: u64,
) -> eventstore::checkpoint::Checkpoint {
    eventstore::testing::eventually_some(
        &format!("a checkpoint of {events} events"),
        Duration::from_secs(60),
        || async {
            store
                .latest_checkpoint()
                .await
                .ok()
                .flatten()
                .filter(|checkpoint| checkpoint.tree_size == events)
        },
    )
    .await
}

/// The events' sequence numbers, in order.
fn numbers(events: &[RecordedEvent]) -> Vec<Option<i64>> {
    events.iter().map(|event| event.sequence).collect()
}

/// Waits until the sequencer has numbered `events` events.
async fn sequenced(store: &eventstore::EventStore, events: u64) {
    eventstore::testing::eventually(
        &format!("{events} events sequenced"),
        Duration::from_secs(30),
        || async { store.tree_size().await.is_ok_and(|size| size >= events) },
    )
    .await;
}
