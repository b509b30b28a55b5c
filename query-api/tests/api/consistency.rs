//! ETags, `If-None-Match` and read-your-writes (`?min_version=N`).

use std::time::{Duration, Instant};

use platform::Role;
use serde_json::Value;
use uuid::Uuid;

use crate::support::{assert_problem, at, TestApp};

#[tokio::test]
async fn a_matching_if_none_match_is_304_without_a_body() {
    let app = TestApp::spawn().await;
    let product = app.insert_product("A-1", 1, 0, 3).await;
    let order = app
        .insert_order("alice", "placed", at("2024-05-01T10:00:00Z"), 3)
        .await;
    for path in [
        format!("/v1/products/{product}"),
        format!("/v1/orders/{order}"),
    ] {
        for tag in ["\"3\"", "W/\"3\"", "*", "\"1\", \"3\""] {
            let response = app
                .get_with(&path, &app.viewer, &[("if-none-match", tag)])
                .await;
            assert_eq!(response.status(), 304, "{path} {tag}");
            assert_eq!(response.headers()["etag"], "\"3\"");
            assert!(response.headers().contains_key("cache-control"));
            assert!(response.bytes().await.unwrap().is_empty());
        }
        for tag in ["\"2\"", "\"33\""] {
            let response = app
                .get_with(&path, &app.viewer, &[("if-none-match", tag)])
                .await;
            assert_eq!(response.status(), 200, "{path} {tag}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["version"], 3);
        }
    }
    // An ETag says nothing about an entity the caller may not see.
    let bob = app.token("bob", &[Role::Customer]);
    let response = app
        .get_with(
            &format!("/v1/orders/{order}"),
            &bob,
            &[("if-none-match", "\"3\"")],
        )
        .await;
    assert_problem(response, 404, "not_found").await;
}

#[tokio::test]
async fn a_reached_min_version_answers_at_once() {
    let app = TestApp::spawn().await;
    let product = app.insert_product("A-1", 1, 0, 5).await;
    for min_version in [1, 5] {
        let started = Instant::now();
        let body = app
            .get_json(
                &format!("/v1/products/{product}?min_version={min_version}"),
                &app.admin,
            )
            .await;
        assert_eq!(body["version"], 5);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    // With min_version and a matching ETag: 304.
    let response = app
        .get_with(
            &format!("/v1/products/{product}?min_version=5"),
            &app.admin,
            &[("if-none-match", "\"5\"")],
        )
        .await;
    assert_eq!(response.status(), 304);
}

#[tokio::test]
async fn min_version_waits_for_a_concurrent_update() {
    let app = TestApp::spawn().await;
    let product = app.insert_product("A-1", 1, 0, 1).await;
    let order = Uuid::new_v4();
    let pool = app.db.store.pool().clone();
    let updater = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let client = pool.get().await.unwrap();
        client
            .execute(
                "UPDATE read_model.products_v1 SET version = 2, on_hand = 11 WHERE id = $1",
                &[&product],
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        client
            .execute(
                "INSERT INTO read_model.orders_v1 (id, customer_id, status, total_cents, currency, \
                 placed_at, updated_at, version, lines) \
                 VALUES ($1, 'alice', 'placed', 100, 'EUR', now(), now(), 1, '[]')",
                &[&order],
            )
            .await
            .unwrap();
    });
    let alice = app.token("alice", &[Role::Customer]);
    let product_path = format!("/v1/products/{product}?min_version=2");
    let order_path = format!("/v1/orders/{order}?min_version=1");
    let (product_body, order_body) = tokio::join!(
        app.get_json(&product_path, &app.admin),
        app.get_json(&order_path, &alice),
    );
    assert_eq!(product_body["version"], 2);
    assert_eq!(product_body["on_hand"], 11);
    assert_eq!(order_body["id"], order.to_string());
    assert_eq!(order_body["lines"], serde_json::json!([]));
    updater.await.unwrap();
}

#[tokio::test]
async fn an_unreached_min_version_is_503_not_yet_consistent() {
    let wait = Duration::from_millis(300);
    let app = TestApp::spawn_with_wait(wait).await;
    let product = app.insert_product("A-1", 1, 0, 1).await;
    let bobs = app
        .insert_order("bob", "placed", at("2024-05-01T10:00:00Z"), 4)
        .await;
    let alice = app.token("alice", &[Role::Customer]);
    let cases = [
        (format!("/v1/products/{product}?min_version=2"), &app.admin),
        (
            format!("/v1/products/{}?min_version=1", Uuid::new_v4()),
            &app.admin,
        ),
        (
            format!("/v1/orders/{}?min_version=1", Uuid::new_v4()),
            &app.viewer,
        ),
        // Someone else's order looks exactly like one that does not exist yet.
        (format!("/v1/orders/{bobs}?min_version=1"), &alice),
    ];
    for (path, token) in cases {
        let started = Instant::now();
        let response = app.get(&path, token).await;
        assert!(
            started.elapsed() >= wait,
            "{path} answered before the wait was over"
        );
        assert_eq!(response.headers()["retry-after"], "1");
        assert_problem(response, 503, "not_yet_consistent").await;
    }
    // Without min_version a missing entity is 404 at once.
    let missing = app
        .get(&format!("/v1/products/{}", Uuid::new_v4()), &app.admin)
        .await;
    assert_problem(missing, 404, "not_found").await;
}
