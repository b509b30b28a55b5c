//! `agora token`: the printed JWT verifies with the platform's keys and carries the roles.

mod support;

use platform::JwtKeys;
use support::{agora, agora_with_env, exit_code};

fn token_of(output: &std::process::Output) -> String {
    assert_eq!(
        exit_code(output),
        0,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone())
        .expect("utf-8")
        .trim_end()
        .to_owned()
}

#[test]
fn a_minted_token_verifies_and_carries_its_roles() {
    let output = agora(&[
        "token", "--sub", "alice", "--role", "customer", "--role", "auditor", "--secret", "s3cr3t",
        "--ttl", "120",
    ]);
    let token = token_of(&output);
    let claims = JwtKeys::hs256(b"s3cr3t")
        .verify(&token)
        .expect("a valid token");
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.roles, vec!["customer", "auditor"]);
    let now = chrono::Utc::now().timestamp();
    assert!(
        (now + 110..=now + 130).contains(&claims.exp),
        "exp {}",
        claims.exp
    );
    assert!(JwtKeys::hs256(b"another").verify(&token).is_err());
}

#[test]
fn the_secret_comes_from_the_environment_or_defaults_to_the_dev_secret() {
    let from_env = token_of(&agora_with_env(
        &["token", "--sub", "bob", "--role", "admin"],
        &[("AGORA_JWT_SECRET", "from-env")],
    ));
    let claims = JwtKeys::hs256(b"from-env")
        .verify(&from_env)
        .expect("valid");
    assert_eq!(claims.roles, vec!["admin"]);

    let dev = token_of(&agora(&["token", "--sub", "bob", "--role", "viewer"]));
    let claims = JwtKeys::hs256(platform::auth::DEVELOPMENT_SECRET.as_bytes())
        .verify(&dev)
        .expect("valid");
    assert_eq!(claims.sub, "bob");
    assert_eq!(claims.roles, vec!["viewer"]);
}

#[test]
fn unknown_roles_and_missing_roles_are_usage_errors() {
    let output = agora(&["token", "--sub", "eve", "--role", "root"]);
    assert_eq!(exit_code(&output), 2);
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown role"));
    let output = agora(&["token", "--sub", "eve"]);
    assert_eq!(exit_code(&output), 2);
    assert!(output.stdout.is_empty());
}
