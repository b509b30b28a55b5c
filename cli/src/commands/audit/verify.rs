//! `agora audit verify`: recomputes the hash chain of the live store (`--database-url`) or
//! of an export file (`--file`, `-` for stdin) and prints the report of
//! `GET /v1/audit/verify`. Exit code 0 when every event chains correctly, 1 when not, 2 when
//! the verification could not run.
//!
//! An export is in log order, where streams interleave, so the file check keeps the last
//! `(version, hash)` of every stream and checks each event against its stream's: version
//! one more, `prev_hash` equal to the previous hash (32 zero bytes for version 1), and `hash`
//! equal to the recomputed `SHA-256(prev_hash || JCS(document))`. Each stream's first
//! failure is reported; a line that is not an envelope is a failure naming its line number.
//! The lines are hashed on one thread per core (each line's hashes depend on the line
//! alone, [`exportline::read_line`]) and folded in order on this one, so a file or a pipe
//! from `agora audit export --out -` is verified at the speed of the cores, read once.
//!
//! Without `--stream-id` it also checks the verifiable log: the sequence is dense, every
//! leaf recomputed from the event as stored, the Merkle root folded from them; with
//! `--checkpoint FILE` (kept from `agora audit checkpoint`), the checkpoint's signature
//! must verify with the log's public key (`--public-key`, or for the live store the key it
//! publishes) and its root must be the root of the first `tree_size` events; for the live
//! store, the RFC 9162 consistency proof from the checkpoint to the current tree must hold.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{self, SyncSender};

use anyhow::Context;
use clap::Args;
use eventstore::checkpoint::{Checkpoint, PublicKey, PublicKeyDocument};
use eventstore::exportline::{self, ExportLine, LineEvent, Scratch};
use eventstore::logverify::TreeVerifier;
use eventstore::{connect_pool, EventStore, Hash};
use uuid::Uuid;

use super::report::{Failure, Report};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Verify this export file (NDJSON from `agora audit export`; `-` reads stdin) instead
    /// of the live store.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// PostgreSQL URL of the event store to verify; ignored when --file is given.
    // No `conflicts_with = "file"`: clap counts a value from the environment as given, so
    // a DATABASE_URL in the environment would forbid --file.
    #[arg(long, env = "DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Verify only this stream (its chain; the tree covers the whole log).
    #[arg(long, value_name = "ID")]
    pub stream_id: Option<Uuid>,
    /// A checkpoint kept earlier (`agora audit checkpoint --out FILE`): the log must be an
    /// honest extension of it.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// The log's public key, pinned: base64 of its 32 bytes, or a file holding that or the
    /// JSON of `GET /v1/audit/public-key`. Needed with --checkpoint and --file; for the live
    /// store the default is the key the store publishes (a table a database user can write:
    /// pin the key you were given instead).
    #[arg(long, env = "AGORA_LOG_PUBLIC_KEY", value_name = "KEY|FILE")]
    pub public_key: Option<String>,
}

/// Reads a kept checkpoint file.
fn read_checkpoint(path: &PathBuf) -> anyhow::Result<Checkpoint> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the checkpoint {}", path.display()))?;
    let checkpoint: Checkpoint = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a checkpoint", path.display()))?;
    checkpoint
        .root()
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("{}", path.display()))?;
    Ok(checkpoint)
}

/// `--public-key`: base64, or a file holding base64 or the public-key JSON document.
fn read_public_key(value: &str) -> anyhow::Result<PublicKey> {
    let path = std::path::Path::new(value);
    let text = if path.is_file() {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {value}"))?
    } else {
        value.to_owned()
    };
    let base64 = match serde_json::from_str::<PublicKeyDocument>(&text) {
        Ok(document) => document.public_key,
        Err(_) => text.trim().to_owned(),
    };
    PublicKey::from_base64(&base64).map_err(|error| anyhow::anyhow!("--public-key: {error}"))
}

