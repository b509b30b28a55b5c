//! Health, readiness and metrics: no token needed, and readiness follows the database.

mod support;

use serde_json::json;
use support::{assert_problem, body_of, header, TestApp};

#[tokio::test]
async fn healthz_readyz_and_metrics_answer_without_a_token() {
    let app = TestApp::spawn().await;

    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    assert_eq!(body_of(response).await["status"], "ok");

    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    assert_eq!(body_of(response).await["status"], "ready");

    // A command, then the request counter shows it.
    let response = app
        .post(
            "/v1/products",
            &app.admin,
            &json!({"sku": "M-1", "name": "n", "price_cents": 1, "currency": "EUR"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let content_type = header(&response, "content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.expect("text");
    let created = text
        .lines()
        .find(|line| {
            line.starts_with("http_requests_total{")
                && line.contains("route=\"/v1/products\"")
                && line.contains("status=\"201\"")
        })
        .unwrap_or_else(|| panic!("no http_requests_total for the create in:\n{text}"));
    let count: f64 = created
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a count");
    assert!(count >= 1.0, "{created}");
}

#[tokio::test]
async fn readyz_and_commands_are_503_while_the_database_is_unreachable() {
    let app = TestApp::spawn().await;
    let product = app.create_product("GONE-1", 100, 1).await;

    // Shut the app's database: no new connections, and the open ones are ended.
    let admin = eventstore::connect_pool(&eventstore::testing::admin_url(), 1).expect("a pool");
    let client = admin.get().await.expect("the test PostgreSQL");
    let name = &app.db.name;
    client
        .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .await
        .expect("close the database");
    client
        .query(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = $1",
            &[name],
        )
        .await
        .expect("end its connections");

    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    assert_eq!(body_of(response).await["status"], "unready");
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200, "alive, though not ready");

    // A passing outage is a 503 with Retry-After, not a 500, and nothing is appended.
    let restock = format!("/v1/products/{product}/restock");
    let response = app
        .post(&restock, &app.admin, &json!({"quantity": 1}))
        .await;
    assert!(header(&response, "retry-after").is_some());
    assert_problem(response, 503, "unavailable").await;

    // When the database is back, so is the app.
    client
        .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await
        .expect("reopen the database");
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let response = app
        .post(&restock, &app.admin, &json!({"quantity": 1}))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(body_of(response).await["version"], 2);
}

/// Sends `GET /healthz` on `stream` and reads the whole answer; `None` if the server has
/// closed the connection.
async fn healthz_on(stream: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: agora\r\n\r\n")
        .await
        .ok()?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        answer.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&answer).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|n| n.trim().to_owned())
                })
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return Some(text);
            }
        }
    }
}

#[tokio::test]
async fn an_idle_connection_stays_open_longer_than_a_load_balancers_idle_timeout_would_need() {
    let app = TestApp::spawn().await;
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let first = healthz_on(&mut stream).await.expect("an answer");
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");

    // Idle past actix-web's default keep-alive (5 s), which closed such a connection just
    // as a pooled client or a load balancer sent its next request on it (no answer).
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    let second = healthz_on(&mut stream)
        .await
        .expect("the server closed an idle connection after less than 7 s");
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
}
