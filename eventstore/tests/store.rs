//! The event store against a real PostgreSQL: appends, conflicts, claims, idempotency
//! records, the gap-free log reader and the hash chain.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::Utc;
use eventstore::testing::TestDatabase;
use eventstore::{
    AppendError, AppendRequest, EventMetadata, EventStore, GroupCommitLimits, IdempotencyRecord,
    LogCheckpoint, NewEvent, StreamWrite, UniqueClaim,
};
use serde_json::json;
use uuid::Uuid;

fn metadata() -> EventMetadata {
    EventMetadata {
        actor: "tester".into(),
        correlation_id: Uuid::new_v4().to_string(),
        causation_id: None,
        command_id: Uuid::new_v4(),
    }
}

fn event(n: i64) -> NewEvent {
    NewEvent::new("StockAdded", 1, json!({ "quantity": n }))
}

fn request(streams: Vec<StreamWrite>) -> AppendRequest {
    AppendRequest {
        streams,
        metadata: metadata(),
        occurred_at: Utc::now(),
        claims: vec![],
        idempotency: None,
    }
}

/// Appends `events` to the stream as loaded now, retrying lost races.
async fn append_retrying(store: &EventStore, stream_id: Uuid, count: usize) -> anyhow::Result<()> {
    for _ in 0..200 {
        let loaded = store.load_stream(stream_id).await?;
        let events = (0..count).map(|i| event(i as i64)).collect();
        match store
            .append(request(vec![StreamWrite::after(
                &loaded, "product", events,
            )]))
            .await
        {
            Ok(_) => return Ok(()),
            Err(AppendError::Conflict { .. }) => {
                tokio::time::sleep(Duration::from_millis(rand::random_range(0..5))).await
            }
            Err(other) => return Err(other.into()),
        }
    }
    anyhow::bail!("gave up after 200 conflicts")
}

#[tokio::test]
async fn appended_events_load_back_in_order_with_a_verified_chain() -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    let stream_id = Uuid::new_v4();
    let loaded = db.store.load_stream(stream_id).await?;
    assert!(!loaded.exists());
    let appended = db
        .store
        .append(request(vec![StreamWrite::after(
            &loaded,
            "product",
            vec![event(1), event(2), event(3)],
        )]))
        .await?;
    assert_eq!(appended.version_of(stream_id), Some(3));
    let positions: Vec<i64> = appended.events.iter().map(|e| e.position).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert_eq!(appended.last_position(), positions[2]);

    let loaded = db.store.load_stream(stream_id).await?;
    assert_eq!(loaded.version, 3);
    assert_eq!(loaded.stream_type.as_deref(), Some("product"));
    assert_eq!(loaded.events, appended.events);
    assert_eq!(loaded.events[0].prev_hash, eventstore::Hash::GENESIS);
    assert_eq!(loaded.events[1].prev_hash, loaded.events[0].hash);
    assert_eq!(loaded.last_hash, loaded.events[2].hash);

    db.store
        .append(request(vec![StreamWrite::after(
            &loaded,
            "product",
            vec![event(4)],
        )]))
        .await?;
    let report = db.store.verify(None).await?;
    assert!(report.ok(), "{report:?}");
    assert_eq!((report.streams_checked, report.events_checked), (1, 4));
    Ok(())
}

#[tokio::test]
async fn a_stale_expected_version_appends_nothing_to_any_stream() -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let stale_a = db.store.load_stream(a).await?;
    db.store
        .append(request(vec![StreamWrite::after(
            &stale_a,
            "product",
            vec![event(1)],
        )]))
        .await?;
    let fresh_b = db.store.load_stream(b).await?;
    let outcome = db
        .store
        .append(request(vec![
            StreamWrite::after(&fresh_b, "order", vec![event(9)]),
            StreamWrite::after(&stale_a, "product", vec![event(2)]),
        ]))
        .await;
    match outcome {
        Err(AppendError::Conflict { stream_id }) => assert_eq!(stream_id, Some(a)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(db.store.load_stream(a).await?.version, 1);
    assert!(!db.store.load_stream(b).await?.exists());
    Ok(())
}

#[tokio::test]
async fn a_taken_claim_refuses_the_whole_append() -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    let claim = |stream_id| UniqueClaim {
        scope: "sku".into(),
        value: "A-1".into(),
        stream_id,
    };
    let first = Uuid::new_v4();
    let mut req = request(vec![StreamWrite::after(
        &db.store.load_stream(first).await?,
        "product",
        vec![event(1)],
    )]);
    req.claims.push(claim(first));
    db.store.append(req).await?;

    let second = Uuid::new_v4();
    let mut req = request(vec![StreamWrite::after(
        &db.store.load_stream(second).await?,
        "product",
        vec![event(1)],
    )]);
    req.claims.push(claim(second));
    match db.store.append(req).await {
        Err(AppendError::ClaimTaken { scope, value }) => {
            assert_eq!((scope.as_str(), value.as_str()), ("sku", "A-1"))
        }
        other => panic!("expected the claim to be taken, got {other:?}"),
    }
    assert!(!db.store.load_stream(second).await?.exists());
    Ok(())
}

