//! Product commands over HTTP: the happy path of each command, the business refusals and
//! every field rule of API.md. A refused command never appends anything.

mod support;

use serde_json::{json, Value};
use support::{assert_problem, body_of, header, TestApp};
use uuid::Uuid;

fn mug() -> Value {
    json!({"sku": "A-1", "name": "Mug", "price_cents": 1299, "currency": "EUR", "initial_stock": 10})
}

#[tokio::test]
async fn a_product_goes_through_create_price_restock_and_discontinue() {
    let app = TestApp::spawn().await;

    let response = app.post("/v1/products", &app.admin, &mug()).await;
    assert_eq!(response.status(), 201);
    assert_eq!(header(&response, "etag").as_deref(), Some("\"1\""));
    let location = header(&response, "location").expect("a Location");
    let created = body_of(response).await;
    let id: Uuid = created["id"].as_str().expect("id").parse().expect("a UUID");
    assert_eq!(location, format!("/v1/products/{id}"));
    assert_eq!(created["version"], 1);
    let mut last_position = created["position"].as_i64().expect("a position");
    assert!(last_position > 0);
    assert_eq!(
        created.as_object().map(|o| o.len()),
        Some(3),
        "exactly id, version, position: {created}"
    );

    let steps = [
        ("price", json!({"price_cents": 1499}), "PriceChanged"),
        ("restock", json!({"quantity": 5}), "StockAdded"),
        ("discontinue", json!({}), "ProductDiscontinued"),
    ];
    for (version, (command, body, _)) in (2..).zip(&steps) {
        let response = app
            .post(&format!("/v1/products/{id}/{command}"), &app.admin, body)
            .await;
        assert_eq!(response.status(), 200, "{command}");
        assert_eq!(header(&response, "etag"), Some(format!("\"{version}\"")));
        assert_eq!(
            header(&response, "location"),
            None,
            "only creation has a Location"
        );
        let answer = body_of(response).await;
        assert_eq!(answer["id"], id.to_string());
        assert_eq!(answer["version"], version);
        let position = answer["position"].as_i64().expect("a position");
        assert!(
            position > last_position,
            "{command}: {position} after {last_position}"
        );
        last_position = position;
    }

    let events = app.recorded(id).await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "ProductCreated",
            "PriceChanged",
            "StockAdded",
            "ProductDiscontinued"
        ]
    );
    assert!(events.iter().all(|e| e.stream_type == "product"));
    assert_eq!(events[0].payload["sku"], "A-1");
    assert_eq!(events[0].payload["price_cents"], 1299);
    assert_eq!(events[0].payload["currency"], "EUR");
    assert_eq!(events[1].payload["price_cents"], 1499);
    assert_eq!(events[1].payload["previous_price_cents"], 1299);
    assert_eq!(events[2].payload["quantity"], 5);
    assert_eq!(events.last().map(|e| e.position), Some(last_position));
    assert_eq!(app.stock_of(id).await, (15, 0));

    // Discontinuing a discontinued product is refused and appends nothing.
    let before = app.event_count().await;
    let response = app
        .post(
            &format!("/v1/products/{id}/discontinue"),
            &app.admin,
            &json!({}),
        )
        .await;
    assert_problem(response, 422, "invalid_state").await;
    assert_eq!(app.event_count().await, before);
    assert_eq!(app.events_of(id).await.len(), 4);
}

#[tokio::test]
async fn commands_on_an_unknown_product_are_404() {
    let app = TestApp::spawn().await;
    let existing = app.create_product("K-1", 100, 1).await;
    let before = app.event_count().await;
    let unknown = Uuid::now_v7();
    // An order id is no product either.
    let customer = app.token("olga", &[platform::Role::Customer]);
    let order = support::id_of(
        app.place_order(&customer, json!([{"product_id": existing, "quantity": 1}]))
            .await,
    )
    .await;
    let before_orders = app.event_count().await;
    assert_eq!(before_orders, before + 2);
    for target in [unknown, order] {
        for (command, body) in [
            ("price", json!({"price_cents": 10})),
            ("restock", json!({"quantity": 1})),
            ("discontinue", json!({})),
        ] {
            let response = app
                .post(
                    &format!("/v1/products/{target}/{command}"),
                    &app.admin,
                    &body,
                )
                .await;
            assert_problem(response, 404, "not_found").await;
        }
    }
    assert_eq!(app.event_count().await, before_orders);
}

