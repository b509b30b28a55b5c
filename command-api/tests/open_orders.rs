//! The open-order limit: at most `AGORA_MAX_OPEN_ORDERS_PER_CUSTOMER` orders in `placed`
//! per customer, also under 20 concurrent placements spread over two processes; paying or
//! cancelling one frees its slot; other customers are not affected.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{assert_problem, id_of, TestApp};
use uuid::Uuid;

use platform::Role;

const LIMIT: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_placements_open_at_most_the_limit() {
    let app = TestApp::spawn_with(|s| s.max_open_orders_per_customer = LIMIT as u32).await;
    let limit = LIMIT.to_string();
    let other = app
        .another_process_with(&[("AGORA_MAX_OPEN_ORDERS_PER_CUSTOMER", limit.as_str())])
        .await;
    let products: Vec<Uuid> = {
        let mut ids = Vec::new();
        for n in 0..4 {
            ids.push(app.create_product(&format!("L-{n}"), 300, 1000).await);
        }
        ids
    };
    let hoarder = app.token("hoarder", &[Role::Customer]);
    let mut attempts = Vec::new();
    for n in 0..20 {
        let (http, token) = (app.http.clone(), hoarder.clone());
        // Half to each process, each order on a different product mix.
        let base = if n % 2 == 0 {
            app.address.clone()
        } else {
            other.address.clone()
        };
        let lines = json!([{"product_id": products[n % 4], "quantity": 1000 / 20}]);
        attempts.push(tokio::spawn(async move {
            let response = http
                .post(format!("{base}/v1/orders"))
                .bearer_auth(&token)
                .json(&json!({ "lines": lines }))
                .send()
                .await
                .expect("the app answers");
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }));
    }
    let mut placed = Vec::new();
    let mut refused = 0;
    for attempt in attempts {
        let (status, body) = attempt.await.expect("a placement");
        match status {
            StatusCode::CREATED => placed.push(body["id"].as_str().unwrap_or_default().to_owned()),
            StatusCode::UNPROCESSABLE_ENTITY => {
                assert_eq!(body["code"], "too_many_open_orders", "{body}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((placed.len(), refused), (LIMIT, 20 - LIMIT));
    let client = app.db.store.pool().get().await.expect("a connection");
    let row = client
        .query_one(
            "SELECT count(*) FROM events WHERE event_type = 'OrderPlaced' \
             AND payload ->> 'customer_id' = 'hoarder'",
            &[],
        )
        .await
        .expect("count");
    assert_eq!(
        row.get::<_, i64>(0),
        LIMIT as i64,
        "a refused placement appends nothing"
    );

    // Another customer is not affected.
    let other_customer = app.token("patient", &[Role::Customer]);
    app.placed_order(
        &other_customer,
        json!([{"product_id": products[0], "quantity": 1}]),
    )
    .await;

    // Paying one and cancelling another each free a slot, for exactly one more order.
    let one_line = json!([{"product_id": products[1], "quantity": 1}]);
    assert_problem(
        app.place_order(&hoarder, one_line.clone()).await,
        422,
        "too_many_open_orders",
    )
    .await;
    let first: Uuid = placed[0].parse().expect("an order id");
    let total = 300 * (1000 / 20); // every placement was 50 units at 300
                                   // Checking out holds on to the slot: the order is still awaiting payment.
    let checkout = app.checkout(first, &hoarder).await;
    assert_eq!(checkout["amount_cents"], total, "{checkout}");
    assert_problem(
        app.place_order(&hoarder, one_line.clone()).await,
        422,
        "too_many_open_orders",
    )
    .await;
    // The payment's confirmation frees it.
    app.confirm_payment(first).await;
    let freed = app.place_order(&hoarder, one_line.clone()).await;
    assert_eq!(freed.status(), StatusCode::CREATED);
    id_of(freed).await;
    assert_problem(
        app.place_order(&hoarder, one_line.clone()).await,
        422,
        "too_many_open_orders",
    )
    .await;
    let response = app
        .post(
            &format!("/v1/orders/{}/cancel", placed[1]),
            &hoarder,
            &json!({"reason": "x"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        app.place_order(&hoarder, one_line.clone()).await.status(),
        StatusCode::CREATED
    );
    assert_problem(
        app.place_order(&hoarder, one_line).await,
        422,
        "too_many_open_orders",
    )
    .await;
}