#[tokio::test]
async fn idempotency_records_are_written_with_the_events_and_only_once() -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    let stream_id = Uuid::new_v4();
    let record = IdempotencyRecord {
        caller: "alice".into(),
        key: "k-1".into(),
        request_hash: vec![1, 2, 3],
        status_code: 201,
        resource_id: stream_id,
        resource_version: 1,
    };
    assert!(db
        .store
        .find_idempotent_response("alice", "k-1")
        .await?
        .is_none());
    let mut req = request(vec![StreamWrite::after(
        &db.store.load_stream(stream_id).await?,
        "product",
        vec![event(1)],
    )]);
    req.idempotency = Some(record.clone());
    let appended = db.store.append(req).await?;
    let stored = db
        .store
        .find_idempotent_response("alice", "k-1")
        .await?
        .expect("the record was written");
    assert_eq!(stored.status_code, 201);
    assert_eq!(stored.request_hash, vec![1, 2, 3]);
    assert_eq!(stored.position, appended.last_position());
    assert!(db
        .store
        .find_idempotent_response("bob", "k-1")
        .await?
        .is_none());

    let other = Uuid::new_v4();
    let mut req = request(vec![StreamWrite::after(
        &db.store.load_stream(other).await?,
        "product",
        vec![event(1)],
    )]);
    req.idempotency = Some(record);
    assert!(matches!(
        db.store.append(req).await,
        Err(AppendError::IdempotencyKeyTaken)
    ));
    assert!(!db.store.load_stream(other).await?.exists());
    Ok(())
}

#[tokio::test]
async fn concurrent_appends_to_one_stream_lose_nothing() -> anyhow::Result<()> {
    concurrent_appends_lose_nothing(false).await
}

#[tokio::test]
async fn concurrent_appends_to_one_stream_lose_nothing_with_group_commit() -> anyhow::Result<()> {
    concurrent_appends_lose_nothing(true).await
}

/// The store of `db`, appending through group commit when `grouped`.
fn store_of(db: &TestDatabase, grouped: bool) -> EventStore {
    if grouped {
        db.store
            .clone()
            .grouping_commits(GroupCommitLimits::default())
    } else {
        db.store.clone()
    }
}

async fn concurrent_appends_lose_nothing(grouped: bool) -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    let writer = store_of(&db, grouped);
    let stream_id = Uuid::new_v4();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = writer.clone();
            tokio::spawn(async move { append_retrying(&store, stream_id, 2).await })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let loaded = db.store.load_stream(stream_id).await?;
    assert_eq!(loaded.version, 40);
    let versions: Vec<i64> = loaded.events.iter().map(|e| e.version).collect();
    assert_eq!(versions, (1..=40).collect::<Vec<_>>());
    assert!(db.store.verify(Some(stream_id)).await?.ok());
    Ok(())
}

/// Inserts an event in a transaction that stays open for a while and then commits or rolls
/// back: the late committer that position-only readers skip.
async fn slow_transaction(url: &str, commit: bool, hold: Duration) -> anyhow::Result<Option<Uuid>> {
    let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(connection);
    let transaction = client.transaction().await?;
    let event_id = Uuid::new_v4();
    transaction
        .execute(
            "INSERT INTO events (event_id, stream_type, stream_id, version, event_type, \
             schema_version, payload, metadata, occurred_at, prev_hash, hash) \
             VALUES ($1, 'slow', $2, 1, 'Slow', 1, '{}', \
             '{\"actor\":\"t\",\"correlation_id\":\"c\",\"causation_id\":null,\
             \"command_id\":\"00000000-0000-0000-0000-000000000000\"}', now(), \
             decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'))",
            &[&event_id, &Uuid::new_v4()],
        )
        .await?;
    tokio::time::sleep(hold).await;
    if commit {
        transaction.commit().await?;
    } else {
        transaction.rollback().await?;
    }
    drop(client);
    let _ = driver.await;
    Ok(commit.then_some(event_id))
}

#[tokio::test]
async fn the_log_reader_delivers_every_committed_event_once_in_stream_order() -> anyhow::Result<()>
{
    log_reader_delivers_every_event_once(false).await
}

#[tokio::test]
async fn the_log_reader_delivers_every_event_once_in_stream_order_with_group_commit(
) -> anyhow::Result<()> {
    log_reader_delivers_every_event_once(true).await
}

