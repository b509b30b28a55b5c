//! `agora token`: mints an HS256 JWT with the claims the services read (`sub`, `roles`,
//! `exp`), signed with `--secret`, `AGORA_JWT_SECRET`, or the development secret.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use platform::auth::DEVELOPMENT_SECRET;
use platform::{JwtKeys, Role};

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The user id (`sub` claim).
    #[arg(long)]
    pub sub: String,
    /// A role: admin, customer, viewer or auditor. Repeat for several.
    #[arg(long = "role", required = true, value_parser = parse_role, value_name = "ROLE")]
    pub roles: Vec<Role>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(i64).range(1..))]
    pub ttl: i64,
    /// HS256 signing secret.
    #[arg(long, env = "AGORA_JWT_SECRET", default_value = DEVELOPMENT_SECRET, hide_env_values = true)]
    pub secret: String,
}

fn parse_role(name: &str) -> Result<Role, String> {
    Role::parse(name).ok_or_else(|| {
        format!("unknown role {name:?} (expected admin, customer, viewer or auditor)")
    })
}

/// Prints the token on stdout.
pub fn run(args: TokenArgs) -> anyhow::Result<ExitCode> {
    if args.secret.is_empty() {
        anyhow::bail!("the signing secret is empty");
    }
    let token = JwtKeys::hs256(args.secret.as_bytes())
        .mint(&args.sub, &args.roles, args.ttl)
        .context("cannot sign the token")?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}
