//! The sequencer: gives every committed event its dense `sequence` (1, 2, 3, ... in log
//! order, rows of `event_sequence`), grows the Merkle tree over them, and signs checkpoints
//! of the tree.
//!
//! Like the relay, it follows the log gap-free ([`crate::log`]), woken by the followers'
//! notifications, and exactly one instance is active: the holder of a session-level
//! advisory lock. Each batch is one transaction: the events' sequence numbers, every tree node
//! the batch completes (`merkle_nodes`), and the new checkpoint in `log_sequencer`, guarded
//! by the size it started from, so a stale leader cannot write. Every
//! `checkpoint_interval`, when the tree grew, it signs `{tree_size, root_hash, timestamp}`
//! with the log's key ([`crate::checkpoint`]) and stores the checkpoint; without a key it
//! sequences but signs nothing.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::checkpoint::LogSigningKey;
use crate::envelope::leaf_bytes;
use crate::error::StoreError;
use crate::event::RecordedEvent;
use crate::hashchain::{truncate_to_micros, Hash};
use crate::listen::LogListener;
use crate::log::LogCheckpoint;
use crate::merkle::{leaf_hash, CompactRange, NodeId};
use crate::EventStore;

/// Fixed key of the advisory lock that elects the active sequencer.
pub const SEQUENCER_LOCK_KEY: i64 = 0x4147_4f52_415f_5351;

/// How the sequencer runs.
#[derive(Debug, Clone)]
pub struct SequencerConfig {
    pub database_url: String,
    /// Events sequenced per transaction at most.
    pub batch_size: i64,
    /// How long a standby waits between tries for the lock.
    pub standby_retry: Duration,
    /// The longest wait for new events without a notification.
    pub idle_wait: Duration,
    /// The least time between two signed checkpoints (`AGORA_CHECKPOINT_INTERVAL`).
    pub checkpoint_interval: Duration,
    /// The log's signing key (`AGORA_LOG_SIGNING_KEY`); none: no checkpoints are signed.
    pub signing_key: Option<LogSigningKey>,
}

impl SequencerConfig {
    pub fn new(database_url: &str, signing_key: Option<LogSigningKey>) -> Self {
        SequencerConfig {
            database_url: database_url.to_owned(),
            batch_size: 5000,
            standby_retry: Duration::from_secs(1),
            idle_wait: Duration::from_millis(100),
            checkpoint_interval: Duration::from_secs(10),
            signing_key,
        }
    }
}