async fn log_reader_delivers_every_event_once(grouped: bool) -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    let writer = store_of(&db, grouped);
    let streams: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(None::<LogCheckpoint>);

    // The reader follows the log while the writers run, until it reaches the head the
    // writers left. (An empty read proves nothing: the horizon is cluster-wide, so any open
    // transaction on the server, in any database, holds the log back for a while.)
    let reader_store = db.store.clone();
    let reader = tokio::spawn(async move {
        let mut checkpoint = LogCheckpoint::START;
        let mut seen = Vec::new();
        loop {
            let head = *done_rx.borrow_and_update();
            let batch = reader_store.read_log(checkpoint, 37).await?;
            if let Some(last) = batch.last() {
                checkpoint = LogCheckpoint::after(last);
            }
            let empty = batch.is_empty();
            seen.extend(batch);
            if head.is_some_and(|head| checkpoint >= head) {
                return anyhow::Ok(seen);
            }
            if empty {
                let _ = tokio::time::timeout(Duration::from_millis(5), done_rx.changed()).await;
            }
        }
    });

    let mut writers = Vec::new();
    for round in 0..30 {
        let store = writer.clone();
        let stream_id = streams[round % streams.len()];
        writers.push(tokio::spawn(async move {
            append_retrying(&store, stream_id, 1 + round % 3).await?;
            anyhow::Ok(None)
        }));
        let url = db.url.clone();
        let hold = Duration::from_millis(rand::random_range(1..60));
        writers.push(tokio::spawn(async move {
            slow_transaction(&url, round % 3 != 0, hold).await
        }));
    }
    let mut committed_slow = HashSet::new();
    for writer in writers {
        if let Some(id) = writer.await?? {
            committed_slow.insert(id);
        }
    }
    // Every writer has finished: the committed log is final. Read it without the horizon.
    let client = db.store.pool().get().await?;
    let rows = client
        .query(
            "SELECT event_id, transaction_id::text::int8, position FROM events \
             ORDER BY transaction_id, position",
            &[],
        )
        .await?;
    let head = rows.last().map(|row| LogCheckpoint {
        transaction_id: row.get::<_, i64>(1) as u64,
        position: row.get(2),
    });
    done_tx.send(head)?;
    let seen = tokio::time::timeout(Duration::from_secs(60), reader).await???;

    // Exactly once: every committed event, no duplicates, nothing rolled back.
    let all: Vec<Uuid> = rows.iter().map(|row| row.get(0)).collect();
    let seen_ids: Vec<Uuid> = seen.iter().map(|e| e.event_id).collect();
    let unique: HashSet<Uuid> = seen_ids.iter().copied().collect();
    assert_eq!(unique.len(), seen_ids.len(), "an event was delivered twice");
    let all_ids: HashSet<Uuid> = all.iter().copied().collect();
    assert_eq!(unique, all_ids, "the follower missed committed events");
    let slow_seen: HashSet<Uuid> = seen
        .iter()
        .filter(|e| e.stream_type == "slow")
        .map(|e| e.event_id)
        .collect();
    assert_eq!(slow_seen, committed_slow);
    let expected_events: usize = (0..30).map(|round| 1 + round % 3).sum::<usize>();
    assert_eq!(seen.len() - slow_seen.len(), expected_events);

    // Each stream's versions appear in log order.
    let mut last_version: HashMap<Uuid, i64> = HashMap::new();
    for event in seen.iter().filter(|e| e.stream_type != "slow") {
        let previous = last_version
            .insert(event.stream_id, event.version)
            .unwrap_or(0);
        assert_eq!(
            event.version,
            previous + 1,
            "stream {} out of order",
            event.stream_id
        );
    }
    Ok(())
}

#[tokio::test]
async fn verification_names_the_event_whose_payload_was_altered() -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    for stream_id in [a, b] {
        for _ in 0..3 {
            append_retrying(&db.store, stream_id, 1).await?;
        }
    }
    assert!(db.store.verify(None).await?.ok());
    let client = eventstore::testing::attacker_session(&db.url).await?;
    client
        .execute(
            "UPDATE events SET payload = '{\"quantity\": 1000}' WHERE stream_id = $1 AND version = 2",
            &[&b],
        )
        .await?;
    let report = db.store.verify(None).await?;
    assert_eq!(report.events_checked, 6);
    assert_eq!(report.failures.len(), 1, "{report:?}");
    assert_eq!(
        (report.failures[0].stream_id, report.failures[0].version),
        (b, 2)
    );
    let only_a = db.store.verify(Some(a)).await?;
    assert!(only_a.ok());
    assert_eq!(only_a.events_checked, 3);
    Ok(())
}

#[tokio::test]
async fn followers_are_woken_after_an_append_commits() -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    let listener = eventstore::LogListener::connect(&db.url).await?;
    let stream_id = Uuid::new_v4();
    let store = db.store.clone();
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        append_retrying(&store, stream_id, 1).await
    });
    let started = std::time::Instant::now();
    listener.wait(Duration::from_secs(20)).await;
    writer.await??;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "woken by the append, not by the timeout ({:?})",
        started.elapsed()
    );
    // A store without a notifier wakes nobody.
    let silent = EventStore::new(db.store.pool().clone());
    let started = std::time::Instant::now();
    append_retrying(&silent, stream_id, 1).await?;
    listener.wait(Duration::from_millis(300)).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    Ok(())
}
