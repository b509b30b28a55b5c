//! The JSON report of a verification, the shape of `GET /v1/audit/verify`:
//! `{"ok", "streams_checked", "events_checked", "failures": [{"stream_id", "version", "reason"}],
//! "tree_size", "root_hash", "consistency_proof"}` (the last three when the tree was checked).

use eventstore::logverify::{TreeFailure, TreeOutcome};
use eventstore::{ChainFailure, Hash, VerifyReport};
use serde::Serialize;
use uuid::Uuid;

/// One event that breaks its stream's chain. `stream_id` and `version` are `null` only for
/// an export line too damaged to say which event it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub stream_id: Option<Uuid>,
    pub version: Option<i64>,
    pub reason: String,
}

impl From<ChainFailure> for Failure {
    fn from(failure: ChainFailure) -> Self {
        Failure {
            stream_id: Some(failure.stream_id),
            version: Some(failure.version),
            reason: failure.reason,
        }
    }
}

impl From<TreeFailure> for Failure {
    fn from(failure: TreeFailure) -> Self {
        Failure {
            stream_id: failure.stream_id,
            version: failure.version,
            reason: failure.reason,
        }
    }
}

/// The outcome of a verification, as printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub ok: bool,
    pub streams_checked: u64,
    pub events_checked: u64,
    pub failures: Vec<Failure>,
    /// The sequenced events, when the Merkle tree was checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tree_size: Option<u64>,
    /// The Merkle root recomputed from them (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_hash: Option<String>,
    /// The checked consistency proof from the kept checkpoint to `tree_size` (live store).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency_proof: Option<Vec<String>>,
}

impl Report {
    /// Adds what a pass over the Merkle tree found.
    pub fn add_tree(&mut self, tree: TreeOutcome, consistency_proof: Option<Vec<Hash>>) {
        self.failures
            .extend(tree.failures.into_iter().map(Failure::from));
        self.ok = self.failures.is_empty();
        self.tree_size = Some(tree.tree_size);
        self.root_hash = Some(tree.root.to_hex());
        self.consistency_proof =
            consistency_proof.map(|proof| proof.iter().map(Hash::to_hex).collect());
    }
}

impl From<VerifyReport> for Report {
    fn from(report: VerifyReport) -> Self {
        Report {
            ok: report.ok(),
            streams_checked: report.streams_checked,
            events_checked: report.events_checked,
            failures: report.failures.into_iter().map(Failure::from).collect(),
            tree_size: None,
            root_hash: None,
            consistency_proof: None,
        }
    }
}
