//! The stored Merkle tree of the verifiable log, read: its size, roots, inclusion and
//! consistency proofs (each one query for the O(log n) stored nodes it needs), the signed
//! checkpoints and the published public key. The sequencer ([`crate::sequencer`]) writes
//! all of it.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use crate::checkpoint::{Checkpoint, PublicKey};
use crate::error::StoreError;
use crate::hashchain::{format_timestamp, Hash};
use crate::merkle::{self, Lookup, NodeId};
use crate::EventStore;

/// An inclusion proof: the leaf's hash and its audit path (RFC 9162).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    pub leaf_hash: Hash,
    pub audit_path: Vec<Hash>,
}

impl EventStore {
    /// The number of sequenced events: the tree's size.
    pub async fn tree_size(&self) -> Result<u64, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one("SELECT tree_size FROM log_sequencer", &[])
            .await?;
        Ok(row.try_get::<_, i64>(0)?.max(0) as u64)
    }

    /// Fetches the stored nodes `compute` needs, then runs it on them.
    async fn with_nodes<T>(&self, compute: impl Fn(&mut Lookup<'_>) -> T) -> Result<T, StoreError> {
        let needed = merkle::nodes_needed(&compute);
        let nodes = self.fetch_nodes(&needed).await?;
        let mut missing = None;
        let value = compute(&mut |id| match nodes.get(&id) {
            Some(hash) => *hash,
            None => {
                missing.get_or_insert(id);
                Hash::GENESIS
            }
        });
        match missing {
            None => Ok(value),
            Some(id) => Err(StoreError::Corrupt(format!(
                "the Merkle tree has no node at level {} index {}",
                id.level, id.index
            ))),
        }
    }

    /// The stored nodes `ids`, in one query.
    pub async fn fetch_nodes(&self, ids: &[NodeId]) -> Result<HashMap<NodeId, Hash>, StoreError> {
        let client = self.pool.get().await?;
        let levels: Vec<i16> = ids.iter().map(|id| i16::from(id.level)).collect();
        let indexes: Vec<i64> = ids.iter().map(|id| id.index as i64).collect();
        let statement = client
            .prepare_cached(
                "SELECT n.level, n.idx, n.hash FROM merkle_nodes n \
                 JOIN unnest($1::smallint[], $2::bigint[]) AS w(level, idx) \
                   ON n.level = w.level AND n.idx = w.idx",
            )
            .await?;
        let rows = client.query(&statement, &[&levels, &indexes]).await?;
        let mut nodes = HashMap::with_capacity(rows.len());
        for row in rows {
            let level: i16 = row.try_get(0)?;
            let index: i64 = row.try_get(1)?;
            let bytes: &[u8] = row.try_get(2)?;
            let hash = Hash::from_slice(bytes).ok_or_else(|| {
                StoreError::Corrupt(format!("tree node {level}/{index} is not 32 bytes"))
            })?;
            nodes.insert(
                NodeId {
                    level: level as u8,
                    index: index as u64,
                },
                hash,
            );
        }
        Ok(nodes)
    }

    /// The root of the first `size` sequenced events (`size` at most the tree's size).
    pub async fn tree_root(&self, size: u64) -> Result<Hash, StoreError> {
        self.with_nodes(|get| merkle::root(size, get)).await
    }

    /// The inclusion proof of the event with `sequence` (1-based) in the tree of
    /// `tree_size` leaves (`sequence <= tree_size <=` the tree's size).
    pub async fn inclusion_proof(
        &self,
        sequence: u64,
        tree_size: u64,
    ) -> Result<InclusionProof, StoreError> {
        let index = sequence.saturating_sub(1);
        let (leaf_hash, audit_path) = self
            .with_nodes(|get| {
                let leaf = get(NodeId { level: 0, index });
                (leaf, merkle::inclusion_proof(index, tree_size, get))
            })
            .await?;
        Ok(InclusionProof {
            leaf_hash,
            audit_path,
        })
    }

    /// The consistency proof from the tree of `from` leaves to the tree of `to`
    /// (`0 < from <= to <=` the tree's size).
    pub async fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, StoreError> {
        self.with_nodes(|get| merkle::consistency_proof(from, to, get))
            .await
    }

    /// The newest signed checkpoint, if one was made.
    pub async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT tree_size, root_hash, signed_at, key_id, signature FROM log_checkpoints \
                 ORDER BY id DESC LIMIT 1",
                &[],
            )
            .await?;
        row.as_ref().map(checkpoint_of_row).transpose()
    }

    /// The newest `limit` stored checkpoints that name `key_id`, largest tree first (their
    /// signatures unchecked: the signer checks them against its key).
    pub async fn checkpoints_of_key(
        &self,
        key_id: &str,
        limit: i64,
    ) -> Result<Vec<Checkpoint>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT tree_size, root_hash, signed_at, key_id, signature FROM log_checkpoints \
                 WHERE key_id = $1 ORDER BY tree_size DESC, id DESC LIMIT $2",
                &[&key_id, &limit],
            )
            .await?;
        rows.iter().map(checkpoint_of_row).collect()
    }

    /// A tree node or sequence number stored beyond the tree of `size` leaves, named, if
    /// there is one (the sequencer writes none: a forged row). One index probe per level.
    pub async fn tree_rows_beyond(&self, size: u64) -> Result<Option<String>, StoreError> {
        let client = self.pool.get().await?;
        let levels: Vec<i16> = (0..63).collect();
        let first_beyond: Vec<i64> = (0..63u32).map(|level| (size >> level) as i64).collect();
        let node = client
            .query_opt(
                "SELECT n.level, n.idx FROM unnest($1::smallint[], $2::bigint[]) AS w(level, idx) \
                 JOIN LATERAL (SELECT level, idx FROM merkle_nodes m \
                               WHERE m.level = w.level AND m.idx >= w.idx LIMIT 1) n ON true \
                 LIMIT 1",
                &[&levels, &first_beyond],
            )
            .await?;
        if let Some(row) = node {
            let level: i16 = row.try_get(0)?;
            let index: i64 = row.try_get(1)?;
            return Ok(Some(format!("a tree node at level {level} index {index}")));
        }
        let sequence = client
            .query_opt(
                "SELECT sequence FROM event_sequence WHERE sequence > $1 ORDER BY sequence LIMIT 1",
                &[&(size as i64)],
            )
            .await?;
        match sequence {
            Some(row) => Ok(Some(format!(
                "sequence number {}",
                row.try_get::<_, i64>(0)?
            ))),
            None => Ok(None),
        }
    }

    /// The log's published public key: the one that signed the newest checkpoint.
    pub async fn published_key(&self) -> Result<Option<PublicKey>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT k.public_key FROM log_signing_keys k \
                 LEFT JOIN LATERAL (SELECT max(id) AS last FROM log_checkpoints c \
                                    WHERE c.key_id = k.key_id) c ON true \
                 ORDER BY c.last DESC NULLS LAST, k.first_used DESC LIMIT 1",
                &[],
            )
            .await?;
        row.map(|row| {
            let bytes: &[u8] = row.try_get(0)?;
            PublicKey::from_bytes(bytes).map_err(StoreError::Corrupt)
        })
        .transpose()
    }
}

/// A `log_checkpoints` row (`tree_size, root_hash, signed_at, key_id, signature`).
fn checkpoint_of_row(row: &tokio_postgres::Row) -> Result<Checkpoint, StoreError> {
    let root: &[u8] = row.try_get(1)?;
    let signature: &[u8] = row.try_get(4)?;
    Ok(Checkpoint {
        tree_size: row.try_get::<_, i64>(0)?.max(0) as u64,
        root_hash: hex::encode(root),
        timestamp: format_timestamp(row.try_get(2)?),
        key_id: row.try_get(3)?,
        signature: BASE64.encode(signature),
    })
}
