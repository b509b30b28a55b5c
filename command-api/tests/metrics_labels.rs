//! Hostile clients cannot grow `/metrics`: invented HTTP methods and random paths fall into
//! fixed labels (`OTHER`, `unmatched`), so they add no series.

mod support;

use reqwest::Method;
use support::TestApp;

fn random_word(length: usize) -> String {
    (0..length)
        .map(|_| char::from(b'A' + rand::random_range(0..26u8)))
        .collect()
}

async fn metrics_size(app: &TestApp) -> usize {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    response.text().await.expect("the metrics").len()
}

#[tokio::test]
async fn invented_methods_and_paths_add_no_metric_series() {
    let app = TestApp::spawn().await;
    let send = |method: String, path: String| {
        let app = &app;
        async move {
            let method = Method::from_bytes(method.as_bytes()).expect("a method token");
            let response = app.send(method, &path, None, None, &[]).await;
            assert!(response.status().is_client_error(), "{}", response.status());
        }
    };
    // One of each shape first, so their series exist.
    send(random_word(40), format!("/{}", random_word(12))).await;
    send(random_word(40), "/v1/products".into()).await;
    let before = metrics_size(&app).await;
    for n in 0..1_000 {
        let path = match n % 3 {
            0 => format!("/{}/{}", random_word(12), random_word(30)),
            1 => format!("/v1/products/{}/{}", uuid::Uuid::now_v7(), random_word(8)),
            _ => "/v1/products".to_owned(),
        };
        send(random_word(1 + n % 200), path).await;
    }
    let after = metrics_size(&app).await;
    // Counts and bucket numbers grow by a few digits; no new series.
    assert!(
        after < before + 2_048,
        "/metrics grew from {before} to {after} bytes after 1,000 invented methods and paths"
    );
}
