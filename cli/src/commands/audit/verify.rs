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
//!
//! Without `--stream-id` it also checks the verifiable log: the sequence is dense, every
//! leaf recomputed from the event as stored, the Merkle root folded from them; with
//! `--checkpoint FILE` (kept from `agora audit checkpoint`), the checkpoint's signature
//! must verify with the log's public key (`--public-key`, or for the live store the key it
//! publishes) and its root must be the root of the first `tree_size` events; for the live
//! store, the RFC 9162 consistency proof from the checkpoint to the current tree must hold.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use eventstore::checkpoint::{Checkpoint, PublicKey, PublicKeyDocument};
use eventstore::hashchain::{chain_hash, format_timestamp, metadata_not_as_written, HashedFields};
use eventstore::logverify::TreeVerifier;
use eventstore::{connect_pool, Envelope, EventStore, Hash, RecordedEvent};
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
    /// The log's public key: base64 of its 32 bytes, or a file holding that or the JSON of
    /// `GET /v1/audit/public-key`. Needed with --checkpoint and --file; for the live store
    /// the default is the key the store publishes.
    #[arg(long, value_name = "KEY|FILE")]
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

fn verify_file(
    path: &PathBuf,
    stream_id: Option<Uuid>,
    tree: Option<TreeVerifier>,
) -> anyhow::Result<Report> {
    let input: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(io::stdin())
    } else {
        Box::new(File::open(path).with_context(|| format!("cannot open {}", path.display()))?)
    };
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut verifier = ExportVerifier::new(stream_id);
    verifier.tree = tree;
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if read == 0 {
            break;
        }
        number += 1;
        verifier.check_line(number, &line);
    }
    Ok(verifier.finish())
}

/// Where a stream stands in the export.
#[derive(Debug, Clone, Copy)]
struct StreamState {
    version: i64,
    hash: Hash,
    /// A failure was reported: later events of the stream are counted, not reported.
    failed: bool,
}

/// Checks an export line by line, streams interleaved in log order.
#[derive(Debug, Default)]
pub struct ExportVerifier {
    only: Option<Uuid>,
    streams: HashMap<Uuid, StreamState>,
    events_checked: u64,
    failures: Vec<Failure>,
    /// The Merkle tree check of the whole log (not with `only`).
    tree: Option<TreeVerifier>,
}

impl ExportVerifier {
    /// A verifier of every stream, or of `only` that one.
    pub fn new(only: Option<Uuid>) -> Self {
        ExportVerifier {
            only,
            ..Self::default()
        }
    }

    /// Checks line `number` (1-based) of the export, with or without its line ending.
    /// Blank lines are ignored.
    pub fn check_line(&mut self, number: u64, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let envelope = match serde_json::from_slice::<Envelope>(line) {
            Ok(envelope) => envelope,
            Err(error) => {
                let (stream_id, version) = identify(line);
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
        };
        if !self.wanted(Some(envelope.stream_id)) {
            return;
        }
        self.events_checked += 1;
        let event = envelope.to_recorded();
        if let (Some(tree), Ok(event)) = (&mut self.tree, &event) {
            tree.check(event, None, &format!("line {number}: "));
        }
        let problem = self.problem_with(&envelope, event);
        // Chain on from what the file says, so one altered event is reported once.
        let state = self
            .streams
            .entry(envelope.stream_id)
            .or_insert(StreamState {
                version: 0,
                hash: Hash::GENESIS,
                failed: false,
            });
        if let Some(hash) = Hash::from_hex(&envelope.hash) {
            state.version = envelope.version;
            state.hash = hash;
        }
        if let Some(reason) = problem {
            self.fail_line(
                Some(envelope.stream_id),
                Some(envelope.version),
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

    /// Why `envelope` does not chain onto its stream, if it does not.
    fn problem_with(
        &self,
        envelope: &Envelope,
        event: Result<RecordedEvent, String>,
    ) -> Option<String> {
        let (expected_version, expected_prev) = match self.streams.get(&envelope.stream_id) {
            Some(state) => (state.version + 1, state.hash),
            None => (1, Hash::GENESIS),
        };
        if envelope.version != expected_version {
            return Some(format!(
                "expected version {expected_version}, found {}",
                envelope.version
            ));
        }
        let event = match event {
            Ok(event) => event,
            Err(error) => return Some(error),
        };
        if let Some(stored) = &event.stored_metadata {
            return Some(metadata_not_as_written(stored));
        }
        // The hash covers the timestamp's one textual form; another spelling of the same
        // instant is not what was hashed (and independent verifiers hash the text as is).
        if format_timestamp(event.occurred_at) != envelope.occurred_at {
            return Some(format!(
                "occurred_at {:?} is not in the hashed form {:?}",
                envelope.occurred_at,
                format_timestamp(event.occurred_at)
            ));
        }
        if event.prev_hash != expected_prev {
            return Some(format!(
                "prev_hash {} does not match the previous event's hash {expected_prev}",
                event.prev_hash
            ));
        }
        match chain_hash(&event.prev_hash, &HashedFields::from(&event)) {
            Ok(hash) if hash == event.hash => None,
            Ok(hash) => Some(format!(
                "stored hash {} does not match the recomputed {hash}",
                event.hash
            )),
            Err(error) => Some(format!("cannot canonicalize the event: {error}")),
        }
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

/// The stream and version a damaged line seems to be about, when it is still JSON.
fn identify(line: &[u8]) -> (Option<Uuid>, Option<i64>) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(line) else {
        return (None, None);
    };
    let stream_id = value
        .get("stream_id")
        .and_then(|v| v.as_str())
        .and_then(|s| Uuid::parse_str(s).ok());
    let version = value.get("version").and_then(|v| v.as_i64());
    (stream_id, version)
}
