//! Order commands over HTTP: placing (with its reservations), paying (a customer's checkout
//! confirmed at the provider, or an admin's offline payment), shipping and cancelling (with
//! the refund of a paid order), who may do what, and the business refusals. A refused
//! command never appends anything.

mod support;

use platform::Role;
use serde_json::{json, Value};
use support::{assert_problem, body_of, header, id_of, TestApp};
use uuid::Uuid;

/// An admin's offline payment (`/pay`).
fn pay_body(amount_cents: i64, currency: &str) -> Value {
    json!({"amount_cents": amount_cents, "currency": currency, "payment_ref": "psp-123",
           "reason": "bank transfer received"})
}

fn ship_body() -> Value {
    json!({"carrier": "DHL", "tracking_number": "JD0001"})
}

#[tokio::test]
async fn a_customer_places_an_order_for_themself_and_stock_is_reserved() {
    let app = TestApp::spawn().await;
    let mug = app.create_product("MUG", 1299, 10).await;
    let tea = app.create_product("TEA", 450, 3).await;
    let alice = app.token("alice", &[Role::Customer]);

    let response = app
        .place_order(
            &alice,
            json!([{"product_id": mug, "quantity": 2}, {"product_id": tea, "quantity": 3}]),
        )
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(header(&response, "etag").as_deref(), Some("\"1\""));
    let location = header(&response, "location").expect("a Location");
    let body = body_of(response).await;
    let id: Uuid = body["id"].as_str().expect("id").parse().expect("a UUID");
    assert_eq!(location, format!("/v1/orders/{id}"));
    assert_eq!(body["version"], 1);
    let position = body["position"].as_i64().expect("position");

    let order = app.recorded(id).await;
    assert_eq!(order.len(), 1);
    assert_eq!(order[0].event_type, "OrderPlaced");
    assert_eq!(order[0].stream_type, "order");
    let placed = &order[0].payload;
    assert_eq!(placed["customer_id"], "alice");
    assert_eq!(placed["total_cents"], 2 * 1299 + 3 * 450);
    assert_eq!(placed["currency"], "EUR");
    assert_eq!(
        placed["lines"],
        json!([
            {"product_id": mug, "quantity": 2, "unit_price_cents": 1299},
            {"product_id": tea, "quantity": 3, "unit_price_cents": 450}
        ])
    );
    // The reservations were appended with the order; position is the command's last event.
    let mut positions = vec![order[0].position];
    for product in [mug, tea] {
        let events = app.recorded(product).await;
        let last = events.last().expect("events");
        assert_eq!(last.event_type, "StockReserved");
        assert_eq!(last.payload["order_id"], id.to_string());
        assert_eq!(
            last.transaction_id, order[0].transaction_id,
            "one transaction"
        );
        positions.push(last.position);
    }
    assert_eq!(positions.iter().max(), Some(&position));
    assert_eq!(app.stock_of(mug).await, (10, 2));
    assert_eq!(app.stock_of(tea).await, (3, 3));

    // Naming themself as customer_id is fine; naming someone else is 403.
    let response = app
        .post(
            "/v1/orders",
            &alice,
            &json!({"lines": [{"product_id": mug, "quantity": 1}], "customer_id": "alice"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let before = app.event_count().await;
    let response = app
        .post(
            "/v1/orders",
            &alice,
            &json!({"lines": [{"product_id": mug, "quantity": 1}], "customer_id": "bob"}),
        )
        .await;
    assert_problem(response, 403, "forbidden").await;
    assert_eq!(app.event_count().await, before);
    assert_eq!(app.stock_of(mug).await, (10, 3));
}

#[tokio::test]
async fn an_admin_places_an_order_for_a_customer_who_then_owns_it() {
    let app = TestApp::spawn().await;
    let mug = app.create_product("MUG", 1000, 5).await;
    let response = app
        .post(
            "/v1/orders",
            &app.admin,
            &json!({"lines": [{"product_id": mug, "quantity": 2}], "customer_id": "bob"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let order = id_of(response).await;
    let events = app.recorded(order).await;
    assert_eq!(events[0].payload["customer_id"], "bob");
    assert_eq!(events[0].metadata.actor, "root", "the admin did it");

    // Bob owns it: he may check it out (and an admin confirms); Carol may not see it.
    let carol = app.token("carol", &[Role::Customer]);
    let before = app.event_count().await;
    let response = app
        .post(&format!("/v1/orders/{order}/payment"), &carol, &json!({}))
        .await;
    assert_problem(response, 404, "not_found").await;
    assert_eq!(app.event_count().await, before);
    // Owning it does not let him say it is paid.
    let bob = app.token("bob", &[Role::Customer]);
    let response = app
        .post(
            &format!("/v1/orders/{order}/pay"),
            &bob,
            &pay_body(2000, "EUR"),
        )
        .await;
    assert_problem(response, 403, "forbidden").await;
    assert_eq!(app.event_count().await, before);
    let (checkout, paid) = app.pay_through_provider(order, &bob).await;
    assert_eq!(
        (
            checkout["amount_cents"].as_i64(),
            checkout["currency"].as_str()
        ),
        (Some(2000), Some("EUR")),
        "{checkout}"
    );
    assert_eq!(paid["version"], 3);
    let events = app.recorded(order).await;
    assert_eq!(events[1].event_type, "PaymentRequested");
    assert_eq!(events[1].metadata.actor, "bob");
    assert_eq!(events[2].event_type, "OrderPaid");
    assert_eq!(events[2].metadata.actor, "root", "an admin confirmed it");

    // An admin without customer_id orders for themself.
    let response = app
        .place_order(&app.admin, json!([{"product_id": mug, "quantity": 1}]))
        .await;
    assert_eq!(response.status(), 201);
    let own = id_of(response).await;
    assert_eq!(app.recorded(own).await[0].payload["customer_id"], "root");
}

#[tokio::test]
async fn pay_then_ship_takes_the_stock_out_of_the_warehouse() {
    let app = TestApp::spawn().await;
    let mug = app.create_product("MUG", 1299, 10).await;
    let alice = app.token("alice", &[Role::Customer]);
    let order = app
        .placed_order(&alice, json!([{"product_id": mug, "quantity": 2}]))
        .await;
    let pay = format!("/v1/orders/{order}/pay");
    let ship = format!("/v1/orders/{order}/ship");

    // Shipping an unpaid order is refused.
    let before = app.event_count().await;
    let response = app.post(&ship, &app.admin, &ship_body()).await;
    assert_problem(response, 422, "invalid_state").await;

    // Its owner may not record a payment, not even of the exact total.
    let response = app.post(&pay, &alice, &pay_body(2598, "EUR")).await;
    assert_problem(response, 403, "forbidden").await;

    // Wrong amount or currency: refused, nothing appended.
    for body in [
        pay_body(2597, "EUR"),
        pay_body(2599, "EUR"),
        pay_body(2598, "USD"),
        pay_body(1299, "EUR"),
    ] {
        let response = app.post(&pay, &app.admin, &body).await;
        let problem = assert_problem(response, 422, "amount_mismatch").await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("2598"),
            "{problem}"
        );
    }
    assert_eq!(app.event_count().await, before);

    // The exact total.
    let response = app.post(&pay, &app.admin, &pay_body(2598, "EUR")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "etag").as_deref(), Some("\"2\""));
    let paid = body_of(response).await;
    assert_eq!(paid["id"], order.to_string());
    assert_eq!(paid["version"], 2);
    let events = app.recorded(order).await;
    assert_eq!(events[1].event_type, "OrderPaid");
    assert_eq!(
        events[1].payload,
        json!({"amount_cents": 2598, "currency": "EUR", "payment_ref": "psp-123",
               "provider_event": null, "reason": "bank transfer received"})
    );
    assert_eq!(events[1].metadata.actor, "root");
    assert_eq!(app.stock_of(mug).await, (10, 2), "paying moves no stock");

    // Paying twice is refused, and a paid order cannot be checked out.
    let before = app.event_count().await;
    let response = app.post(&pay, &app.admin, &pay_body(2598, "EUR")).await;
    assert_problem(response, 422, "invalid_state").await;
    let response = app
        .post(&format!("/v1/orders/{order}/payment"), &alice, &json!({}))
        .await;
    assert_problem(response, 422, "invalid_state").await;
    // A customer cannot ship, even their own order.
    let response = app.post(&ship, &alice, &ship_body()).await;
    assert_problem(response, 403, "forbidden").await;
    assert_eq!(app.event_count().await, before);

    let response = app.post(&ship, &app.admin, &ship_body()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "etag").as_deref(), Some("\"3\""));
    let shipped = body_of(response).await;
    assert_eq!(shipped["version"], 3);
    let events = app.recorded(order).await;
    assert_eq!(events[2].event_type, "OrderShipped");
    assert_eq!(events[2].payload, ship_body());
    let product_events = app.recorded(mug).await;
    let last = product_events.last().expect("events");
    assert_eq!(last.event_type, "StockShipped");
    assert_eq!(last.payload["quantity"], 2);
    assert_eq!(
        last.transaction_id, events[2].transaction_id,
        "one transaction"
    );
    assert_eq!(
        shipped["position"].as_i64(),
        Some(events[2].position.max(last.position))
    );
    assert_eq!(app.stock_of(mug).await, (8, 0));

    // A shipped order can be neither shipped, paid nor cancelled again.
    let before = app.event_count().await;
    let response = app.post(&ship, &app.admin, &ship_body()).await;
    assert_problem(response, 422, "invalid_state").await;
    let response = app.post(&pay, &app.admin, &pay_body(2598, "EUR")).await;
    assert_problem(response, 422, "invalid_state").await;
    let response = app
        .post(
            &format!("/v1/orders/{order}/cancel"),
            &app.admin,
            &json!({"reason": "late"}),
        )
        .await;
    assert_problem(response, 422, "invalid_state").await;
    assert_eq!(app.event_count().await, before);
    assert_eq!(app.stock_of(mug).await, (8, 0));
}

#[tokio::test]
async fn cancelling_releases_stock_and_refunds_a_paid_order() {
    let app = TestApp::spawn().await;
    let mug = app.create_product("MUG", 1299, 10).await;
    let alice = app.token("alice", &[Role::Customer]);

    // A placed order: cancelled by its owner, reservation released, no refund.
    let placed = app
        .placed_order(&alice, json!([{"product_id": mug, "quantity": 4}]))
        .await;
    assert_eq!(app.stock_of(mug).await, (10, 4));
    let cancel = format!("/v1/orders/{placed}/cancel");
    let response = app
        .post(&cancel, &alice, &json!({"reason": "changed my mind"}))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(body_of(response).await["version"], 2);
    assert_eq!(app.stock_of(mug).await, (10, 0));
    let events = app.recorded(placed).await;
    assert_eq!(events[1].event_type, "OrderCancelled");
    assert_eq!(
        events[1].payload,
        json!({"reason": "changed my mind", "refunded_cents": 0})
    );
    assert_eq!(
        app.recorded(mug).await.last().map(|e| e.event_type.clone()),
        Some("StockReleased".into())
    );

    // Cancelling it again, or paying it, is refused.
    let before = app.event_count().await;
    let response = app.post(&cancel, &alice, &json!({})).await;
    assert_problem(response, 422, "invalid_state").await;
    let response = app
        .post(&format!("/v1/orders/{placed}/payment"), &alice, &json!({}))
        .await;
    assert_problem(response, 422, "invalid_state").await;
    let response = app
        .post(
            &format!("/v1/orders/{placed}/pay"),
            &app.admin,
            &pay_body(5196, "EUR"),
        )
        .await;
    assert_problem(response, 422, "invalid_state").await;
    let response = app
        .post(
            &format!("/v1/orders/{placed}/ship"),
            &app.admin,
            &ship_body(),
        )
        .await;
    assert_problem(response, 422, "invalid_state").await;
    assert_eq!(app.event_count().await, before);

    // A paid order: cancelled by an admin (reason optional), the total is refunded by the
    // same command (OrderCancelled, RefundRequested, Refunded).
    let paid = app
        .placed_order(&alice, json!([{"product_id": mug, "quantity": 3}]))
        .await;
    let (checkout, _) = app.pay_through_provider(paid, &alice).await;
    assert_eq!(app.stock_of(mug).await, (10, 3));
    let response = app
        .post(&format!("/v1/orders/{paid}/cancel"), &app.admin, &json!({}))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "etag").as_deref(), Some("\"6\""));
    assert_eq!(body_of(response).await["version"], 6);
    let events = app.recorded(paid).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "OrderPlaced",
            "PaymentRequested",
            "OrderPaid",
            "OrderCancelled",
            "RefundRequested",
            "Refunded"
        ]
    );
    assert_eq!(
        events[3].payload,
        json!({"reason": "", "refunded_cents": 0})
    );
    let (requested, refunded) = (&events[4].payload, &events[5].payload);
    assert_eq!(requested["payment_id"], checkout["payment_id"]);
    assert_eq!(requested["amount_cents"], 3897);
    assert_eq!(requested["currency"], "EUR");
    assert_eq!(refunded["refund_id"], requested["refund_id"]);
    assert_eq!(refunded["amount_cents"], 3897);
    assert_eq!(
        events[3].transaction_id, events[5].transaction_id,
        "one command"
    );
    let state = app.order_state(paid).await;
    assert_eq!(state.status(), Some(domain::OrderStatus::Cancelled));
    assert_eq!(state.refunded_cents(), Some(3897));
    assert_eq!(state.payments().refundable_cents(), 0);
    assert_eq!(app.stock_of(mug).await, (10, 0));
}

