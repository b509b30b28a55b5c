//! Schema evolution over HTTP: `OrderPlaced` v2 added `placed_by`. Orders recorded by the
//! previous release (`OrderPlaced` v1, no `placed_by`) are upcast whenever the order is
//! loaded, so they can still be checked out and paid, shipped and cancelled; their stored
//! events stay exactly as recorded (the export shows v1); new orders are written at v2 with
//! `placed_by` = the caller's `sub`.

mod support;

use std::time::{Duration, Instant};

use chrono::Utc;
use eventstore::{
    AppendRequest, Envelope, EventMetadata, LogCheckpoint, NewEvent, RecordedEvent, StreamWrite,
};
use platform::Role;
use serde_json::{json, Value};
use support::{assert_problem, body_of, TestApp};
use uuid::Uuid;

/// Appends an order as the previous release recorded it: `OrderPlaced` at schema version 1
/// (no `placed_by`) and, in the same command, a `StockReserved` on each product, so stock
/// agrees with the order. `lines` are `(product, quantity, unit price)`. Returns the order
/// id and the v1 payload.
async fn append_v1_order(
    app: &TestApp,
    customer: &str,
    lines: &[(Uuid, i64, i64)],
    schema_version: i32,
) -> (Uuid, Value) {
    let id = Uuid::now_v7();
    let payload = json!({
        "customer_id": customer,
        "lines": lines
            .iter()
            .map(|(product, quantity, price)| json!({
                "product_id": product, "quantity": quantity, "unit_price_cents": price
            }))
            .collect::<Vec<_>>(),
        "total_cents": lines.iter().map(|(_, q, p)| q * p).sum::<i64>(),
        "currency": "EUR",
    });
    let products: Vec<Uuid> = lines.iter().map(|(p, _, _)| *p).collect();
    let loaded = app.db.store.load_streams(&products).await.expect("load");
    let mut streams = vec![StreamWrite::after(
        &eventstore::LoadedStream::empty(id),
        "order",
        vec![NewEvent::new(
            "OrderPlaced",
            schema_version,
            payload.clone(),
        )],
    )];
    for (product, quantity, _) in lines {
        streams.push(StreamWrite::after(
            &loaded[product],
            "product",
            vec![NewEvent::new(
                "StockReserved",
                1,
                json!({"order_id": id, "quantity": quantity}),
            )],
        ));
    }
    app.db
        .store
        .append(AppendRequest {
            streams,
            metadata: EventMetadata {
                actor: customer.to_owned(),
                correlation_id: Uuid::new_v4().to_string(),
                causation_id: None,
                command_id: Uuid::new_v4(),
            },
            occurred_at: Utc::now(),
            claims: vec![],
            idempotency: None,
        })
        .await
        .expect("the v1 order is appended");
    (id, payload)
}

/// The order's events as the audit export reads them: from the global log, in log order,
/// as envelopes (waiting briefly for transactions of concurrent tests to finish).
async fn exported(app: &TestApp, stream_id: Uuid, count: usize) -> Vec<Envelope> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let log = app
            .db
            .store
            .read_log(LogCheckpoint::START, 100_000)
            .await
            .expect("read the log");
        let envelopes: Vec<Envelope> = log
            .iter()
            .filter(|e| e.stream_id == stream_id)
            .map(|event| Envelope::of(event).expect("an envelope"))
            .collect();
        if envelopes.len() >= count {
            return envelopes;
        }
        assert!(Instant::now() < until, "the log shows {stream_id}'s events");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The order's folded state (as loaded by the command API: upcast, then decoded).
async fn state_of(app: &TestApp, id: Uuid) -> domain::Order {
    let mut states = app
        .db
        .store
        .load_states(&[id])
        .await
        .expect("the order folds");
    states.remove(&id).expect("loaded").order()
}

/// An admin's offline payment of `amount_cents` EUR.
fn pay_body(amount_cents: i64) -> Value {
    json!({"amount_cents": amount_cents, "currency": "EUR", "payment_ref": "psp-1",
           "reason": "bank transfer received"})
}

