//! `GET /v1/orders` and `GET /v1/orders/{id}`: fields, customer isolation, filters,
//! newest-first pagination.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use platform::Role;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{assert_problem, at, keys, walk, TestApp};

const SUMMARY_KEYS: [&str; 8] = [
    "currency",
    "customer_id",
    "id",
    "placed_at",
    "status",
    "total_cents",
    "updated_at",
    "version",
];

#[tokio::test]
async fn an_order_shows_its_summary_and_detail() {
    let app = TestApp::spawn().await;
    let placed = at("2024-05-01T10:00:00.123456Z");
    let id = app.insert_order("alice", "placed", placed, 2).await;
    app.execute(
        "UPDATE read_model.orders_v1 SET status = 'paid', payment_ref = 'psp-1', \
         updated_at = '2024-05-01T11:00:00Z', version = 3 WHERE id = $1",
        &[&id],
    )
    .await;

    let response = app.get(&format!("/v1/orders/{id}"), &app.viewer).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"3\"");
    let detail: Value = response.json().await.unwrap();
    let mut expected_keys: Vec<String> = SUMMARY_KEYS.iter().map(|k| k.to_string()).collect();
    expected_keys.extend(
        [
            "carrier",
            "lines",
            "payment_ref",
            "payments",
            "refunded_cents",
            "refunds",
            "shipping_address",
            "tracking_number",
        ]
        .map(String::from),
    );
    expected_keys.sort();
    assert_eq!(keys(&detail), expected_keys);
    assert_eq!(detail["id"], json!(id));
    assert_eq!(detail["customer_id"], "alice");
    assert_eq!(detail["status"], "paid");
    assert_eq!(detail["total_cents"], 3098);
    assert_eq!(detail["currency"], "EUR");
    assert_eq!(detail["placed_at"], "2024-05-01T10:00:00.123456Z");
    assert_eq!(detail["updated_at"], "2024-05-01T11:00:00Z");
    assert_eq!(detail["version"], 3);
    assert_eq!(detail["payment_ref"], "psp-1");
    assert!(detail["carrier"].is_null());
    assert!(detail["tracking_number"].is_null());
    assert!(detail["refunded_cents"].is_null());
    assert_eq!(detail["payments"], json!([]));
    assert_eq!(detail["refunds"], json!([]));
    let lines = detail["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        keys(&lines[0]),
        ["product_id", "quantity", "unit_price_cents"]
    );
    assert_eq!(
        (
            lines[0]["quantity"].clone(),
            lines[0]["unit_price_cents"].clone()
        ),
        (json!(2), json!(1299))
    );

    let list = app.get_json("/v1/orders", &app.viewer).await;
    let summary = &list["items"][0];
    assert_eq!(keys(summary), SUMMARY_KEYS);
    for key in SUMMARY_KEYS {
        assert_eq!(summary[key], detail[key], "{key}");
    }
}

#[tokio::test]
async fn an_order_lists_its_payments_and_refunds_oldest_first() {
    let app = TestApp::spawn().await;
    let id = app
        .insert_order("alice", "placed", at("2024-05-01T10:00:00Z"), 1)
        .await;
    // As the projector writes them: a declined card, a capture of the wrong amount (needs
    // review), the payment that paid the order; the wrong one refunded, a partial refund
    // the provider refused, one it has not answered yet.
    let payments = json!([
        {"payment_id": "pi_1", "status": "failed", "amount_cents": 3098},
        {"payment_id": "pi_2", "status": "needs_review", "amount_cents": 3000},
        {"payment_id": "pi_3", "status": "succeeded", "amount_cents": 3098}
    ]);
    let refunds = json!([
        {"refund_id": "re_1", "status": "succeeded", "amount_cents": 3000},
        {"refund_id": "re_2", "status": "failed", "amount_cents": 100},
        {"refund_id": "re_3", "status": "requested", "amount_cents": 200}
    ]);
    app.execute(
        "UPDATE read_model.orders_v1 SET status = 'paid', payment_ref = 'pi_3', \
         refunded_cents = 3000, version = 9, payments = $2, refunds = $3 WHERE id = $1",
        &[&id, &payments, &refunds],
    )
    .await;

    let alice = app.token("alice", &[Role::Customer]);
    for token in [&app.admin, &app.viewer, &alice] {
        let detail = app
            .get_json(&format!("/v1/orders/{id}?min_version=9"), token)
            .await;
        assert_eq!(detail["payments"], payments, "{detail}");
        assert_eq!(detail["refunds"], refunds, "{detail}");
        assert_eq!(detail["payment_ref"], "pi_3");
        assert_eq!(detail["refunded_cents"], 3000);
        assert_eq!(detail["status"], "paid");
    }
    // Lists stay summaries.
    let list = app.get_json("/v1/orders", &app.viewer).await;
    assert_eq!(keys(&list["items"][0]), SUMMARY_KEYS);
}

