//! The Merkle tree over the sequenced log, hashed as RFC 9162 (Certificate Transparency 2.0)
//! does: leaf = SHA-256(0x00 ‖ leaf bytes), node = SHA-256(0x01 ‖ left ‖ right), the
//! empty tree's root SHA-256 of nothing.
//!
//! Only *perfect, aligned* subtrees are ever stored ([`NodeId`]: the node at `level` and
//! `index` covers leaves `[index·2^level, (index+1)·2^level)`); they never change once the
//! tree has grown past them. A root or a proof of any size is a fold of O(log n) of them
//! ([`root`], [`inclusion_proof`], [`consistency_proof`]); the functions take the stored
//! nodes through a lookup, and [`nodes_needed`] says which ones to fetch first. The
//! verifying side ([`verify_inclusion`], [`verify_consistency`]) is RFC 9162 §2.1.3.2 and
//! §2.1.4.2 to the letter: every element of a proof is used, and none may be left over.

use sha2::{Digest, Sha256};

use crate::hashchain::Hash;

/// A perfect, aligned subtree of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

impl NodeId {
    /// The number of leaves it covers.
    pub fn width(&self) -> u64 {
        1u64 << self.level
    }
}

/// `SHA-256(0x00 ‖ bytes)`.
pub fn leaf_hash(bytes: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(bytes);
    Hash(hasher.finalize().into())
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left.0);
    hasher.update(right.0);
    Hash(hasher.finalize().into())
}

/// The root of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Hash(Sha256::digest([]).into())
}