#[tokio::test]
async fn a_taken_sku_is_409_and_appends_nothing() {
    let app = TestApp::spawn().await;
    let response = app.post("/v1/products", &app.admin, &mug()).await;
    assert_eq!(response.status(), 201);
    let before = app.event_count().await;

    let mut again = mug();
    again["name"] = json!("Another mug");
    again["price_cents"] = json!(5);
    let response = app.post("/v1/products", &app.admin, &again).await;
    let problem = assert_problem(response, 409, "sku_taken").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("A-1"),
        "{problem}"
    );
    assert_eq!(app.event_count().await, before);

    // The SKU stays taken after the product is discontinued.
    let first = app.create_product("B-2", 100, 0).await;
    let response = app
        .post(
            &format!("/v1/products/{first}/discontinue"),
            &app.admin,
            &json!({}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let before = app.event_count().await;
    let response = app
        .post(
            "/v1/products",
            &app.admin,
            &json!({"sku": "B-2", "name": "x", "price_cents": 1, "currency": "EUR"}),
        )
        .await;
    assert_problem(response, 409, "sku_taken").await;
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn create_accepts_the_edges_of_every_field_rule() {
    let app = TestApp::spawn().await;
    let sku64: String = "aZ09-_".chars().cycle().take(64).collect();
    let accepted = [
        json!({"sku": "x", "name": "n", "price_cents": 1, "currency": "EUR"}),
        json!({"sku": sku64, "name": "é".repeat(200), "price_cents": 1_000_000_000i64,
               "currency": "USD", "initial_stock": 0}),
        json!({"sku": "-_-", "name": "Big", "price_cents": 1, "currency": "XYZ",
               "initial_stock": 1_000_000_000}),
    ];
    for body in &accepted {
        let response = app.post("/v1/products", &app.admin, body).await;
        assert_eq!(response.status(), 201, "{body}");
    }

    // initial_stock defaults to 0.
    let response = app
        .post(
            "/v1/products",
            &app.admin,
            &json!({"sku": "NO-STOCK", "name": "n", "price_cents": 5, "currency": "EUR"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let id = support::id_of(response).await;
    assert_eq!(app.stock_of(id).await, (0, 0));
    assert_eq!(app.recorded(id).await[0].payload["initial_stock"], 0);

    // Restock and price edges.
    for (command, body) in [
        ("restock", json!({"quantity": 1})),
        ("restock", json!({"quantity": 1_000_000})),
        ("price", json!({"price_cents": 1})),
    ] {
        let response = app
            .post(&format!("/v1/products/{id}/{command}"), &app.admin, &body)
            .await;
        assert_eq!(response.status(), 200, "{command} {body}");
    }
    assert_eq!(app.stock_of(id).await, (1_000_001, 0));
}

#[tokio::test]
async fn every_field_rule_violation_is_400_and_appends_nothing() {
    let app = TestApp::spawn().await;
    let id = app.create_product("V-1", 100, 5).await;
    let before = app.event_count().await;

    let valid = json!({"sku": "OK-1", "name": "Mug", "price_cents": 1299, "currency": "EUR",
                       "initial_stock": 10});
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    let mut invalid_creates = vec![
        with("sku", json!("")),
        with("sku", json!("x".repeat(65))),
        with("sku", json!("A 1")),
        with("sku", json!("A.1")),
        with("sku", json!("A/1")),
        with("sku", json!("Ä-1")),
        with("sku", json!("A-1\n")),
        with("name", json!("")),
        with("name", json!("n".repeat(201))),
        with("name", json!("é".repeat(201))),
        with("price_cents", json!(0)),
        with("price_cents", json!(-1)),
        with("price_cents", json!(1_000_000_001i64)),
        with("currency", json!("eur")),
        with("currency", json!("EU")),
        with("currency", json!("EURO")),
        with("currency", json!("E1R")),
        with("currency", json!("")),
        with("currency", json!("ÉUR")),
        with("initial_stock", json!(-1)),
        with("initial_stock", json!(1_000_000_001)),
    ];
    for field in ["sku", "name", "price_cents", "currency"] {
        let mut body = valid.clone();
        body.as_object_mut().expect("object").remove(field);
        invalid_creates.push(body);
        invalid_creates.push(with(field, Value::Null));
    }
    invalid_creates.push(with("initial_stock", Value::Null));
    for body in &invalid_creates {
        let response = app.post("/v1/products", &app.admin, body).await;
        let problem = assert_problem(response, 400, "invalid_request").await;
        assert!(
            !problem["detail"].as_str().unwrap_or_default().is_empty(),
            "{body}"
        );
    }

    for (command, body) in [
        ("restock", json!({"quantity": 0})),
        ("restock", json!({"quantity": -5})),
        ("restock", json!({"quantity": 1_000_001})),
        ("restock", json!({})),
        ("price", json!({"price_cents": 0})),
        ("price", json!({"price_cents": -1299})),
        ("price", json!({"price_cents": 1_000_000_001i64})),
        ("price", json!({})),
        ("discontinue", json!({"reason": "old"})),
    ] {
        let response = app
            .post(&format!("/v1/products/{id}/{command}"), &app.admin, &body)
            .await;
        assert_problem(response, 400, "invalid_request").await;
    }

    assert_eq!(app.event_count().await, before);
    assert_eq!(app.stock_of(id).await, (5, 0));
}

#[tokio::test]
async fn the_problem_detail_names_the_offending_field() {
    let app = TestApp::spawn().await;
    for (field, value) in [
        ("sku", json!("a b")),
        ("name", json!("")),
        ("price_cents", json!(0)),
        ("currency", json!("eur")),
        ("initial_stock", json!(-3)),
    ] {
        let mut body = mug();
        body[field] = value;
        let response = app.post("/v1/products", &app.admin, &body).await;
        let problem = assert_problem(response, 400, "invalid_request").await;
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(field), "{field}: {detail}");
    }
    assert_eq!(app.event_count().await, 0);
}
