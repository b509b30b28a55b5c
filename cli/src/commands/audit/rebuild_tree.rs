//! `agora audit rebuild-tree`: the recovery after the log signer halted (`/readyz` names
//! `signer_halted`, the alert `AgoraLogSignerHalted` fires). Throws the stored sequence
//! numbers and Merkle tree nodes away, as the tables' owner, so the active sequencer
//! re-sequences the log from its events and recomputes every node; it signs again only once
//! the recomputed tree reaches its last signed checkpoint with the same root.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::commands::DatabaseArgs;

#[derive(Debug, Args)]
pub struct RebuildTreeArgs {
    /// The event store, as the owner of its tables (the migrations' role).
    #[command(flatten)]
    pub database: DatabaseArgs,
}

pub async fn run(args: RebuildTreeArgs) -> anyhow::Result<ExitCode> {
    eventstore::sequencer::rebuild_tree(&args.database.database_url)
        .await
        .context("cannot rebuild the log's tree")?;
    eprintln!(
        "the log's sequence and tree were cleared: the active sequencer rebuilds them from \
         the events, and signs again once the rebuilt tree matches its last checkpoint"
    );
    Ok(ExitCode::SUCCESS)
}
