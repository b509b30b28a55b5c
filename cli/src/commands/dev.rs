//! `agora dev`: the whole system on one machine, in one process, on an embedded default.
//!
//! It initializes and starts a private PostgreSQL (the installed server binaries, a data
//! directory it owns, a free port remembered across restarts), applies the migrations,
//! and runs the command API, a projector (on the Postgres log, or on Kafka with
//! `--kafka`) and the query API. It prints the URLs and an admin token, keeps its data
//! across restarts, and on Ctrl-C stops the services gracefully and then PostgreSQL.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::Context;
use clap::Args;
use platform::auth::DEVELOPMENT_SECRET;
use platform::{AuthSettings, JwtKeys, Role};
use tokio_postgres::NoTls;

/// `agora dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Where PostgreSQL's data and the dev secret live (default: `.agora/dev` under the
    /// current directory; `/var/lib/agora/dev` when run as root, since PostgreSQL then runs
    /// as the `postgres` user and needs a directory it can reach).
    #[arg(long, env = "AGORA_DEV_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where the command API listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub command_addr: String,
    /// Where the query API listens.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub query_addr: String,
    /// Where the projector serves /healthz, /readyz and /metrics.
    #[arg(long, default_value = "127.0.0.1:8082")]
    pub projector_addr: String,
    /// Run the Kafka path: the relay publishes to these brokers and the projector consumes.
    #[arg(long, value_name = "BROKERS")]
    pub kafka: Option<String>,
    /// The HS256 secret (default: the development secret, which `agora token` also
    /// defaults to, so tokens minted with it work at once). Only `agora dev` accepts the
    /// development secret; the services refuse to start with it.
    #[arg(long, env = "AGORA_JWT_SECRET", hide_env_values = true, default_value = DEVELOPMENT_SECRET)]
    pub jwt_secret: String,
    /// An unpaid order is cancelled by the system after this (`30m`, `90s`, ...).
    #[arg(long, env = "AGORA_ORDER_PAYMENT_TTL", default_value = "30m", value_parser = humantime::parse_duration)]
    pub payment_ttl: std::time::Duration,
    /// The most orders one customer may hold in `placed` (0: no limit).
    #[arg(long, env = "AGORA_MAX_OPEN_ORDERS_PER_CUSTOMER", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub max_open_orders_per_customer: u32,
    /// The key webhook secrets are sealed with (64 hex digits; default: generated once and
    /// kept in the data directory as `webhook.key`).
    #[arg(long, env = "AGORA_WEBHOOK_KEY", hide_env_values = true)]
    pub webhook_key: Option<String>,
    /// The master key of customers' personal data (64 hex digits; default: generated once
    /// and kept in the data directory as `pii.key`).
    #[arg(long, env = "AGORA_PII_KEY", hide_env_values = true)]
    pub pii_key: Option<String>,
    /// Email: `AGORA_SMTP_URL` and friends; without them each message is written as an
    /// `.eml` file into `<data dir>/mail`.
    #[command(flatten)]
    pub email: command_api::emails::EmailSettings,
}

/// How to tell the user to get PostgreSQL.
const INSTALL_HINT: &str =
    "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found.\n\
  Install them, then run `agora dev` again:\n\
    Debian/Ubuntu:  sudo apt-get install postgresql\n\
    Fedora:         sudo dnf install postgresql-server\n\
    macOS:          brew install postgresql@16\n\
  or point AGORA_PG_BIN at the directory that holds them.";

pub async fn run(args: DevArgs) -> anyhow::Result<ExitCode> {
    let root = is_root();
    let data_dir = args.data_dir.clone().unwrap_or_else(|| {
        if root {
            PathBuf::from("/var/lib/agora/dev")
        } else {
            PathBuf::from(".agora/dev")
        }
    });
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let data_dir = data_dir.canonicalize()?;
    let bin = find_postgres().ok_or_else(|| anyhow::anyhow!(INSTALL_HINT))?;
    let postgres = EmbeddedPostgres::start(&bin, &data_dir.join("postgres"), root)?;
    let outcome = serve(&args, &data_dir, &postgres).await;
    postgres.stop();
    outcome
}

