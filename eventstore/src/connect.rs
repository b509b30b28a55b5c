//! How every service connects to PostgreSQL: one connector for pools and single
//! sessions, so TLS (`sslmode`, `sslrootcert`: see [`crate::tls`]), timeouts and session
//! settings are set in one place, and schema migrations.
//!
//! Bounds every pool has (see README, "Bounds"):
//! - a checkout waits at most [`POOL_WAIT_TIMEOUT`] for a free connection, a new
//!   connection gets [`CONNECT_TIMEOUT`] to be established and a recycled one
//!   [`RECYCLE_TIMEOUT`] to be checked; past that the caller gets a passing error (503);
//! - every session runs with `statement_timeout` ([`STATEMENT_TIMEOUT`]) and
//!   `idle_in_transaction_session_timeout` ([`IDLE_IN_TRANSACTION_TIMEOUT`]), so no request
//!   can hold a connection or a lock for long. A URL may set other values with its own
//!   `options` (they come after ours, and the last `-c` of a setting wins);
//! - a peer that vanishes without closing the connection (a partition, a host that lost
//!   power) is noticed: data the server has not acknowledged for [`TCP_USER_TIMEOUT`] ends
//!   the connection, and an idle one is probed after [`TCP_KEEPALIVE_IDLE`] (every
//!   [`TCP_KEEPALIVE_INTERVAL`], [`TCP_KEEPALIVE_RETRIES`] times), instead of the system's
//!   defaults of about 15 minutes and 2 hours. The URL's own `tcp_user_timeout`,
//!   `keepalives_idle`, `keepalives_interval` and `keepalives_retries` win.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::task::JoinHandle;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Config, Connection, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::StoreError;
use crate::tls::SslSettings;

/// A connection to drive (for sessions that read notifications themselves).
pub type SessionConnection =
    Connection<Socket, <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream>;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Arbitrary but fixed key of the advisory lock that serializes concurrent migrators.
const MIGRATION_LOCK_KEY: i64 = 0x4147_4f52_415f_4d31;

/// How long a pool checkout waits for a free connection.
pub const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long establishing a new connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long checking a pooled connection before reuse may take.
pub const RECYCLE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a statement may run.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a session may sit idle inside a transaction.
pub const IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);

/// How long data sent may stay unacknowledged by the server before the connection ends.
pub const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection may be idle before the first keepalive probe.
pub const TCP_KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// The time between two keepalive probes.
pub const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// Unanswered keepalive probes before the connection ends.
pub const TCP_KEEPALIVE_RETRIES: u32 = 3;
/// tokio-postgres's own idle time before a probe: a URL that leaves it gets ours.
const LIBRARY_KEEPALIVE_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

/// The connection settings of one database, with Agora's session settings applied.
#[derive(Clone)]
pub struct Connector {
    config: Config,
    tls: MakeRustlsConnect,
    /// Startup options that come after the URL's own, so the URL cannot undo them.
    enforced_options: Vec<String>,
}

impl Connector {
    /// The settings in `database_url` (a `postgres://` URL or a key=value string),
    /// including libpq's `sslmode` and `sslrootcert`.
    pub fn new(database_url: &str) -> Result<Connector, StoreError> {
        let (ssl, rest) = SslSettings::split(database_url)?;
        let mut config = Config::from_str(&rest)
            .map_err(|error| StoreError::Config(format!("invalid database URL: {error}")))?;
        config.ssl_mode(ssl.mode.tokio_postgres_mode());
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(TCP_USER_TIMEOUT);
        }
        if config.get_keepalives_idle() == LIBRARY_KEEPALIVE_IDLE {
            config.keepalives_idle(TCP_KEEPALIVE_IDLE);
        }
        if config.get_keepalives_interval().is_none() {
            config.keepalives_interval(TCP_KEEPALIVE_INTERVAL);
        }
        if config.get_keepalives_retries().is_none() {
            config.keepalives_retries(TCP_KEEPALIVE_RETRIES);
        }
        Ok(Connector {
            config,
            tls: ssl.connector()?,
            enforced_options: Vec::new(),
        })
    }

    /// Every transaction of every session is read-only (`default_transaction_read_only`),
    /// whatever the URL says. A guard against mistakes, not a security boundary: a
    /// session may lower it again; a role with only `SELECT` is the boundary.
    pub fn read_only(mut self) -> Connector {
        self.enforced_options
            .push("-c default_transaction_read_only=on".to_owned());
        self
    }

    /// The name sessions show in `pg_stat_activity`, unless the URL names one.
    pub fn application_name(mut self, name: &str) -> Connector {
        if self.config.get_application_name().is_none() {
            self.config.application_name(name);
        }
        self
    }

    /// The settings every session starts with: our defaults, then the URL's own
    /// `options`, then the enforced ones.
    pub fn config(&self) -> Config {
        let mut config = self.config.clone();
        let defaults = format!(
            "-c statement_timeout={} -c idle_in_transaction_session_timeout={}",
            STATEMENT_TIMEOUT.as_millis(),
            IDLE_IN_TRANSACTION_TIMEOUT.as_millis()
        );
        let mut options = vec![defaults];
        if let Some(own) = self.config.get_options().map(str::trim) {
            if !own.is_empty() {
                options.push(own.to_owned());
            }
        }
        options.extend(self.enforced_options.iter().cloned());
        config.options(options.join(" "));
        config
    }

    /// A pool of at most `max_size` sessions, with the bounds of the module doc.
    pub fn pool(&self, max_size: usize) -> Result<Pool, StoreError> {
        let manager = Manager::from_config(
            self.config(),
            self.tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(max_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(RECYCLE_TIMEOUT))
            .build()
            .map_err(|error| StoreError::Config(error.to_string()))
    }

    /// One session and its connection, which the caller drives (to read notifications).
    pub async fn connect(&self) -> Result<(Client, SessionConnection), StoreError> {
        Ok(self.config().connect(self.tls.clone()).await?)
    }

    /// One session outside any pool (listeners, leaders holding advisory locks,
    /// migrations), and the task driving its connection; the task ends when the client
    /// is dropped or the connection fails.
    pub async fn session(&self) -> Result<(Client, JoinHandle<()>), StoreError> {
        let (client, connection) = self.connect().await?;
        let driver = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "database session ended with an error");
            }
        });
        Ok((client, driver))
    }
}

