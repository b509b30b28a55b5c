//! Shared helpers for the end-to-end tests: service addresses and readiness.
//!
//! The services are started by the project's own scripts (`scripts/services.sh start`, or
//! `scripts/test.sh`, which starts them and exports the variables below). Tests that need a
//! service and cannot reach it must fail with a clear message, never skip.

pub mod checker;
pub mod compose;
pub mod history;
pub mod toxiproxy;
pub mod workload;

/// Environment variable holding the Kafka bootstrap servers used by tests.
pub const KAFKA_BROKERS_ENV: &str = "AGORA_TEST_KAFKA_BROKERS";
/// Environment variable holding the PostgreSQL URL used by tests.
pub const DATABASE_URL_ENV: &str = "AGORA_TEST_DATABASE_URL";

/// Bootstrap servers of the test broker started by `scripts/kafka.sh`.
pub const DEFAULT_KAFKA_BROKERS: &str = "127.0.0.1:59092";
/// URL of the test cluster started by `scripts/postgres.sh`.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:55432/postgres";

/// Environment variable holding the issuer URL of the test OpenID provider (Ory Hydra).
pub const OIDC_ISSUER_ENV: &str = "AGORA_TEST_OIDC_ISSUER";
/// Environment variable holding the admin API URL of the test OpenID provider.
pub const OIDC_ADMIN_ENV: &str = "AGORA_TEST_OIDC_ADMIN";
/// The issuer of the Hydra started by `scripts/hydra.sh`.
pub const DEFAULT_OIDC_ISSUER: &str = "http://127.0.0.1:54444";
/// The admin API of the Hydra started by `scripts/hydra.sh`.
pub const DEFAULT_OIDC_ADMIN: &str = "http://127.0.0.1:54445";

/// What to tell a developer when a service cannot be reached.
pub const SERVICES_HINT: &str =
    "start the test services with `scripts/services.sh start` (or run `scripts/test.sh`)";

/// Kafka bootstrap servers: `$AGORA_TEST_KAFKA_BROKERS`, else `127.0.0.1:59092`.
pub fn kafka_brokers() -> String {
    env_or(KAFKA_BROKERS_ENV, DEFAULT_KAFKA_BROKERS)
}

/// PostgreSQL URL: `$AGORA_TEST_DATABASE_URL`, else
/// `postgres://postgres@127.0.0.1:55432/postgres`.
pub fn database_url() -> String {
    env_or(DATABASE_URL_ENV, DEFAULT_DATABASE_URL)
}

/// The test OpenID provider's issuer: `$AGORA_TEST_OIDC_ISSUER`, else
/// `http://127.0.0.1:54444`.
pub fn oidc_issuer() -> String {
    env_or(OIDC_ISSUER_ENV, DEFAULT_OIDC_ISSUER)
}

/// The test OpenID provider's admin API: `$AGORA_TEST_OIDC_ADMIN`, else
/// `http://127.0.0.1:54445`.
pub fn oidc_admin() -> String {
    env_or(OIDC_ADMIN_ENV, DEFAULT_OIDC_ADMIN)
}

fn env_or(var: &str, default: &str) -> String {
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => value.trim().to_owned(),
        _ => default.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_point_at_the_scripts_ports() {
        assert!(DEFAULT_KAFKA_BROKERS.ends_with(":59092"));
        assert!(DEFAULT_DATABASE_URL.contains(":55432/"));
        assert!(DEFAULT_OIDC_ISSUER.ends_with(":54444"));
        assert!(DEFAULT_OIDC_ADMIN.ends_with(":54445"));
    }
}
