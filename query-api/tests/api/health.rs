//! `/healthz`, `/readyz`, `/metrics`, and unknown routes.

use crate::support::{assert_problem, TestApp};

#[tokio::test]
async fn health_readiness_and_metrics_answer_without_a_token() {
    let app = TestApp::spawn().await;
    for path in ["/healthz", "/readyz"] {
        let response = app.get_anonymous(path).await;
        assert_eq!(response.status(), 200, "{path}");
    }
    app.get_json("/v1/products", &app.admin).await;
    let metrics = app.get_anonymous("/metrics").await;
    assert_eq!(metrics.status(), 200);
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
}

#[tokio::test]
async fn unknown_routes_are_404_problems() {
    let app = TestApp::spawn().await;
    for path in ["/v1/nothing", "/v2/products", "/v1/products/a/b"] {
        assert_problem(app.get(path, &app.admin).await, 404, "not_found").await;
    }
    let post = app
        .http
        .post(format!("{}/v1/products", app.address))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert!(post.status().is_client_error(), "{}", post.status());
}