#[tokio::test]
async fn a_v1_order_is_upcast_on_load_then_paid_and_shipped_and_stays_v1_in_the_store() {
    let app = TestApp::spawn().await;
    let mug = app.create_product("MUG", 1299, 10).await;
    let tea = app.create_product("TEA", 450, 5).await;
    let alice = app.token("alice", &[Role::Customer]);
    let (id, v1) = append_v1_order(&app, "alice", &[(mug, 2, 1299), (tea, 1, 450)], 1).await;
    assert_eq!(app.stock_of(mug).await, (10, 2));

    // The aggregate loads it (upcast: placed_by = customer_id).
    let order = state_of(&app, id).await;
    assert_eq!(order.customer_id().map(|c| c.as_str()), Some("alice"));
    assert_eq!(order.placed_by().map(|a| a.as_str()), Some("alice"));
    assert_eq!(order.total_cents(), 2 * 1299 + 450);

    // Its owner checks it out (ownership comes from the upcast event), an admin confirms
    // the payment and ships it.
    let checkout = app.checkout(id, &alice).await;
    assert_eq!(checkout["amount_cents"], 3048, "{checkout}");
    let (again, paid) = app.pay_through_provider(id, &alice).await;
    assert_eq!(
        again["payment_id"], checkout["payment_id"],
        "the open payment again"
    );
    assert_eq!(paid["version"], 3, "one PaymentRequested, then OrderPaid");
    let response = app
        .post_with(
            &format!("/v1/orders/{id}/ship"),
            &app.admin,
            &json!({"carrier": "DHL", "tracking_number": "JD0001"}),
            &[("If-Match", "\"3\"")],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(body_of(response).await["version"], 4);
    assert_eq!(app.stock_of(mug).await, (8, 0));
    assert_eq!(app.stock_of(tea).await, (4, 0));
    let order = state_of(&app, id).await;
    assert_eq!(order.status(), Some(domain::OrderStatus::Shipped));
    assert_eq!(order.placed_by().map(|a| a.as_str()), Some("alice"));

    // The store keeps what was recorded: OrderPlaced v1, payload untouched.
    let recorded: Vec<RecordedEvent> = app.recorded(id).await;
    let kinds: Vec<(&str, i32)> = recorded
        .iter()
        .map(|e| (e.event_type.as_str(), e.schema_version))
        .collect();
    assert_eq!(
        kinds,
        [
            ("OrderPlaced", 1),
            ("PaymentRequested", 1),
            ("OrderPaid", 2),
            ("OrderShipped", 1)
        ]
    );
    assert_eq!(recorded[2].payload["payment_ref"], checkout["payment_id"]);
    assert_eq!(recorded[0].payload, v1);
    assert!(recorded[0].payload.get("placed_by").is_none());

    // So does the export, and the hash chain still verifies.
    let envelopes = exported(&app, id, 4).await;
    assert_eq!(envelopes[0].event_type, "OrderPlaced");
    assert_eq!(envelopes[0].schema_version, 1);
    assert_eq!(envelopes[0].payload, v1);
    let line = eventstore::envelope::to_json_line(&recorded[0]).expect("a JSON line");
    assert!(!line.contains("placed_by"), "{line}");
    let report = app.db.store.verify(Some(id)).await.expect("verify");
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.events_checked, 4);
    assert!(app.db.store.verify(None).await.expect("verify").ok());
}