/// Runs the sequencer until `shutdown` turns true: standby until it holds the lock, then
/// sequences and signs. Errors are logged and retried; this only returns on shutdown.
pub async fn run_sequencer(
    config: SequencerConfig,
    store: EventStore,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        if let Err(error) = lead_while_possible(&config, &store, &mut shutdown).await {
            tracing::warn!(%error, "sequencer interrupted; retrying");
        }
        metrics::gauge!("sequencer_leader").set(0.0);
        tokio::select! {
            _ = tokio::time::sleep(config.standby_retry) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Where the sequencer stands.
struct Position {
    log: LogCheckpoint,
    tree: CompactRange,
    signed_size: u64,
    signed_at: Option<Instant>,
}

async fn lead_while_possible(
    config: &SequencerConfig,
    store: &EventStore,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let listener = LogListener::connect(&config.database_url).await?;
    loop {
        let row = listener
            .client()
            .query_one("SELECT pg_try_advisory_lock($1)", &[&SEQUENCER_LOCK_KEY])
            .await?;
        if row.try_get::<_, bool>(0)? {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(config.standby_retry) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return Ok(());
        }
    }
    tracing::info!("sequencer is now active");
    metrics::gauge!("sequencer_leader").set(1.0);
    let mut at = resume(store, config.signing_key.as_ref()).await?;
    while !*shutdown.borrow() {
        if listener.is_closed() {
            return Err(StoreError::Unavailable(
                "the sequencer's session ended".into(),
            ));
        }
        let events = store.read_log(at.log, config.batch_size).await?;
        if !events.is_empty() {
            sequence_batch(store, &mut at, &events).await?;
        }
        if let Some(key) = &config.signing_key {
            let due = at
                .signed_at
                .is_none_or(|signed| signed.elapsed() >= config.checkpoint_interval);
            if due && at.tree.size() > at.signed_size {
                sign_checkpoint(store, key, &at.tree).await?;
                at.signed_size = at.tree.size();
                at.signed_at = Some(Instant::now());
            }
        }
        if (events.len() as i64) < config.batch_size {
            tokio::select! {
                _ = listener.wait(config.idle_wait) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
    Ok(())
}

/// Loads where the last leader stopped, and registers the signing key's public half.
async fn resume(store: &EventStore, key: Option<&LogSigningKey>) -> Result<Position, StoreError> {
    let client = store.pool().get().await?;
    let row = client
        .query_one(
            "SELECT transaction_id, position, tree_size FROM log_sequencer",
            &[],
        )
        .await?;
    let log = LogCheckpoint {
        transaction_id: row.try_get::<_, i64>(0)? as u64,
        position: row.try_get(1)?,
    };
    let size = row.try_get::<_, i64>(2)?.max(0) as u64;
    let nodes = store.fetch_nodes(&CompactRange::node_ids(size)).await?;
    let mut missing = None;
    let tree = CompactRange::from_nodes(size, &mut |id| {
        nodes.get(&id).copied().unwrap_or_else(|| {
            missing.get_or_insert(id);
            Hash::GENESIS
        })
    });
    if let Some(id) = missing {
        return Err(StoreError::Corrupt(format!(
            "the Merkle tree of {size} leaves has no node at level {} index {}",
            id.level, id.index
        )));
    }
    let mut signed_size = 0;
    if let Some(key) = key {
        let public = key.public_key();
        client
            .execute(
                "INSERT INTO log_signing_keys (key_id, public_key) VALUES ($1, $2) \
                 ON CONFLICT (key_id) DO NOTHING",
                &[&public.key_id(), &public.0.as_bytes().as_slice()],
            )
            .await?;
        let row = client
            .query_one(
                "SELECT COALESCE(max(tree_size), 0) FROM log_checkpoints WHERE key_id = $1",
                &[&public.key_id()],
            )
            .await?;
        signed_size = row.try_get::<_, i64>(0)?.max(0) as u64;
    }
    metrics::gauge!("log_tree_size").set(size as f64);
    Ok(Position {
        log,
        tree,
        signed_size,
        signed_at: None,
    })
}

/// Sequences `events` (the next ones in log order) in one transaction.
async fn sequence_batch(
    store: &EventStore,
    at: &mut Position,
    events: &[RecordedEvent],
) -> Result<(), StoreError> {
    let start_size = at.tree.size();
    let mut tree = at.tree.clone();
    let mut positions = Vec::with_capacity(events.len());
    let mut sequences = Vec::with_capacity(events.len());
    let (mut levels, mut indexes, mut hashes) = (Vec::new(), Vec::new(), Vec::new());
    for event in events {
        let leaf = leaf_hash(&leaf_bytes(event)?);
        for (NodeId { level, index }, hash) in tree.push(leaf) {
            levels.push(i16::from(level));
            indexes.push(index as i64);
            hashes.push(hash.0.to_vec());
        }
        positions.push(event.position);
        sequences.push(tree.size() as i64);
    }
    let next = events.last().map(LogCheckpoint::after).unwrap_or(at.log);
    let mut client = store.pool().get().await?;
    let transaction = client.transaction().await?;
    transaction
        .execute(
            "INSERT INTO event_sequence (sequence, event_position) \
             SELECT * FROM unnest($1::bigint[], $2::bigint[])",
            &[&sequences, &positions],
        )
        .await?;
    transaction
        .execute(
            "INSERT INTO merkle_nodes (level, idx, hash) \
             SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])",
            &[&levels, &indexes, &hashes],
        )
        .await?;
    let moved = transaction
        .execute(
            "UPDATE log_sequencer SET transaction_id = $1, position = $2, tree_size = $3, \
             updated_at = now() WHERE tree_size = $4",
            &[
                &(next.transaction_id as i64),
                &next.position,
                &(tree.size() as i64),
                &(start_size as i64),
            ],
        )
        .await?;
    if moved != 1 {
        return Err(StoreError::Config(
            "another sequencer moved the log; standing down".into(),
        ));
    }
    transaction.commit().await?;
    at.tree = tree;
    at.log = next;
    metrics::counter!("log_events_sequenced_total").increment(events.len() as u64);
    metrics::gauge!("log_tree_size").set(at.tree.size() as f64);
    Ok(())
}

/// Signs the tree as it is and stores the checkpoint.
async fn sign_checkpoint(
    store: &EventStore,
    key: &LogSigningKey,
    tree: &CompactRange,
) -> Result<(), StoreError> {
    let signed_at = truncate_to_micros(chrono::Utc::now());
    let checkpoint = key.sign(tree.size(), tree.root(), signed_at);
    let signature = checkpoint.signature_bytes().map_err(StoreError::Corrupt)?;
    let client = store.pool().get().await?;
    client
        .execute(
            "INSERT INTO log_checkpoints (tree_size, root_hash, signed_at, key_id, signature) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &(checkpoint.tree_size as i64),
                &tree.root().0.as_slice(),
                &signed_at,
                &checkpoint.key_id,
                &signature,
            ],
        )
        .await?;
    metrics::counter!("log_checkpoints_signed_total").increment(1);
    Ok(())
}
