//! SIGTERM during a load of commands: every command that got a 2xx has its events in the
//! store, and after a restart they are all in the read models.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use eventstore::testing::TestDatabase;
use platform::{JwtKeys, Role};
use projector::service::Projector;
use serde_json::{json, Value};

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_loses_no_acknowledged_command() -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    let port = testkit::free_port()?;
    let mut command = Command::new(support::binary("command-api")?);
    command
        .env("DATABASE_URL", &db.url)
        .env("COMMAND_API_ADDR", format!("127.0.0.1:{port}"))
        .env("AGORA_JWT_SECRET", support::SECRET)
        .env("AGORA_SHUTDOWN_DRAIN_MS", "200")
        .env_remove("KAFKA_BROKERS")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut server = Process(command.spawn()?);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let admin = JwtKeys::hs256(support::SECRET.as_bytes()).mint("root", &[Role::Admin], 3600)?;
    let mut product = None;
    for _ in 0..200 {
        let response = http
            .post(format!("{base}/v1/products"))
            .bearer_auth(&admin)
            .json(&json!({"sku": "T-1", "name": "Term", "price_cents": 100, "currency": "EUR"}))
            .send()
            .await;
        if let Ok(response) = response {
            let body: Value = response.json().await?;
            product = body["id"].as_str().map(str::to_owned);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let product = product.ok_or_else(|| anyhow::anyhow!("the command API did not come up"))?;

    // 8 clients restock in a loop; SIGTERM arrives in the middle.
    let mut clients = Vec::new();
    for client in 0..8 {
        let (http, base, admin, product) =
            (http.clone(), base.clone(), admin.clone(), product.clone());
        clients.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for n in 0..400 {
                let quantity = client * 1000 + n + 1;
                let sent = http
                    .post(format!("{base}/v1/products/{product}/restock"))
                    .bearer_auth(&admin)
                    .json(&json!({ "quantity": quantity }))
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().is_success() => {
                        let body: Value = response.json().await.unwrap_or_default();
                        acknowledged.push((quantity, body["version"].as_i64().unwrap_or(0)));
                    }
                    Ok(_) | Err(_) => break,
                }
            }
            acknowledged
        }));
    }
    // A client that keeps an idle keep-alive connection open (a browser, a load balancer):
    // it must not hold the shutdown until the 30 s shutdown timeout.
    let idle = reqwest::Client::new();
    idle.get(format!("{base}/healthz"))
        .send()
        .await?
        .text()
        .await?;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let pid = server.0.id().to_string();
    let terminated_at = std::time::Instant::now();
    let status = Command::new("kill").args(["-TERM", &pid]).status()?;
    anyhow::ensure!(status.success(), "kill -TERM failed");
    let mut acknowledged = Vec::new();
    for client in clients {
        acknowledged.extend(client.await?);
    }
    let exit = tokio::task::spawn_blocking(move || server.0.wait()).await??;
    let shutdown = terminated_at.elapsed();
    drop(idle);
    assert!(
        exit.success(),
        "the command API exits cleanly on SIGTERM: {exit:?}"
    );
    assert!(
        shutdown < Duration::from_secs(20),
        "an idle keep-alive connection held the shutdown for {shutdown:?}"
    );
    assert!(
        acknowledged.len() > 10,
        "the load ran before SIGTERM ({})",
        acknowledged.len()
    );

    // Every acknowledged restock is in the store, at the version it was acknowledged with.
    let stream = db.store.load_stream(product.parse()?).await?;
    for (quantity, version) in &acknowledged {
        let event = stream
            .events
            .iter()
            .find(|e| e.version == *version)
            .ok_or_else(|| anyhow::anyhow!("acknowledged version {version} is missing"))?;
        assert_eq!(event.payload["quantity"].as_i64(), Some(*quantity));
    }

    // After a restart, the read models hold every acknowledged command.
    let projector = Projector::start(projector::config::Settings {
        database_url: db.url.clone(),
        read_database_url: None,
        kafka_brokers: None,
        topic_prefix: "agora".into(),
        group_id: "g".into(),
        addr: "127.0.0.1:0".into(),
        batch_size: 500,
        stall_after: std::time::Duration::from_secs(30),
    })
    .await?;
    let client = db.store.pool().get().await?;
    let expected_on_hand: i64 = stream
        .events
        .iter()
        .filter_map(|e| e.payload["quantity"].as_i64())
        .sum();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let row = client
            .query_opt(
                "SELECT on_hand, version FROM read_model.products WHERE id = $1::text::uuid",
                &[&product],
            )
            .await;
        if let Ok(Some(row)) = row {
            let (on_hand, version): (i64, i64) = (row.get(0), row.get(1));
            if version == stream.version {
                assert_eq!(on_hand, expected_on_hand);
                break;
            }
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the read model never caught up"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    projector.stop().await
}