/// A pool of `max_size` connections to `database_url` (see [`Connector::pool`]).
pub fn connect_pool(database_url: &str, max_size: usize) -> Result<Pool, StoreError> {
    Connector::new(database_url)?.pool(max_size)
}

/// Applies every pending migration of the event store (see [`apply_migrations`]).
pub async fn migrate(database_url: &str) -> Result<(), StoreError> {
    apply_migrations(
        database_url,
        embedded::migrations::runner(),
        "refinery_schema_history",
        MIGRATION_LOCK_KEY,
    )
    .await
}

/// Applies every pending migration of `runner`, recorded in `history_table`, holding the
/// advisory lock `lock_key` so that services starting together do not race. When none is
/// pending it changes nothing and needs nothing but `SELECT` on the history table, so
/// services may run as roles that cannot create tables (deploy/postgres/roles.sql); a
/// pending migration then fails with the database's refusal (run `agora migrate` as the
/// tables' owner).
pub async fn apply_migrations(
    database_url: &str,
    mut runner: refinery::Runner,
    history_table: &str,
    lock_key: i64,
) -> Result<(), StoreError> {
    runner.set_migration_table_name(history_table);
    // Migrations may run longer than a request's statement: no statement timeout here.
    let (mut client, driver) = Connector::new(database_url)?.session().await?;
    if !migrations_pending(&client, &runner, history_table).await? {
        return Ok(());
    }
    client.batch_execute("SET statement_timeout = 0").await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&lock_key])
        .await?;
    let outcome = runner
        .run_async(&mut client)
        .await
        .map_err(|error| StoreError::Migration(error.to_string()));
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&lock_key])
        .await;
    drop(client);
    let _ = driver.await;
    let report = outcome?;
    unlocked?;
    for migration in report.applied_migrations() {
        tracing::info!(migration = %migration, "applied migration");
    }
    Ok(())
}

/// Whether any migration of `runner` is not in `history_table` yet.
async fn migrations_pending(
    client: &Client,
    runner: &refinery::Runner,
    history_table: &str,
) -> Result<bool, StoreError> {
    let history: Option<String> = client
        .query_one("SELECT to_regclass($1)::text", &[&history_table])
        .await?
        .try_get(0)?;
    let Some(history) = history else {
        return Ok(true);
    };
    let applied: Vec<i32> = client
        .query(&format!("SELECT version FROM {history}"), &[])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    Ok(runner
        .get_migrations()
        .iter()
        .any(|migration| !applied.contains(&migration.version())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_options_come_between_defaults_and_enforced_ones() {
        let connector =
            Connector::new("postgres://u@localhost/db?options=-c%20statement_timeout%3D100")
                .unwrap()
                .read_only();
        let options = connector.config().get_options().unwrap().to_owned();
        let defaults = options.find("statement_timeout=30000").unwrap();
        let own = options.find("statement_timeout=100").unwrap();
        let enforced = options.find("default_transaction_read_only=on").unwrap();
        assert!(defaults < own && own < enforced, "{options}");
    }

    #[test]
    fn a_vanished_peer_is_noticed_unless_the_url_says_otherwise() {
        let ours = Connector::new("postgres://u@localhost/db")
            .unwrap()
            .config();
        assert_eq!(ours.get_tcp_user_timeout(), Some(&TCP_USER_TIMEOUT));
        assert!(ours.get_keepalives());
        assert_eq!(ours.get_keepalives_idle(), TCP_KEEPALIVE_IDLE);
        assert_eq!(ours.get_keepalives_interval(), Some(TCP_KEEPALIVE_INTERVAL));
        assert_eq!(ours.get_keepalives_retries(), Some(TCP_KEEPALIVE_RETRIES));

        let own = Connector::new(
            "postgres://u@localhost/db?tcp_user_timeout=5&keepalives_idle=7\
             &keepalives_interval=2&keepalives_retries=9",
        )
        .unwrap()
        .config();
        assert_eq!(own.get_tcp_user_timeout(), Some(&Duration::from_secs(5)));
        assert_eq!(own.get_keepalives_idle(), Duration::from_secs(7));
        assert_eq!(own.get_keepalives_interval(), Some(Duration::from_secs(2)));
        assert_eq!(own.get_keepalives_retries(), Some(9));

        let off = Connector::new("host=localhost user=u keepalives=0")
            .unwrap()
            .config();
        assert!(!off.get_keepalives());
    }

    #[test]
    fn a_bad_url_is_a_configuration_error() {
        assert!(matches!(
            Connector::new("postgres://localhost:notaport/db"),
            Err(StoreError::Config(_))
        ));
    }
}
