//! The shared log follower on real PostgreSQL: a batch's database effects and its
//! checkpoint commit together (a failed batch leaves neither and is retried), every event
//! is handled once in log order, only the lock holder follows, and a checkpoint that moved
//! ahead under a follower is never moved back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use eventstore::follower::{
    run_follower, saved_checkpoint, BatchHandler, FollowerConfig, FollowerState, FollowerStatus,
};
use eventstore::testing::{eventually, TestDatabase};
use eventstore::{
    AppendRequest, EventMetadata, LoadedStream, NewEvent, RecordedEvent, StreamWrite,
};
use serde_json::json;
use tokio::sync::watch;
use tokio_postgres::Client;
use uuid::Uuid;

/// Records each event's position in `handled`; fails every third batch once, after
/// writing (so the rollback must undo the write).
struct Recorder {
    batches: Arc<AtomicUsize>,
}

impl BatchHandler for Recorder {
    async fn handle<'a>(
        &'a mut self,
        session: &'a Client,
        events: &'a [RecordedEvent],
    ) -> Result<(), String> {
        let positions: Vec<i64> = events.iter().map(|e| e.position).collect();
        session
            .execute(
                "INSERT INTO handled SELECT unnest($1::int8[])",
                &[&positions],
            )
            .await
            .map_err(|e| e.to_string())?;
        let batch = self.batches.fetch_add(1, Ordering::SeqCst);
        if batch % 3 == 1 {
            return Err("injected failure after writing".into());
        }
        Ok(())
    }
}

async fn append(db: &TestDatabase, stream: &mut LoadedStream) {
    let appended = db
        .store
        .append(AppendRequest {
            streams: vec![StreamWrite::after(
                stream,
                "product",
                vec![NewEvent {
                    event_id: Uuid::now_v7(),
                    event_type: "StockAdded".into(),
                    schema_version: 1,
                    payload: json!({"quantity": 1}),
                }],
            )],
            metadata: EventMetadata {
                actor: "test".into(),
                correlation_id: "c".into(),
                causation_id: None,
                command_id: Uuid::now_v7(),
            },
            occurred_at: Utc::now(),
            claims: vec![],
            idempotency: None,
        })
        .await
        .expect("an append");
    let last = appended.events.last().expect("an event");
    stream.version = last.version;
    stream.last_hash = last.hash;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn effects_and_checkpoint_commit_together_and_each_event_is_handled_once() {
    let db = TestDatabase::create().await.expect("the test database");
    let client = db.store.pool().get().await.expect("a connection");
    client
        .batch_execute("CREATE TABLE handled (position bigint PRIMARY KEY)")
        .await
        .expect("the effects table");
    let mut streams: Vec<LoadedStream> = (0..3)
        .map(|_| LoadedStream::empty(Uuid::now_v7()))
        .collect();
    for n in 0..30 {
        append(&db, &mut streams[n % 3]).await;
    }
    let (stop, stopped) = watch::channel(false);
    let make = |name: &str| {
        let mut config = FollowerConfig::new(&db.url, name, 0x5445_5354, "test_follower");
        config.batch_size = 7;
        config.retry_after_failure = Duration::from_millis(10);
        config.standby_retry = Duration::from_millis(100);
        config
    };
    let (first, second) = (FollowerStatus::default(), FollowerStatus::default());
    let batches = Arc::new(AtomicUsize::new(0));
    let one = tokio::spawn(run_follower(
        make("test"),
        db.store.clone(),
        Recorder {
            batches: batches.clone(),
        },
        first.clone(),
        stopped.clone(),
    ));
    let two = tokio::spawn(run_follower(
        make("test"),
        db.store.clone(),
        Recorder {
            batches: batches.clone(),
        },
        second.clone(),
        stopped.clone(),
    ));
    let count = || async {
        client
            .query_one("SELECT count(*) FROM handled", &[])
            .await
            .expect("count")
            .get::<_, i64>(0)
    };
    eventually("all 30 events handled", Duration::from_secs(20), || async {
        count().await == 30
    })
    .await;
    for n in 0..10 {
        append(&db, &mut streams[n % 3]).await;
    }
    eventually("the 10 more", Duration::from_secs(20), || async {
        count().await == 40
    })
    .await;
    let states = [first.get(), second.get()];
    assert!(
        states.contains(&FollowerState::Active) && states.contains(&FollowerState::Standby),
        "one active, one standby: {states:?}"
    );
    // A failed batch left nothing behind (the table's key would have refused a repeat) and
    // the checkpoint is the last event's.
    assert!(
        batches.load(Ordering::SeqCst) > 6,
        "failures were injected and retried"
    );
    let last = db
        .store
        .read_log(eventstore::LogCheckpoint::START, 100)
        .await
        .expect("the log")
        .last()
        .map(eventstore::LogCheckpoint::after)
        .expect("events");
    assert_eq!(
        saved_checkpoint(&db.store, "test")
            .await
            .expect("checkpoint"),
        last
    );
    let _ = stop.send(true);
    one.await.expect("the first follower stops");
    two.await.expect("the second follower stops");
}

/// Hands each batch's positions to the test, then waits for its go-ahead.
struct Gated {
    seen: tokio::sync::mpsc::UnboundedSender<Vec<i64>>,
    go: Arc<tokio::sync::Semaphore>,
}

impl BatchHandler for Gated {
    async fn handle<'a>(
        &'a mut self,
        _session: &'a Client,
        events: &'a [RecordedEvent],
    ) -> Result<(), String> {
        let _ = self.seen.send(events.iter().map(|e| e.position).collect());
        self.go.acquire().await.map_err(|e| e.to_string())?.forget();
        Ok(())
    }
}

