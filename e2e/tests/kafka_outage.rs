//! Kafka stopped while commands keep arriving: no command fails for it, and once the
//! broker is back the read models converge with nothing lost or counted twice.
//!
//! This stops and restarts the shared test broker (scripts/kafka.sh), so it is the only
//! test in its binary; cargo runs test binaries one after another.

mod support;

use std::time::Duration;

use platform::Role;
use serde_json::{json, Value};
use support::faults::{kafka_script, BrokerBack};
use support::Stack;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commands_keep_flowing_while_kafka_is_down() -> anyhow::Result<()> {
    let stack = Stack::start(true).await?;
    let admin = stack.admin.clone();
    let viewer = stack.token("vera", &[Role::Viewer]);
    let (product, version) = stack
        .ok("/v1/products", &admin, json!({"sku": "K-1", "name": "Kettle", "price_cents": 2000, "currency": "EUR", "initial_stock": 0}))
        .await?;
    stack
        .read_at(&format!("/v1/products/{product}"), &viewer, version)
        .await?;

    let guard = BrokerBack;
    kafka_script("stop")?;
    let mut last = version;
    for quantity in 1..=40 {
        let (_, v) = stack
            .ok(
                &format!("/v1/products/{product}/restock"),
                &admin,
                json!({ "quantity": quantity }),
            )
            .await?;
        last = v;
    }
    let customer = stack.token("carl", &[Role::Customer]);
    let (order, _) = stack
        .ok(
            "/v1/orders",
            &customer,
            json!({"lines": [{"product_id": product, "quantity": 7}]}),
        )
        .await?;
    // Paid the storefront's way: carl checks out, an admin confirms.
    let (checkout, order_version) = stack.pay(order, &customer).await?;
    assert_eq!(checkout["amount_cents"], 14000, "{checkout}");
    // While the broker is down the read model cannot have moved past the outage.
    let stale: Value = stack
        .get(&format!("/v1/products/{product}"), &viewer)
        .await?
        .json()
        .await?;
    assert_eq!(stale["version"].as_i64(), Some(version));

    kafka_script("start")?;
    drop(guard);
    let expected_stock = (1..=40).sum::<i64>();
    stack
        .eventually(
            "the read models to converge",
            Duration::from_secs(120),
            || async {
                let body: Value = stack
                    .get(&format!("/v1/products/{product}"), &viewer)
                    .await?
                    .json()
                    .await?;
                Ok(body["version"].as_i64() == Some(last + 1))
            },
        )
        .await?;
    let body: Value = stack
        .get(&format!("/v1/products/{product}"), &viewer)
        .await?
        .json()
        .await?;
    assert_eq!(
        (body["on_hand"].as_i64(), body["reserved"].as_i64()),
        (Some(expected_stock), Some(7))
    );
    let order: Value = stack
        .read_at(&format!("/v1/orders/{order}"), &customer, order_version)
        .await?;
    assert_eq!(order["status"], "paid");
    // Each projection commits on its own: the sales model may follow the order's a moment
    // later; the payment must show there once, never twice.
    stack
        .eventually(
            "the payment in the sales model",
            Duration::from_secs(30),
            || async {
                let (_, paid, _, _) = stack.sales_totals(&viewer).await?;
                anyhow::ensure!(paid <= 1, "the payment counted {paid} times");
                Ok(paid == 1)
            },
        )
        .await?;
    stack.stop().await
}