async fn serve(
    args: &DevArgs,
    data_dir: &Path,
    postgres: &EmbeddedPostgres,
) -> anyhow::Result<ExitCode> {
    let admin_url = postgres.url("postgres");
    let (client, connection) = tokio_postgres::connect(&admin_url, NoTls).await?;
    let driver = tokio::spawn(connection);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = 'agora'", &[])
        .await?
        .is_some();
    if !exists {
        client.batch_execute("CREATE DATABASE agora").await?;
    }
    drop(client);
    let _ = driver.await;
    let database_url = postgres.url("agora");
    let secret = args.jwt_secret.clone();
    let auth = AuthSettings {
        development: true,
        ..AuthSettings::hs256(&secret)
    };

    eventstore::migrate(&database_url).await?;
    readmodel::migrate(&database_url).await?;
    let webhook_key = match &args.webhook_key {
        Some(key) => key.clone(),
        None => dev_key(
            data_dir,
            "webhook.key",
            command_api::webhooks::secrets::SecretBox::generate_key,
        )?,
    };
    // Email: to the SMTP server of AGORA_SMTP_URL when set, else as .eml files here.
    let mut email = args.email.clone();
    if !email.enabled() {
        email.mail_dir = Some(data_dir.join("mail"));
    }
    let pii = platform::pii::PiiSettings {
        pii_key: Some(match &args.pii_key {
            Some(key) => key.clone(),
            None => dev_key(data_dir, "pii.key", platform::pii::generate_master_key)?,
        }),
        pii_retired_keys: Vec::new(),
    };
    let signing_key = ensure_signing_key(data_dir)?;
    let command = command_api::startup::Application::build(command_api::config::Settings {
        database_url: database_url.clone(),
        addr: args.command_addr.clone(),
        auth: auth.clone(),
        pool_size: 16,
        workers: 2,
        state_cache_mb: 64,
        group_commit: true,
        group_commit_max_commands: 256,
        group_commit_in_flight: 2,
        kafka_brokers: args.kafka.clone(),
        topic_prefix: "agora".into(),
        shutdown_drain_ms: 0,
        tls: Default::default(),
        reactors: true,
        payment_ttl: args.payment_ttl,
        max_open_orders_per_customer: args.max_open_orders_per_customer,
        webhook_key: Some(webhook_key),
        webhook_allow_insecure: true,
        webhook_max_attempts: 10,
        webhook_retry_base: std::time::Duration::from_secs(5),
        log_signing_key: Some(signing_key),
        checkpoint_interval: std::time::Duration::from_secs(10),
        sequencer: true,
        sequencer_database_url: None,
        // The development provider: an admin confirms payments, no money moves.
        payments: Default::default(),
        pii: pii.clone(),
        email: email.clone(),
    })
    .await
    .with_context(|| {
        format!(
            "cannot start the command API on {} (use --command-addr)",
            args.command_addr
        )
    })?;
    let query = query_api::startup::Application::build(query_api::config::Settings {
        read_database_url: None,
        database_url: Some(database_url.clone()),
        addr: args.query_addr.clone(),
        auth,
        consistency_wait_ms: 5000,
        consistency_max_waiters: 256,
        pool_size: 16,
        workers: 2,
        tls: Default::default(),
        max_live_subscribers: 10_000,
        sse_heartbeat_secs: 15,
        pii,
    })
    .await
    .with_context(|| {
        format!(
            "cannot start the query API on {} (use --query-addr)",
            args.query_addr
        )
    })?;
    let projector = projector::service::Projector::start(projector::config::Settings {
        database_url: database_url.clone(),
        read_database_url: None,
        kafka_brokers: args.kafka.clone(),
        topic_prefix: "agora".into(),
        group_id: "agora-projector".into(),
        addr: args.projector_addr.clone(),
        batch_size: 1000,
        stall_after: std::time::Duration::from_secs(30),
    })
    .await?;
    let command_url = format!("http://{}", command.address());
    let query_url = format!("http://127.0.0.1:{}", query.port());
    let token = JwtKeys::hs256(secret.as_bytes()).mint("admin", &[Role::Admin], 30 * 24 * 3600)?;
    println!(
        "Agora is running (Ctrl-C stops it; data in {})",
        data_dir.display()
    );
    println!("  command API  {command_url}");
    println!("  query API    {query_url}");
    println!("  projector    http://127.0.0.1:{}/metrics", projector.port);
    println!("  PostgreSQL   {database_url}");
    println!(
        "  log key      {} (signs the audit log's checkpoints)",
        signing_key_path(data_dir).display()
    );
    println!(
        "  source       {}",
        args.kafka
            .as_deref()
            .map_or("Postgres log (no Kafka)".to_owned(), |b| format!(
                "Kafka at {b}"
            ))
    );
    println!(
        "  email        {}",
        match (&email.smtp_url, &email.mail_dir) {
            (Some(_), _) => "SMTP (AGORA_SMTP_URL)".to_owned(),
            (None, Some(dir)) => format!("written as .eml files into {}", dir.display()),
            (None, None) => "off".to_owned(),
        }
    );
    println!("admin token: {token}");
    println!("  export TOKEN={token}");
    println!("  curl -s -X POST {command_url}/v1/products -H \"Authorization: Bearer $TOKEN\" \\");
    println!("    -H 'Content-Type: application/json' \\");
    println!("    -d '{{\"sku\":\"MUG-1\",\"name\":\"Mug\",\"price_cents\":1299,\"currency\":\"EUR\",\"initial_stock\":10}}'");
    if secret == DEVELOPMENT_SECRET {
        println!("more tokens: agora token --sub alice --role customer   (development secret)");
    } else {
        println!("more tokens: AGORA_JWT_SECRET=... agora token --sub alice --role customer");
    }

    // Both APIs stop gracefully on SIGINT/SIGTERM by themselves, and so does the projector
    // (it commits its batch in hand); PostgreSQL stops last. A projector whose worker fails
    // for good stops everything, and `agora dev` exits non-zero, as the projector binary
    // does: a development stack that silently stopped projecting would mislead.
    let command = tokio::spawn(command.run_until_stopped());
    let query = tokio::spawn(query.run_until_stopped());
    let projected = projector.run_until_signalled().await;
    println!("stopping…");
    if projected.is_err() {
        command.abort();
        query.abort();
    }
    // Each step is bounded so PostgreSQL is always stopped in the end.
    let step = std::time::Duration::from_secs(20);
    if tokio::time::timeout(step, async {
        let _ = command.await;
        let _ = query.await;
    })
    .await
    .is_err()
    {
        eprintln!("the APIs did not stop within {step:?}; going on");
    }
    projected?;
    Ok(ExitCode::SUCCESS)
}