pub async fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let kept = args.checkpoint.as_ref().map(read_checkpoint).transpose()?;
    let key = args
        .public_key
        .as_deref()
        .map(read_public_key)
        .transpose()?;
    if kept.is_some() && args.stream_id.is_some() {
        anyhow::bail!("a checkpoint covers the whole log: pass --checkpoint without --stream-id");
    }
    let report = match (&args.file, &args.database_url) {
        (Some(path), _) => {
            let mut tree = None;
            if args.stream_id.is_none() {
                let mut verifier = TreeVerifier::new();
                if let Some(kept) = &kept {
                    let key = key.as_ref().context(
                        "--checkpoint with --file needs the log's --public-key (an export \
                         does not carry it)",
                    )?;
                    if let Err(reason) = kept.verify(key) {
                        verifier.unreadable(None, None, format!("the kept checkpoint: {reason}"));
                    }
                    verifier
                        .expect(kept, "the kept checkpoint")
                        .map_err(anyhow::Error::msg)?;
                }
                tree = Some(verifier);
            }
            let path = path.clone();
            let stream_id = args.stream_id;
            tokio::task::spawn_blocking(move || verify_file(&path, stream_id, tree))
                .await
                .context("the verification task failed")??
        }
        (None, Some(url)) => {
            let store = EventStore::new(connect_pool(url, 1).context("invalid database URL")?);
            let report = store
                .verify(args.stream_id)
                .await
                .context("cannot read the event store")?;
            let mut report = Report::from(report);
            if args.stream_id.is_none() {
                if kept.is_some() && key.is_none() {
                    eprintln!(
                        "warning: checking the checkpoint's signature with the key the store \
                         publishes (a table a database user can write); pin the key you were \
                         given with --public-key or AGORA_LOG_PUBLIC_KEY"
                    );
                }
                let log = store
                    .verify_log(kept.as_ref(), key)
                    .await
                    .context("cannot read the event store")?;
                report.add_tree(log.tree, log.consistency_proof);
            }
            report
        }
        (None, None) => anyhow::bail!(
            "nothing to verify: pass --file FILE, or --database-url URL (or set DATABASE_URL)"
        ),
    };
    let text = serde_json::to_string_pretty(&report).context("cannot print the report")?;
    println!("{text}");
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Bytes read from the input per batch of lines.
const BATCH_BYTES: usize = 1 << 20;
/// Batches queued for each hashing thread.
const BATCHES_IN_FLIGHT: usize = 2;

/// Verifies an export: one thread reads batches of whole lines, the hashing threads
/// ([`hashing_threads`]) take the batches in turn and hash every line
/// ([`exportline::read_line`]), and this thread folds the lines in order into the chains
/// and the tree. Batch `k` goes to thread `k % n` and its lines come back from there, so
/// the order needs no sorting and memory stays bounded by the batches in flight.
fn verify_file(
    path: &Path,
    stream_id: Option<Uuid>,
    tree: Option<TreeVerifier>,
) -> anyhow::Result<Report> {
    let input: Box<dyn Read + Send> = if path.as_os_str() == "-" {
        let stdin = io::stdin();
        super::widen_pipe(&stdin);
        Box::new(stdin)
    } else {
        Box::new(File::open(path).with_context(|| format!("cannot open {}", path.display()))?)
    };
    let threads = hashing_threads();
    let mut verifier = ExportVerifier::new(stream_id);
    verifier.tree = tree;
    std::thread::scope(|scope| {
        let mut batches = Vec::with_capacity(threads);
        let mut results = Vec::with_capacity(threads);
        for _ in 0..threads {
            let (batch_in, batch_out) = mpsc::sync_channel::<Vec<u8>>(BATCHES_IN_FLIGHT);
            let (lines_in, lines_out) = mpsc::sync_channel::<Vec<ExportLine>>(BATCHES_IN_FLIGHT);
            scope.spawn(move || {
                let mut scratch = Scratch::default();
                for batch in batch_out {
                    let lines = batch
                        .split_inclusive(|byte| *byte == b'\n')
                        .map(|line| exportline::read_line(line, stream_id, &mut scratch))
                        .collect();
                    if lines_in.send(lines).is_err() {
                        break;
                    }
                }
            });
            batches.push(batch_in);
            results.push(lines_out);
        }
        let reader = scope.spawn(move || read_batches(input, &batches));
        let mut number = 0u64;
        'batches: for turn in (0..threads).cycle() {
            let Ok(lines) = results[turn].recv() else {
                break 'batches;
            };
            for line in lines {
                number += 1;
                verifier.fold_line(number, line);
            }
        }
        // The fold is over: the reader and the hashing threads end as their channels close.
        drop(results);
        match reader.join() {
            Ok(read) => read.with_context(|| format!("cannot read {}", path.display())),
            Err(_) => anyhow::bail!("the reading thread of {} failed", path.display()),
        }
    })?;
    Ok(verifier.finish())
}

