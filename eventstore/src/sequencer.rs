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
//!
//! The signer trusts nothing in the database it did not compute. Its baseline is the largest
//! checkpoint it can prove it signed: the state file beside the key (written after every
//! signature) or a stored checkpoint whose signature verifies with its own key. On every
//! start it checks the stored tree against that baseline (the stored nodes of the baseline's
//! size must give its root, and every leaf after it is recomputed from the event it claims),
//! and that no node or sequence number lies beyond the stored size. A stored tree shorter
//! than the baseline (after `agora audit rebuild-tree`) is re-sequenced from the events, and
//! nothing is signed until it passes the baseline's size with the baseline's root. On any
//! mismatch it stops sequencing and signing ([`SequencerStatus`], the `log_signer_halted`
//! gauge) and the last good checkpoint stays the newest one served.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::checkpoint::{Checkpoint, LogSigningKey};
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
    /// Where the signer keeps its last signed checkpoint, outside the database (by default
    /// beside the key file: [`state_file_beside`]); none: only the stored checkpoints whose
    /// signature verifies are its baseline.
    pub state_file: Option<PathBuf>,
    /// How long a halted signer waits before it checks the stored tree again.
    pub halted_retry: Duration,
    /// What the sequencer reports (readiness detail).
    pub status: SequencerStatus,
}

/// The signer's state file beside its key: `<key file>.checkpoint.json`.
pub fn state_file_beside(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".checkpoint.json");
    PathBuf::from(name)
}

/// Whether the sequencer found the stored tree to be what it computed; shared with the
/// readiness endpoint.
#[derive(Debug, Clone, Default)]
pub struct SequencerStatus(Arc<Mutex<Option<String>>>);

impl SequencerStatus {
    /// Why sequencing and signing stopped, if they did.
    pub fn halted(&self) -> Option<String> {
        self.0.lock().map(|reason| reason.clone()).unwrap_or(None)
    }

