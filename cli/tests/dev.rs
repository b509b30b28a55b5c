//! `agora dev` itself: it brings the whole system up on a private PostgreSQL, the README's
//! curl tour works against it, Ctrl-C stops it cleanly, and data survives a restart.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use platform::{JwtKeys, Role};
use serde_json::{json, Value};

const SECRET: &str = "dev-test-secret";

struct Dev {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `agora dev` and waits for its banner; returns it with the admin token.
fn start(data_dir: &str, ports: (u16, u16, u16)) -> (Dev, String) {
    let (dev, token, _) = start_with_banner(data_dir, ports);
    (dev, token)
}

/// [`start`], also returning the banner's lines.
fn start_with_banner(data_dir: &str, ports: (u16, u16, u16)) -> (Dev, String, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["dev", "--data-dir", data_dir])
        .args(["--command-addr", &format!("127.0.0.1:{}", ports.0)])
        .args(["--query-addr", &format!("127.0.0.1:{}", ports.1)])
        .args(["--projector-addr", &format!("127.0.0.1:{}", ports.2)])
        .env("AGORA_JWT_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("agora dev starts");
    let stdout = child.stdout.take().expect("stdout");
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let dev = Dev { child, lines };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut banner = Vec::new();
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let line = dev
            .lines
            .recv_timeout(remaining)
            .expect("agora dev prints an admin token within 120 s");
        if let Some(token) = line.strip_prefix("admin token: ") {
            return (dev, token.trim().to_owned(), banner);
        }
        banner.push(line);
    }
}

