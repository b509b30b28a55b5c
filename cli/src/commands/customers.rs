//! `agora customers …`: the customers' data keys.
//!
//! - `reapply-erasures`: destroys the data key of every customer whose erasure the log
//!   records (`CustomerErased`). Run it after restoring the key table (`pii_keys`) from a
//!   backup older than the last erasure: the log is the record of who was erased.
//! - `rewrap-keys`: re-wraps every data key wrapped by a retired master key
//!   (`AGORA_PII_RETIRED_KEYS`) under `AGORA_PII_KEY`, so the retired key can be destroyed.
//!
//! Each prints a JSON report on stdout.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use eventstore::{connect_pool, pii_keys};
use platform::pii::{PiiSettings, Vault};
use serde_json::json;

use crate::commands::DatabaseArgs;

#[derive(Debug, Subcommand)]
pub enum CustomersCommand {
    /// Destroy the data key of every customer the log records as erased (after a restore).
    ReapplyErasures(ReapplyArgs),
    /// Re-wrap data keys wrapped by a retired master key under AGORA_PII_KEY.
    RewrapKeys(RewrapArgs),
}

#[derive(Debug, Args)]
pub struct ReapplyArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct RewrapArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub pii: PiiSettings,
}

pub async fn run(command: CustomersCommand) -> anyhow::Result<ExitCode> {
    match command {
        CustomersCommand::ReapplyErasures(args) => {
            let pool =
                connect_pool(&args.database.database_url, 2).context("invalid database URL")?;
            let erased = pii_keys::erased_in_log(&pool)
                .await
                .context("cannot read the erasures from the log")?;
            let mut destroyed = Vec::new();
            for customer in &erased {
                if pii_keys::destroy(&pool, customer)
                    .await
                    .with_context(|| format!("cannot destroy the key of {customer}"))?
                {
                    destroyed.push(customer.clone());
                }
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "erased_in_log": erased.len(),
                    "keys_destroyed_now": destroyed,
                }))?
            );
            eprintln!(
                "{} erasures in the log; {} keys were still there and are destroyed now",
                erased.len(),
                destroyed.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        CustomersCommand::RewrapKeys(args) => {
            let keyring = args
                .pii
                .keyring()
                .map_err(anyhow::Error::msg)?
                .context("set AGORA_PII_KEY (the new master key)")?;
            let pool =
                connect_pool(&args.database.database_url, 2).context("invalid database URL")?;
            let current = keyring.current().id().to_owned();
            let rewrapped = Vault::new(Some(keyring), pool)
                .rewrap_all()
                .await
                .context("cannot re-wrap the data keys")?;
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "master_key_id": current,
                    "rewrapped": rewrapped,
                }))?
            );
            eprintln!("{rewrapped} data keys re-wrapped under master key {current}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
