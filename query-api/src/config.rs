//! Configuration from the environment (flags override), as in DESIGN.md.

use std::time::Duration;

use clap::Parser;
use platform::AuthSettings;

/// Settings of the query API.
#[derive(Debug, Clone, Parser)]
#[command(name = "query-api", about = "Agora's query API")]
pub struct Settings {
    /// The read-model database; defaults to `DATABASE_URL`.
    #[arg(long, env = "READ_DATABASE_URL", hide_env_values = true)]
    pub read_database_url: Option<String>,
    /// The event store, read by the audit endpoints through read-only sessions (and the
    /// read-model database when `READ_DATABASE_URL` is unset). Without it the audit
    /// endpoints answer 503: they never fall back to `READ_DATABASE_URL`, which may be a
    /// database without the event log.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Where to listen.
    #[arg(long, env = "QUERY_API_ADDR", default_value = "127.0.0.1:8081")]
    pub addr: String,
    /// How tokens are checked (an OpenID provider and/or an HS256 secret).
    #[command(flatten)]
    pub auth: AuthSettings,
    /// How long `?min_version=N` waits for the read model, in milliseconds.
    #[arg(long, env = "AGORA_CONSISTENCY_WAIT_MS", default_value_t = 5000)]
    pub consistency_wait_ms: u64,
    /// How many `?min_version=N` requests may wait at once (per process); one more is
    /// answered 503 `not_yet_consistent` at once.
    #[arg(long, env = "AGORA_CONSISTENCY_MAX_WAITERS", default_value_t = 256)]
    pub consistency_max_waiters: usize,
    /// Connections to each database.
    #[arg(long, env = "AGORA_DB_POOL_SIZE", default_value_t = 32)]
    pub pool_size: usize,
    /// HTTP worker threads (0: one per core).
    #[arg(long, env = "AGORA_HTTP_WORKERS", default_value_t = 0)]
    pub workers: usize,
    /// HTTPS: `AGORA_TLS_CERT` and `AGORA_TLS_KEY` (plain HTTP without them).
    #[command(flatten)]
    pub tls: platform::tls::TlsSettings,
    /// Live subscribers (SSE streams and GraphQL subscriptions) one process serves at once.
    #[arg(long, env = "AGORA_MAX_LIVE_SUBSCRIBERS", default_value_t = 10_000)]
    pub max_live_subscribers: usize,
    /// Seconds between two heartbeats of `GET /v1/dashboard/stream`.
    #[arg(long, env = "AGORA_SSE_HEARTBEAT_SECS", default_value_t = 15)]
    pub sse_heartbeat_secs: u64,
    /// The master key customers' personal data is opened with (`AGORA_PII_KEY`; needs
    /// `DATABASE_URL`, where the data keys are).
    #[command(flatten)]
    pub pii: platform::pii::PiiSettings,
}

impl Settings {
    /// The read-model database: `READ_DATABASE_URL`, else `DATABASE_URL`.
    pub fn read_database_url(&self) -> anyhow::Result<&str> {
        self.read_database_url
            .as_deref()
            .or(self.database_url.as_deref())
            .ok_or_else(|| anyhow::anyhow!("set READ_DATABASE_URL or DATABASE_URL"))
    }

    /// The longest a `?min_version=N` request waits.
    pub fn consistency_wait(&self) -> Duration {
        Duration::from_millis(self.consistency_wait_ms)
    }

    /// The pause between two heartbeats of the SSE stream (at least a second).
    pub fn sse_heartbeat(&self) -> Duration {
        Duration::from_secs(self.sse_heartbeat_secs.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(read: Option<&str>, events: Option<&str>) -> Settings {
        Settings {
            read_database_url: read.map(Into::into),
            database_url: events.map(Into::into),
            addr: "127.0.0.1:0".into(),
            auth: AuthSettings::hs256("0123456789abcdef0123456789abcdef"),
            consistency_wait_ms: 5000,
            consistency_max_waiters: 256,
            pool_size: 4,
            workers: 1,
            tls: Default::default(),
            max_live_subscribers: 10,
            sse_heartbeat_secs: 15,
            pii: Default::default(),
        }
    }

    #[test]
    fn the_read_database_falls_back_to_the_event_store() {
        let both = settings(Some("postgres://read"), Some("postgres://events"));
        assert_eq!(both.read_database_url().unwrap(), "postgres://read");
        let events_only = settings(None, Some("postgres://events"));
        assert_eq!(
            events_only.read_database_url().unwrap(),
            "postgres://events"
        );
        assert!(settings(None, None).read_database_url().is_err());
    }
}
