//! `agora projections list` and `agora projections rebuild NAME`: what each read model
//! is built to, and zero-downtime rebuilds with a progress bar.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use eventstore::{connect_pool, EventStore};
use indicatif::{ProgressBar, ProgressStyle};

use super::DatabaseArgs;

/// The projection subcommands.
#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Each projection's live version, where it stands in the log, its poison events and its
    /// parked streams (`GET /v1/projections/{name}/parked` shows them).
    List(ReadArgs),
    /// Rebuild a projection into a new version beside the live one, then switch to it.
    Rebuild(RebuildArgs),
}

/// Where the event store and the read models are.
#[derive(Debug, Args)]
pub struct ReadArgs {
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

impl ReadArgs {
    fn read_url(&self) -> &str {
        self.read_database_url
            .as_deref()
            .filter(|u| !u.is_empty())
            .unwrap_or(&self.database.database_url)
    }
}

/// `agora projections rebuild`.
#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// products, orders, sales or top_products.
    pub name: String,
    #[command(flatten)]
    pub read: ReadArgs,
    /// Events per transaction while filling.
    #[arg(long, default_value_t = 5000)]
    pub batch_size: i64,
    /// Keep the replaced version's tables (they are dropped by default).
    #[arg(long)]
    pub keep_previous: bool,
}

pub async fn run(command: ProjectionsCommand) -> anyhow::Result<ExitCode> {
    match command {
        ProjectionsCommand::List(args) => list(args).await,
        ProjectionsCommand::Rebuild(args) => rebuild(args).await,
    }
}

async fn list(args: ReadArgs) -> anyhow::Result<ExitCode> {
    readmodel::migrate(args.read_url()).await?;
    let read = connect_pool(args.read_url(), 2)?;
    let client = read.get().await?;
    let rows = client
        .query(
            "SELECT p.name, p.active_version, c.position, c.updated_at, \
                    (SELECT count(*) FROM read_model.poison_events e \
                      WHERE e.projection = p.name AND e.version = p.active_version), \
                    (SELECT count(*) FROM read_model.parked_streams s \
                      WHERE s.projection = p.name AND s.version = p.active_version) \
             FROM read_model.projections p \
             LEFT JOIN read_model.checkpoints c ON c.projection = p.name \
                  AND c.version = p.active_version AND c.source = 'log' \
             ORDER BY p.name",
            &[],
        )
        .await?;
    println!(
        "{:<14} {:>7} {:>14} {:>7} {:>7}  updated",
        "projection", "version", "log position", "poison", "parked"
    );
    for row in rows {
        let name: String = row.try_get(0)?;
        let version: i32 = row.try_get(1)?;
        let position: Option<i64> = row.try_get(2)?;
        let updated: Option<chrono::DateTime<chrono::Utc>> = row.try_get(3)?;
        let poison: i64 = row.try_get(4)?;
        let parked: i64 = row.try_get(5)?;
        println!(
            "{name:<14} {version:>7} {:>14} {poison:>7} {parked:>7}  {}",
            position.map_or("-".to_owned(), |p| p.to_string()),
            updated.map_or("-".to_owned(), |u| u.to_rfc3339()),
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn rebuild(args: RebuildArgs) -> anyhow::Result<ExitCode> {
    readmodel::migrate(args.read.read_url()).await?;
    let store = EventStore::new(connect_pool(&args.read.database.database_url, 4)?);
    let read = connect_pool(args.read.read_url(), 4)?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})")?
            .progress_chars("=> "),
    );
    bar.set_message(format!("rebuilding {}", args.name));
    let report = projector::rebuild::rebuild(
        &store,
        &read,
        &args.name,
        args.batch_size,
        args.keep_previous,
        |progress| {
            bar.set_length(progress.total.max(progress.applied));
            bar.set_position(progress.applied);
        },
    )
    .await?;
    bar.finish();
    println!(
        "{} rebuilt: version {} -> {}, {} events in {:.2} s ({:.0} events/s)",
        report.projection,
        report.from_version,
        report.to_version,
        report.events,
        report.seconds,
        report.events_per_second()
    );
    Ok(ExitCode::SUCCESS)
}
