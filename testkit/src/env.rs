//! Where the test services are: the `AGORA_TEST_*` variables `scripts/test.sh` exports, else
//! the ports the scripts use. Tests that need a service and cannot reach it fail with
//! [`SERVICES_HINT`]; they never skip.

/// Environment variable holding the PostgreSQL URL used by tests.
pub const DATABASE_URL_ENV: &str = "AGORA_TEST_DATABASE_URL";
/// Environment variable holding the Kafka bootstrap servers used by tests.
pub const KAFKA_BROKERS_ENV: &str = "AGORA_TEST_KAFKA_BROKERS";
/// Environment variable holding the issuer URL of the test OpenID provider (Ory Hydra).
pub const OIDC_ISSUER_ENV: &str = "AGORA_TEST_OIDC_ISSUER";
/// Environment variable holding the admin API URL of the test OpenID provider.
pub const OIDC_ADMIN_ENV: &str = "AGORA_TEST_OIDC_ADMIN";

/// Environment variable holding the API base of the test payment provider (localstripe).
pub const STRIPE_API_BASE_ENV: &str = "AGORA_TEST_STRIPE_API_BASE";

/// Environment variable holding the python of aiosmtpd's virtualenv (`scripts/tools.sh smtp`).
pub const SMTP_PYTHON_ENV: &str = "AGORA_TEST_SMTP_PYTHON";

/// URL of the test cluster started by `scripts/postgres.sh`.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:55432/postgres";
/// Bootstrap servers of the test broker started by `scripts/kafka.sh`.
pub const DEFAULT_KAFKA_BROKERS: &str = "127.0.0.1:59092";
/// The issuer of the Hydra started by `scripts/hydra.sh`.
pub const DEFAULT_OIDC_ISSUER: &str = "http://127.0.0.1:54444";
/// The admin API of the Hydra started by `scripts/hydra.sh`.
pub const DEFAULT_OIDC_ADMIN: &str = "http://127.0.0.1:54445";

/// The Stripe-compatible server started by `scripts/payments.sh` (localstripe).
pub const DEFAULT_STRIPE_API_BASE: &str = "http://127.0.0.1:58420";

/// What to tell a developer when a service cannot be reached.
pub const SERVICES_HINT: &str =
    "start the test services with `scripts/services.sh start` (or run `scripts/test.sh`)";

/// PostgreSQL URL (any database of the test cluster): `$AGORA_TEST_DATABASE_URL`, else
/// [`DEFAULT_DATABASE_URL`].
pub fn database_url() -> String {
    env_or(DATABASE_URL_ENV, DEFAULT_DATABASE_URL)
}

/// Kafka bootstrap servers: `$AGORA_TEST_KAFKA_BROKERS`, else [`DEFAULT_KAFKA_BROKERS`].
pub fn kafka_brokers() -> String {
    env_or(KAFKA_BROKERS_ENV, DEFAULT_KAFKA_BROKERS)
}

/// The test OpenID provider's issuer: `$AGORA_TEST_OIDC_ISSUER`, else
/// [`DEFAULT_OIDC_ISSUER`].
pub fn oidc_issuer() -> String {
    env_or(OIDC_ISSUER_ENV, DEFAULT_OIDC_ISSUER)
}

/// The test OpenID provider's admin API: `$AGORA_TEST_OIDC_ADMIN`, else
/// [`DEFAULT_OIDC_ADMIN`].
pub fn oidc_admin() -> String {
    env_or(OIDC_ADMIN_ENV, DEFAULT_OIDC_ADMIN)
}

/// The test payment provider's API: `$AGORA_TEST_STRIPE_API_BASE`, else
/// [`DEFAULT_STRIPE_API_BASE`].
pub fn stripe_api_base() -> String {
    env_or(STRIPE_API_BASE_ENV, DEFAULT_STRIPE_API_BASE)
}

/// The python that runs aiosmtpd: `$AGORA_TEST_SMTP_PYTHON`, else where
/// `scripts/tools.sh smtp` installs it (`~/.cache/agora/aiosmtpd-1.4.6/bin/python`).
pub fn smtp_python() -> String {
    let cache = std::env::var("AGORA_CACHE_DIR").unwrap_or_else(|_| {
        format!(
            "{}/.cache/agora",
            std::env::var("HOME").unwrap_or_else(|_| "/root".into())
        )
    });
    env_or(
        SMTP_PYTHON_ENV,
        &format!("{cache}/aiosmtpd-1.4.6/bin/python"),
    )
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
