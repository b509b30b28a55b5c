//! `GET /v1/dashboard/sales` and `GET /v1/dashboard/top-products`.

use chrono::{DurationRound, TimeDelta, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{assert_problem, at, TestApp};

#[tokio::test]
async fn sales_buckets_are_ascending_and_zero_filled() {
    let app = TestApp::spawn().await;
    app.insert_sales("hour", at("2024-05-01T10:00:00Z"), [3, 2, 5000, 7])
        .await;
    app.insert_sales("hour", at("2024-05-01T12:00:00Z"), [1, 1, 1299, 1])
        .await;
    app.insert_sales("hour", at("2024-05-01T13:00:00Z"), [9, 9, 9, 9])
        .await;
    app.insert_sales("day", at("2024-05-01T00:00:00Z"), [4, 3, 6299, 8])
        .await;
    app.insert_sales("day", at("2024-05-03T00:00:00Z"), [1, 0, -100, 0])
        .await;

    let hours = app
        .get_json(
            "/v1/dashboard/sales?bucket=hour&from=2024-05-01T10:00:00Z&to=2024-05-01T13:00:00Z",
            &app.viewer,
        )
        .await;
    assert_eq!(
        hours,
        json!({"buckets": [
            {"start": "2024-05-01T10:00:00Z", "orders_placed": 3, "orders_paid": 2, "revenue_cents": 5000, "units_sold": 7},
            {"start": "2024-05-01T11:00:00Z", "orders_placed": 0, "orders_paid": 0, "revenue_cents": 0, "units_sold": 0},
            {"start": "2024-05-01T12:00:00Z", "orders_placed": 1, "orders_paid": 1, "revenue_cents": 1299, "units_sold": 1},
        ]})
    );
    // An offset (its + sent as %2B) and an unaligned from: the bucket holding it comes first.
    let shifted = app
        .get_json(
            "/v1/dashboard/sales?from=2024-05-01T12:30:00%2B02:00&to=2024-05-01T14:00:00%2B02:00",
            &app.admin,
        )
        .await;
    let starts: Vec<&str> = shifted["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["start"].as_str().unwrap())
        .collect();
    assert_eq!(starts, ["2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z"]);

    let days = app
        .get_json(
            "/v1/dashboard/sales?bucket=day&from=2024-04-30T00:00:00Z&to=2024-05-04T00:00:00Z",
            &app.viewer,
        )
        .await;
    let days = days["buckets"].as_array().unwrap();
    assert_eq!(days.len(), 4);
    assert_eq!(days[0]["start"], "2024-04-30T00:00:00Z");
    assert_eq!(days[1]["revenue_cents"], 6299);
    assert_eq!(days[2]["orders_placed"], 0);
    assert_eq!(days[3]["revenue_cents"], -100);

    let empty = app
        .get_json(
            "/v1/dashboard/sales?from=2024-05-01T10:00:00Z&to=2024-05-01T10:00:00Z",
            &app.viewer,
        )
        .await;
    assert_eq!(empty, json!({"buckets": []}));
}

#[tokio::test]
async fn sales_default_to_the_last_day_by_hour_and_month_by_day() {
    let app = TestApp::spawn().await;
    let this_hour = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap();
    app.insert_sales("hour", this_hour - TimeDelta::hours(2), [1, 1, 100, 1])
        .await;

    let hours = app.get_json("/v1/dashboard/sales", &app.viewer).await;
    let buckets = hours["buckets"].as_array().unwrap();
    assert!(
        (24..=25).contains(&buckets.len()),
        "{} buckets",
        buckets.len()
    );
    assert_contiguous(buckets, TimeDelta::hours(1));
    let last = at(buckets.last().unwrap()["start"].as_str().unwrap());
    assert!(last >= this_hour && last <= Utc::now());
    let sold: i64 = buckets
        .iter()
        .map(|b| b["revenue_cents"].as_i64().unwrap())
        .sum();
    assert_eq!(sold, 100);

    let days = app
        .get_json("/v1/dashboard/sales?bucket=day", &app.viewer)
        .await;
    let buckets = days["buckets"].as_array().unwrap();
    assert!(
        (30..=31).contains(&buckets.len()),
        "{} buckets",
        buckets.len()
    );
    assert_contiguous(buckets, TimeDelta::days(1));
}

fn assert_contiguous(buckets: &[Value], width: TimeDelta) {
    for pair in buckets.windows(2) {
        let (a, b) = (
            pair[0]["start"].as_str().unwrap(),
            pair[1]["start"].as_str().unwrap(),
        );
        assert_eq!(at(b) - at(a), width, "{a} then {b}");
    }
}

#[tokio::test]
async fn bad_sales_parameters_are_400() {
    let app = TestApp::spawn().await;
    let queries = [
        "bucket=week",
        "bucket=",
        "from=yesterday",
        "to=2024-05-01",
        "from=2024-05-01T10:00:00",
        "from=2024-05-02T00:00:00Z&to=2024-05-01T00:00:00Z",
        "from=2000-01-01T00:00:00Z&to=2024-01-01T00:00:00Z",
        "bucket=day&from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z",
        "from=2024-05-01T00:00:00Z&limit=3",
        "from=2024-05-01T00:00:00Z&from=2024-05-02T00:00:00Z",
    ];
    for query in queries {
        let response = app
            .get(&format!("/v1/dashboard/sales?{query}"), &app.admin)
            .await;
        let body = assert_problem(response, 400, "invalid_request").await;
        assert!(!body["detail"].as_str().unwrap().is_empty(), "{query}");
    }
    // Far but legal ranges are fine.
    app.get_json(
        "/v1/dashboard/sales?bucket=day&from=0000-01-01T00:00:00Z&to=0001-01-01T00:00:00Z",
        &app.admin,
    )
    .await;
}

#[tokio::test]
async fn top_products_rank_by_revenue_then_units_then_id() {
    let app = TestApp::spawn().await;
    let mut tied = [Uuid::new_v4(), Uuid::new_v4()];
    tied.sort();
    let best = Uuid::new_v4();
    let more_units = Uuid::new_v4();
    let unsold = Uuid::new_v4();
    app.insert_top_product(tied[1], "T-2", 2, 1000).await;
    app.insert_top_product(unsold, "U-0", 0, 0).await;
    app.insert_top_product(best, "B-1", 1, 9000).await;
    app.insert_top_product(tied[0], "T-1", 2, 1000).await;
    app.insert_top_product(more_units, "M-1", 5, 1000).await;

    let top = app
        .get_json("/v1/dashboard/top-products", &app.viewer)
        .await;
    let items = top["items"].as_array().unwrap();
    let order: Vec<Uuid> = items
        .iter()
        .map(|p| p["product_id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(order, [best, more_units, tied[0], tied[1]]);
    assert_eq!(
        items[0],
        json!({"product_id": best, "sku": "B-1", "name": "Product B-1", "units_sold": 1, "revenue_cents": 9000})
    );

    let two = app
        .get_json("/v1/dashboard/top-products?limit=2", &app.admin)
        .await;
    assert_eq!(two["items"].as_array().unwrap().len(), 2);
    for query in ["limit=0", "limit=101", "limit=ten", "cursor=x"] {
        let response = app
            .get(&format!("/v1/dashboard/top-products?{query}"), &app.admin)
            .await;
        assert_problem(response, 400, "invalid_request").await;
    }
    app.get_json("/v1/dashboard/top-products?limit=100", &app.admin)
        .await;
}
