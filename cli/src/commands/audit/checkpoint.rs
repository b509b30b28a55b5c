//! `agora audit checkpoint`: saves the newest signed checkpoint of the verifiable log (the
//! JSON document `GET /v1/audit/checkpoint` answers), for an auditor to keep and later pass
//! to `agora audit verify --checkpoint`. Exit code 2 when none was signed yet.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use eventstore::{connect_pool, EventStore};

use crate::commands::DatabaseArgs;

#[derive(Debug, Args)]
pub struct CheckpointArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Write the checkpoint to FILE instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub async fn run(args: CheckpointArgs) -> anyhow::Result<ExitCode> {
    let store = EventStore::new(
        connect_pool(&args.database.database_url, 1).context("invalid database URL")?,
    );
    let checkpoint = store
        .latest_checkpoint()
        .await
        .context("cannot read the event store")?
        .context(
            "no checkpoint has been signed yet (the command API signs one every \
             AGORA_CHECKPOINT_INTERVAL when the log grew and AGORA_LOG_SIGNING_KEY is set)",
        )?;
    let text = serde_json::to_string_pretty(&checkpoint)? + "\n";
    match &args.out {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{text}"),
    }
    eprintln!(
        "checkpoint: {} events, root {}, signed by key {}",
        checkpoint.tree_size, checkpoint.root_hash, checkpoint.key_id
    );
    Ok(ExitCode::SUCCESS)
}