/// One hashing thread per core (at least one, at most eight).
fn hashing_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 8))
}

/// Reads `input` in batches of whole lines (the last one may lack its line ending) and
/// deals them to `batches` in turn, until the end or until the fold stops listening.
fn read_batches(mut input: impl Read, batches: &[SyncSender<Vec<u8>>]) -> io::Result<()> {
    let mut carry: Vec<u8> = Vec::new();
    for turn in (0..batches.len()).cycle() {
        let mut batch = Vec::with_capacity(BATCH_BYTES + carry.len());
        batch.append(&mut carry);
        let ended = loop {
            let filled = batch.len();
            batch.resize(filled + BATCH_BYTES, 0);
            let read = loop {
                match input.read(&mut batch[filled..]) {
                    Ok(read) => break read,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    Err(error) => return Err(error),
                }
            };
            batch.truncate(filled + read);
            if read == 0 {
                break true;
            }
            // Cut after the last complete line; a line longer than a batch reads on.
            if let Some(end) = batch[filled..].iter().rposition(|byte| *byte == b'\n') {
                carry.extend_from_slice(&batch[filled + end + 1..]);
                batch.truncate(filled + end + 1);
                break false;
            }
        };
        if !batch.is_empty() && batches[turn].send(batch).is_err() {
            return Ok(());
        }
        if ended {
            return Ok(());
        }
    }
    Ok(())
}

/// Where a stream stands in the export.
#[derive(Debug, Clone, Copy)]
struct StreamState {
    version: i64,
    hash: Hash,
    /// A failure was reported: later events of the stream are counted, not reported.
    failed: bool,
}

/// Folds the lines of an export, read and hashed by [`exportline::read_line`], in order:
/// streams interleaved in log order.
#[derive(Debug, Default)]
pub struct ExportVerifier {
    only: Option<Uuid>,
    streams: HashMap<Uuid, StreamState>,
    events_checked: u64,
    failures: Vec<Failure>,
    /// The Merkle tree check of the whole log (not with `only`).
    tree: Option<TreeVerifier>,
}

/// `line N: `, the prefix of a failure of line N.
struct LineLabel(u64);

impl fmt::Display for LineLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.0)
    }
}

impl ExportVerifier {
    /// A verifier of every stream, or of `only` that one.
    pub fn new(only: Option<Uuid>) -> Self {
        ExportVerifier {
            only,
            ..Self::default()
        }
    }

    /// Folds line `number` (1-based) of the export.
    pub fn fold_line(&mut self, number: u64, line: ExportLine) {
        let event = match line {
            ExportLine::Blank | ExportLine::Skipped => return,
            ExportLine::Unreadable {
                error,
                stream_id,
                version,
            } => {
                if self.wanted(stream_id) {
                    self.events_checked += 1;
                    let reason = format!("line {number}: not an event envelope: {error}");
                    if let Some(tree) = &mut self.tree {
                        tree.unreadable(stream_id, version, reason.clone());
                    }
                    self.fail_line(stream_id, version, reason);
                }
                return;
            }
            ExportLine::Event(event) => event,
        };
        if !self.wanted(Some(event.stream_id)) {
            return;
        }
        self.events_checked += 1;
        if let (Some(tree), Ok(hashes)) = (&mut self.tree, &event.event) {
            tree.check_leaf(
                event.stream_id,
                event.version,
                event.sequence,
                Ok(hashes.leaf),
                None,
                &LineLabel(number),
            );
        }
        let problem = self.problem_with(&event);
        // Chain on from what the file says, so one altered event is reported once.
        let state = self.streams.entry(event.stream_id).or_insert(StreamState {
            version: 0,
            hash: Hash::GENESIS,
            failed: false,
        });
        if let Some(hash) = event.hash {
            state.version = event.version;
            state.hash = hash;
        }
        if let Some(reason) = problem {
            self.fail_line(
                Some(event.stream_id),
                Some(event.version),
                format!("line {number}: {reason}"),
            );
        }
    }