    fn set(&self, reason: Option<String>) {
        metrics::gauge!("log_signer_halted").set(if reason.is_some() { 1.0 } else { 0.0 });
        if let Ok(mut held) = self.0.lock() {
            *held = reason;
        }
    }
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
            state_file: None,
            halted_retry: Duration::from_secs(5),
            status: SequencerStatus::default(),
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
        let mut retry = config.standby_retry;
        match lead_while_possible(&config, &store, &mut shutdown).await {
            Ok(()) => {}
            Err(Interrupted::Store(error)) => {
                tracing::warn!(%error, "sequencer interrupted; retrying");
            }
            Err(Interrupted::Tampered(reason)) => {
                tracing::error!(
                    %reason,
                    "the stored Merkle tree is not what the signer computed: sequencing and \
                     signing stopped (recover with `agora audit rebuild-tree`)"
                );
                config.status.set(Some(reason));
                retry = config.halted_retry;
            }
        }
        metrics::gauge!("sequencer_leader").set(0.0);
        tokio::select! {
            _ = tokio::time::sleep(retry) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Why a leader stopped.
enum Interrupted {
    /// The database failed (or another sequencer moved on): retry soon.
    Store(StoreError),
    /// The stored tree is not what the events and the signed baseline say: halt.
    Tampered(String),
}

impl From<StoreError> for Interrupted {
    fn from(error: StoreError) -> Self {
        Interrupted::Store(error)
    }
}

impl From<tokio_postgres::Error> for Interrupted {
    fn from(error: tokio_postgres::Error) -> Self {
        Interrupted::Store(StoreError::Database(error))
    }
}

/// A tree the signer signed: its size and root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Signed {
    size: u64,
    root: Hash,
}

/// Where the sequencer stands.
struct Position {
    log: LogCheckpoint,
    tree: CompactRange,
    signed_size: u64,
    signed_at: Option<Instant>,
    /// A signed tree larger than the stored one: nothing is signed until the tree has grown
    /// through it with its root.
    pending: Option<Signed>,
}

async fn lead_while_possible(
    config: &SequencerConfig,
    store: &EventStore,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), Interrupted> {
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
    let mut at = resume(store, config).await?;
    config.status.set(None);
    while !*shutdown.borrow() {
        if listener.is_closed() {
            return Err(StoreError::Unavailable("the sequencer's session ended".into()).into());
        }
        let events = store.read_log(at.log, config.batch_size).await?;
        if !events.is_empty() {
            sequence_batch(store, &mut at, &events).await?;
        }
        if let Some(key) = &config.signing_key {
            let due = at
                .signed_at
                .is_none_or(|signed| signed.elapsed() >= config.checkpoint_interval);
            if due && at.pending.is_none() && at.tree.size() > at.signed_size {
                let checkpoint = sign_checkpoint(store, key, &at.tree).await?;
                if let Some(path) = &config.state_file {
                    save_state(path, &checkpoint);
                }
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

/// Loads where the last leader stopped, registers the signing key's public half and, with
/// a key, proves the stored tree extends the signer's baseline.
async fn resume(store: &EventStore, config: &SequencerConfig) -> Result<Position, Interrupted> {
    let client = store.pool().get().await.map_err(StoreError::from)?;
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
    let tree = stored_range(store, size).await?;
    let mut signed_size = 0;
    let mut pending = None;
    if let Some(key) = &config.signing_key {
        let public = key.public_key();
        client
            .execute(
                "INSERT INTO log_signing_keys (key_id, public_key) VALUES ($1, $2) \
                 ON CONFLICT (key_id) DO NOTHING",
                &[&public.key_id(), &public.0.as_bytes().as_slice()],
            )
            .await?;
        let baseline = baseline(store, key, config.state_file.as_deref()).await?;
        check_stored_tree(store, &tree, log, baseline).await?;
        if let Some(signed) = baseline {
            signed_size = signed.size;
            if signed.size > size {
                pending = Some(signed);
            }
        }
    }
    metrics::gauge!("log_tree_size").set(size as f64);
    Ok(Position {
        log,
        tree,
        signed_size,
        signed_at: None,
        pending,
    })
}

/// The stored compact range of the first `size` leaves.
async fn stored_range(store: &EventStore, size: u64) -> Result<CompactRange, Interrupted> {
    let nodes = store.fetch_nodes(&CompactRange::node_ids(size)).await?;
    let mut missing = None;
    let tree = CompactRange::from_nodes(size, &mut |id| {
        nodes.get(&id).copied().unwrap_or_else(|| {
            missing.get_or_insert(id);
            Hash::GENESIS
        })
    });
    match missing {
        None => Ok(tree),
        Some(id) => Err(Interrupted::Tampered(format!(
            "the Merkle tree of {size} leaves has no node at level {} index {}",
            id.level, id.index
        ))),
    }
}

/// The largest tree this key provably signed: the state file's checkpoint or a stored one,
/// each only if its signature verifies with the key.
async fn baseline(
    store: &EventStore,
    key: &LogSigningKey,
    state_file: Option<&Path>,
) -> Result<Option<Signed>, Interrupted> {
    let public = key.public_key();
    let mut best: Option<Signed> = None;
    let mut signed_at = None;
    let mut consider = |checkpoint: &Checkpoint| {
        if checkpoint.verify(&public).is_err() {
            return;
        }
        if let Ok(root) = checkpoint.root() {
            if best.is_none_or(|b| checkpoint.tree_size > b.size) {
                best = Some(Signed {
                    size: checkpoint.tree_size,
                    root,
                });
                signed_at = chrono::DateTime::parse_from_rfc3339(&checkpoint.timestamp).ok();
            }
        }
    };
    if let Some(path) = state_file {
        match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice::<Checkpoint>(&bytes) {
                Ok(checkpoint) => consider(&checkpoint),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "the signer's state file is unreadable")
                }
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot read the signer's state file")
            }
        }
    }
    for checkpoint in store.checkpoints_of_key(&public.key_id(), 16).await? {
        consider(&checkpoint);
    }
    if let Some(signed) = best {
        metrics::gauge!("log_signed_tree_size").set(signed.size as f64);
    }
    if let Some(at) = signed_at {
        metrics::gauge!("log_checkpoint_signed_timestamp_seconds").set(at.timestamp() as f64);
    }
    Ok(best)
}

/// Proves the stored tree of `tree.size()` leaves at log position `log` is the tree of the
/// sequenced events and extends `baseline`; the error names the first difference.
async fn check_stored_tree(
    store: &EventStore,
    tree: &CompactRange,
    log: LogCheckpoint,
    baseline: Option<Signed>,
) -> Result<(), Interrupted> {
    let size = tree.size();
    let mut computed = match baseline {
        Some(signed) if signed.size <= size => {
            let prefix = stored_range(store, signed.size).await?;
            if prefix.root() != signed.root {
                return Err(Interrupted::Tampered(format!(
                    "the stored tree's first {} leaves do not have the root signed for that size",
                    signed.size
                )));
            }
            prefix
        }
        _ => CompactRange::new(),
    };
    let mut last = None;
    while computed.size() < size {
        let wanted = (size - computed.size()).min(5000) as i64;
        let events = store.read_sequenced(computed.size() as i64, wanted).await?;
        if events.is_empty() {
            return Err(Interrupted::Tampered(format!(
                "the stored tree has {size} leaves, but no event is sequenced as {}",
                computed.size() + 1
            )));
        }
        for event in events {
            if event.sequence != Some(computed.size() as i64 + 1) {
                return Err(Interrupted::Tampered(format!(
                    "no event is sequenced as {}",
                    computed.size() + 1
                )));
            }
            computed.append(leaf_hash(&leaf_bytes(&event).map_err(StoreError::from)?));
            last = Some(event);
        }
    }
    if computed.root() != tree.root() {
        return Err(Interrupted::Tampered(format!(
            "the stored tree of {size} leaves is not the tree of the sequenced events"
        )));
    }
    if let Some(event) = last {
        if LogCheckpoint::after(&event) != log {
            return Err(Interrupted::Tampered(
                "the sequencer's log position is not after the last sequenced event".into(),
            ));
        }
    }
    if let Some(beyond) = store.tree_rows_beyond(size).await? {
        return Err(Interrupted::Tampered(format!(
            "{beyond} lies beyond the stored tree of {size} leaves"
        )));
    }
    Ok(())
}

/// Keeps `checkpoint` as the signer's baseline outside the database (a new file renamed
/// over the old one); a failure is logged, the stored checkpoints still count.
fn save_state(path: &Path, checkpoint: &Checkpoint) {
    let write = || -> std::io::Result<()> {
        let json = serde_json::to_vec(checkpoint).map_err(std::io::Error::other)?;
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".tmp");
        std::fs::write(&temporary, json)?;
        std::fs::rename(&temporary, path)
    };
    if let Err(error) = write() {
        tracing::warn!(path = %path.display(), %error, "cannot save the signer's state file");
    }
}

/// Sequences `events` (the next ones in log order) in one transaction.
async fn sequence_batch(
    store: &EventStore,
    at: &mut Position,
    events: &[RecordedEvent],
) -> Result<(), Interrupted> {
    let start_size = at.tree.size();
    let mut tree = at.tree.clone();
    let mut positions = Vec::with_capacity(events.len());
    let mut sequences = Vec::with_capacity(events.len());
    let (mut levels, mut indexes, mut hashes) = (Vec::new(), Vec::new(), Vec::new());
    let mut pending = at.pending;
    for event in events {
        let leaf = leaf_hash(&leaf_bytes(event).map_err(StoreError::from)?);
        for (NodeId { level, index }, hash) in tree.push(leaf) {
            levels.push(i16::from(level));
            indexes.push(index as i64);
            hashes.push(hash.0.to_vec());
        }
        if let Some(signed) = pending.filter(|signed| signed.size == tree.size()) {
            if tree.root() != signed.root {
                return Err(Interrupted::Tampered(format!(
                    "the events' tree of {} leaves does not have the root signed for that size",
                    signed.size
                )));
            }
            pending = None;
        }
        positions.push(event.position);
        sequences.push(tree.size() as i64);
    }
    let next = events.last().map(LogCheckpoint::after).unwrap_or(at.log);
    let mut client = store.pool().get().await.map_err(StoreError::from)?;
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
        return Err(
            StoreError::Config("another sequencer moved the log; standing down".into()).into(),
        );
    }
    transaction.commit().await?;
    at.tree = tree;
    at.pending = pending;
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
) -> Result<Checkpoint, StoreError> {
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
    metrics::gauge!("log_signed_tree_size").set(checkpoint.tree_size as f64);
    metrics::gauge!("log_checkpoint_signed_timestamp_seconds").set(signed_at.timestamp() as f64);
    Ok(checkpoint)
}