#[tokio::test]
async fn a_v1_order_can_be_cancelled_by_its_customer_only() {
    let app = TestApp::spawn().await;
    let mug = app.create_product("MUG", 1299, 10).await;
    let (id, v1) = append_v1_order(&app, "alice", &[(mug, 3, 1299)], 1).await;
    let alice = app.token("alice", &[Role::Customer]);
    let bob = app.token("bob", &[Role::Customer]);
    let cancel = json!({"reason": "changed my mind"});

    let response = app
        .post(&format!("/v1/orders/{id}/cancel"), &bob, &cancel)
        .await;
    assert_problem(response, 404, "not_found").await;
    let response = app
        .post_with(
            &format!("/v1/orders/{id}/cancel"),
            &alice,
            &cancel,
            &[("If-Match", "1")],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(body_of(response).await["version"], 2);
    assert_eq!(app.stock_of(mug).await, (10, 0));
    let order = state_of(&app, id).await;
    assert_eq!(order.status(), Some(domain::OrderStatus::Cancelled));
    assert_eq!(order.refunded_cents(), Some(0));
    // Paying a cancelled v1 order is a business refusal, not a decoding failure: her
    // checkout, and an admin's offline payment.
    let response = app
        .post(&format!("/v1/orders/{id}/payment"), &alice, &json!({}))
        .await;
    assert_problem(response, 422, "invalid_state").await;
    let response = app
        .post(&format!("/v1/orders/{id}/pay"), &app.admin, &pay_body(3897))
        .await;
    assert_problem(response, 422, "invalid_state").await;

    let recorded = app.recorded(id).await;
    assert_eq!(recorded.len(), 2);
    assert_eq!((recorded[0].schema_version, &recorded[0].payload), (1, &v1));
    assert_eq!(recorded[1].event_type, "OrderCancelled");
    assert!(app.db.store.verify(Some(id)).await.expect("verify").ok());
}

#[tokio::test]
async fn new_orders_are_recorded_at_v3_with_placed_by_the_caller() {
    let app = TestApp::spawn().await;
    let mug = app.create_product("MUG", 1299, 10).await;
    let alice = app.token("alice", &[Role::Customer]);
    let bob = app.token("bob", &[Role::Customer]);
    let lines = json!([{"product_id": mug, "quantity": 1}]);
    assert_eq!(schemas::current_version("OrderPlaced"), Some(3));

    // A customer for themself: placed_by = customer_id = their sub.
    let own = app.placed_order(&alice, lines.clone()).await;
    let recorded = app.recorded(own).await;
    assert_eq!(recorded[0].event_type, "OrderPlaced");
    assert_eq!(recorded[0].schema_version, 3);
    assert_eq!(recorded[0].payload["customer_id"], "alice");
    assert_eq!(recorded[0].payload["placed_by"], "alice");

    // An admin (sub "root") for bob: placed_by = the admin, customer_id = bob.
    let response = app
        .post(
            "/v1/orders",
            &app.admin,
            &json!({"lines": lines, "customer_id": "bob"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let for_bob: Uuid = body_of(response).await["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("an id");
    let recorded = app.recorded(for_bob).await;
    assert_eq!(recorded[0].schema_version, 3);
    assert_eq!(recorded[0].payload["customer_id"], "bob");
    assert_eq!(recorded[0].payload["placed_by"], "root");
    assert_eq!(recorded[0].metadata.actor, "root");
    let order = state_of(&app, for_bob).await;
    assert_eq!(order.customer_id().map(|c| c.as_str()), Some("bob"));
    assert_eq!(order.placed_by().map(|a| a.as_str()), Some("root"));

    // The order is bob's: he checks it out and an admin confirms; alice cannot see it.
    let before = app.event_count().await;
    let response = app
        .post(&format!("/v1/orders/{for_bob}/payment"), &alice, &json!({}))
        .await;
    assert_problem(response, 404, "not_found").await;
    assert_eq!(app.event_count().await, before);
    let (checkout, paid) = app.pay_through_provider(for_bob, &bob).await;
    assert_eq!(checkout["amount_cents"], 1299, "{checkout}");
    assert_eq!(paid["version"], 3, "{paid}");
    assert_eq!(
        state_of(&app, for_bob).await.status(),
        Some(domain::OrderStatus::Paid)
    );

    // v1 and v2 orders side by side in one log, each exported as recorded.
    let (old, _) = append_v1_order(&app, "carol", &[(mug, 1, 1299)], 1).await;
    assert_eq!(exported(&app, old, 1).await[0].schema_version, 1);
    assert_eq!(exported(&app, own, 1).await[0].schema_version, 3);
    assert_eq!(
        state_of(&app, old).await.placed_by().map(|a| a.as_str()),
        Some("carol")
    );
    assert!(app.db.store.verify(None).await.expect("verify").ok());
}

/// An `OrderPlaced` written by a newer release (schema version 3) cannot be read: commands
/// on that order fail (500, logged with the reason) and append nothing.
#[tokio::test]
async fn an_order_at_an_unknown_future_version_is_refused() {
    let app = TestApp::spawn().await;
    let mug = app.create_product("MUG", 1299, 10).await;
    let (id, _) = append_v1_order(&app, "alice", &[(mug, 1, 1299)], 3).await;
    let alice = app.token("alice", &[Role::Customer]);
    let before = app.event_count().await;
    let response = app
        .post(&format!("/v1/orders/{id}/payment"), &alice, &json!({}))
        .await;
    assert_problem(response, 500, "internal").await;
    let response = app
        .post(&format!("/v1/orders/{id}/pay"), &app.admin, &pay_body(1299))
        .await;
    assert_problem(response, 500, "internal").await;
    assert_eq!(app.event_count().await, before);
    assert!(app.db.store.load_states(&[id]).await.is_err());
}
