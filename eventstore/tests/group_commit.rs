//! Group commit: several commands in one transaction, each all or nothing; a command that
//! conflicts, or whose claim or idempotency key is taken, fails alone and the others
//! commit; concurrent appends through the committer share transactions.

use std::collections::HashSet;

use chrono::Utc;
use eventstore::testing::TestDatabase;
use eventstore::{
    AppendError, AppendRequest, EventMetadata, GroupCommitLimits, IdempotencyRecord, LoadedStream,
    NewEvent, StreamWrite, UniqueClaim,
};
use futures::future::join_all;
use serde_json::json;
use uuid::Uuid;

fn request(writes: Vec<StreamWrite>) -> AppendRequest {
    AppendRequest {
        streams: writes,
        metadata: EventMetadata {
            actor: "tester".into(),
            correlation_id: "c".into(),
            causation_id: None,
            command_id: Uuid::now_v7(),
        },
        occurred_at: Utc::now(),
        claims: vec![],
        idempotency: None,
    }
}

fn new_stream(events: usize) -> StreamWrite {
    StreamWrite::after(
        &LoadedStream::empty(Uuid::now_v7()),
        "product",
        (0..events)
            .map(|n| NewEvent::new("StockAdded", 1, json!({"quantity": n + 1})))
            .collect(),
    )
}

fn record(key: &str) -> IdempotencyRecord {
    IdempotencyRecord {
        caller: "tester".into(),
        key: key.into(),
        request_hash: vec![1, 2, 3],
        status_code: 200,
        resource_id: Uuid::nil(),
        resource_version: 1,
    }
}

#[tokio::test]
async fn one_conflicting_command_fails_alone_and_the_batch_commits() -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    let store = &db.store;
    // A stream at version 1, and a claim and a key already taken.
    let existing = new_stream(1);
    let existing_id = existing.stream_id;
    let mut first = request(vec![existing.clone()]);
    first.claims.push(UniqueClaim {
        scope: "sku".into(),
        value: "TAKEN".into(),
        stream_id: existing_id,
    });
    first.idempotency = Some(record("used"));
    store.append(first).await?;

    let mut batch: Vec<AppendRequest> = (0..6).map(|_| request(vec![new_stream(2)])).collect();
    // 6: a multi-stream command whose second stream is stale (expects version 0).
    let stale = StreamWrite {
        stream_id: existing_id,
        ..new_stream(1)
    };
    batch.push(request(vec![new_stream(1), stale]));
    // 7: a claim that is taken.
    let mut claims = request(vec![new_stream(1)]);
    claims.claims.push(UniqueClaim {
        scope: "sku".into(),
        value: "TAKEN".into(),
        stream_id: claims.streams[0].stream_id,
    });
    batch.push(claims);
    // 8: a key that is taken; 9: a fresh key, with its record.
    let mut used = request(vec![new_stream(1)]);
    used.idempotency = Some(record("used"));
    batch.push(used);
    let mut fresh = request(vec![new_stream(3)]);
    fresh.idempotency = Some(record("fresh"));
    batch.push(fresh);
    let written: Vec<Vec<Uuid>> = batch
        .iter()
        .map(|r| r.streams.iter().map(|s| s.stream_id).collect())
        .collect();

    let before: i64 = count(store, "SELECT count(*) FROM events").await?;
    let results = store.append_batch(batch).await;
    assert!(matches!(
        results[6],
        Err(AppendError::Conflict { stream_id: Some(id) }) if id == existing_id
    ));
    assert!(matches!(
        &results[7],
        Err(AppendError::ClaimTaken { scope, value }) if scope == "sku" && value == "TAKEN"
    ));
    assert!(matches!(results[8], Err(AppendError::IdempotencyKeyTaken)));
    let committed: Vec<_> = [0, 1, 2, 3, 4, 5, 9]
        .iter()
        .map(|i| results[*i].as_ref().expect("committed"))
        .collect();
    // One transaction for all that committed.
    let transactions: HashSet<u64> = committed
        .iter()
        .flat_map(|a| a.events.iter().map(|e| e.transaction_id))
        .collect();
    assert_eq!(transactions.len(), 1);
    assert_eq!(
        count(store, "SELECT count(*) FROM events").await? - before,
        6 * 2 + 3
    );
    // Nothing of the refused commands, not even the first stream of the multi-stream one.
    for refused in [6, 7, 8] {
        for id in &written[refused] {
            if *id != existing_id {
                assert!(!store.load_stream(*id).await?.exists(), "command {refused}");
            }
        }
    }
    assert_eq!(store.load_stream(existing_id).await?.version, 1);
    // The fresh key's record points at its command's last event.
    let position: i64 = count(
        store,
        "SELECT position FROM idempotency_keys WHERE key = 'fresh'",
    )
    .await?;
    assert_eq!(position, committed[6].last_position());
    assert!(store.verify(None).await?.ok());
    Ok(())
}

async fn count(store: &eventstore::EventStore, sql: &str) -> anyhow::Result<i64> {
    Ok(store.pool().get().await?.query_one(sql, &[]).await?.get(0))
}

#[tokio::test]
async fn concurrent_commands_share_commits() -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    let store = db.store.clone().grouping_commits(GroupCommitLimits {
        max_commands: 16,
        ..GroupCommitLimits::default()
    });
    let results = join_all((0..200).map(|_| {
        let store = store.clone();
        async move { store.append(request(vec![new_stream(1)])).await }
    }))
    .await;
    let mut transactions = HashSet::new();
    for result in results {
        let appended = result?;
        transactions.insert(appended.events[0].transaction_id);
    }
    assert!(
        transactions.len() < 200,
        "200 concurrent commands took {} commits",
        transactions.len()
    );
    // Never more than the bound in one commit.
    assert!(transactions.len() >= 200 / 16);
    assert_eq!(count(&db.store, "SELECT count(*) FROM events").await?, 200);
    Ok(())
}