/// The `count` events after `from`, once the log shows them all.
async fn whole_log(
    db: &TestDatabase,
    from: eventstore::LogCheckpoint,
    count: usize,
) -> Vec<RecordedEvent> {
    let read = || async { db.store.read_log(from, 100).await.expect("the log") };
    eventually(
        "the log to show every event",
        Duration::from_secs(20),
        || async { read().await.len() == count },
    )
    .await;
    read().await
}

/// The positions of the next batch the gated follower handles.
async fn next(batches: &mut tokio::sync::mpsc::UnboundedReceiver<Vec<i64>>) -> Vec<i64> {
    tokio::time::timeout(Duration::from_secs(20), batches.recv())
        .await
        .expect("a batch in time")
        .expect("the follower runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_moved_ahead_under_a_follower_is_never_moved_back() {
    let db = TestDatabase::create().await.expect("the test database");
    let mut stream = LoadedStream::empty(Uuid::now_v7());
    for _ in 0..4 {
        append(&db, &mut stream).await;
    }
    let (stop, stopped) = watch::channel(false);
    let mut config = FollowerConfig::new(&db.url, "gated", 0x5445_5355, "gated_follower");
    config.batch_size = 3;
    config.standby_retry = Duration::from_millis(50);
    let (seen, mut batches) = tokio::sync::mpsc::unbounded_channel();
    let go = Arc::new(tokio::sync::Semaphore::new(0));
    let follower = tokio::spawn(run_follower(
        config,
        db.store.clone(),
        Gated {
            seen,
            go: go.clone(),
        },
        FollowerStatus::default(),
        stopped,
    ));
    let log = whole_log(&db, eventstore::LogCheckpoint::START, 4).await;
    let positions: Vec<i64> = log.iter().map(|e| e.position).collect();
    // A batch holds at most three events, and the log may show fewer at first (a
    // transaction open anywhere on the server holds log readers back).
    let first = next(&mut batches).await;
    assert!(
        !first.is_empty() && positions[..3].starts_with(&first),
        "{first:?} of {positions:?}"
    );

    // While the follower handles the first three events, its checkpoint moves past the
    // fourth (an operator skipping it, or another instance that went further).
    let ahead = eventstore::LogCheckpoint::after(&log[3]);
    let client = db.store.pool().get().await.expect("a connection");
    client
        .execute(
            "UPDATE relay_checkpoints SET transaction_id = $2, position = $3 WHERE name = $1",
            &[&"gated", &(ahead.transaction_id as i64), &ahead.position],
        )
        .await
        .expect("moving the checkpoint");
    go.add_permits(1);
    append(&db, &mut stream).await;
    // The batch did not save its earlier checkpoint: the follower resumed from the saved
    // one, so the next batch is the fifth event, not the ones after the first batch.
    let fifth = whole_log(&db, ahead, 1)
        .await
        .iter()
        .map(|e| e.position)
        .collect::<Vec<_>>();
    assert_eq!(
        saved_checkpoint(&db.store, "gated")
            .await
            .expect("checkpoint"),
        ahead,
        "the checkpoint did not move back"
    );
    assert_eq!(next(&mut batches).await, fifth);
    go.add_permits(1);
    let last = eventstore::LogCheckpoint::after(&whole_log(&db, ahead, 1).await[0]);
    eventually(
        "the fifth event's checkpoint",
        Duration::from_secs(20),
        || async {
            saved_checkpoint(&db.store, "gated")
                .await
                .expect("checkpoint")
                == last
        },
    )
    .await;
    let _ = stop.send(true);
    follower.await.expect("the follower stops");
}