    /// The report so far.
    pub fn finish(self) -> Report {
        let mut report = Report {
            ok: self.failures.is_empty(),
            streams_checked: self.streams.len() as u64,
            events_checked: self.events_checked,
            failures: self.failures,
            tree_size: None,
            root_hash: None,
            consistency_proof: None,
        };
        if let Some(tree) = self.tree {
            report.add_tree(tree.finish(), None);
        }
        report
    }

    fn wanted(&self, stream_id: Option<Uuid>) -> bool {
        match (self.only, stream_id) {
            (Some(only), Some(stream_id)) => only == stream_id,
            // A line too damaged to name its stream might be the one asked for.
            _ => true,
        }
    }

    /// Why the event does not chain onto its stream, if it does not.
    fn problem_with(&self, event: &LineEvent) -> Option<String> {
        let (expected_version, expected_prev) = match self.streams.get(&event.stream_id) {
            Some(state) => (state.version + 1, state.hash),
            None => (1, Hash::GENESIS),
        };
        if event.version != expected_version {
            return Some(format!(
                "expected version {expected_version}, found {}",
                event.version
            ));
        }
        let hashes = match &event.event {
            Ok(hashes) => hashes,
            Err(error) => return Some(error.clone()),
        };
        let recomputed = match &hashes.chain {
            Ok(recomputed) => recomputed,
            Err(reason) => return Some(reason.clone()),
        };
        if hashes.prev_hash != expected_prev {
            return Some(format!(
                "prev_hash {} does not match the previous event's hash {expected_prev}",
                hashes.prev_hash
            ));
        }
        if *recomputed != hashes.hash {
            return Some(format!(
                "stored hash {} does not match the recomputed {recomputed}",
                hashes.hash
            ));
        }
        None
    }

