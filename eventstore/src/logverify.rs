//! Verifying the sequenced log as a Merkle tree, against checkpoints an auditor kept.
//!
//! [`TreeVerifier`] is fed the events in sequence order (from the store, or the lines of an
//! export) and checks that the sequence is dense (1, 2, 3, ...), recomputes every leaf from
//! the event as stored, compares it with the leaf the stored tree recorded (when known),
//! folds the leaves into the tree, and compares the root at each expected size (a kept
//! checkpoint, the newest stored checkpoint) with the signed one. Each difference is a
//! [`TreeFailure`] that names the event, or the sizes and roots, concerned.
//!
//! [`EventStore::verify_log`] runs it over the live store and adds what only the store has:
//! the signatures (with the log's key), the stored tree's own root, and the RFC 9162
//! consistency proof from the kept checkpoint to the current tree, checked as an auditor
//! holding only the checkpoint would.

use std::fmt;

use futures::{pin_mut, TryStreamExt};
use serde::Serialize;
use uuid::Uuid;

use crate::checkpoint::{Checkpoint, PublicKey};
use crate::envelope::leaf_bytes;
use crate::error::StoreError;
use crate::event::RecordedEvent;
use crate::hashchain::Hash;
use crate::merkle::{self, leaf_hash, CompactRange};
use crate::row::{decode_event, EVENT_COLUMNS, EVENT_COLUMN_COUNT, SEQUENCED_EVENTS};
use crate::EventStore;

/// One difference between the log and what it should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TreeFailure {
    pub stream_id: Option<Uuid>,
    pub version: Option<i64>,
    pub reason: String,
}

impl TreeFailure {
    fn of_log(reason: String) -> Self {
        TreeFailure {
            stream_id: None,
            version: None,
            reason,
        }
    }
}

/// A root the tree must have at a size.
#[derive(Debug, Clone)]
struct Expected {
    size: u64,
    root: Hash,
    what: String,
}

/// Checks events fed in sequence order; see the module documentation.
#[derive(Debug)]
pub struct TreeVerifier {
    expected: Vec<Expected>,
    tree: CompactRange,
    next_sequence: i64,
    unsequenced: u64,
    failures: Vec<TreeFailure>,
}

/// What a pass over the log found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeOutcome {
    /// The sequenced events seen.
    pub tree_size: u64,
    /// The root recomputed from them.
    pub root: Hash,
    /// Events without a sequence yet (committed after the sequencer's last batch).
    pub unsequenced: u64,
    pub failures: Vec<TreeFailure>,
}

impl Default for TreeVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl TreeVerifier {
    /// A verifier of a log whose first sequence is 1.
    pub fn new() -> Self {
        TreeVerifier {
            expected: Vec::new(),
            tree: CompactRange::new(),
            next_sequence: 1,
            unsequenced: 0,
            failures: Vec::new(),
        }
    }

    /// Requires the root of the first `checkpoint.tree_size` events to be the checkpoint's.
    pub fn expect(&mut self, checkpoint: &Checkpoint, what: &str) -> Result<(), String> {
        let root = checkpoint.root()?;
        self.expected.push(Expected {
            size: checkpoint.tree_size,
            root,
            what: what.to_owned(),
        });
        Ok(())
    }

    /// Feeds the next event. `stored_leaf` is the leaf the stored tree recorded for it
    /// (live store only); `label` prefixes failures (an export's `line N`).
    pub fn check(&mut self, event: &RecordedEvent, stored_leaf: Option<Hash>, label: &str) {
        let leaf = leaf_bytes(event)
            .map(|bytes| leaf_hash(&bytes))
            .map_err(|error| format!("cannot canonicalize the event: {error}"));
        self.check_leaf(
            event.stream_id,
            event.version,
            event.sequence,
            leaf,
            stored_leaf,
            &label,
        );
    }

    /// Feeds the next event as its leaf hash, computed by the caller from the event as
    /// stored (or why it could not be); `label` prefixes failures, formatted only then.
    pub fn check_leaf(
        &mut self,
        stream_id: Uuid,
        version: i64,
        sequence: Option<i64>,
        leaf: Result<Hash, String>,
        stored_leaf: Option<Hash>,
        label: &dyn fmt::Display,
    ) {
        let fail = |reason: String| TreeFailure {
            stream_id: Some(stream_id),
            version: Some(version),
            reason: format!("{label}{reason}"),
        };
        let Some(sequence) = sequence else {
            self.unsequenced += 1;
            return;
        };
        if self.unsequenced > 0 {
            self.failures.push(fail(format!(
                "sequence {sequence} comes after an event without a sequence"
            )));
        }
        if sequence > self.next_sequence {
            self.failures.push(fail(format!(
                "sequence jumps from {} to {sequence}: {} event(s) with sequence {}..={} are \
                 missing",
                self.next_sequence - 1,
                sequence - self.next_sequence,
                self.next_sequence,
                sequence - 1
            )));
            self.next_sequence = sequence + 1;
        } else if sequence < self.next_sequence {
            self.failures.push(fail(format!(
                "sequence {sequence} is out of order (expected {})",
                self.next_sequence
            )));
        } else {
            self.next_sequence += 1;
        }
        let leaf = match leaf {
            Ok(leaf) => leaf,
            Err(reason) => {
                self.failures.push(fail(reason));
                return;
            }
        };
        if let Some(stored) = stored_leaf.filter(|stored| *stored != leaf) {
            self.failures.push(fail(format!(
                "sequence {sequence}: the event as stored hashes to leaf {leaf}, but the tree \
                 recorded leaf {stored}: the event was changed after it was sequenced"
            )));
        }
        self.tree.append(leaf);
        self.compare_roots();
    }

