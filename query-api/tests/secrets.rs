//! The `query-api` binary refuses a weak or missing secret at start, before it reads a
//! database (the compose file's old default secret among them).

use std::process::Command;

#[test]
fn the_query_api_refuses_weak_or_missing_secrets() {
    for (secret, expected) in [
        ("change-me-dev-secret", "known development secret"),
        ("0123456789abcdef0123456789abcde", "has 31 bytes"),
        ("", "no way to authenticate"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_query-api"))
            .env_remove("AGORA_JWT_ISSUER")
            .env_remove("AGORA_JWT_AUDIENCE")
            .env_remove("AGORA_JWT_JWKS_URL")
            .env("AGORA_JWT_SECRET", secret)
            .env(
                "DATABASE_URL",
                "postgres://agora@127.0.0.1:1/agora?connect_timeout=2",
            )
            .env("QUERY_API_ADDR", "127.0.0.1:0")
            .output()
            .expect("the query-api binary runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{secret:?} started");
        assert!(stderr.contains(expected), "{secret:?}: {stderr}");
    }
}
