//! `mint-token`: prints a signed HS256 development token (until `agora token` exists).
//!
//! `mint-token --sub alice --role customer`, signed with `--secret`, `AGORA_JWT_SECRET`, or
//! the development secret that `agora dev` and `agora token` also default to.

use anyhow::{Context, Result};
use clap::Parser;
use platform::auth::DEVELOPMENT_SECRET;
use platform::{JwtKeys, Role};

#[derive(Debug, Parser)]
#[command(name = "mint-token", about = "Mint an Agora development JWT (HS256)")]
struct Args {
    /// The HS256 secret the services check tokens with.
    #[arg(
        long,
        env = "AGORA_JWT_SECRET",
        default_value = DEVELOPMENT_SECRET,
        hide_env_values = true
    )]
    secret: String,
    /// The token's subject (the user id; a customer's `customer_id`).
    #[arg(long, default_value = "admin")]
    sub: String,
    /// A role (admin, customer, viewer, auditor); repeat for several.
    #[arg(long = "role", default_value = "admin")]
    roles: Vec<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 24 * 3600)]
    ttl: i64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.secret.is_empty() {
        anyhow::bail!("the signing secret is empty");
    }
    let roles = args
        .roles
        .iter()
        .map(|name| {
            Role::parse(name).with_context(|| {
                format!("unknown role {name:?} (expected admin, customer, viewer or auditor)")
            })
        })
        .collect::<Result<Vec<Role>>>()?;
    let token = JwtKeys::hs256(args.secret.as_bytes())
        .mint(&args.sub, &roles, args.ttl)
        .context("signing the token")?;
    println!("{token}");
    Ok(())
}
