//! The command headers: `If-Match` (optimistic concurrency), `Idempotency-Key` syntax,
//! `X-Correlation-Id` and the actor recorded in every event's metadata.

mod support;

use platform::Role;
use reqwest::Method;
use serde_json::json;
use support::{assert_problem, body_of, header, id_of, offline_payment, TestApp};

#[tokio::test]
async fn if_match_applies_only_at_the_current_version() {
    let app = TestApp::spawn().await;
    let id = app.create_product("IM-1", 100, 0).await;
    let restock = format!("/v1/products/{id}/restock");
    let body = json!({"quantity": 1});

    let response = app
        .post_with(&restock, &app.admin, &body, &[("If-Match", "\"1\"")])
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "etag").as_deref(), Some("\"2\""));

    // Stale (and future) versions are refused and append nothing.
    let before = app.event_count().await;
    for stale in ["\"1\"", "1", "\"0\"", "\"3\"", "\"1000\""] {
        let response = app
            .post_with(&restock, &app.admin, &body, &[("If-Match", stale)])
            .await;
        let problem = assert_problem(response, 412, "version_mismatch").await;
        assert!(
            problem["detail"].as_str().unwrap_or_default().contains('2'),
            "{problem}"
        );
    }
    assert_eq!(app.event_count().await, before);
    assert_eq!(app.stock_of(id).await, (1, 0));

    // Quotes are optional; the ETag of one answer is the If-Match of the next.
    let response = app
        .post_with(&restock, &app.admin, &body, &[("If-Match", "2")])
        .await;
    assert_eq!(response.status(), 200);
    let etag = header(&response, "etag").expect("an ETag");
    assert_eq!(etag, "\"3\"");
    let response = app
        .post_with(
            &format!("/v1/products/{id}/price"),
            &app.admin,
            &json!({"price_cents": 5}),
            &[("If-Match", &etag)],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(body_of(response).await["version"], 4);
    assert_eq!(app.events_of(id).await.len(), 4);

    // On orders too: a stale If-Match on an (admin's offline) payment is 412, the current
    // one passes.
    let alice = app.token("alice", &[Role::Customer]);
    let order = app
        .placed_order(&alice, json!([{"product_id": id, "quantity": 1}]))
        .await;
    let pay = format!("/v1/orders/{order}/pay");
    let pay_body = offline_payment(5);
    let before = app.event_count().await;
    let response = app
        .post_with(&pay, &app.admin, &pay_body, &[("If-Match", "\"2\"")])
        .await;
    assert_problem(response, 412, "version_mismatch").await;
    assert_eq!(app.event_count().await, before);
    let response = app
        .post_with(&pay, &app.admin, &pay_body, &[("If-Match", "\"1\"")])
        .await;
    assert_eq!(response.status(), 200);
    let response = app
        .post_with(
            &format!("/v1/orders/{order}/ship"),
            &app.admin,
            &json!({"carrier": "DHL", "tracking_number": "T"}),
            &[("If-Match", "\"1\"")],
        )
        .await;
    assert_problem(response, 412, "version_mismatch").await;
    assert_eq!(app.stock_of(id).await, (2, 1));

    // A new stream is at version 0.
    let create = |sku: &str| json!({"sku": sku, "name": "n", "price_cents": 1, "currency": "EUR"});
    let response = app
        .post_with(
            "/v1/products",
            &app.admin,
            &create("IM-2"),
            &[("If-Match", "\"1\"")],
        )
        .await;
    assert_problem(response, 412, "version_mismatch").await;
    let response = app
        .post_with(
            "/v1/products",
            &app.admin,
            &create("IM-3"),
            &[("If-Match", "\"0\"")],
        )
        .await;
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn a_garbage_if_match_is_400() {
    let app = TestApp::spawn().await;
    let id = app.create_product("IM-1", 100, 0).await;
    let before = app.event_count().await;
    let restock = format!("/v1/products/{id}/restock");
    for garbage in [
        "",
        "abc",
        "\"abc\"",
        "-1",
        "\"-1\"",
        "1.0",
        "\"1",
        "1\"",
        "\"\"",
        "0x1",
        "1 2",
        "99999999999999999999",
        "\"1\", \"2\"",
    ] {
        let response = app
            .post_with(
                &restock,
                &app.admin,
                &json!({"quantity": 1}),
                &[("If-Match", garbage)],
            )
            .await;
        assert_eq!(response.status(), 400, "If-Match: {garbage}");
        assert_problem(response, 400, "invalid_request").await;
    }
    let response = app
        .send(
            Method::POST,
            &restock,
            Some(&format!("Bearer {}", app.admin)),
            Some(br#"{"quantity": 1}"#.to_vec()),
            &[("If-Match", "\"\u{e9}\"".as_bytes())],
        )
        .await;
    assert_problem(response, 400, "invalid_request").await;
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn an_idempotency_key_must_be_1_to_255_visible_ascii_characters() {
    let app = TestApp::spawn().await;
    let id = app.create_product("IK-1", 100, 0).await;
    let before = app.event_count().await;
    let restock = format!("/v1/products/{id}/restock");
    let authorization = format!("Bearer {}", app.admin);
    let too_long = "k".repeat(256);
    let bad_keys: [&[u8]; 6] = [
        b"",
        too_long.as_bytes(),
        b"has space",
        b"tab\there",
        "caf\u{e9}".as_bytes(),
        b"\x80\xff",
    ];
    for key in bad_keys {
        let response = app
            .send(
                Method::POST,
                &restock,
                Some(&authorization),
                Some(br#"{"quantity": 1}"#.to_vec()),
                &[("Idempotency-Key", key)],
            )
            .await;
        let label = String::from_utf8_lossy(key).into_owned();
        assert_eq!(response.status(), 400, "Idempotency-Key: {label:?}");
        assert_problem(response, 400, "invalid_request").await;
    }
    assert_eq!(app.event_count().await, before);

    // The edges are fine, and a good key is honoured.
    let longest = "k".repeat(255);
    for key in ["k", longest.as_str(), "~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./"] {
        let response = app
            .post_with(
                &restock,
                &app.admin,
                &json!({"quantity": 1}),
                &[("Idempotency-Key", key)],
            )
            .await;
        assert_eq!(response.status(), 200, "Idempotency-Key: {key}");
        let first = body_of(response).await;
        let response = app
            .post_with(
                &restock,
                &app.admin,
                &json!({"quantity": 1}),
                &[("Idempotency-Key", key)],
            )
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(body_of(response).await, first);
    }
    assert_eq!(app.stock_of(id).await, (3, 0));
}

#[tokio::test]
async fn the_correlation_id_and_actor_are_recorded_on_every_event() {
    let app = TestApp::spawn().await;
    let response = app
        .post_with(
            "/v1/products",
            &app.admin,
            &json!({"sku": "C-1", "name": "n", "price_cents": 100, "currency": "EUR",
                    "initial_stock": 5}),
            &[("X-Correlation-Id", "checkout-42")],
        )
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(
        header(&response, "x-correlation-id").as_deref(),
        Some("checkout-42")
    );
    let product = id_of(response).await;
    let created = &app.recorded(product).await[0];
    assert_eq!(created.metadata.correlation_id, "checkout-42");
    assert_eq!(created.metadata.actor, "root");
    assert_eq!(created.metadata.causation_id, None);

    // A multi-stream command: the order and its reservation carry the same metadata.
    let alice = app.token("alice", &[Role::Customer]);
    let response = app
        .post_with(
            "/v1/orders",
            &alice,
            &json!({"lines": [{"product_id": product, "quantity": 2}]}),
            &[("X-Correlation-Id", "checkout-43")],
        )
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(
        header(&response, "x-correlation-id").as_deref(),
        Some("checkout-43")
    );
    let order = id_of(response).await;
    let placed = &app.recorded(order).await[0];
    let reserved = app.recorded(product).await.pop().expect("an event");
    assert_eq!(reserved.event_type, "StockReserved");
    for event in [placed, &reserved] {
        assert_eq!(event.metadata.correlation_id, "checkout-43");
        assert_eq!(event.metadata.actor, "alice");
    }
    assert_eq!(placed.metadata.command_id, reserved.metadata.command_id);
    assert_ne!(placed.metadata.command_id, created.metadata.command_id);

    // Without one (or with one that is not sensible) a fresh id is made, echoed and recorded.
    let long = "c".repeat(201);
    for sent in [None, Some("has space"), Some(long.as_str())] {
        let headers: Vec<(&str, &str)> =
            sent.map(|s| ("X-Correlation-Id", s)).into_iter().collect();
        let response = app
            .post_with(
                &format!("/v1/products/{product}/restock"),
                &app.admin,
                &json!({"quantity": 1}),
                &headers,
            )
            .await;
        assert_eq!(response.status(), 200);
        let echoed = header(&response, "x-correlation-id").expect("a correlation id");
        assert!(!echoed.is_empty());
        assert_ne!(Some(echoed.as_str()), sent);
        let restocked = app.recorded(product).await.pop().expect("an event");
        assert_eq!(restocked.event_type, "StockAdded");
        assert_eq!(restocked.metadata.correlation_id, echoed);
        assert_eq!(restocked.metadata.actor, "root");
    }

    // The actor is the token's sub, whoever it is.
    let bob = app.token("bob@example.com", &[Role::Admin]);
    let response = app
        .post(
            &format!("/v1/products/{product}/price"),
            &bob,
            &json!({"price_cents": 7}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let changed = app.recorded(product).await.pop().expect("an event");
    assert_eq!(changed.event_type, "PriceChanged");
    assert_eq!(changed.metadata.actor, "bob@example.com");
}

#[tokio::test]
async fn if_match_guards_the_payment_confirmation() {
    let app = TestApp::spawn().await;
    let product = app.create_product("IM-PAY", 700, 5).await;
    let alice = app.token("alice", &[Role::Customer]);
    let order = app
        .placed_order(&alice, json!([{"product_id": product, "quantity": 1}]))
        .await;
    // The customer's checkout (version 2), carrying her correlation id.
    let response = app
        .post_with(
            &format!("/v1/orders/{order}/payment"),
            &alice,
            &json!({}),
            &[("X-Correlation-Id", "checkout-44")],
        )
        .await;
    assert_eq!(response.status(), 200);
    let requested = app.recorded(order).await.pop().expect("an event");
    assert_eq!(requested.event_type, "PaymentRequested");
    assert_eq!(requested.version, 2);
    assert_eq!(requested.metadata.correlation_id, "checkout-44");
    assert_eq!(requested.metadata.actor, "alice");

    // An admin's confirmation at a stale (or future) version is 412 and appends nothing.
    let confirm = format!("/v1/orders/{order}/payment/confirm");
    let before = app.event_count().await;
    for stale in ["\"1\"", "1", "\"3\""] {
        let response = app
            .post_with(&confirm, &app.admin, &json!({}), &[("If-Match", stale)])
            .await;
        assert_problem(response, 412, "version_mismatch").await;
    }
    assert_eq!(app.event_count().await, before);
    let response = app
        .post_with(&confirm, &app.admin, &json!({}), &[("If-Match", "\"2\"")])
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "etag").as_deref(), Some("\"3\""));
    assert_eq!(body_of(response).await["version"], 3);
    let paid = app.recorded(order).await.pop().expect("an event");
    assert_eq!(paid.event_type, "OrderPaid");
    assert_eq!(paid.metadata.actor, "root");
    assert_eq!(paid.payload["payment_ref"], requested.payload["payment_id"]);
}
