//! Malformed input: whatever the body, path or route, the answer is a 4xx problem+json
//! (400 `invalid_request`, or 404 for no such route), never a 5xx, and nothing is appended.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::{assert_problem, TestApp};
use uuid::Uuid;

/// Every command endpoint with a body that would be accepted.
fn every_command(product: Uuid, order: Uuid) -> Vec<(String, Value)> {
    vec![
        (
            "/v1/products".into(),
            json!({"sku": "NEW-1", "name": "New", "price_cents": 100, "currency": "EUR"}),
        ),
        (
            format!("/v1/products/{product}/price"),
            json!({"price_cents": 200}),
        ),
        (
            format!("/v1/products/{product}/restock"),
            json!({"quantity": 1}),
        ),
        (format!("/v1/products/{product}/discontinue"), json!({})),
        (
            "/v1/orders".into(),
            json!({"lines": [{"product_id": product, "quantity": 1}]}),
        ),
        (
            format!("/v1/orders/{order}/pay"),
            json!({"amount_cents": 100, "currency": "EUR", "payment_ref": "p", "reason": "r"}),
        ),
        (
            format!("/v1/orders/{order}/ship"),
            json!({"carrier": "DHL", "tracking_number": "T"}),
        ),
        (format!("/v1/orders/{order}/cancel"), json!({"reason": "r"})),
        (format!("/v1/orders/{order}/payment"), json!({})),
        (format!("/v1/orders/{order}/payment/confirm"), json!({})),
        (
            format!("/v1/orders/{order}/refunds"),
            json!({"amount_cents": 100, "reason": "r"}),
        ),
    ]
}

async fn product_and_order(app: &TestApp) -> (Uuid, Uuid) {
    let product = app.create_product("VAL-1", 100, 10).await;
    let order = app
        .placed_order(&app.admin, json!([{"product_id": product, "quantity": 1}]))
        .await;
    (product, order)
}

