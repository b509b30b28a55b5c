//! The `command-api` binary refuses to start, with a message saying what to set and a
//! non-zero exit, when tokens could be forged or nobody could be authenticated: a short or
//! development HS256 secret, an empty or missing one without a provider, a provider
//! without an audience. The check comes before the database is touched.

use std::process::Stdio;
use std::time::Duration;

use platform::auth::DEVELOPMENT_SECRET;
use tokio::process::Command;

/// Runs the binary with `env` (and no other `AGORA_JWT_*`) on an unreachable database;
/// returns its exit status and stderr.
async fn start(env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_command-api"));
    for name in [
        "AGORA_JWT_SECRET",
        "AGORA_JWT_ISSUER",
        "AGORA_JWT_JWKS_URL",
        "AGORA_JWT_AUDIENCE",
        "AGORA_JWT_ROLES_CLAIM",
        "KAFKA_BROKERS",
    ] {
        command.env_remove(name);
    }
    let child = command
        .envs(env.iter().copied())
        .env(
            "DATABASE_URL",
            "postgres://agora@127.0.0.1:1/agora?connect_timeout=2",
        )
        .env("COMMAND_API_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the command-api binary runs");
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("command-api exits instead of serving")
        .expect("its output");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn weak_development_or_missing_secrets_are_refused_at_start() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[], "no way to authenticate"),
        (&[("AGORA_JWT_SECRET", "")], "no way to authenticate"),
        (
            &[("AGORA_JWT_SECRET", "hunter2-but-longer")],
            "has 18 bytes",
        ),
        (
            &[("AGORA_JWT_SECRET", "agora-dev-secret")],
            "known development secret",
        ),
        (
            &[("AGORA_JWT_SECRET", DEVELOPMENT_SECRET)],
            "known development secret",
        ),
        (
            &[("AGORA_JWT_ISSUER", "https://id.example.com/realms/shop")],
            "AGORA_JWT_AUDIENCE must name",
        ),
    ];
    for (env, expected) in cases {
        let (status, stderr) = start(env).await;
        assert!(!status.success(), "{env:?} started");
        assert!(stderr.contains(expected), "{env:?}: {stderr}");
    }
}

#[tokio::test]
async fn a_strong_secret_or_a_provider_passes_the_check() {
    let cases: &[&[(&str, &str)]] = &[
        &[("AGORA_JWT_SECRET", "a-random-secret-of-at-least-32-bytes")],
        &[
            ("AGORA_JWT_SECRET", ""),
            ("AGORA_JWT_ISSUER", "https://id.example.com/realms/shop"),
            ("AGORA_JWT_AUDIENCE", "agora"),
        ],
    ];
    for env in cases {
        let (status, stderr) = start(env).await;
        // It gets as far as the (unreachable) database.
        assert!(!status.success(), "{env:?}");
        assert!(!stderr.contains("AGORA_JWT"), "{env:?}: {stderr}");
        assert!(
            stderr.to_lowercase().contains("connect"),
            "{env:?}: {stderr}"
        );
    }
}

/// `--help` shows which variables are read, never their values: not the database password,
/// the HS256 secret, the webhook key or the payment provider's secrets.
#[tokio::test]
async fn help_never_prints_a_secret_from_the_environment() {
    let output = Command::new(env!("CARGO_BIN_EXE_command-api"))
        .arg("--help")
        .env("DATABASE_URL", "postgres://agora:db-password-1@db/agora")
        .env(
            "AGORA_JWT_SECRET",
            "jwt-secret-2-0123456789abcdef0123456789",
        )
        .env("AGORA_WEBHOOK_KEY", "webhook-key-3")
        .env("AGORA_STRIPE_SECRET_KEY", "sk_live_stripe-key-4")
        .env("AGORA_STRIPE_WEBHOOK_SECRETS", "whsec_webhook-secret-5")
        .output()
        .await
        .expect("the command-api binary runs");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("DATABASE_URL"), "{help}");
    for secret in [
        "db-password-1",
        "jwt-secret-2",
        "webhook-key-3",
        "stripe-key-4",
        "webhook-secret-5",
    ] {
        assert!(!help.contains(secret), "--help printed {secret}: {help}");
    }
}