/// Sends SIGINT and waits for a clean exit.
fn interrupt(mut dev: Dev) {
    let pid = dev.child.id().to_string();
    let status = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(exit) = dev.child.try_wait().expect("wait") {
            assert!(
                exit.success(),
                "agora dev exits cleanly on Ctrl-C: {exit:?}"
            );
            let said: Vec<String> = dev.lines.try_iter().collect();
            assert!(
                said.iter().any(|l| l.contains("PostgreSQL stopped")),
                "{said:?}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "agora dev did not stop within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A projector that can no longer project stops `agora dev`, which exits non-zero (as the
/// projector binary does) and still stops its PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agora_dev_exits_non_zero_when_its_projector_fails() -> anyhow::Result<()> {
    let data_dir = format!("/tmp/agora-dev-test-{}", uuid::Uuid::new_v4().simple());
    let ports = (
        testkit::free_port()?,
        testkit::free_port()?,
        testkit::free_port()?,
    );
    let (mut dev, admin, banner) = start_with_banner(&data_dir, ports);
    let database_url = banner
        .iter()
        .find_map(|line| line.trim().strip_prefix("PostgreSQL"))
        .map(|url| url.trim().to_owned())
        .ok_or_else(|| anyhow::anyhow!("no PostgreSQL line in {banner:?}"))?;
    let (client, connection) =
        tokio_postgres::connect(&database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute("ALTER TABLE read_model.products_v1 RENAME TO products_v1_gone")
        .await?;
    drop(client);
    let status = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/v1/products", ports.0))
        .bearer_auth(&admin)
        .json(&json!({"sku": "GONE-1", "name": "Gone", "price_cents": 100, "currency": "EUR"}))
        .send()
        .await?
        .status();
    assert_eq!(status.as_u16(), 201);
    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(exit) = dev.child.try_wait()? {
            break exit;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "agora dev kept running without a projector"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!exit.success(), "agora dev exits non-zero: {exit:?}");
    let said: Vec<String> = dev.lines.try_iter().collect();
    assert!(
        said.iter().any(|l| l.contains("PostgreSQL stopped")),
        "{said:?}"
    );
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_curl_tour_works_against_agora_dev() -> anyhow::Result<()> {
    let data_dir = format!("/tmp/agora-dev-test-{}", uuid::Uuid::new_v4().simple());
    let ports = (
        testkit::free_port().expect("a free port"),
        testkit::free_port().expect("a free port"),
        testkit::free_port().expect("a free port"),
    );
    let (dev, admin) = start(&data_dir, ports);
    let command = format!("http://127.0.0.1:{}", ports.0);
    let query = format!("http://127.0.0.1:{}", ports.1);
    let keys = JwtKeys::hs256(SECRET.as_bytes());
    let alice = keys.mint("alice", &[Role::Customer], 600)?;
    let viewer = keys.mint("vera", &[Role::Viewer], 600)?;
    let auditor = keys.mint("audrey", &[Role::Auditor], 600)?;
    let http = reqwest::Client::new();
    let post = |path: String, token: String, body: Value| {
        let http = http.clone();
        async move {
            let response = http
                .post(path)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await?;
            let status = response.status().as_u16();
            anyhow::Ok((status, response.json::<Value>().await?))
        }
    };

    let (status, product) = post(
        format!("{command}/v1/products"),
        admin.clone(),
        json!({"sku": "MUG-1", "name": "Mug", "price_cents": 1299, "currency": "EUR", "initial_stock": 10}),
    )
    .await?;
    assert_eq!(status, 201, "{product}");
    let product_id = product["id"].as_str().unwrap_or_default().to_owned();
    let (status, order) = post(
        format!("{command}/v1/orders"),
        alice.clone(),
        json!({"lines": [{"product_id": product_id, "quantity": 2}]}),
    )
    .await?;
    assert_eq!(status, 201, "{order}");
    let order_id = order["id"].as_str().unwrap_or_default().to_owned();
    // Alice pays the storefront's way: she checks out at the development provider (no
    // money moves), an admin confirms the payment.
    let (status, checkout) = post(
        format!("{command}/v1/orders/{order_id}/payment"),
        alice.clone(),
        json!({}),
    )
    .await?;
    assert_eq!(status, 200, "{checkout}");
    assert_eq!(
        (
            checkout["provider"].as_str(),
            checkout["amount_cents"].as_i64()
        ),
        (Some("manual"), Some(2598)),
        "{checkout}"
    );
    // She cannot confirm it herself, nor record a payment by saying so.
    let (status, refused) = post(
        format!("{command}/v1/orders/{order_id}/payment/confirm"),
        alice.clone(),
        json!({}),
    )
    .await?;
    assert_eq!((status, refused["code"].as_str()), (403, Some("forbidden")));
    let (status, refused) = post(
        format!("{command}/v1/orders/{order_id}/pay"),
        alice.clone(),
        json!({"amount_cents": 2598, "currency": "EUR", "payment_ref": "psp-123",
               "reason": "trust me"}),
    )
    .await?;
    assert_eq!((status, refused["code"].as_str()), (403, Some("forbidden")));
    let (status, paid) = post(
        format!("{command}/v1/orders/{order_id}/payment/confirm"),
        admin.clone(),
        json!({}),
    )
    .await?;
    assert_eq!(status, 200, "{paid}");
    let version = paid["version"].as_i64().unwrap_or_default();
    assert_eq!(version, 3, "{paid}");

    let read: Value = http
        .get(format!(
            "{query}/v1/orders/{order_id}?min_version={version}"
        ))
        .bearer_auth(&alice)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        (read["status"].as_str(), read["total_cents"].as_i64()),
        (Some("paid"), Some(2598))
    );
    // Each projection commits on its own: the sales model may follow the order's a moment
    // later.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sales: Value = http
            .get(format!("{query}/v1/dashboard/sales?bucket=day"))
            .bearer_auth(&viewer)
            .send()
            .await?
            .json()
            .await?;
        let paid_orders: i64 = sales["buckets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b["orders_paid"].as_i64())
            .sum();
        if paid_orders == 1 {
            break;
        }
        assert!(paid_orders < 1 && Instant::now() < deadline, "{sales}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let export = http
        .get(format!("{query}/v1/audit/events"))
        .bearer_auth(&auditor)
        .send()
        .await?;
    assert_eq!(export.status().as_u16(), 200);
    let lines: Vec<Value> = export
        .text()
        .await?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let types: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["event_type"].as_str())
        .collect();
    assert_eq!(
        types,
        [
            "ProductCreated",
            "OrderPlaced",
            "StockReserved",
            "PaymentRequested",
            "OrderPaid"
        ]
    );
    interrupt(dev);

    // Data survives a restart.
    let (dev, admin) = start(&data_dir, ports);
    let http = reqwest::Client::new();
    let product: Value = http
        .get(format!("{query}/v1/products/{product_id}"))
        .bearer_auth(&admin)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        (product["sku"].as_str(), product["on_hand"].as_i64()),
        (Some("MUG-1"), Some(10))
    );
    interrupt(dev);
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}
