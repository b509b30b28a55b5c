//! `agora audit`: what auditors run against the event log.
//!
//! - `export` writes every event, in log order, as the NDJSON envelopes of
//!   `GET /v1/audit/events`.
//! - `verify` recomputes the hash chain of the live store or of an export file and the
//!   Merkle tree of the sequenced log (against a kept checkpoint with `--checkpoint`), and
//!   prints the report of `GET /v1/audit/verify`; exit code 0 when all holds, 1 when not.
//! - `checkpoint` saves the newest signed checkpoint, for auditors to keep.
//! - `rebuild-tree` recovers a halted signer: the sequence and tree rebuilt from the events.
//!
//! docs/AUDIT.md describes the algorithm for auditors who verify with their own code.

pub mod checkpoint;
pub mod export;
pub mod rebuild_tree;
pub mod report;
pub mod verify;

use std::os::fd::AsFd;
use std::process::ExitCode;

use clap::Subcommand;

/// The pipe capacity asked for when an export is piped (`export --out - | verify --file
/// -`): with the default 64 KiB the two processes take turns every few hundred lines; 1 MiB
/// (Linux's default `pipe-max-size`) makes the piped run 4 to 7 % faster (BENCHMARKS.md).
const PIPE_CAPACITY: usize = 1 << 20;

/// Widens `fd`'s pipe to [`PIPE_CAPACITY`] when it is a pipe; anything else (a file, a
/// terminal, a capacity the system does not allow) is left as it is.
pub(crate) fn widen_pipe(fd: impl AsFd) {
    let _ = rustix::pipe::fcntl_setpipe_size(fd, PIPE_CAPACITY);
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Write the event log as NDJSON envelopes, in log (commit) order.
    Export(export::ExportArgs),
    /// Verify the hash chains and the Merkle tree of the live store or of an export file.
    Verify(verify::VerifyArgs),
    /// Save the newest signed checkpoint of the log.
    Checkpoint(checkpoint::CheckpointArgs),
    /// Rebuild the log's sequence and Merkle tree from the events (after the signer halted).
    RebuildTree(rebuild_tree::RebuildTreeArgs),
}

pub async fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Export(args) => export::run(args).await,
        AuditCommand::Verify(args) => verify::run(args).await,
        AuditCommand::Checkpoint(args) => checkpoint::run(args).await,
        AuditCommand::RebuildTree(args) => rebuild_tree::run(args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_is_widened_and_a_file_left_alone() {
        let (reader, writer) = rustix::pipe::pipe().expect("a pipe");
        assert_eq!(
            rustix::pipe::fcntl_getpipe_size(&reader).expect("size"),
            65_536
        );
        widen_pipe(&writer);
        assert_eq!(
            rustix::pipe::fcntl_getpipe_size(&reader).expect("size"),
            PIPE_CAPACITY
        );
        let file = scratch_file();
        widen_pipe(&file);
        assert!(rustix::pipe::fcntl_getpipe_size(&file).is_err());
    }

    fn scratch_file() -> std::fs::File {
        let path = std::env::temp_dir().join(format!("agora-pipe-{}", std::process::id()));
        let file = std::fs::File::create(&path).expect("a file");
        let _ = std::fs::remove_file(&path);
        file
    }
}
