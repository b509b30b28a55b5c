//! `agora payments reconcile [--since]`: compares the payment provider's payments with the
//! log, applies the successes the log missed (a lost webhook) and reports what it cannot
//! fix (`command_api::payments::reconcile`). Prints a JSON report on stdout and a summary
//! on stderr; exit code 0 when nothing is left unresolved, 1 when something is.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use command_api::execution::Engine;
use command_api::payments::{reconcile, PaymentSettings};
use eventstore::{connect_pool, EventStore};

use crate::commands::DatabaseArgs;

#[derive(Debug, Subcommand)]
pub enum PaymentsCommand {
    /// Compare the provider's payments with the log; apply what the log missed.
    Reconcile(ReconcileArgs),
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The provider (the command API's settings).
    #[command(flatten)]
    pub payments: PaymentSettings,
    /// How far back to look (`30d`, `12h`, ...).
    #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
    pub since: Duration,
}

pub async fn run(command: PaymentsCommand) -> anyhow::Result<ExitCode> {
    let PaymentsCommand::Reconcile(args) = command;
    let payments = args.payments.payments().map_err(anyhow::Error::msg)?;
    let store = EventStore::new(
        connect_pool(&args.database.database_url, 4).context("invalid database URL")?,
    );
    let engine = Engine::new(store, 0);
    let since = chrono::Utc::now()
        - chrono::Duration::from_std(args.since).context("--since is too far back")?;
    let report = reconcile::reconcile(&engine, &payments, since)
        .await
        .map_err(anyhow::Error::msg)
        .context("cannot reconcile")?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    eprintln!(
        "reconciled {} provider payments and {} in the log since {}: {} applied, {} foreign, {} unresolved",
        report.provider_payments,
        report.log_payments,
        report.since,
        report.applied.len(),
        report.foreign.len(),
        report.unresolved.len()
    );
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