    /// Records a failure unless its stream already has one.
    fn fail_line(&mut self, stream_id: Option<Uuid>, version: Option<i64>, reason: String) {
        if let Some(stream_id) = stream_id {
            match self.streams.entry(stream_id) {
                Entry::Occupied(entry) if entry.get().failed => return,
                Entry::Occupied(mut entry) => entry.get_mut().failed = true,
                Entry::Vacant(entry) => {
                    entry.insert(StreamState {
                        version: 0,
                        hash: Hash::GENESIS,
                        failed: true,
                    });
                }
            }
        }
        self.failures.push(Failure {
            stream_id,
            version,
            reason,
        });
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use eventstore::envelope::{leaf_bytes, to_json_line};
    use eventstore::hashchain::{chain_hash, HashedFields};
    use eventstore::merkle::{leaf_hash, CompactRange};
    use eventstore::{EventMetadata, RecordedEvent};
    use serde_json::json;

    use super::*;

    /// `count` events of 7 interleaved streams, chained and sequenced; event `big` carries
    /// a payload longer than a batch.
    fn log(count: usize, big: usize) -> Vec<RecordedEvent> {
        let streams: Vec<Uuid> = (0..7).map(|_| Uuid::now_v7()).collect();
        let mut last: HashMap<Uuid, (i64, Hash)> = HashMap::new();
        (0..count)
            .map(|index| {
                let stream_id = streams[index % streams.len()];
                let (version, prev_hash) =
                    last.get(&stream_id).copied().unwrap_or((0, Hash::GENESIS));
                let payload = if index == big {
                    json!({"note": "x".repeat(BATCH_BYTES + 1000)})
                } else {
                    json!({"quantity": index, "sku": format!("SKU-{index:06}"), "name": "Thé 🍵"})
                };
                let mut event = RecordedEvent {
                    position: index as i64 + 1,
                    transaction_id: 0,
                    event_id: Uuid::now_v7(),
                    stream_type: "product".into(),
                    stream_id,
                    version: version + 1,
                    event_type: "StockAdded".into(),
                    schema_version: 1,
                    payload,
                    metadata: EventMetadata {
                        actor: "auditor-test".into(),
                        correlation_id: format!("c-{index}"),
                        causation_id: None,
                        command_id: Uuid::now_v7(),
                    },
                    occurred_at: eventstore::hashchain::truncate_to_micros(Utc::now()),
                    prev_hash,
                    hash: Hash::GENESIS,
                    sequence: Some(index as i64 + 1),
                    stored_metadata: None,
                };
                event.hash = chain_hash(&prev_hash, &HashedFields::from(&event)).expect("a hash");
                last.insert(stream_id, (event.version, event.hash));
                event
            })
            .collect()
    }

    /// The same lines folded one by one on this thread.
    fn folded_in_order(text: &str) -> Report {
        let mut verifier = ExportVerifier::new(None);
        verifier.tree = Some(TreeVerifier::new());
        let mut scratch = Scratch::default();
        for (index, line) in text.split_inclusive('\n').enumerate() {
            let line = exportline::read_line(line.as_bytes(), None, &mut scratch);
            verifier.fold_line(index as u64 + 1, line);
        }
        verifier.finish()
    }

    fn verified(text: &str) -> Report {
        let path = std::env::temp_dir().join(format!("agora-verify-{}.ndjson", Uuid::now_v7()));
        std::fs::write(&path, text).expect("a scratch file");
        let report = verify_file(&path, None, Some(TreeVerifier::new()));
        let _ = std::fs::remove_file(&path);
        report.expect("a report")
    }

    #[test]
    fn batches_on_several_threads_fold_as_the_lines_one_by_one() {
        let events = log(6000, 2500);
        let mut lines: Vec<String> = events
            .iter()
            .map(|e| to_json_line(e).expect("a line"))
            .collect();
        let mut tree = CompactRange::new();
        for event in &events {
            tree.append(leaf_hash(&leaf_bytes(event).expect("a leaf")));
        }
        // A blank line and a CRLF line ending change nothing; the last line has no ending.
        lines[10].push('\r');
        lines.insert(20, "  ".to_owned());
        let intact = lines.join("\n");
        assert!(intact.len() > 4 * BATCH_BYTES, "{} bytes", intact.len());
        let report = verified(&intact);
        assert!(report.ok, "{:?}", report.failures);
        assert_eq!(report.events_checked, 6000);
        assert_eq!(report.streams_checked, 7);
        assert_eq!(report.tree_size, Some(6000));
        assert_eq!(report.root_hash, Some(tree.root().to_hex()));
        assert_eq!(report, folded_in_order(&intact));

        // Edit events far apart (line 4001 is event 4000, after the blank line), and cut
        // one line short: each is named by its line number, in order.
        lines[4000] = lines[4000].replace("\"quantity\":3999", "\"quantity\":4000");
        lines[5000].truncate(100);
        let tampered = lines.join("\n");
        let report = verified(&tampered);
        assert_eq!(report, folded_in_order(&tampered));
        let reasons: Vec<&str> = report.failures.iter().map(|f| f.reason.as_str()).collect();
        assert!(
            reasons[0].starts_with("line 4001: stored hash "),
            "{reasons:?}"
        );
        assert!(
            reasons[1].starts_with("line 5001: not an event envelope: "),
            "{reasons:?}"
        );
        let jump = "line 5002: sequence jumps from 4999 to 5001: 1 event(s) with sequence \
                    5000..=5000 are missing";
        assert!(reasons.contains(&jump), "{reasons:?}");
        assert_ne!(report.root_hash, Some(tree.root().to_hex()));
        assert!(!report.ok);
    }
}
