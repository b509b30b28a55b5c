//! End to end over HTTP: commands on the command API, read back from the query API with
//! the `min_version` each command returned — through Kafka, and with no Kafka at all.

mod support;

use std::time::Duration;

use platform::Role;
use serde_json::{json, Value};
use support::Stack;

async fn shop_day(stack: &Stack) -> anyhow::Result<()> {
    let admin = stack.admin.clone();
    let alice = stack.token("alice", &[Role::Customer]);
    let bob = stack.token("bob", &[Role::Customer]);
    let viewer = stack.token("vera", &[Role::Viewer]);

    let (mug, _) = stack
        .ok("/v1/products", &admin, json!({"sku": "MUG-1", "name": "Mug", "price_cents": 1299, "currency": "EUR", "initial_stock": 10}))
        .await?;
    let (pot, _) = stack
        .ok("/v1/products", &admin, json!({"sku": "POT-1", "name": "Teapot", "price_cents": 3500, "currency": "EUR", "initial_stock": 3}))
        .await?;
    let (_, mug_v) = stack
        .ok(
            &format!("/v1/products/{mug}/restock"),
            &admin,
            json!({"quantity": 5}),
        )
        .await?;
    let product = stack
        .read_at(&format!("/v1/products/{mug}"), &viewer, mug_v)
        .await?;
    assert_eq!(
        (product["on_hand"].as_i64(), product["available"].as_i64()),
        (Some(15), Some(15))
    );

    // Alice: 2 mugs + 1 teapot, pays (her checkout, confirmed by an admin), gets it shipped.
    let (first, _) = stack
        .ok("/v1/orders", &alice, json!({"lines": [{"product_id": mug, "quantity": 2}, {"product_id": pot, "quantity": 1}]}))
        .await?;
    let (checkout, _) = stack.pay(first, &alice).await?;
    assert_eq!(checkout["amount_cents"], 2 * 1299 + 3500, "{checkout}");
    let first_payment = checkout["payment_id"].clone();
    assert!(first_payment.is_string(), "{checkout}");
    let (_, first_v) = stack
        .ok(
            &format!("/v1/orders/{first}/ship"),
            &admin,
            json!({"carrier": "DHL", "tracking_number": "JD1"}),
        )
        .await?;
    // Bob: 3 mugs, pays, cancels (refunded by the same command).
    let (second, _) = stack
        .ok(
            "/v1/orders",
            &bob,
            json!({"lines": [{"product_id": mug, "quantity": 3}]}),
        )
        .await?;
    stack.pay(second, &bob).await?;
    let (_, second_v) = stack
        .ok(
            &format!("/v1/orders/{second}/cancel"),
            &bob,
            json!({"reason": "changed my mind"}),
        )
        .await?;
    // Alice: 1 teapot, left placed.
    let (third, third_v) = stack
        .ok(
            "/v1/orders",
            &alice,
            json!({"lines": [{"product_id": pot, "quantity": 1}]}),
        )
        .await?;
    // Alice: 4 mugs, cancelled unpaid.
    let (fourth, _) = stack
        .ok(
            "/v1/orders",
            &alice,
            json!({"lines": [{"product_id": mug, "quantity": 4}]}),
        )
        .await?;
    let (_, fourth_v) = stack
        .ok(&format!("/v1/orders/{fourth}/cancel"), &alice, json!({}))
        .await?;
    // Refused: more teapots than left; nothing changes.
    let (status, body) = stack
        .command(
            "/v1/orders",
            &bob,
            json!({"lines": [{"product_id": pot, "quantity": 2}]}),
        )
        .await?;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (422, Some("insufficient_stock"))
    );

    let order = stack
        .read_at(&format!("/v1/orders/{first}"), &alice, first_v)
        .await?;
    assert_eq!(order["status"], "shipped");
    assert_eq!(order["total_cents"], 2 * 1299 + 3500);
    assert_eq!(
        (order["carrier"].as_str(), order["tracking_number"].as_str()),
        (Some("DHL"), Some("JD1"))
    );
    assert_eq!(order["payment_ref"], first_payment);
    assert_eq!(
        order["payments"],
        json!([{"payment_id": first_payment, "status": "succeeded", "amount_cents": 2 * 1299 + 3500}])
    );
    assert_eq!(order["lines"].as_array().map(Vec::len), Some(2));
    let order = stack
        .read_at(&format!("/v1/orders/{second}"), &bob, second_v)
        .await?;
    assert_eq!(
        (order["status"].as_str(), order["refunded_cents"].as_i64()),
        (Some("cancelled"), Some(3 * 1299))
    );
    let refunds = order["refunds"].as_array().cloned().unwrap_or_default();
    assert_eq!(refunds.len(), 1, "{order}");
    assert_eq!(
        (
            refunds[0]["status"].as_str(),
            refunds[0]["amount_cents"].as_i64()
        ),
        (Some("succeeded"), Some(3 * 1299)),
        "{order}"
    );
    let order = stack
        .read_at(&format!("/v1/orders/{third}"), &admin, third_v)
        .await?;
    assert_eq!(order["status"], "placed");
    stack
        .read_at(&format!("/v1/orders/{fourth}"), &alice, fourth_v)
        .await?;

    // Customer isolation: Bob cannot see Alice's order; lists show only one's own.
    let response = stack.get(&format!("/v1/orders/{first}"), &bob).await?;
    assert_eq!(response.status().as_u16(), 404);
    let mine: Value = stack.get("/v1/orders", &bob).await?.json().await?;
    let ids: Vec<&str> = mine["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["id"].as_str())
        .collect();
    assert_eq!(ids, vec![second.to_string().as_str()]);

    // Stock: mug 15 - 2 shipped = 13 on hand; alice's placed teapot holds 1 of 2 left.
    let mug_now: Value = stack
        .get(&format!("/v1/products/{mug}"), &viewer)
        .await?
        .json()
        .await?;
    assert_eq!(
        (mug_now["on_hand"].as_i64(), mug_now["reserved"].as_i64()),
        (Some(13), Some(0))
    );
    let pot_now: Value = stack
        .get(&format!("/v1/products/{pot}"), &viewer)
        .await?
        .json()
        .await?;
    assert_eq!(
        (
            pot_now["on_hand"].as_i64(),
            pot_now["reserved"].as_i64(),
            pot_now["available"].as_i64()
        ),
        (Some(2), Some(1), Some(1))
    );

    // Dashboards: 4 placed, 2 paid, revenue = first order only (second refunded). Each
    // projection commits on its own, so the dashboards may follow the orders a moment later.
    let expected_sales = (4, 2, 2 * 1299 + 3500, 3);
    stack
        .eventually(
            "the sales model to catch up",
            Duration::from_secs(30),
            || async { Ok(stack.sales_totals(&viewer).await? == expected_sales) },
        )
        .await?;
    stack
        .eventually(
            "the top products to catch up",
            Duration::from_secs(30),
            || async {
                let top: Value = stack
                    .get("/v1/dashboard/top-products?limit=10", &viewer)
                    .await?
                    .json()
                    .await?;
                Ok(top["items"].as_array().map(Vec::len) == Some(2))
            },
        )
        .await?;
    assert_eq!(stack.sales_totals(&viewer).await?, expected_sales);
    let top: Value = stack
        .get("/v1/dashboard/top-products?limit=10", &viewer)
        .await?
        .json()
        .await?;
    let items = top["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2, "{top}");
    assert_eq!(
        (items[0]["sku"].as_str(), items[0]["revenue_cents"].as_i64()),
        (Some("POT-1"), Some(3500))
    );
    assert_eq!(
        (items[1]["sku"].as_str(), items[1]["units_sold"].as_i64()),
        (Some("MUG-1"), Some(2))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shop_day_through_kafka() -> anyhow::Result<()> {
    let stack = Stack::start(true).await?;
    shop_day(&stack).await?;
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shop_day_without_kafka() -> anyhow::Result<()> {
    let stack = Stack::start(false).await?;
    shop_day(&stack).await?;
    stack.stop().await
}
