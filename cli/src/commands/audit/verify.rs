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

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use eventstore::hashchain::{chain_hash, format_timestamp, HashedFields};
use eventstore::{connect_pool, Envelope, EventStore, Hash};
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
    /// Verify only this stream.
    #[arg(long, value_name = "ID")]
    pub stream_id: Option<Uuid>,
}

pub async fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let report = match (&args.file, &args.database_url) {
        (Some(path), _) => {
            let path = path.clone();
            let stream_id = args.stream_id;
            tokio::task::spawn_blocking(move || verify_file(&path, stream_id))
                .await
                .context("the verification task failed")??
        }
        (None, Some(url)) => {
            let store = EventStore::new(connect_pool(url, 1).context("invalid database URL")?);
            let report = store
                .verify(args.stream_id)
                .await
                .context("cannot read the event store")?;
            Report::from(report)
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

fn verify_file(path: &PathBuf, stream_id: Option<Uuid>) -> anyhow::Result<Report> {
    let input: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(io::stdin())
    } else {
        Box::new(File::open(path).with_context(|| format!("cannot open {}", path.display()))?)
    };
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut verifier = ExportVerifier::new(stream_id);
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
                    self.fail_line(
                        stream_id,
                        version,
                        format!("line {number}: not an event envelope: {error}"),
                    );
                }
                return;
            }
        };
        if !self.wanted(Some(envelope.stream_id)) {
            return;
        }
        self.events_checked += 1;
        let problem = self.problem_with(&envelope);
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
        Report {
            ok: self.failures.is_empty(),
            streams_checked: self.streams.len() as u64,
            events_checked: self.events_checked,
            failures: self.failures,
        }
    }

    fn wanted(&self, stream_id: Option<Uuid>) -> bool {
        match (self.only, stream_id) {
            (Some(only), Some(stream_id)) => only == stream_id,
            // A line too damaged to name its stream might be the one asked for.
            _ => true,
        }
    }

    /// Why `envelope` does not chain onto its stream, if it does not.
    fn problem_with(&self, envelope: &Envelope) -> Option<String> {
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
        let event = match envelope.to_recorded() {
            Ok(event) => event,
            Err(error) => return Some(error),
        };
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