#[tokio::test]
async fn unknown_discontinued_and_mixed_currency_products_are_refused() {
    let app = TestApp::spawn().await;
    let euro = app.create_product_in("EUR-1", 100, "EUR", 10).await;
    let dollar = app.create_product_in("USD-1", 100, "USD", 10).await;
    let gone = app.create_product_in("GONE", 100, "EUR", 10).await;
    let response = app
        .post(
            &format!("/v1/products/{gone}/discontinue"),
            &app.admin,
            &json!({}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let alice = app.token("alice", &[Role::Customer]);
    let order = app
        .placed_order(&alice, json!([{"product_id": euro, "quantity": 1}]))
        .await;
    let before = app.event_count().await;

    let unknown = Uuid::now_v7();
    let cases = [
        (
            json!([{"product_id": unknown, "quantity": 1}]),
            "unknown_product",
            unknown,
        ),
        (
            json!([{"product_id": euro, "quantity": 1}, {"product_id": unknown, "quantity": 1}]),
            "unknown_product",
            unknown,
        ),
        // An order id is not a product.
        (
            json!([{"product_id": order, "quantity": 1}]),
            "unknown_product",
            order,
        ),
        (
            json!([{"product_id": gone, "quantity": 1}]),
            "product_discontinued",
            gone,
        ),
        (
            json!([{"product_id": euro, "quantity": 1}, {"product_id": gone, "quantity": 1}]),
            "product_discontinued",
            gone,
        ),
        (
            json!([{"product_id": euro, "quantity": 1}, {"product_id": dollar, "quantity": 1}]),
            "currency_mismatch",
            dollar,
        ),
        (
            json!([{"product_id": euro, "quantity": 11}]),
            "insufficient_stock",
            euro,
        ),
    ];
    for (lines, code, culprit) in cases {
        let response = app.place_order(&alice, lines.clone()).await;
        let problem = assert_problem(response, 422, code).await;
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(&culprit.to_string()), "{lines}: {detail}");
    }
    assert_eq!(app.event_count().await, before);
    assert_eq!(app.stock_of(euro).await, (10, 1));
    assert_eq!(app.stock_of(dollar).await, (10, 0));
    assert_eq!(app.stock_of(gone).await, (10, 0));

    // A product discontinued after the order was placed can still be shipped or released.
    let response = app
        .post(
            &format!("/v1/products/{euro}/discontinue"),
            &app.admin,
            &json!({}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let response = app
        .post(&format!("/v1/orders/{order}/cancel"), &alice, &json!({}))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.stock_of(euro).await, (10, 0));
}

#[tokio::test]
async fn order_lines_must_be_1_to_100_of_distinct_products_in_quantities_1_to_1000() {
    let app = TestApp::spawn().await;
    let mug = app.create_product("MUG", 10, 5000).await;
    let alice = app.token("alice", &[Role::Customer]);
    let before = app.event_count().await;

    let line = |product: Uuid, quantity: i64| json!({"product_id": product, "quantity": quantity});
    let many = |n: usize| Value::Array((0..n).map(|_| line(Uuid::now_v7(), 1)).collect());
    let invalid = [
        json!([]),
        many(101),
        json!([line(mug, 0)]),
        json!([line(mug, -1)]),
        json!([line(mug, 1001)]),
        json!([line(mug, 1), line(mug, 2)]),
        json!([{"product_id": mug}]),
        json!([{"quantity": 1}]),
        json!([{"product_id": "not-a-uuid", "quantity": 1}]),
        json!([{"product_id": mug, "quantity": 1, "unit_price_cents": 1}]),
        json!([[mug, 1]]),
        json!({"product_id": mug, "quantity": 1}),
        Value::Null,
    ];
    for lines in invalid {
        let response = app.place_order(&alice, lines.clone()).await;
        let problem = assert_problem(response, 400, "invalid_request").await;
        assert!(problem["detail"].is_string(), "{lines}");
    }
    // No lines at all.
    let response = app.post("/v1/orders", &alice, &json!({})).await;
    assert_problem(response, 400, "invalid_request").await;
    assert_eq!(app.event_count().await, before);

    // The edges are accepted: 1,000 units, and 100 lines.
    let response = app.place_order(&alice, json!([line(mug, 1000)])).await;
    assert_eq!(response.status(), 201);
    let skus: Vec<String> = (0..99).map(|n| format!("P-{n}")).collect();
    let products =
        futures::future::join_all(skus.iter().map(|sku| app.create_product(sku, 1, 1))).await;
    let mut lines: Vec<Value> = products.iter().map(|p| line(*p, 1)).collect();
    lines.push(line(mug, 1));
    let response = app.place_order(&alice, Value::Array(lines)).await;
    assert_eq!(response.status(), 201);
    let order = id_of(response).await;
    let placed = &app.recorded(order).await[0].payload;
    assert_eq!(placed["lines"].as_array().map(Vec::len), Some(100));
    assert_eq!(placed["total_cents"], 99 + 10);
    assert_eq!(app.stock_of(mug).await, (5000, 1001));
    assert_eq!(app.stock_of(products[0]).await, (1, 1));
}

#[tokio::test]
async fn another_customer_sees_404_and_appends_nothing() {
    let app = TestApp::spawn().await;
    let mug = app.create_product("MUG", 500, 10).await;
    let alice = app.token("alice", &[Role::Customer]);
    let mallory = app.token("mallory", &[Role::Customer]);
    let order = app
        .placed_order(&alice, json!([{"product_id": mug, "quantity": 1}]))
        .await;
    let before = app.event_count().await;

    let response = app
        .post(&format!("/v1/orders/{order}/payment"), &mallory, &json!({}))
        .await;
    let not_yours = assert_problem(response, 404, "not_found").await;
    let response = app
        .post(&format!("/v1/orders/{order}/cancel"), &mallory, &json!({}))
        .await;
    assert_problem(response, 404, "not_found").await;
    // What only an admin may do is 403 whoever's order it is.
    for (command, body) in [
        ("pay", pay_body(500, "EUR")),
        ("payment/confirm", json!({})),
        ("refunds", json!({"amount_cents": 500, "reason": "mine"})),
    ] {
        let response = app
            .post(&format!("/v1/orders/{order}/{command}"), &mallory, &body)
            .await;
        assert_problem(response, 403, "forbidden").await;
    }
    // Indistinguishable from an order that does not exist.
    let missing = Uuid::now_v7();
    let response = app
        .post(
            &format!("/v1/orders/{missing}/payment"),
            &mallory,
            &json!({}),
        )
        .await;
    let no_such = assert_problem(response, 404, "not_found").await;
    assert_eq!(
        not_yours["detail"]
            .as_str()
            .map(|d| d.replace(&order.to_string(), "ID")),
        no_such["detail"]
            .as_str()
            .map(|d| d.replace(&missing.to_string(), "ID")),
    );
    assert_eq!(app.event_count().await, before);
    assert_eq!(app.stock_of(mug).await, (10, 1));

    // Unknown orders, and ids of other streams, are 404 for an admin too.
    let before = app.event_count().await;
    for target in [missing, mug] {
        for (command, body) in [
            ("pay", pay_body(500, "EUR")),
            ("ship", ship_body()),
            ("cancel", json!({})),
            ("payment", json!({})),
            ("payment/confirm", json!({})),
            ("refunds", json!({"amount_cents": 500, "reason": "r"})),
        ] {
            let response = app
                .post(&format!("/v1/orders/{target}/{command}"), &app.admin, &body)
                .await;
            assert_problem(response, 404, "not_found").await;
        }
    }
    assert_eq!(app.event_count().await, before);

    // Alice still can.
    let response = app
        .post(&format!("/v1/orders/{order}/cancel"), &alice, &json!({}))
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn order_body_fields_are_validated() {
    let app = TestApp::spawn().await;
    let mug = app.create_product("MUG", 500, 10).await;
    let alice = app.token("alice", &[Role::Customer]);
    let order = app
        .placed_order(&alice, json!([{"product_id": mug, "quantity": 1}]))
        .await;
    let before = app.event_count().await;
    let pay = format!("/v1/orders/{order}/pay");
    let ship = format!("/v1/orders/{order}/ship");
    let cancel = format!("/v1/orders/{order}/cancel");
    let refunds = format!("/v1/orders/{order}/refunds");
    let cases = [
        (
            &pay,
            json!({"amount_cents": 500, "currency": "EUR", "reason": "r"}),
        ),
        (
            &pay,
            json!({"amount_cents": 500, "currency": "eur", "payment_ref": "p", "reason": "r"}),
        ),
        (
            &pay,
            json!({"amount_cents": 500, "currency": "EUR", "payment_ref": "", "reason": "r"}),
        ),
        (
            &pay,
            json!({"amount_cents": 500, "currency": "EUR", "payment_ref": "p".repeat(201),
                   "reason": "r"}),
        ),
        (
            &pay,
            json!({"amount_cents": "500", "currency": "EUR", "payment_ref": "p", "reason": "r"}),
        ),
        (
            &pay,
            json!({"amount_cents": 5.5, "currency": "EUR", "payment_ref": "p", "reason": "r"}),
        ),
        (
            &pay,
            json!({"currency": "EUR", "payment_ref": "p", "reason": "r"}),
        ),
        // The reason of an offline payment: required, 1 to 500 characters, not blank.
        (
            &pay,
            json!({"amount_cents": 500, "currency": "EUR", "payment_ref": "p"}),
        ),
        (
            &pay,
            json!({"amount_cents": 500, "currency": "EUR", "payment_ref": "p", "reason": ""}),
        ),
        (
            &pay,
            json!({"amount_cents": 500, "currency": "EUR", "payment_ref": "p", "reason": "  "}),
        ),
        (
            &pay,
            json!({"amount_cents": 500, "currency": "EUR", "payment_ref": "p",
                   "reason": "r".repeat(501)}),
        ),
        (
            &pay,
            json!({"amount_cents": 500, "currency": "EUR", "payment_ref": "p", "reason": 5}),
        ),
        (&refunds, json!({"amount_cents": 500})),
        (&refunds, json!({"amount_cents": 500, "reason": " "})),
        (&refunds, json!({"reason": "r"})),
        (
            &refunds,
            json!({"amount_cents": 500, "reason": "r", "currency": "EUR"}),
        ),
        (&ship, json!({"carrier": "DHL"})),
        (&ship, json!({"carrier": "", "tracking_number": "T"})),
        (
            &ship,
            json!({"carrier": "D".repeat(101), "tracking_number": "T"}),
        ),
        (&ship, json!({"carrier": "DHL", "tracking_number": ""})),
        (
            &ship,
            json!({"carrier": "DHL", "tracking_number": "T".repeat(101)}),
        ),
        (&cancel, json!({"reason": "r".repeat(501)})),
        (&cancel, json!({"reason": 5})),
        (&cancel, json!({"why": "x"})),
        (
            &"/v1/orders".to_owned(),
            json!({"lines": [{"product_id": mug, "quantity": 1}], "customer_id": ""}),
        ),
        (
            &"/v1/orders".to_owned(),
            json!({"lines": [{"product_id": mug, "quantity": 1}], "customer_id": "c".repeat(256)}),
        ),
    ];
    for (path, body) in cases {
        let response = app.post(path, &app.admin, &body).await;
        assert_problem(response, 400, "invalid_request").await;
    }
    assert_eq!(app.event_count().await, before);

    // A 500-character reason is fine.
    let response = app
        .post(&cancel, &alice, &json!({"reason": "r".repeat(500)}))
        .await;
    assert_eq!(response.status(), 200);
}
