//! `agora`: Agora's command-line tool.
//!
//! ```text
//! agora token --sub alice --role customer        mint a development JWT
//! agora migrate                                  apply event-store and read-model migrations
//! agora audit export [--after P] [--out FILE]    the event log as NDJSON, in log order
//! agora audit verify [--file FILE] [--checkpoint CP]  check the chains and the Merkle tree
//! agora audit checkpoint [--out FILE]            save the newest signed checkpoint
//! agora audit rebuild-tree                       recover a halted log signer
//! agora projections list | rebuild NAME          read models: state, zero-downtime rebuild
//! agora payments reconcile [--since 30d]         the provider's payments beside the log
//! agora dev [--kafka BROKERS]                    everything on this machine, one process
//! ```
//!
//! Every subcommand lives in its own module under [`commands`]; adding one means a variant
//! in [`Command`] and an arm in [`Command::run`].

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use commands::{audit, customers, dev, migrate, payments, projections, token};

/// Agora's command-line tool.
#[derive(Debug, Parser)]
#[command(name = "agora", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Mint a signed JWT (HS256) for development and scripts.
    Token(token::TokenArgs),
    /// Apply the event-store and read-model migrations.
    Migrate(migrate::MigrateArgs),
    /// Export the event log and verify its hash chain.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// List projections, or rebuild one with zero downtime.
    #[command(subcommand)]
    Projections(projections::ProjectionsCommand),
    /// Run everything on this machine: private PostgreSQL, both APIs and a projector.
    Dev(Box<dev::DevArgs>),
    /// Reconcile the payment provider's payments with the log.
    #[command(subcommand)]
    Payments(payments::PaymentsCommand),
    /// Customers' data keys: re-apply erasures after a restore, re-wrap after a rotation.
    #[command(subcommand)]
    Customers(customers::CustomersCommand),
}

impl Command {
    async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Token(args) => token::run(args),
            Command::Migrate(args) => migrate::run(args).await,
            Command::Audit(command) => audit::run(command).await,
            Command::Projections(command) => projections::run(command).await,
            Command::Dev(args) => dev::run(*args).await,
            Command::Payments(command) => payments::run(command).await,
            Command::Customers(command) => customers::run(command).await,
        }
    }
}

/// Exit code of a command that could not run at all (bad database URL, unreachable
/// database, unreadable file); 1 is kept for "ran, and the answer is no" (a broken chain).
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(cli.command.run()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Logs go to stderr (stdout carries the output: tokens, NDJSON, reports); `RUST_LOG`
/// filters them, default `info`.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
