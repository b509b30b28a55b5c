//! `GET /v1/products` and `GET /v1/products/{id}`.

use std::collections::HashSet;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{assert_problem, walk, TestApp};

#[tokio::test]
async fn a_product_shows_every_field_with_its_etag() {
    let app = TestApp::spawn().await;
    let id = app.insert_product("MUG-1", 10, 3, 4).await;

    let response = app.get(&format!("/v1/products/{id}"), &app.viewer).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["etag"], "\"4\"");
    assert_eq!(
        headers["cache-control"],
        "private, max-age=0, must-revalidate"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"id": id, "sku": "MUG-1", "name": "Product MUG-1", "price_cents": 1299,
               "currency": "EUR", "on_hand": 10, "reserved": 3, "available": 7,
               "discontinued": false, "version": 4})
    );

    let list = app.get_json("/v1/products", &app.viewer).await;
    assert_eq!(list["items"], json!([body]));
    assert!(list["next_cursor"].is_null());
}

#[tokio::test]
async fn a_missing_product_is_404_and_a_bad_id_is_400() {
    let app = TestApp::spawn().await;
    let missing = app
        .get(&format!("/v1/products/{}", Uuid::new_v4()), &app.admin)
        .await;
    assert_problem(missing, 404, "not_found").await;
    for bad in ["not-a-uuid", "1234", "00000000-0000-0000-0000-00000000000g"] {
        let response = app.get(&format!("/v1/products/{bad}"), &app.admin).await;
        assert_problem(response, 400, "invalid_request").await;
    }
}

#[tokio::test]
async fn pagination_walks_every_product_once_in_sku_order() {
    let app = TestApp::spawn().await;
    let mut expected = Vec::new();
    for n in 0..23 {
        // Inserted out of order: the list sorts by SKU.
        let sku = format!("SKU-{:02}", (n * 7) % 23);
        expected.push((sku.clone(), app.insert_product(&sku, 5, 0, 1).await));
    }
    expected.sort();

    let (items, pages) = walk(&app, "/v1/products", &app.admin, 5).await;
    assert_eq!(pages, 5);
    let seen: Vec<(String, Uuid)> = items
        .iter()
        .map(|p| {
            (
                p["sku"].as_str().unwrap().to_owned(),
                p["id"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen, expected);

    // A limit that divides the list exactly: the last full page says there is no more.
    let (items, pages) = walk(&app, "/v1/products", &app.admin, 23).await;
    assert_eq!((items.len(), pages), (23, 1));
    let default = app.get_json("/v1/products", &app.admin).await;
    assert_eq!(default["items"].as_array().unwrap().len(), 23);
}

#[tokio::test]
async fn pagination_is_stable_under_inserts() {
    let app = TestApp::spawn().await;
    let mut originals = HashSet::new();
    for n in (0..20).step_by(2) {
        originals.insert(app.insert_product(&format!("P-{n:02}"), 1, 0, 1).await);
    }
    let first = app.get_json("/v1/products?limit=4", &app.admin).await;
    let mut seen: Vec<Uuid> = ids(&first);
    let mut cursor = first["next_cursor"].as_str().unwrap().to_owned();

    // While the client walks: one product sorts before its position, one after.
    let before = app.insert_product("P-01", 1, 0, 1).await;
    let after = app.insert_product("P-99", 1, 0, 1).await;
    loop {
        let page = app
            .get_json(&format!("/v1/products?limit=4&cursor={cursor}"), &app.admin)
            .await;
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    let unique: HashSet<Uuid> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "an item was served twice");
    assert!(originals.is_subset(&unique), "an item was skipped");
    assert!(unique.contains(&after));
    assert!(!unique.contains(&before));
}

fn ids(page: &Value) -> Vec<Uuid> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test]
async fn bad_list_parameters_are_400() {
    let app = TestApp::spawn().await;
    let orders_cursor = {
        for minute in 0..3 {
            let placed = crate::support::at(&format!("2024-05-01T10:0{minute}:00Z"));
            app.insert_order("alice", "placed", placed, 1).await;
        }
        let page = app.get_json("/v1/orders?limit=1", &app.admin).await;
        page["next_cursor"].as_str().unwrap().to_owned()
    };
    let queries = [
        "limit=0".to_owned(),
        "limit=501".into(),
        "limit=-1".into(),
        "limit=abc".into(),
        "limit=1.5".into(),
        "limit=1&limit=2".into(),
        "cursor=".into(),
        "cursor=not*base64".into(),
        "cursor=bm9wZQ".into(),
        format!("cursor={orders_cursor}"),
        "sort=sku".into(),
    ];
    for query in queries {
        let response = app.get(&format!("/v1/products?{query}"), &app.admin).await;
        assert_problem(response, 400, "invalid_request").await;
    }
    // Entities take only min_version.
    let id = app.insert_product("A-1", 1, 0, 1).await;
    for query in [
        "min_version=0",
        "min_version=-3",
        "min_version=x",
        "min_version=",
        "foo=1",
    ] {
        let response = app
            .get(&format!("/v1/products/{id}?{query}"), &app.admin)
            .await;
        assert_problem(response, 400, "invalid_request").await;
    }
    // The limits themselves are fine.
    for query in ["limit=1", "limit=500"] {
        app.get_json(&format!("/v1/products?{query}"), &app.admin)
            .await;
    }
}

#[tokio::test]
async fn reads_recover_when_their_shared_connections_are_closed() {
    let app = TestApp::spawn().await;
    let id = app.insert_product("MUG-9", 5, 0, 2).await;
    let path = format!("/v1/products/{id}");
    // Concurrent reads, so every shared connection of the workers is in use.
    let first = futures::future::join_all((0..16).map(|_| app.get(&path, &app.viewer))).await;
    assert!(first.iter().all(|r| r.status() == 200));

    app.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
        &[],
    )
    .await;

    // A read on a connection that was just closed may answer 503 (never 500); the
    // next ones get new connections.
    let mut recovered = 0;
    for _ in 0..40 {
        let status = app.get(&path, &app.viewer).await.status();
        assert!(status == 200 || status == 503, "{status}");
        if status == 200 {
            recovered += 1;
            if recovered == 8 {
                break;
            }
        } else {
            recovered = 0;
        }
    }
    assert_eq!(
        recovered, 8,
        "reads succeed again after the connections were closed"
    );
}