#[tokio::test]
async fn customers_see_only_their_own_orders() {
    let app = TestApp::spawn().await;
    let start = at("2024-05-01T10:00:00Z");
    let mut alices = Vec::new();
    for n in 0..3 {
        alices.push(
            app.insert_order("alice", "placed", start + TimeDelta::minutes(n), 1)
                .await,
        );
    }
    let bobs = app.insert_order("bob", "placed", start, 1).await;
    app.insert_order("bob", "paid", start, 1).await;
    let alice = app.token("alice", &[Role::Customer]);

    let own = app.get_json("/v1/orders", &alice).await;
    let own_ids: Vec<Uuid> = ids(&own);
    assert_eq!(own_ids, alices.iter().rev().copied().collect::<Vec<_>>());
    let filtered_own = app.get_json("/v1/orders?customer_id=alice", &alice).await;
    assert_eq!(ids(&filtered_own), own_ids);
    let others = app.get_json("/v1/orders?customer_id=bob", &alice).await;
    assert_eq!(others, json!({"items": [], "next_cursor": null}));

    let response = app.get(&format!("/v1/orders/{bobs}"), &alice).await;
    assert_problem(response, 404, "not_found").await;
    let mine = app
        .get_json(&format!("/v1/orders/{}", alices[0]), &alice)
        .await;
    assert_eq!(mine["customer_id"], "alice");

    // Admins and viewers see everyone's, and may filter by customer.
    for token in [&app.admin, &app.viewer] {
        assert_eq!(ids(&app.get_json("/v1/orders", token).await).len(), 5);
        let bob = app.get_json("/v1/orders?customer_id=bob", token).await;
        assert_eq!(ids(&bob).len(), 2);
        app.get_json(&format!("/v1/orders/{bobs}"), token).await;
    }
    // A customer who is also a viewer sees everything.
    let both = app.token("alice", &[Role::Customer, Role::Viewer]);
    assert_eq!(ids(&app.get_json("/v1/orders", &both).await).len(), 5);
}

#[tokio::test]
async fn orders_filter_by_status_and_customer() {
    let app = TestApp::spawn().await;
    let start = at("2024-05-01T10:00:00Z");
    let statuses = ["placed", "paid", "shipped", "cancelled", "paid", "paid"];
    for (n, status) in statuses.iter().enumerate() {
        let customer = if n % 2 == 0 { "alice" } else { "bob" };
        app.insert_order(customer, status, start + TimeDelta::minutes(n as i64), 1)
            .await;
    }
    for status in ["placed", "paid", "shipped", "cancelled"] {
        let page = app
            .get_json(&format!("/v1/orders?status={status}"), &app.admin)
            .await;
        let items = page["items"].as_array().unwrap();
        assert_eq!(
            items.len(),
            statuses.iter().filter(|s| **s == status).count()
        );
        assert!(items.iter().all(|o| o["status"] == status));
    }
    let bob_paid = app
        .get_json("/v1/orders?status=paid&customer_id=bob", &app.admin)
        .await;
    assert_eq!(ids(&bob_paid).len(), 2);
    let alice = app.token("alice", &[Role::Customer]);
    let alice_paid = app.get_json("/v1/orders?status=paid", &alice).await;
    let items = alice_paid["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["customer_id"], "alice");

    for query in [
        "status=refunded",
        "status=PAID",
        "status=",
        "customer=bob",
        "limit=501",
    ] {
        let response = app.get(&format!("/v1/orders?{query}"), &app.admin).await;
        assert_problem(response, 400, "invalid_request").await;
    }
}

#[tokio::test]
async fn order_pages_are_newest_first_and_walk_every_order_once() {
    let app = TestApp::spawn().await;
    let start = at("2024-05-01T10:00:00Z");
    let mut expected: Vec<(DateTime<Utc>, Uuid, &str)> = Vec::new();
    for n in 0..13 {
        // Several orders share a placing time: the id breaks the tie.
        let placed = start + TimeDelta::seconds(n / 3);
        let customer = if n % 3 == 0 { "carol" } else { "dave" };
        expected.push((
            placed,
            app.insert_order(customer, "placed", placed, 1).await,
            customer,
        ));
    }
    expected.sort_by_key(|e| std::cmp::Reverse((e.0, e.1)));

    let (items, pages) = walk(&app, "/v1/orders", &app.viewer, 4).await;
    assert_eq!(pages, 4);
    let seen: Vec<Uuid> = items
        .iter()
        .map(|o| o["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(seen, expected.iter().map(|e| e.1).collect::<Vec<_>>());

    let dave = app.token("dave", &[Role::Customer]);
    let (items, _) = walk(&app, "/v1/orders", &dave, 2).await;
    let daves: Vec<Uuid> = expected
        .iter()
        .filter(|e| e.2 == "dave")
        .map(|e| e.1)
        .collect();
    assert_eq!(
        items
            .iter()
            .map(|o| o["id"].as_str().unwrap().parse().unwrap())
            .collect::<Vec<Uuid>>(),
        daves
    );
}

#[tokio::test]
async fn bad_order_cursors_and_ids_are_400() {
    let app = TestApp::spawn().await;
    app.insert_product("A-1", 1, 0, 1).await;
    app.insert_product("A-2", 1, 0, 1).await;
    let products = app.get_json("/v1/products?limit=1", &app.admin).await;
    let products_cursor = products["next_cursor"].as_str().unwrap();
    let nil = Uuid::nil();
    let forged = |json: String| URL_SAFE_NO_PAD.encode(format!("orders:{json}"));
    let cursors = [
        products_cursor.to_owned(),
        "garbage".into(),
        forged("[1,2]".into()),
        forged(format!("[{},\"{nil}\"]", i64::MAX)),
        // Within chrono's range but before PostgreSQL's.
        forged(format!("[{},\"{nil}\"]", -6_000_000_000_000_000_000_i64)),
        forged(format!("[1,\"{nil}\",3]")),
    ];
    for cursor in cursors {
        let response = app
            .get(&format!("/v1/orders?cursor={cursor}"), &app.admin)
            .await;
        assert_problem(response, 400, "invalid_request").await;
    }
    let response = app.get("/v1/orders/nope", &app.admin).await;
    assert_problem(response, 400, "invalid_request").await;
    let response = app
        .get(&format!("/v1/orders/{}", Uuid::new_v4()), &app.admin)
        .await;
    assert_problem(response, 404, "not_found").await;
}

fn ids(page: &Value) -> Vec<Uuid> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().parse().unwrap())
        .collect()
}