/// The largest power of two strictly below `n` (`n > 1`): where RFC 9162 splits a tree.
fn split(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// A lookup of stored perfect subtrees.
pub type Lookup<'a> = dyn FnMut(NodeId) -> Hash + 'a;

/// MTH(D[start .. start + size]); `start` is aligned as RFC 9162's recursion makes it.
fn subtree(start: u64, size: u64, get: &mut Lookup<'_>) -> Hash {
    if size.is_power_of_two() {
        let level = size.trailing_zeros() as u8;
        return get(NodeId {
            level,
            index: start >> level,
        });
    }
    let k = split(size);
    let left = subtree(start, k, get);
    let right = subtree(start + k, size - k, get);
    node_hash(&left, &right)
}

/// The root of the first `size` leaves.
pub fn root(size: u64, get: &mut Lookup<'_>) -> Hash {
    if size == 0 {
        empty_root()
    } else {
        subtree(0, size, get)
    }
}

/// RFC 9162 PATH(index, D[0:size]): the audit path of leaf `index` (0-based,
/// `index < size`), the leaf's sibling first.
pub fn inclusion_proof(index: u64, size: u64, get: &mut Lookup<'_>) -> Vec<Hash> {
    fn path(m: u64, start: u64, n: u64, get: &mut Lookup<'_>, out: &mut Vec<Hash>) {
        if n <= 1 {
            return;
        }
        let k = split(n);
        if m < k {
            path(m, start, k, get, out);
            out.push(subtree(start + k, n - k, get));
        } else {
            path(m - k, start + k, n - k, get, out);
            out.push(subtree(start, k, get));
        }
    }
    let mut out = Vec::new();
    if index < size {
        path(index, 0, size, get, &mut out);
    }
    out
}

/// RFC 9162 PROOF(from, D[0:to]) (`0 < from <= to`): empty when `from == to`.
pub fn consistency_proof(from: u64, to: u64, get: &mut Lookup<'_>) -> Vec<Hash> {
    fn subproof(
        m: u64,
        start: u64,
        n: u64,
        whole: bool,
        get: &mut Lookup<'_>,
        out: &mut Vec<Hash>,
    ) {
        if m == n {
            if !whole {
                out.push(subtree(start, n, get));
            }
            return;
        }
        let k = split(n);
        if m <= k {
            subproof(m, start, k, whole, get, out);
            out.push(subtree(start + k, n - k, get));
        } else {
            subproof(m - k, start + k, n - k, false, get, out);
            out.push(subtree(start, k, get));
        }
    }
    let mut out = Vec::new();
    if 0 < from && from <= to {
        subproof(from, 0, to, true, get, &mut out);
    }
    out
}

/// The stored nodes `compute` looks up (computing with placeholder hashes: which nodes a
/// root or proof needs depends only on the sizes).
pub fn nodes_needed<T>(compute: impl FnOnce(&mut Lookup<'_>) -> T) -> Vec<NodeId> {
    let mut needed = Vec::new();
    compute(&mut |id| {
        needed.push(id);
        Hash::GENESIS
    });
    needed.sort_unstable();
    needed.dedup();
    needed
}

/// RFC 9162 §2.1.3.2: true when `path` proves leaf `index` of the tree of `size` leaves
/// with root `root` has hash `leaf`.
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, path: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// RFC 9162 §2.1.4.2: true when `proof` shows the tree of `to` leaves with root `to_root`
/// extends the tree of `from` leaves with root `from_root`.
pub fn verify_consistency(
    from: u64,
    to: u64,
    from_root: &Hash,
    to_root: &Hash,
    proof: &[Hash],
) -> bool {
    if from == 0 || from > to {
        return false;
    }
    if from == to {
        return proof.is_empty() && from_root == to_root;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if from.is_power_of_two() {
        path.push(*from_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut fnode, mut snode) = (from - 1, to - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    fr == *from_root && sr == *to_root && snode == 0
}

/// The right edge of a growing tree: the perfect subtrees that make up its first `size`
/// leaves, largest first. What the sequencer extends leaf by leaf, and what verifiers fold
/// an export into, in O(log n) memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    nodes: Vec<(NodeId, Hash)>,
}

impl CompactRange {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The perfect subtrees the range of `size` leaves consists of, largest first.
    pub fn node_ids(size: u64) -> Vec<NodeId> {
        let mut ids = Vec::new();
        let mut start = 0u64;
        for level in (0..64u8).rev() {
            let width = 1u64 << level;
            if size & width != 0 {
                ids.push(NodeId {
                    level,
                    index: start >> level,
                });
                start += width;
            }
        }
        ids
    }

    /// The range of `size` leaves from its stored nodes (as [`CompactRange::node_ids`]
    /// lists them).
    pub fn from_nodes(size: u64, get: &mut Lookup<'_>) -> Self {
        let nodes = Self::node_ids(size)
            .into_iter()
            .map(|id| (id, get(id)))
            .collect();
        CompactRange { size, nodes }
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf; returns every perfect subtree completed by it (the leaf itself
    /// first), for storing.
    pub fn push(&mut self, leaf: Hash) -> Vec<(NodeId, Hash)> {
        let mut completed = Vec::with_capacity(2);
        self.push_with(leaf, |id, hash| completed.push((id, hash)));
        completed
    }

    /// Appends a leaf, only to know the roots to come (a verifier's fold).
    pub fn append(&mut self, leaf: Hash) {
        self.push_with(leaf, |_, _| {});
    }

    /// Appends a leaf, handing every perfect subtree it completes to `completed`, the leaf
    /// itself first.
    fn push_with(&mut self, leaf: Hash, mut completed: impl FnMut(NodeId, Hash)) {
        let mut current = (
            NodeId {
                level: 0,
                index: self.size,
            },
            leaf,
        );
        completed(current.0, current.1);
        while let Some(&(left_id, left)) = self.nodes.last() {
            if left_id.level != current.0.level {
                break;
            }
            self.nodes.pop();
            current = (
                NodeId {
                    level: left_id.level + 1,
                    index: left_id.index >> 1,
                },
                node_hash(&left, &current.1),
            );
            completed(current.0, current.1);
        }
        self.nodes.push(current);
        self.size += 1;
    }

    /// The root of the tree so far.
    pub fn root(&self) -> Hash {
        let mut nodes = self.nodes.iter().rev();
        let Some(&(_, last)) = nodes.next() else {
            return empty_root();
        };
        nodes.fold(last, |right, (_, left)| node_hash(left, &right))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A tree of `n` leaves built by the reference recursion of RFC 9162, and every
    /// perfect subtree the compact range stores.
    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    fn reference_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
            }
        }
    }

    fn stored(n: u64) -> HashMap<NodeId, Hash> {
        store(leaves(n))
    }

    fn store(leaves: Vec<Hash>) -> HashMap<NodeId, Hash> {
        let mut range = CompactRange::new();
        let mut nodes = HashMap::new();
        for leaf in leaves {
            nodes.extend(range.push(leaf));
        }
        nodes
    }

    #[test]
    fn roots_agree_with_the_reference_recursion() {
        let all = leaves(70);
        let nodes = stored(70);
        let mut range = CompactRange::new();
        let mut appended = CompactRange::new();
        assert_eq!(range.root(), empty_root());
        for n in 1..=70u64 {
            range.push(all[n as usize - 1]);
            appended.append(all[n as usize - 1]);
            assert_eq!(appended, range, "appended without collecting, size {n}");
            let expected = reference_root(&all[..n as usize]);
            assert_eq!(range.root(), expected, "compact range, size {n}");
            assert_eq!(
                root(n, &mut |id| nodes[&id]),
                expected,
                "stored nodes, size {n}"
            );
            let reloaded = CompactRange::from_nodes(n, &mut |id| nodes[&id]);
            assert_eq!(reloaded.root(), expected, "reloaded range, size {n}");
        }
    }

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(
            empty_root().to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn every_inclusion_proof_verifies_and_a_wrong_one_does_not() {
        let all = leaves(33);
        let nodes = stored(33);
        for size in 1..=33u64 {
            let tree_root = root(size, &mut |id| nodes[&id]);
            for index in 0..size {
                let proof = inclusion_proof(index, size, &mut |id| nodes[&id]);
                let leaf = all[index as usize];
                assert!(verify_inclusion(index, size, &leaf, &proof, &tree_root));
                let other = all[((index + 1) % 33) as usize];
                assert!(!verify_inclusion(index, size, &other, &proof, &tree_root));
                let mut longer = proof.clone();
                longer.push(leaf);
                assert!(!verify_inclusion(index, size, &leaf, &longer, &tree_root));
            }
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_a_rewritten_history_does_not() {
        let nodes = stored(40);
        let mut rewritten = leaves(40);
        rewritten[2] = leaf_hash(b"rewritten");
        let forged = store(rewritten);
        for to in 1..=40u64 {
            let to_root = root(to, &mut |id| nodes[&id]);
            for from in 1..=to {
                let from_root = root(from, &mut |id| nodes[&id]);
                let proof = consistency_proof(from, to, &mut |id| nodes[&id]);
                assert!(
                    verify_consistency(from, to, &from_root, &to_root, &proof),
                    "{from} -> {to}"
                );
                if from < to {
                    let mut short = proof.clone();
                    short.pop();
                    assert!(!verify_consistency(from, to, &from_root, &to_root, &short));
                    let mut long = proof.clone();
                    long.push(to_root);
                    assert!(!verify_consistency(from, to, &from_root, &to_root, &long));
                }
                if from > 2 {
                    // A server that rewrote leaf 2 cannot prove its new tree extends the old.
                    let forged_root = root(to, &mut |id| forged[&id]);
                    let forged_proof = consistency_proof(from, to, &mut |id| forged[&id]);
                    assert!(!verify_consistency(
                        from,
                        to,
                        &from_root,
                        &forged_root,
                        &forged_proof
                    ));
                }
            }
        }
    }

    #[test]
    fn proofs_need_logarithmically_many_nodes() {
        let size = 1_000_000u64;
        let needed = nodes_needed(|get| consistency_proof(333_333, size, get));
        assert!(needed.len() <= 2 * 20, "{}", needed.len());
        let needed = nodes_needed(|get| inclusion_proof(777_777, size, get));
        assert!(needed.len() <= 2 * 20, "{}", needed.len());
        assert_eq!(
            nodes_needed(|get| root(size, get)).len(),
            size.count_ones() as usize
        );
    }
}