/// How long [`rebuild_tree`] waits for the sequencer's lock.
const REBUILD_LOCK_WAIT: Duration = Duration::from_secs(90);

/// Recovery after the signer halted: throws the stored sequence and tree away (as the
/// tables' owner, switching their append-only triggers off for this one transaction) so
/// the active sequencer re-sequences the log from its first event and recomputes every node.
/// Nothing is signed again until the recomputed tree reaches the last signed checkpoint with
/// its root: a log whose events were changed stays halted. Waits (up to 90 s) for the
/// sequencer's lock, which a halted sequencer releases between its checks.
pub async fn rebuild_tree(database_url: &str) -> Result<(), StoreError> {
    let listener = LogListener::connect(database_url).await?;
    let client = listener.client();
    let deadline = Instant::now() + REBUILD_LOCK_WAIT;
    loop {
        let row = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&SEQUENCER_LOCK_KEY])
            .await?;
        if row.try_get::<_, bool>(0)? {
            break;
        }
        if Instant::now() >= deadline {
            return Err(StoreError::Config(
                "an active sequencer holds the log; stop it (or wait until it halts) first".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    client
        .batch_execute(
            "BEGIN; \
             ALTER TABLE merkle_nodes DISABLE TRIGGER USER; \
             ALTER TABLE event_sequence DISABLE TRIGGER USER; \
             TRUNCATE merkle_nodes, event_sequence; \
             ALTER TABLE merkle_nodes ENABLE TRIGGER USER; \
             ALTER TABLE event_sequence ENABLE TRIGGER USER; \
             UPDATE log_sequencer SET transaction_id = 0, position = 0, tree_size = 0, \
                    updated_at = now(); \
             COMMIT;",
        )
        .await?;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&SEQUENCER_LOCK_KEY])
        .await?;
    Ok(())
}
