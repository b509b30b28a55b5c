//! Reservation expiry end to end: with a payment TTL of two seconds, an unpaid order is
//! cancelled by the system and the read models show it: the order `cancelled`, the
//! product's reservation released.

mod support;

use std::time::Duration;

use platform::Role;
use serde_json::json;
use support::Stack;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_order_shows_as_cancelled_and_its_stock_as_available() -> anyhow::Result<()> {
    let stack = Stack::start_with(false, |settings| {
        settings.payment_ttl = Duration::from_secs(2);
    })
    .await?;
    let alice = stack.token("alice", &[Role::Customer]);
    let viewer = stack.token("vera", &[Role::Viewer]);
    let (mug, _) = stack
        .ok("/v1/products", &stack.admin, json!({"sku": "MUG-1", "name": "Mug", "price_cents": 1299, "currency": "EUR", "initial_stock": 10}))
        .await?;
    let (order, version) = stack
        .ok(
            "/v1/orders",
            &alice,
            json!({"lines": [{"product_id": mug, "quantity": 6}]}),
        )
        .await?;
    let placed = stack
        .read_at(&format!("/v1/orders/{order}"), &alice, version)
        .await?;
    assert_eq!(placed["status"], "placed");
    let product = stack
        .read_at(&format!("/v1/products/{mug}"), &viewer, 2)
        .await?;
    assert_eq!(product["available"], 4);

    // The expiry appends OrderCancelled (order version 2) and StockReleased (product 3).
    let expired = stack
        .read_at(&format!("/v1/orders/{order}"), &alice, 2)
        .await?;
    assert_eq!(expired["status"], "cancelled", "{expired}");
    assert_eq!(expired["refunded_cents"], 0, "{expired}");
    let product = stack
        .read_at(&format!("/v1/products/{mug}"), &viewer, 3)
        .await?;
    assert_eq!(
        (product["reserved"].clone(), product["available"].clone()),
        (json!(0), json!(10))
    );
    let log = stack.db.store.load_stream(order).await?.events;
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].metadata.actor, "system");
    assert_eq!(log[1].payload["reason"], "payment_timeout");
    stack.stop().await
}
