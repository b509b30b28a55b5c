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

/// The request metrics' series (the label sets of `http_requests_total`) and the size of
/// all `http_request*` lines. (Other metrics, such as the reactors' and the sequencer's,
/// appear on their own schedule; they are not what a client can grow.)
async fn request_series(app: &TestApp) -> (std::collections::BTreeSet<String>, usize) {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("the metrics");
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("http_request"))
        .collect();
    let series = lines
        .iter()
        .filter(|line| line.starts_with("http_requests_total"))
        .map(|line| {
            line.rsplit_once(' ')
                .map_or(*line, |(series, _)| series)
                .to_owned()
        })
        .collect();
    (series, lines.iter().map(|line| line.len() + 1).sum())
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
    request_series(&app).await; // its own series exists from then on
    let before = request_series(&app).await;
    for n in 0..1_000 {
        let path = match n % 3 {
            0 => format!("/{}/{}", random_word(12), random_word(30)),
            1 => format!("/v1/products/{}/{}", uuid::Uuid::now_v7(), random_word(8)),
            _ => "/v1/products".to_owned(),
        };
        send(random_word(1 + n % 200), path).await;
    }
    let after = request_series(&app).await;
    // No new series; counts and bucket numbers grow by a few digits.
    let new: Vec<&String> = after.0.difference(&before.0).collect();
    assert!(
        new.is_empty(),
        "1,000 invented methods and paths made new request series: {new:?}"
    );
    assert!(
        after.1 < before.1 + 2_048,
        "the request metrics grew from {} to {} bytes after 1,000 invented methods and paths",
        before.1,
        after.1
    );
}
