//! The command API process dies (aborts, as abruptly as SIGKILL) at each step of an erasure:
//! after the data key is destroyed, and after `CustomerErased` is recorded. Once it is back,
//! nothing of the customer opens anywhere, asking again finishes the erasure with one
//! `CustomerErased` in the log, and the process's own logs never held the plaintext.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use eventstore::testing::TestDatabase;
use platform::{JwtKeys, Role};
use projector::service::Projector;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::personal::{assert_no_plaintext, given_address, pg_dump, profile, EMAIL};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The command API as a process on `db`, logging (debug, with every dependency's logs)
/// to `log`; aborting at `abort_at`, if given.
fn command_api(db: &TestDatabase, port: u16, log: &PathBuf, abort_at: Option<&str>) -> Process {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("the log file");
    let mut command = Command::new(support::binary("command-api").expect("built"));
    command
        .env("DATABASE_URL", &db.url)
        .env("COMMAND_API_ADDR", format!("127.0.0.1:{port}"))
        .env("AGORA_JWT_SECRET", support::SECRET)
        .env("AGORA_PII_KEY", support::PII_KEY)
        .env("RUST_LOG", "debug")
        .env_remove("KAFKA_BROKERS")
        .env_remove("AGORA_FAULT_ABORT_AT")
        .stdout(Stdio::from(file.try_clone().expect("the log file")))
        .stderr(Stdio::from(file));
    if let Some(point) = abort_at {
        command.env("AGORA_FAULT_ABORT_AT", point);
    }
    Process(command.spawn().expect("the command API starts"))
}

async fn up(http: &reqwest::Client, base: &str) {
    testkit::eventually("the command API is up", WAIT, || async {
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
}

async fn crash_at(point: &str) -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    let log = std::env::temp_dir().join(format!("agora-erasure-crash-{}.log", Uuid::new_v4()));
    let port = testkit::free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let keys = JwtKeys::hs256(support::SECRET.as_bytes());
    let admin = keys.mint("root", &[Role::Admin], 3600)?;
    let ana = keys.mint("ana", &[Role::Customer], 3600)?;

    let mut server = command_api(&db, port, &log, Some(point));
    up(&http, &base).await;
    let product: Value = http
        .post(format!("{base}/v1/products"))
        .bearer_auth(&admin)
        .json(
            &json!({"sku": "MUG", "name": "Mug", "price_cents": 500, "currency": "EUR",
                      "initial_stock": 5}),
        )
        .send()
        .await?
        .json()
        .await?;
    let set = http
        .put(format!("{base}/v1/me"))
        .bearer_auth(&ana)
        .json(&profile())
        .send()
        .await?;
    assert_eq!(set.status(), StatusCode::OK);
    let placed: Value = http
        .post(format!("{base}/v1/orders"))
        .bearer_auth(&ana)
        .json(
            &json!({"lines": [{"product_id": product["id"], "quantity": 1}],
                      "shipping_address": given_address()}),
        )
        .send()
        .await?
        .json()
        .await?;
    let order = placed["id"].as_str().unwrap_or_default().to_owned();

    // The erasure dies at `point`: no answer.
    let erase = || {
        http.post(format!("{base}/v1/customers/ana/erasure"))
            .bearer_auth(&ana)
            .json(&json!({"reason": "GDPR art. 17"}))
            .send()
    };
    assert!(erase().await.is_err(), "the process died at {point}");
    let status = tokio::task::spawn_blocking(move || server.0.wait()).await??;
    assert!(!status.success(), "aborted at {point}: {status:?}");

    // The read side, as it is after the crash: the key is already gone.
    let projector = Projector::start(projector::config::Settings {
        database_url: db.url.clone(),
        read_database_url: None,
        kafka_brokers: None,
        topic_prefix: "agora".into(),
        group_id: format!("crash-{}", Uuid::new_v4().simple()),
        addr: "127.0.0.1:0".into(),
        batch_size: 500,
        stall_after: std::time::Duration::from_secs(30),
    })
    .await?;
    let query =
        query_api::startup::Application::build(support::query_settings(None, Some(db.url.clone())))
            .await?;
    let query_base = format!("http://127.0.0.1:{}", query.port());
    tokio::spawn(query.run_until_stopped());
    let read = |path: String, token: String| {
        let http = http.clone();
        let query_base = query_base.clone();
        async move {
            let response = http
                .get(format!("{query_base}{path}"))
                .bearer_auth(token)
                .send()
                .await?;
            let status = response.status();
            Ok::<_, anyhow::Error>((status, response.json::<Value>().await?))
        }
    };
    testkit::try_eventually("the profile is projected", WAIT, || async {
        Ok::<_, anyhow::Error>(
            read("/v1/customers/ana".into(), admin.clone()).await?.0 == StatusCode::OK,
        )
    })
    .await?;
    let (_, customer) = read("/v1/customers/ana".into(), admin.clone()).await?;
    assert_eq!(
        customer["erased"], true,
        "after a crash at {point}: {customer}"
    );
    assert!(customer.get("email").is_none(), "{customer}");
    let (_, shown) = read(format!("/v1/orders/{order}"), admin.clone()).await?;
    assert_eq!(shown["shipping_address"], Value::Null, "{shown}");

    // Back up: asking again finishes it, with one CustomerErased in the log.
    let server = command_api(&db, port, &log, None);
    up(&http, &base).await;
    let again = erase().await?;
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    let client = db.store.pool().get().await?;
    let erased: i64 = client
        .query_one(
            "SELECT count(*) FROM events WHERE event_type = 'CustomerErased'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(erased, 1, "one CustomerErased after a crash at {point}");
    testkit::try_eventually("the erasure is projected", WAIT, || async {
        let (_, customer) = read("/v1/customers/ana".into(), admin.clone()).await?;
        let (_, order) = read(format!("/v1/orders/{order}"), admin.clone()).await?;
        Ok::<_, anyhow::Error>(
            customer["erased"] == true
                && customer["version"] == 2
                && order["shipping_address"].is_null(),
        )
    })
    .await?;
    let (_, me) = read("/v1/me".into(), ana.clone()).await?;
    assert_eq!(me["erased"], true);
    assert!(!me.to_string().contains(EMAIL));

    drop(server);
    projector.stop().await?;
    assert_no_plaintext(
        &format!("pg_dump after a crash at {point}"),
        &pg_dump(&db.url),
    );
    let logged = std::fs::read(&log)?;
    assert!(
        String::from_utf8_lossy(&logged).contains(point),
        "the log is the process's (it names the abort)"
    );
    assert_no_plaintext("the command API's debug log", &logged);
    let _ = std::fs::remove_file(&log);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_after_the_key_is_destroyed_leaves_nothing_readable() -> anyhow::Result<()> {
    crash_at("key_destroyed").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_after_the_erasure_is_recorded_leaves_nothing_readable() -> anyhow::Result<()> {
    crash_at("event_recorded").await
}
