//! The `agora` subcommands, one module each, plus the options they share.

pub mod audit;
pub mod customers;
pub mod dev;
pub mod migrate;
pub mod payments;
pub mod projections;
pub mod token;

use clap::Args;

/// Where the event store is.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL of the event store.
    #[arg(long, env = "DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub database_url: String,
}
