//! Concurrency over HTTP: no update is lost, stock is never oversold, unique SKUs hold,
//! and a refused multi-stream command appends nothing.

mod support;

use futures::future::join_all;
use platform::Role;
use serde_json::{json, Value};
use support::{assert_problem, TestApp};

#[tokio::test]
async fn fifty_parallel_restocks_sum_up_exactly() {
    let app = TestApp::spawn().await;
    let id = app.create_product("R-1", 500, 7).await;
    let path = format!("/v1/products/{id}/restock");
    let responses = join_all((1..=50).map(|n| {
        let app = &app;
        let path = path.clone();
        async move { app.post(&path, &app.admin, &json!({ "quantity": n })).await }
    }))
    .await;
    let mut versions = Vec::new();
    for response in responses {
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        versions.push(body["version"].as_i64().expect("version"));
    }
    versions.sort_unstable();
    assert_eq!(
        versions,
        (2..=51).collect::<Vec<_>>(),
        "each restock got its own version"
    );
    assert_eq!(app.stock_of(id).await, (7 + (1..=50).sum::<i64>(), 0));
    assert_eq!(app.events_of(id).await.len(), 51);
}

#[tokio::test]
async fn thirty_parallel_orders_never_oversell_ten_units() {
    let app = TestApp::spawn().await;
    let product = app.create_product("O-1", 250, 10).await;
    let customer = app.token("carol", &[Role::Customer]);
    let responses = join_all((0..30).map(|_| {
        let app = &app;
        let customer = customer.clone();
        async move {
            app.place_order(&customer, json!([{ "product_id": product, "quantity": 1 }]))
                .await
        }
    }))
    .await;
    let mut created = 0;
    let mut refused = 0;
    for response in responses {
        match response.status().as_u16() {
            201 => created += 1,
            422 => {
                assert_problem(response, 422, "insufficient_stock").await;
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((created, refused), (10, 20));
    assert_eq!(app.stock_of(product).await, (10, 10));
}

#[tokio::test]
async fn two_racing_creates_of_one_sku_give_one_201_and_one_409() {
    let app = TestApp::spawn().await;
    for round in 0..5 {
        let sku = format!("RACE-{round}");
        let body = json!({"sku": sku, "name": "Race", "price_cents": 100, "currency": "EUR"});
        let (a, b) = tokio::join!(
            app.post("/v1/products", &app.admin, &body),
            app.post("/v1/products", &app.admin, &body)
        );
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409]);
        let loser = if a.status() == 409 { a } else { b };
        assert_problem(loser, 409, "sku_taken").await;
    }
    assert_eq!(app.event_count().await, 5);
}

#[tokio::test]
async fn an_order_with_one_line_out_of_stock_appends_nothing() {
    let app = TestApp::spawn().await;
    let plenty = app.create_product("P-1", 100, 50).await;
    let scarce = app.create_product("P-2", 100, 1).await;
    let before = app.event_count().await;
    let customer = app.token("dave", &[Role::Customer]);
    let response = app
        .place_order(
            &customer,
            json!([{"product_id": plenty, "quantity": 5}, {"product_id": scarce, "quantity": 2}]),
        )
        .await;
    let problem = assert_problem(response, 422, "insufficient_stock").await;
    assert!(problem["detail"]
        .as_str()
        .unwrap_or_default()
        .contains(&scarce.to_string()));
    assert_eq!(app.event_count().await, before);
    assert_eq!(app.stock_of(plenty).await, (50, 0));
    assert_eq!(app.stock_of(scarce).await, (1, 0));
}

#[tokio::test]
async fn the_same_request_twice_with_one_key_gives_one_set_of_events() {
    let app = TestApp::spawn().await;
    let product = app.create_product("I-1", 300, 10).await;
    let customer = app.token("erin", &[Role::Customer]);
    let body = json!({"lines": [{"product_id": product, "quantity": 2}]});
    let headers = [("Idempotency-Key", "order-erin-1")];
    let first = app
        .post_with("/v1/orders", &customer, &body, &headers)
        .await;
    assert_eq!(first.status(), 201);
    let first_location = first.headers().get("location").cloned();
    let first_body: Value = first.json().await.expect("json");
    let events_after_first = app.event_count().await;

    let second = app
        .post_with("/v1/orders", &customer, &body, &headers)
        .await;
    assert_eq!(second.status(), 201);
    assert_eq!(second.headers().get("location").cloned(), first_location);
    let second_body: Value = second.json().await.expect("json");
    assert_eq!(first_body, second_body);
    assert_eq!(app.event_count().await, events_after_first);
    assert_eq!(app.stock_of(product).await, (10, 2));

    // Concurrent repeats of a new key: still one set of events.
    let headers = [("Idempotency-Key", "order-erin-2")];
    let responses =
        join_all((0..8).map(|_| app.post_with("/v1/orders", &customer, &body, &headers))).await;
    let mut bodies = Vec::new();
    for response in responses {
        assert_eq!(response.status(), 201);
        bodies.push(response.json::<Value>().await.expect("json"));
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    assert_eq!(app.stock_of(product).await, (10, 4));

    // The same key with another body is refused and appends nothing.
    let other = json!({"lines": [{"product_id": product, "quantity": 3}]});
    let before = app.event_count().await;
    let response = app
        .post_with("/v1/orders", &customer, &other, &headers)
        .await;
    assert_problem(response, 422, "idempotency_key_reused").await;
    assert_eq!(app.event_count().await, before);

    // Keys are per caller: another customer's same key is a new command.
    let frank = app.token("frank", &[Role::Customer]);
    let response = app.post_with("/v1/orders", &frank, &body, &headers).await;
    assert_eq!(response.status(), 201);
}