    /// Records a row or line that could not be read as an event.
    pub fn unreadable(&mut self, stream_id: Option<Uuid>, version: Option<i64>, reason: String) {
        self.failures.push(TreeFailure {
            stream_id,
            version,
            reason,
        });
    }

    fn compare_roots(&mut self) {
        let size = self.tree.size();
        if !self.expected.iter().any(|e| e.size == size) {
            return;
        }
        let root = self.tree.root();
        for expected in self.expected.iter().filter(|e| e.size == size) {
            if expected.root != root {
                self.failures.push(TreeFailure::of_log(format!(
                    "the first {size} events hash to root {root}, but {} signed root {}: \
                     the log it covers was changed",
                    expected.what, expected.root
                )));
            }
        }
    }

    /// The outcome, after the last event.
    pub fn finish(mut self) -> TreeOutcome {
        let size = self.tree.size();
        for expected in self.expected.iter().filter(|e| e.size > size) {
            self.failures.push(TreeFailure::of_log(format!(
                "the log has {size} sequenced events, but {} covers {}: the events with \
                 sequence {}..={} are gone",
                expected.what,
                expected.size,
                size + 1,
                expected.size
            )));
        }
        TreeOutcome {
            tree_size: size,
            root: self.tree.root(),
            unsequenced: self.unsequenced,
            failures: self.failures,
        }
    }
}

/// The outcome of [`EventStore::verify_log`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogVerification {
    pub tree: TreeOutcome,
    /// The consistency proof from the kept checkpoint to the current tree, when one was
    /// kept and the log still reaches it.
    pub consistency_proof: Option<Vec<Hash>>,
}

impl EventStore {
    /// Verifies the live log as a Merkle tree: against `kept` (an auditor's checkpoint, whose
    /// signature must verify with `key`, or when none is given the log's published key), the
    /// newest stored checkpoint, and the stored tree itself.
    pub async fn verify_log(
        &self,
        kept: Option<&Checkpoint>,
        key: Option<PublicKey>,
    ) -> Result<LogVerification, StoreError> {
        let mut verifier = TreeVerifier::new();
        let key = match key {
            Some(key) => Some(key),
            None => self.published_key().await?,
        };
        let latest = self.latest_checkpoint().await?;
        for (checkpoint, what) in [
            (kept, "the kept checkpoint"),
            (latest.as_ref(), "the newest stored checkpoint"),
        ] {
            let Some(checkpoint) = checkpoint else {
                continue;
            };
            let signed = match &key {
                Some(key) => checkpoint.verify(key),
                None => Err("the log has no published key to verify it with".to_owned()),
            };
            if let Err(reason) = signed {
                verifier.unreadable(
                    None,
                    None,
                    format!("{what} (tree size {}): {reason}", checkpoint.tree_size),
                );
            }
            if let Err(reason) = verifier.expect(checkpoint, what) {
                verifier.unreadable(None, None, format!("{what}: {reason}"));
            }
        }
        {
            let client = self.pool.get().await?;
            let sql = format!(
                "SELECT {EVENT_COLUMNS}, sequence, \
                 (SELECT hash FROM merkle_nodes n \
                  WHERE n.level = 0 AND n.idx = event_sequence.sequence - 1) \
                 FROM {SEQUENCED_EVENTS} ORDER BY sequence"
            );
            let rows = client.query_raw(&sql, std::iter::empty::<i64>()).await?;
            pin_mut!(rows);
            while let Some(row) = rows.try_next().await? {
                let sequence: i64 = row.try_get(EVENT_COLUMN_COUNT)?;
                let stored_leaf = row
                    .try_get::<_, Option<&[u8]>>(EVENT_COLUMN_COUNT + 1)?
                    .and_then(Hash::from_slice);
                match decode_event(&row) {
                    Ok(mut event) => {
                        event.sequence = Some(sequence);
                        verifier.check(&event, stored_leaf, "")
                    }
                    Err(error) => verifier.unreadable(
                        row.try_get(4).ok(),
                        row.try_get(5).ok(),
                        error.to_string(),
                    ),
                }
            }
        }
        let mut tree = verifier.finish();
        let stored_size = self.tree_size().await?;
        if stored_size != tree.tree_size {
            tree.failures.push(TreeFailure::of_log(format!(
                "the sequencer records a tree of {stored_size} events, but {} events carry a \
                 sequence",
                tree.tree_size
            )));
            return Ok(LogVerification {
                tree,
                consistency_proof: None,
            });
        }
        let stored_root = self.tree_root(stored_size).await;
        match &stored_root {
            Ok(root) if *root == tree.root => {}
            Ok(root) => tree.failures.push(TreeFailure::of_log(format!(
                "the stored tree's root {root} is not the root {} of the events as stored",
                tree.root
            ))),
            Err(error) => tree.failures.push(TreeFailure::of_log(error.to_string())),
        }
        let mut consistency_proof = None;
        if let (Some(kept), Ok(stored_root)) = (kept, stored_root) {
            if kept.tree_size > 0 && kept.tree_size <= stored_size {
                let proof = self.consistency_proof(kept.tree_size, stored_size).await?;
                let proven = kept.root().is_ok_and(|kept_root| {
                    merkle::verify_consistency(
                        kept.tree_size,
                        stored_size,
                        &kept_root,
                        &stored_root,
                        &proof,
                    )
                });
                if !proven {
                    tree.failures.push(TreeFailure::of_log(format!(
                        "the stored tree of {stored_size} events cannot prove it extends the \
                         kept checkpoint of {} events (RFC 9162 consistency proof fails)",
                        kept.tree_size
                    )));
                }
                consistency_proof = Some(proof);
            }
        }
        Ok(LogVerification {
            tree,
            consistency_proof,
        })
    }
}
