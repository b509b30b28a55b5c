//! `agora audit`: what auditors run against the event log.
//!
//! - `export` writes every event, in log order, as the NDJSON envelopes of
//!   `GET /v1/audit/events`.
//! - `verify` recomputes the hash chain of the live store or of an export file and the
//!   Merkle tree of the sequenced log (against a kept checkpoint with `--checkpoint`), and
//!   prints the report of `GET /v1/audit/verify`; exit code 0 when all holds, 1 when not.
//! - `checkpoint` saves the newest signed checkpoint, for auditors to keep.
//!
//! docs/AUDIT.md describes the algorithm for auditors who verify with their own code.

pub mod checkpoint;
pub mod export;
pub mod report;
pub mod verify;

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Write the event log as NDJSON envelopes, in log (commit) order.
    Export(export::ExportArgs),
    /// Verify the hash chains and the Merkle tree of the live store or of an export file.
    Verify(verify::VerifyArgs),
    /// Save the newest signed checkpoint of the log.
    Checkpoint(checkpoint::CheckpointArgs),
}

pub async fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Export(args) => export::run(args).await,
        AuditCommand::Verify(args) => verify::run(args).await,
        AuditCommand::Checkpoint(args) => checkpoint::run(args).await,
    }
}