#[tokio::test]
async fn bodies_that_are_not_a_json_object_are_400_everywhere() {
    let app = TestApp::spawn().await;
    let (product, order) = product_and_order(&app).await;
    let before = app.event_count().await;
    let deep_array = "[".repeat(100_000);
    let deep_object = format!("{}1{}", "{\"a\":".repeat(20_000), "}".repeat(20_000));
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b" ".to_vec(),
        b"{".to_vec(),
        b"}".to_vec(),
        b"not json".to_vec(),
        b"{\"a\":}".to_vec(),
        b"{'single': 'quotes'}".to_vec(),
        b"{} trailing".to_vec(),
        b"{}{}".to_vec(),
        b"null".to_vec(),
        b"true".to_vec(),
        b"42".to_vec(),
        b"\"a string\"".to_vec(),
        b"[]".to_vec(),
        b"[{}]".to_vec(),
        b"\xff\xfe\x00".to_vec(),
        b"{\"\xff\": 1}".to_vec(),
        deep_array.into_bytes(),
        deep_object.into_bytes(),
    ];
    for (path, _) in every_command(product, order) {
        for body in &bodies {
            let response = app.post_raw(&path, &app.admin, body.clone()).await;
            let label = format!(
                "{path} with {:?}",
                String::from_utf8_lossy(&body[..body.len().min(40)])
            );
            assert_eq!(response.status(), 400, "{label}");
            assert_problem(response, 400, "invalid_request").await;
        }
    }
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn an_array_of_the_fields_in_order_is_not_an_object() {
    // serde's derived struct deserializers also accept a sequence of the fields in order;
    // the API takes JSON objects only.
    let app = TestApp::spawn().await;
    let (product, order) = product_and_order(&app).await;
    let before = app.event_count().await;
    let arrays = [
        (
            "/v1/products".to_owned(),
            json!(["ARR-1", "Mug", 1299, "EUR", 10]),
        ),
        (
            "/v1/products".to_owned(),
            json!(["ARR-2", "Mug", 1299, "EUR"]),
        ),
        (format!("/v1/products/{product}/price"), json!([1499])),
        (format!("/v1/products/{product}/restock"), json!([5])),
        (format!("/v1/products/{product}/discontinue"), json!([])),
        (
            "/v1/orders".to_owned(),
            json!([[{"product_id": product, "quantity": 1}]]),
        ),
        (
            format!("/v1/orders/{order}/pay"),
            json!([100, "EUR", "psp-1", "bank transfer"]),
        ),
        (format!("/v1/orders/{order}/payment"), json!([])),
        (format!("/v1/orders/{order}/payment/confirm"), json!([])),
        (
            format!("/v1/orders/{order}/refunds"),
            json!([100, "broken"]),
        ),
        (format!("/v1/orders/{order}/ship"), json!(["DHL", "T"])),
        (format!("/v1/orders/{order}/cancel"), json!(["reason"])),
        (format!("/v1/orders/{order}/cancel"), json!([])),
    ];
    for (path, body) in arrays {
        let response = app.post(&path, &app.admin, &body).await;
        assert_eq!(response.status(), 400, "{path} with {body}");
        assert_problem(response, 400, "invalid_request").await;
    }
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn wrong_types_unknown_and_missing_fields_are_400() {
    let app = TestApp::spawn().await;
    let (product, order) = product_and_order(&app).await;
    let before = app.event_count().await;
    let mut cases: Vec<(String, Value)> = Vec::new();
    for (path, valid) in every_command(product, order) {
        let fields: Vec<(String, Value)> = valid
            .as_object()
            .expect("object")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // An unknown field next to valid ones.
        let mut extra = valid.clone();
        extra["unexpected"] = json!(1);
        cases.push((path.clone(), extra));
        for (field, value) in fields {
            let with = |replacement: Value| {
                let mut body = valid.clone();
                body[field.as_str()] = replacement;
                body
            };
            // A missing field (a cancellation's `reason` has a default; an offline
            // payment's and a refund's do not).
            if !(field == "reason" && path.ends_with("/cancel")) {
                let mut missing = valid.clone();
                missing.as_object_mut().expect("object").remove(&field);
                cases.push((path.clone(), missing));
            }
            // The field as a JSON type it is not.
            let wrong_types = match value {
                Value::Number(n) => vec![
                    json!(n.to_string()),
                    json!(n.as_f64().unwrap_or(1.0) + 0.5),
                    json!(true),
                    json!([n]),
                    json!({"value": n}),
                    Value::Null,
                ],
                Value::String(s) => vec![
                    json!(42),
                    json!(true),
                    json!([s]),
                    json!({"s": s}),
                    Value::Null,
                ],
                Value::Array(_) => vec![json!("lines"), json!(1), json!({}), Value::Null],
                _ => vec![],
            };
            for wrong in wrong_types {
                cases.push((path.clone(), with(wrong)));
            }
        }
    }
    // Inside an order line.
    for line in [
        json!({"product_id": product, "quantity": 1, "note": "x"}),
        json!({"product_id": product, "quantity": "1"}),
        json!({"product_id": product, "quantity": 1.0}),
        json!({"product_id": 42, "quantity": 1}),
        json!({"product_id": product.to_string().to_uppercase() + "0", "quantity": 1}),
        json!({"product_id": "", "quantity": 1}),
        json!({"product_id": product}),
        json!("a line"),
        Value::Null,
    ] {
        cases.push(("/v1/orders".into(), json!({"lines": [line]})));
    }
    // Duplicate keys.
    let duplicate = r#"{"quantity": 1, "quantity": 2}"#;
    let response = app
        .post_raw(
            &format!("/v1/products/{product}/restock"),
            &app.admin,
            duplicate,
        )
        .await;
    assert_problem(response, 400, "invalid_request").await;

    for (path, body) in &cases {
        let response = app.post(path, &app.admin, body).await;
        assert_eq!(response.status(), 400, "{path} with {body}");
        assert_problem(response, 400, "invalid_request").await;
    }
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn numbers_out_of_range_are_400_never_5xx() {
    let app = TestApp::spawn().await;
    let (product, order) = product_and_order(&app).await;
    let before = app.event_count().await;
    let huge = [
        "99999999999999999999999999",
        "9223372036854775808",
        "18446744073709551616",
        "-9223372036854775809",
        "1e400",
        "-1e400",
        "1e3",
        "-1",
        "-9223372036854775808",
        "0.0000001",
    ];
    let templates = [
        (
            "/v1/products".to_owned(),
            r#"{"sku": "N-1", "name": "n", "price_cents": N, "currency": "EUR"}"#,
        ),
        (
            "/v1/products".to_owned(),
            r#"{"sku": "N-1", "name": "n", "price_cents": 1, "currency": "EUR", "initial_stock": N}"#,
        ),
        (
            format!("/v1/products/{product}/price"),
            r#"{"price_cents": N}"#,
        ),
        (
            format!("/v1/products/{product}/restock"),
            r#"{"quantity": N}"#,
        ),
        (
            "/v1/orders".to_owned(),
            r#"{"lines": [{"product_id": "P", "quantity": N}]}"#,
        ),
    ];
    for (path, template) in &templates {
        for number in huge {
            let body = template
                .replace('N', number)
                .replace("\"P\"", &format!("\"{product}\""));
            let response = app.post_raw(path, &app.admin, body.clone()).await;
            assert_eq!(response.status(), 400, "{path} with {body}");
            assert_problem(response, 400, "invalid_request").await;
        }
    }
    // amount_cents has no declared range, but it must be a JSON integer that fits i64.
    for number in &huge[..6] {
        let body = format!(
            r#"{{"amount_cents": {number}, "currency": "EUR", "payment_ref": "p", "reason": "r"}}"#
        );
        let response = app
            .post_raw(&format!("/v1/orders/{order}/pay"), &app.admin, body.clone())
            .await;
        assert_eq!(response.status(), 400, "{body}");
        assert_problem(response, 400, "invalid_request").await;
    }
    // A zero or negative payment is refused, never a 5xx. API.md gives amount_cents no
    // range, so today it is 422 amount_mismatch; a 400 would be as right.
    for amount in [0, -1, -100, i64::MIN] {
        let body =
            json!({"amount_cents": amount, "currency": "EUR", "payment_ref": "p", "reason": "r"});
        let response = app
            .post(&format!("/v1/orders/{order}/pay"), &app.admin, &body)
            .await;
        let status = response.status().as_u16();
        let code = if status == 400 {
            "invalid_request"
        } else {
            "amount_mismatch"
        };
        assert!(status == 400 || status == 422, "{body}: {status}");
        assert_problem(response, status, code).await;
    }
    // A refund's amount alike: an integer that fits i64, and a zero or negative one is
    // refused (documented minimum 1, so 400; 422 refund_exceeds_payment would be as right).
    let refunds = format!("/v1/orders/{order}/refunds");
    for number in &huge[..6] {
        let body = format!(r#"{{"amount_cents": {number}, "reason": "r"}}"#);
        let response = app.post_raw(&refunds, &app.admin, body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
        assert_problem(response, 400, "invalid_request").await;
    }
    for amount in [0, -1, i64::MIN] {
        let body = json!({"amount_cents": amount, "reason": "r"});
        let response = app.post(&refunds, &app.admin, &body).await;
        let status = response.status().as_u16();
        let code = if status == 400 {
            "invalid_request"
        } else {
            "refund_exceeds_payment"
        };
        assert!(status == 400 || status == 422, "{body}: {status}");
        assert_problem(response, status, code).await;
    }
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn bad_uuids_in_the_path_are_400() {
    let app = TestApp::spawn().await;
    let (product, order) = product_and_order(&app).await;
    let before = app.event_count().await;
    let bad_ids = [
        "not-a-uuid".to_owned(),
        "123".to_owned(),
        format!("{product}0"),
        product.to_string()[..35].to_owned(),
        "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz".to_owned(),
        "%00".to_owned(),
        "%F0%9F%98%80".to_owned(),
    ];
    for (path, body) in every_command(product, order) {
        if !path.contains(&product.to_string()) && !path.contains(&order.to_string()) {
            continue;
        }
        for bad in &bad_ids {
            let path = path
                .replace(&product.to_string(), bad)
                .replace(&order.to_string(), bad);
            let response = app.post(&path, &app.admin, &body).await;
            assert_eq!(response.status(), 400, "{path}");
            let problem = assert_problem(response, 400, "invalid_request").await;
            assert!(!problem["detail"].as_str().unwrap_or_default().is_empty());
        }
    }
    // The path is checked even when the body is fine and the token is an admin's.
    let response = app
        .post(
            "/v1/products/not-a-uuid/restock",
            &app.admin,
            &json!({"quantity": 5}),
        )
        .await;
    assert_problem(response, 400, "invalid_request").await;
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn a_body_over_256_kib_is_400_and_one_under_it_is_read() {
    let app = TestApp::spawn().await;
    let padded = |sku: &str, padding: usize| {
        format!(
            r#"{{"sku": "{sku}", "name": "Padded",{} "price_cents": 100, "currency": "EUR"}}"#,
            " ".repeat(padding)
        )
    };
    let response = app
        .post_raw("/v1/products", &app.admin, padded("BIG-1", 256 * 1024))
        .await;
    assert_problem(response, 400, "invalid_request").await;
    let response = app
        .post_raw("/v1/products", &app.admin, padded("BIG-2", 2 * 1024 * 1024))
        .await;
    assert_problem(response, 400, "invalid_request").await;
    assert_eq!(app.event_count().await, 0);

    let response = app
        .post_raw("/v1/products", &app.admin, padded("BIG-3", 200 * 1024))
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(app.event_count().await, 1);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problem_json() {
    let app = TestApp::spawn().await;
    let product = app.create_product("R-1", 100, 1).await;
    let authorization = format!("Bearer {}", app.admin);
    for (method, path) in [
        (Method::GET, "/".to_owned()),
        (Method::GET, "/nope".to_owned()),
        (Method::POST, "/v1/nope".to_owned()),
        (Method::POST, "/v2/products".to_owned()),
        (Method::POST, format!("/v1/products/{product}")),
        (Method::POST, format!("/v1/products/{product}/explode")),
        (Method::POST, "/v1/products/".to_owned()),
        (Method::POST, "/v1/products//restock".to_owned()),
        (Method::POST, "/v1/orders/x/y/z".to_owned()),
    ] {
        let response = app
            .send(
                method.clone(),
                &path,
                Some(&authorization),
                Some(b"{}".to_vec()),
                &[],
            )
            .await;
        assert_eq!(response.status(), 404, "{method} {path}");
        assert_problem(response, 404, "not_found").await;
    }
    // A known path with a method it does not take: no such route either.
    for (method, path) in [
        (Method::GET, "/v1/products".to_owned()),
        (Method::GET, format!("/v1/products/{product}/restock")),
        (Method::PUT, format!("/v1/products/{product}/restock")),
        (Method::DELETE, "/v1/orders".to_owned()),
        (Method::POST, "/healthz".to_owned()),
    ] {
        let response = app
            .send(method.clone(), &path, Some(&authorization), None, &[])
            .await;
        assert_eq!(response.status(), 404, "{method} {path}");
        assert_problem(response, 404, "not_found").await;
    }
    assert_eq!(app.event_count().await, 1);
}

/// `value` with each string leaf in turn replaced by `poison(leaf)`: one body per leaf,
/// with the leaf's JSON path.
fn with_each_string_poisoned(
    value: &Value,
    poison: &dyn Fn(&str) -> String,
) -> Vec<(String, Value)> {
    let mut bodies = Vec::new();
    match value {
        Value::String(leaf) => bodies.push((String::new(), Value::String(poison(leaf)))),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                for (path, poisoned) in with_each_string_poisoned(item, poison) {
                    let mut copy = items.clone();
                    copy[index] = poisoned;
                    bodies.push((format!("[{index}]{path}"), Value::Array(copy)));
                }
            }
        }
        Value::Object(fields) => {
            for (key, field) in fields {
                for (path, poisoned) in with_each_string_poisoned(field, poison) {
                    let mut copy = fields.clone();
                    copy.insert(key.clone(), poisoned);
                    bodies.push((format!(".{key}{path}"), Value::Object(copy)));
                }
            }
        }
        _ => {}
    }
    bodies
}

#[tokio::test]
async fn control_characters_in_any_string_field_are_400_and_append_nothing() {
    let app = TestApp::spawn().await;
    let (product, order) = product_and_order(&app).await;
    let before = app.event_count().await;
    let mut commands = every_command(product, order);
    // An admin may name the customer: that string too.
    commands.push((
        "/v1/orders".into(),
        json!({"customer_id": "carol", "lines": [{"product_id": product, "quantity": 1}]}),
    ));
    let poisons: [&dyn Fn(&str) -> String; 5] = [
        &|s| format!("{s}\u{0}"),
        &|s| format!("\u{0}{s}"),
        &|s| format!("{s}\u{1b}[31m"),
        &|s| format!("{s}\n"),
        &|s| format!("{s}\u{85}"),
    ];
    let mut tried = 0;
    for (path, body) in &commands {
        for poison in poisons {
            for (field, poisoned) in with_each_string_poisoned(body, poison) {
                let response = app.post(path, &app.admin, &poisoned).await;
                let status = response.status().as_u16();
                assert_eq!(status, 400, "{path} {field}: {poisoned}");
                assert_problem(response, 400, "invalid_request").await;
                tried += 1;
            }
        }
    }
    assert!(tried >= 50, "only {tried} bodies tried");
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn lone_surrogates_huge_arrays_and_huge_headers_are_4xx() {
    let app = TestApp::spawn().await;
    let (product, order) = product_and_order(&app).await;
    let before = app.event_count().await;
    // Lone surrogates are not Unicode: not valid JSON strings.
    for body in [
        r#"{"reason": "\ud800"}"#,
        r#"{"reason": "a\udfffb"}"#,
        r#"{"reason": "\ud800\u0041"}"#,
    ] {
        let response = app
            .post_raw(&format!("/v1/orders/{order}/cancel"), &app.admin, body)
            .await;
        assert_problem(response, 400, "invalid_request").await;
    }
    // 10,000 order lines (the bound is 100).
    let lines: Vec<Value> = (0..10_000)
        .map(|_| json!({"product_id": product, "quantity": 1}))
        .collect();
    let response = app
        .post("/v1/orders", &app.admin, &json!({"lines": lines}))
        .await;
    assert_problem(response, 400, "invalid_request").await;
    // 100 lines of made-up products: refused without a 5xx.
    let lines: Vec<Value> = (0..100)
        .map(|_| json!({"product_id": Uuid::now_v7(), "quantity": 1}))
        .collect();
    let response = app
        .post("/v1/orders", &app.admin, &json!({"lines": lines}))
        .await;
    assert!(response.status().is_client_error(), "{}", response.status());
    // A header far beyond any sane size.
    let huge = vec![b'a'; 200 * 1024];
    let response = app
        .send(
            Method::POST,
            &format!("/v1/products/{product}/restock"),
            Some(&format!("Bearer {}", app.admin)),
            Some(br#"{"quantity": 1}"#.to_vec()),
            &[("X-Padding", &huge)],
        )
        .await;
    assert!(response.status().is_client_error(), "{}", response.status());
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn a_body_that_stops_halfway_appends_nothing_and_the_service_goes_on() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let (product, _) = product_and_order(&app).await;
    let before = app.event_count().await;
    let host = app.address.trim_start_matches("http://").to_owned();
    for _ in 0..20 {
        let mut stream = tokio::net::TcpStream::connect(&host)
            .await
            .expect("connect");
        let head = format!(
            "POST /v1/products/{product}/restock HTTP/1.1\r\nHost: {host}\r\n\
             Authorization: Bearer {}\r\nContent-Type: application/json\r\n\
             Content-Length: 100\r\n\r\n{{\"quantity\": 5",
            app.admin
        );
        stream.write_all(head.as_bytes()).await.expect("write");
        // The client goes away mid-body: half-close, then drop.
        stream.shutdown().await.expect("shutdown");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            stream.read_to_end(&mut answer),
        )
        .await;
        let text = String::from_utf8_lossy(&answer);
        assert!(!text.starts_with("HTTP/1.1 5"), "{text}");
    }
    assert_eq!(app.event_count().await, before);
    let response = app
        .post(
            &format!("/v1/products/{product}/restock"),
            &app.admin,
            &json!({"quantity": 1}),
        )
        .await;
    assert_eq!(response.status(), 200);
}
