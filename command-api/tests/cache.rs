//! The aggregate cache across processes: two command APIs on one database, each with its
//! own cache, never lose an update, never oversell, never decide on a stale entry, and
//! concurrent duplicates of one `Idempotency-Key` get one answer and one set of events, in
//! one process and across two.

mod support;

use futures::future::join_all;
use platform::Role;
use reqwest::Response;
use serde_json::{json, Value};
use support::{assert_problem, offline_payment, TestApp};
use uuid::Uuid;

/// Status and body of an answer.
async fn answer(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

fn id_of(body: &Value) -> Uuid {
    body["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("an id")
}

#[tokio::test]
async fn two_processes_never_lose_an_update_and_never_oversell() {
    let app = TestApp::spawn().await;
    let other = app.another_process().await;
    let bases = [app.address.clone(), other.address.clone()];
    let product = app.create_product("TWO-1", 250, 8).await;
    let restock = format!("/v1/products/{product}/restock");
    // Both caches hold the product, and each is stale after the other's restock.
    for base in &bases {
        let response = app
            .post_at(base, &restock, &app.admin, &json!({"quantity": 1}), &[])
            .await;
        assert_eq!(response.status(), 200);
    }

    let customer = app.token("carol", &[Role::Customer]);
    let lines = json!({"lines": [{"product_id": product, "quantity": 1}]});
    let responses = join_all((0..30).map(|n| {
        let (app, base, customer, lines) = (&app, &bases[n % 2], &customer, &lines);
        async move { app.post_at(base, "/v1/orders", customer, lines, &[]).await }
    }))
    .await;
    let mut created = [0, 0];
    for (n, response) in responses.into_iter().enumerate() {
        match response.status().as_u16() {
            201 => created[n % 2] += 1,
            _ => {
                assert_problem(response, 422, "insufficient_stock").await;
            }
        }
    }
    assert_eq!(
        created[0] + created[1],
        10,
        "exactly the 10 units: {created:?}"
    );
    assert_eq!(app.stock_of(product).await, (10, 10));

    let responses = join_all((1..=40).map(|n| {
        let (app, base, restock) = (&app, &bases[n % 2], &restock);
        async move {
            app.post_at(base, restock, &app.admin, &json!({"quantity": n}), &[])
                .await
        }
    }))
    .await;
    let mut versions = Vec::new();
    for response in responses {
        let (status, body) = answer(response).await;
        assert_eq!(status, 200, "{body}");
        versions.push(body["version"].as_i64().expect("a version"));
    }
    versions.sort_unstable();
    let first = 3 + 10 + 1;
    assert_eq!(versions, (first..first + 40).collect::<Vec<_>>());
    assert_eq!(
        app.stock_of(product).await,
        (10 + (1..=40).sum::<i64>(), 10)
    );
}

#[tokio::test]
async fn a_stale_cache_entry_never_decides() {
    let app = TestApp::spawn().await;
    let other = app.another_process().await;
    let product = app.create_product("STALE-1", 100, 0).await;
    // This process caches the product with nothing available...
    let customer = app.token("dave", &[Role::Customer]);
    let order = json!({"lines": [{"product_id": product, "quantity": 3}]});
    assert_problem(
        app.post("/v1/orders", &customer, &order).await,
        422,
        "insufficient_stock",
    )
    .await;
    // ...then the other process restocks it.
    let (status, restocked) = answer(
        app.post_at(
            &other.address,
            &format!("/v1/products/{product}/restock"),
            &app.admin,
            &json!({"quantity": 5}),
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(restocked["version"], 2);

    // The order is decided on the real stock, not the cached one.
    let (status, body) = answer(app.post("/v1/orders", &customer, &order).await).await;
    assert_eq!(status, 201, "{body}");
    // If-Match names the real version, which this process had not seen: applied.
    app.post_at(
        &other.address,
        &format!("/v1/products/{product}/price"),
        &app.admin,
        &json!({"price_cents": 120}),
        &[],
    )
    .await;
    let (status, body) = answer(
        app.post_with(
            &format!("/v1/products/{product}/price"),
            &app.admin,
            &json!({"price_cents": 130}),
            &[("If-Match", "\"4\"")],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 5);
    // A version that is really gone is still 412.
    assert_problem(
        app.post_with(
            &format!("/v1/products/{product}/price"),
            &app.admin,
            &json!({"price_cents": 140}),
            &[("If-Match", "\"4\"")],
        )
        .await,
        412,
        "version_mismatch",
    )
    .await;
    assert_eq!(app.stock_of(product).await, (5, 3));
}

/// Sends `copies` copies of one request with one key, alternating between `bases`; every
/// answer must be the same success, and the store must have grown by `events` events.
async fn duplicates_agree(
    app: &TestApp,
    bases: &[String],
    path: &str,
    token: &str,
    body: &Value,
    events: i64,
) -> Value {
    let key = format!("dup-{}", Uuid::now_v7());
    let before = app.event_count().await;
    let responses = join_all((0..8).map(|n| {
        let base = &bases[n % bases.len()];
        let key = key.as_str();
        async move {
            app.post_at(base, path, token, body, &[("Idempotency-Key", key)])
                .await
        }
    }))
    .await;
    let mut answers = Vec::new();
    for response in responses {
        answers.push(answer(response).await);
    }
    let first = answers[0].clone();
    assert!((200..=202).contains(&first.0), "{path}: {first:?}");
    for other in &answers {
        assert_eq!(
            other, &first,
            "{path}: every duplicate gets the first answer"
        );
    }
    assert_eq!(
        app.event_count().await - before,
        events,
        "{path}: one set of events"
    );
    first.1
}

async fn every_command_once(app: &TestApp, bases: &[String]) {
    let customer = app.token("erin", &[Role::Customer]);
    let sku = format!("DUP-{}", Uuid::now_v7().simple());
    let product = id_of(
        &duplicates_agree(
            app,
            bases,
            "/v1/products",
            &app.admin,
            &json!({"sku": sku, "name": "Scarce", "price_cents": 700, "currency": "EUR",
                    "initial_stock": 1}),
            1,
        )
        .await,
    );
    // One unit: a second execution would be refused for stock.
    let lines = json!({"lines": [{"product_id": product, "quantity": 1}]});
    let order = id_of(&duplicates_agree(app, bases, "/v1/orders", &customer, &lines, 2).await);
    // The storefront's payment: one checkout (one payment at the provider), one confirmation.
    let checkout = duplicates_agree(
        app,
        bases,
        &format!("/v1/orders/{order}/payment"),
        &customer,
        &json!({}),
        1,
    )
    .await;
    assert_eq!(checkout["amount_cents"], 700, "{checkout}");
    let paid = duplicates_agree(
        app,
        bases,
        &format!("/v1/orders/{order}/payment/confirm"),
        &app.admin,
        &json!({}),
        1,
    )
    .await;
    assert_eq!(paid["version"], 3);
    // Cancelling the paid order refunds it once: OrderCancelled, RefundRequested, Refunded
    // and the product's StockReleased.
    let cancelled = duplicates_agree(
        app,
        bases,
        &format!("/v1/orders/{order}/cancel"),
        &customer,
        &json!({"reason": "twice?"}),
        4,
    )
    .await;
    assert_eq!(cancelled["version"], 6);
    assert_eq!(app.stock_of(product).await, (1, 0));
    let refunds: Vec<String> = app
        .events_of(order)
        .await
        .into_iter()
        .map(|(kind, _)| kind)
        .filter(|kind| kind.starts_with("Refund"))
        .collect();
    assert_eq!(refunds, ["RefundRequested", "Refunded"]);

    // An admin's offline payment and a refund of it, each once.
    let order = id_of(&duplicates_agree(app, bases, "/v1/orders", &customer, &lines, 2).await);
    let paid = duplicates_agree(
        app,
        bases,
        &format!("/v1/orders/{order}/pay"),
        &app.admin,
        &offline_payment(700),
        1,
    )
    .await;
    assert_eq!(paid["version"], 2);
    let refund = duplicates_agree(
        app,
        bases,
        &format!("/v1/orders/{order}/refunds"),
        &app.admin,
        &json!({"amount_cents": 700, "reason": "goodwill"}),
        2,
    )
    .await;
    assert_eq!(refund["status"], "succeeded", "{refund}");
    // Nothing is left to refund, so the cancellation only releases the stock.
    let cancelled = duplicates_agree(
        app,
        bases,
        &format!("/v1/orders/{order}/cancel"),
        &customer,
        &json!({"reason": "twice?"}),
        2,
    )
    .await;
    assert_eq!(cancelled["version"], 5);
    assert_eq!(app.stock_of(product).await, (1, 0));
    assert_eq!(app.order_state(order).await.refunded_cents(), Some(700));
}

#[tokio::test]
async fn concurrent_duplicates_get_one_answer_in_one_process() {
    let app = TestApp::spawn().await;
    let bases = [app.address.clone()];
    every_command_once(&app, &bases).await;
}

#[tokio::test]
async fn concurrent_duplicates_get_one_answer_across_two_processes() {
    let app = TestApp::spawn().await;
    let other = app.another_process().await;
    let bases = [app.address.clone(), other.address.clone()];
    every_command_once(&app, &bases).await;
}