/// A development key (the webhook key, the personal data master key): generated once, kept
/// in `<data dir>/<file>` (owner read/write only) so what was sealed with it still opens
/// after a restart.
fn dev_key(data_dir: &Path, file: &str, generate: fn() -> String) -> anyhow::Result<String> {
    let path = data_dir.join(file);
    if let Ok(key) = std::fs::read_to_string(&path) {
        return Ok(key.trim().to_owned());
    }
    let key = generate();
    std::fs::write(&path, &key).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(key)
}

/// Where `agora dev` keeps the log's signing key.
fn signing_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("log-signing-key.pem")
}

/// The log's signing key file in `data_dir`, generated (readable by its owner only) on the
/// first run, so checkpoints signed across restarts verify with one key.
fn ensure_signing_key(data_dir: &Path) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let path = signing_key_path(data_dir);
    if !path.exists() {
        let pem = eventstore::checkpoint::LogSigningKey::generate()
            .to_pem()
            .map_err(anyhow::Error::msg)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        file.write_all(pem.as_bytes())?;
    }
    Ok(path)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The directory holding initdb, pg_ctl and postgres: `AGORA_PG_BIN`, else the newest
/// Debian-style install, else the one on `PATH`.
fn find_postgres() -> Option<PathBuf> {
    let complete = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    if let Ok(dir) = std::env::var("AGORA_PG_BIN") {
        return Some(PathBuf::from(dir)).filter(|d| complete(d));
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| complete(dir))
        .collect();
    debian.sort();
    if let Some((_, dir)) = debian.pop() {
        return Some(dir);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|dir| complete(dir))
}

/// A private PostgreSQL cluster run with the installed binaries.
struct EmbeddedPostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl EmbeddedPostgres {
    fn start(bin: &Path, dir: &Path, root: bool) -> anyhow::Result<EmbeddedPostgres> {
        std::fs::create_dir_all(dir)?;
        if root {
            // initdb and postgres refuse to run as root: the cluster belongs to `postgres`.
            run_checked(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(dir),
            )
            .context("chown of the data directory to the postgres user (does that user exist?)")?;
        }
        let mut cluster = EmbeddedPostgres {
            bin: bin.to_owned(),
            dir: dir.to_owned(),
            port: 0,
            as_postgres: root,
        };
        let data = dir.join("data");
        if !data.join("PG_VERSION").exists() {
            println!("initializing PostgreSQL in {} …", data.display());
            let mut initdb = cluster.command("initdb");
            run_checked(initdb.arg("-D").arg(&data).args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
            ]))
            .context("initdb failed")?;
        }
        let port_file = dir.join("port");
        let remembered = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|p| p.trim().parse().ok());
        let running = cluster
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("status")
            .stdout(Stdio::null())
            .status()?
            .success();
        cluster.port = match remembered {
            Some(port) if running => port,
            Some(port) if port_is_free(port) => port,
            _ => free_port()?,
        };
        std::fs::write(&port_file, cluster.port.to_string())?;
        if !running {
            let options = format!(
                "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={}",
                cluster.port,
                dir.display()
            );
            let mut start = cluster.command("pg_ctl");
            start
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.join("postgres.log"))
                .args(["-w", "-t", "60", "-o", &options, "start"]);
            run_checked(&mut start).with_context(|| {
                format!(
                    "PostgreSQL did not start; see {}",
                    dir.join("postgres.log").display()
                )
            })?;
        }
        Ok(cluster)
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        command.stdin(Stdio::null());
        command
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn stop(&self) {
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "-t", "60", "stop"])
            .stdout(Stdio::null());
        match stop.status() {
            Ok(status) if status.success() => println!("PostgreSQL stopped"),
            Ok(status) => eprintln!("pg_ctl stop failed: {status}"),
            Err(error) => eprintln!("pg_ctl stop failed: {error}"),
        }
    }
}

fn run_checked(command: &mut Command) -> anyhow::Result<()> {
    let output = command.output()?;
    anyhow::ensure!(
        output.status.success(),
        "{:?} failed ({}): {}",
        command.get_program(),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}
