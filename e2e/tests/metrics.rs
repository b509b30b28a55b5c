//! Observability: each service's `/metrics` serves the series DESIGN.md names, and they
//! move when work happens.

mod support;

use std::time::Duration;

use platform::Role;
use serde_json::json;
use support::Stack;

/// Sums every sample of `name` (all label sets) in a Prometheus text page.
fn sample(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn page(stack: &Stack, base: &str) -> anyhow::Result<String> {
    Ok(stack
        .http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_move_when_work_happens() -> anyhow::Result<()> {
    let stack = Stack::start(false).await?;
    let before = page(&stack, &stack.command).await?;
    let admin = stack.admin.clone();
    let viewer = stack.token("vera", &[Role::Viewer]);
    let (product, version) = stack
        .ok("/v1/products", &admin, json!({"sku": "M-1", "name": "Meter", "price_cents": 100, "currency": "EUR", "initial_stock": 1}))
        .await?;
    let (status, _) = stack
        .command(
            "/v1/products",
            &admin,
            json!({"sku": "M-1", "name": "Meter", "price_cents": 100, "currency": "EUR"}),
        )
        .await?;
    assert_eq!(status.as_u16(), 409);
    stack
        .read_at(&format!("/v1/products/{product}"), &viewer, version)
        .await?;
    let repeat = [("Idempotency-Key", "metrics-1")];
    for _ in 0..2 {
        let mut request = stack
            .http
            .post(format!("{}/v1/products/{product}/restock", stack.command))
            .bearer_auth(&admin)
            .json(&json!({"quantity": 1}));
        for (name, value) in repeat {
            request = request.header(name, value);
        }
        assert!(request.send().await?.status().is_success());
    }

    let command = page(&stack, &stack.command).await?;
    for (series, at_least) in [
        ("commands_total", 3.0),
        ("events_appended_total", 2.0),
        ("idempotency_replays_total", 1.0),
        ("http_requests_total", 4.0),
    ] {
        let grown = sample(&command, series) - sample(&before, series);
        assert!(grown >= at_least, "{series} grew by {grown}");
    }
    assert!(
        command.contains("http_request_duration_seconds_bucket"),
        "latency histogram"
    );
    assert!(command.contains("outcome=\"accepted\"") && command.contains("outcome=\"refused\""));
    stack
        .eventually(
            "the oldest-transaction gauge",
            Duration::from_secs(10),
            || async {
                Ok(page(&stack, &stack.command)
                    .await?
                    .contains("oldest_open_transaction_seconds"))
            },
        )
        .await?;

    let query = page(&stack, &stack.query).await?;
    assert!(
        query.contains("route=\"/v1/products/{id}\""),
        "requests by route on the query API"
    );
    let projector_port = stack.projector.as_ref().map(|p| p.port).unwrap_or_default();
    let projector = page(&stack, &format!("http://127.0.0.1:{projector_port}")).await?;
    assert!(sample(&projector, "projector_events_applied_total") >= 1.0);
    assert!(projector.contains("projection_lag_seconds"));
    stack.stop().await
}
