//! `agora migrate`: applies the event store's migrations, then the read model's (on
//! `READ_DATABASE_URL`, which defaults to the event store's database). Both are idempotent
//! and serialized by advisory locks, so running it beside starting services is safe.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::DatabaseArgs;

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// PostgreSQL URL of the read models (default: the event store's).
    #[arg(
        long,
        env = "READ_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub read_database_url: Option<String>,
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let events_url = &args.database.database_url;
    eventstore::migrate(events_url)
        .await
        .context("event-store migrations failed")?;
    eprintln!("event store: migrations applied");
    let read_url = args.read_database_url.as_deref().unwrap_or(events_url);
    readmodel::migrate(read_url)
        .await
        .context("read-model migrations failed")?;
    eprintln!("read model: migrations applied");
    Ok(ExitCode::SUCCESS)
}
