//! Payments through a provider in the read models: every new order event is applied (none
//! is poison); the orders model lists payments and refunds and shows `refunded_cents` as
//! the domain's fold does; revenue on the dashboards is money the provider confirmed minus
//! refunds the provider confirmed; histories written before payments went through a
//! provider (`OrderPaid` v1, a cancellation that recorded the refund) project as before; a
//! rebuild builds the same tables; and the read-model migration that added the columns
//! fills them, for rows projected before it, with what projecting gives.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use eventstore::testing::TestDatabase;
use eventstore::{connect_pool, NewEvent, StreamWrite};
use projector::rebuild::rebuild;
use projector::service::Projector;
use serde_json::{json, Value};
use support::*;
use uuid::Uuid;

/// The read-model migration under test, run again by hand on a model projected without it.
const PAYMENTS_MIGRATION: &str = include_str!("../../readmodel/migrations/V3__payments.sql");

/// Records `OrderPaid` as the release before payment providers did: schema version 1, no
/// provider event and no reason.
async fn pay_v1(shop: &Shop, id: Uuid) -> Result<()> {
    let order = shop.order(id).await?;
    let stream = shop.store.load_stream(id).await?;
    let paid = NewEvent::new(
        "OrderPaid",
        1,
        json!({
            "amount_cents": order.total_cents(),
            "currency": "EUR",
            "payment_ref": format!("psp-{id}"),
        }),
    );
    shop.append_as(
        "alice",
        vec![StreamWrite::after(&stream, "order", vec![paid])],
    )
    .await
}

/// Cancels a paid order as the release before payment providers did: `OrderCancelled`
/// records the refund of the total, with the products' `StockReleased` in the same command.
async fn cancel_old_style(shop: &Shop, id: Uuid) -> Result<()> {
    let order = shop.order(id).await?;
    let stream = shop.store.load_stream(id).await?;
    let ids: Vec<Uuid> = order
        .lines()
        .iter()
        .map(|l| l.product_id.as_uuid())
        .collect();
    let streams = shop.store.load_streams(&ids).await?;
    let mut writes = vec![StreamWrite::after(
        &stream,
        "order",
        vec![NewEvent::new(
            "OrderCancelled",
            1,
            json!({"reason": "changed my mind", "refunded_cents": order.total_cents()}),
        )],
    )];
    for line in order.lines() {
        let product = line.product_id.as_uuid();
        let released = NewEvent::new(
            "StockReleased",
            1,
            json!({"order_id": id, "quantity": line.quantity.get()}),
        );
        writes.push(StreamWrite::after(
            &streams[&product],
            "product",
            vec![released],
        ));
    }
    shop.append_as("alice", writes).await
}

/// The orders of the histories under test, by name.
struct Orders {
    ids: HashMap<&'static str, Uuid>,
}

impl Orders {
    fn id(&self, name: &str) -> Uuid {
        self.ids[name]
    }
}

/// Places an order of 2 mugs and 1 tea (2 × 1299 + 450).
async fn place(shop: &Shop, mug: Uuid, tea: Uuid) -> Result<Uuid> {
    shop.place("alice", &[(mug, 2), (tea, 1)])
        .await?
        .ok_or_else(|| anyhow::anyhow!("placed"))
}

const TOTAL: i64 = 2 * 1299 + 450;

/// A history of each kind the payments issue names.
async fn histories(shop: &Shop, mug: Uuid, tea: Uuid) -> Result<Orders> {
    let mut ids = HashMap::new();

    // Paid through the provider after a declined card, then shipped.
    let id = place(shop, mug, tea).await?;
    shop.request_payment(id, "pi_1").await?;
    shop.fail_payment(id, "pi_1").await?;
    shop.request_payment(id, "pi_2").await?;
    shop.confirm_payment(id, "pi_2", TOTAL).await?;
    shop.ship(id).await?;
    ids.insert("provider payment", id);

    // The provider captured less than the total: needs review; the order stays placed
    // until a second payment pays it; the first is refunded.
    let id = place(shop, mug, tea).await?;
    shop.request_payment(id, "pi_1").await?;
    shop.confirm_payment(id, "pi_1", TOTAL - 100).await?;
    shop.request_payment(id, "pi_2").await?;
    shop.confirm_payment(id, "pi_2", TOTAL).await?;
    shop.refund(id, "re_review", TOTAL - 100, true).await?;
    ids.insert("needs review", id);

    // Paid offline; a partial refund the provider confirms later, another it refuses.
    let id = place(shop, mug, tea).await?;
    shop.pay(id).await?;
    shop.refund(id, "re_1", 700, false).await?;
    shop.settle_refund(id, "re_1", true).await?;
    shop.refund(id, "re_2", 300, false).await?;
    shop.settle_refund(id, "re_2", false).await?;
    ids.insert("partial refund", id);

    // Paid through the provider, then cancelled with the refund of the total.
    let id = place(shop, mug, tea).await?;
    shop.request_payment(id, "pi_1").await?;
    shop.confirm_payment(id, "pi_1", TOTAL).await?;
    shop.cancel(id).await?;
    ids.insert("cancelled paid", id);

    // Cancelled while a payment was open; the provider captures it afterwards.
    let id = place(shop, mug, tea).await?;
    shop.request_payment(id, "pi_1").await?;
    shop.cancel(id).await?;
    shop.confirm_payment(id, "pi_1", TOTAL).await?;
    ids.insert("cancelled open", id);

    // As the release before payment providers wrote them: paid (v1) and cancelled with the
    // refund, and paid (v1) and shipped.
    let id = place(shop, mug, tea).await?;
    pay_v1(shop, id).await?;
    cancel_old_style(shop, id).await?;
    ids.insert("old style cancelled", id);
    let id = place(shop, mug, tea).await?;
    pay_v1(shop, id).await?;
    shop.ship(id).await?;
    ids.insert("old style shipped", id);
    Ok(Orders { ids })
}

/// The row of the orders model as JSON.
async fn order_row(client: &tokio_postgres::Client, id: Uuid) -> Result<Value> {
    Ok(client
        .query_one(
            "SELECT to_jsonb(o) FROM read_model.orders o WHERE id = $1",
            &[&id],
        )
        .await?
        .get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_payments_refunds_and_old_histories_project_as_the_domain_folds_them() -> Result<()>
{
    let events = TestDatabase::create().await?;
    let read = TestDatabase::create().await?;
    let shop = Shop {
        store: events.store.clone(),
    };
    let mug = shop.create_product("MUG", 1299, 100).await?;
    let tea = shop.create_product("TEA", 450, 100).await?;
    let orders = histories(&shop, mug, tea).await?;

    let projector = Projector::start(settings(&events, &read, None)).await?;
    caught_up_with_log(&events, &read, Duration::from_secs(60)).await?;
    let client = read.store.pool().get().await?;
    let poison: i64 = client
        .query_one("SELECT count(*) FROM read_model.poison_events", &[])
        .await?
        .get(0);
    assert_eq!(poison, 0, "every event type is applied");

    // Every order's row is the domain's fold of its events.
    let (mut placed, mut paid, mut revenue) = (0, 0, 0);
    let mut sold: HashMap<Uuid, (i64, i64)> = HashMap::new();
    for (name, id) in &orders.ids {
        let order = shop.order(*id).await?;
        let version = events.store.load_stream(*id).await?.version;
        assert_order_row(&client, *id, &order, version)
            .await
            .map_err(|e| e.context(*name))?;
        let sale = sale_of(&order);
        placed += 1;
        paid += i64::from(sale.paid);
        revenue += sale.revenue_cents;
        for (product, units, cents) in sale.sold {
            let entry = sold.entry(product).or_default();
            entry.0 += units;
            entry.1 += cents;
        }
    }

    // What the domain's fold says, spelled out.
    let row = order_row(&client, orders.id("provider payment")).await?;
    assert_eq!(row["status"], "shipped");
    assert_eq!(row["payment_ref"], "pi_2");
    assert_eq!(
        row["payments"],
        json!([
            {"payment_id": "pi_1", "status": "failed", "amount_cents": TOTAL},
            {"payment_id": "pi_2", "status": "succeeded", "amount_cents": TOTAL}
        ])
    );
    assert_eq!(row["refunds"], json!([]));
    assert_eq!(row["refunded_cents"], Value::Null);
    let row = order_row(&client, orders.id("needs review")).await?;
    assert_eq!(row["status"], "paid");
    assert_eq!(row["payments"][0]["status"], "needs_review");
    assert_eq!(row["payments"][0]["amount_cents"], TOTAL - 100);
    assert_eq!(
        row["refunds"],
        json!([{"refund_id": "re_review", "status": "succeeded", "amount_cents": TOTAL - 100}])
    );
    assert_eq!(row["refunded_cents"], TOTAL - 100);
    let row = order_row(&client, orders.id("partial refund")).await?;
    assert_eq!(row["status"], "paid");
    assert_eq!(
        row["refunds"],
        json!([
            {"refund_id": "re_1", "status": "succeeded", "amount_cents": 700},
            {"refund_id": "re_2", "status": "failed", "amount_cents": 300}
        ])
    );
    assert_eq!(row["refunded_cents"], 700);
    let cancelled = orders.id("cancelled paid");
    let row = order_row(&client, cancelled).await?;
    assert_eq!(row["status"], "cancelled");
    assert_eq!(
        row["refunds"],
        json!([{"refund_id": format!("re-{cancelled}"), "status": "succeeded", "amount_cents": TOTAL}])
    );
    assert_eq!(row["refunded_cents"], TOTAL);
    let row = order_row(&client, orders.id("cancelled open")).await?;
    assert_eq!(row["status"], "cancelled");
    assert_eq!(
        row["payments"],
        json!([{"payment_id": "pi_1", "status": "needs_review", "amount_cents": TOTAL}])
    );
    assert_eq!(row["refunded_cents"], 0);
    let old = orders.id("old style cancelled");
    let row = order_row(&client, old).await?;
    assert_eq!(row["status"], "cancelled");
    assert_eq!(
        row["payments"],
        json!([{"payment_id": format!("psp-{old}"), "status": "succeeded", "amount_cents": TOTAL}])
    );
    assert_eq!(row["refunds"], json!([]));
    assert_eq!(row["refunded_cents"], TOTAL);

    // The dashboards: six orders paid; revenue is the four sales that stand (one of them
    // less a refund of 700): the cancelled ones were refunded (through the provider, or by
    // an old-style cancellation), and the needs-review money is not revenue, nor is its
    // refund.
    assert_eq!((placed, paid), (7, 6));
    assert_eq!(revenue, 4 * TOTAL - 700);
    for bucket in ["hour", "day"] {
        let row = client
            .query_one(
                "SELECT sum(orders_placed)::int8, sum(orders_paid)::int8, \
                 sum(revenue_cents)::int8, sum(units_sold)::int8 \
                 FROM read_model.sales WHERE bucket = $1",
                &[&bucket],
            )
            .await?;
        let got: (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
        assert_eq!(got, (placed, paid, revenue, 4 * 3), "{bucket} buckets");
    }
    // Top products: the four paid orders that were not cancelled, partial refunds or not.
    assert_eq!(sold[&mug], (4 * 2, 4 * 2 * 1299));
    assert_eq!(sold[&tea], (4, 4 * 450));
    for (product, expected) in &sold {
        let row = client
            .query_one(
                "SELECT units_sold, revenue_cents FROM read_model.top_products \
                 WHERE product_id = $1",
                &[product],
            )
            .await?;
        let got: (i64, i64) = (row.get(0), row.get(1));
        assert_eq!(&got, expected, "top product {product}");
    }

    // A rebuild of each projection builds the same tables.
    let before = dump_version(&read, 1).await?;
    let pool = connect_pool(&read.url, 4)?;
    for name in ["orders", "sales", "top_products", "products"] {
        rebuild(&events.store, &pool, name, 7, true, |_| {}).await?;
    }
    assert_eq!(dump_version(&read, 2).await?, before);
    projector.stop().await?;
    Ok(())
}

/// Drops the columns the payments migration adds (the view first, which selects them), and
/// the later migrations' (`shipping_address`, V4), so the model looks as it did before the
/// payments migration; `orders` is the live orders table. [`migrate_after_payments`] adds
/// the later columns back, in migration order.
async fn unmigrate(client: &tokio_postgres::Client, orders: &str) -> Result<()> {
    client
        .batch_execute(&format!(
            "DROP VIEW read_model.orders; \
             ALTER TABLE read_model.{orders} DROP COLUMN payments, DROP COLUMN refunds, \
                 DROP COLUMN shipping_address; \
             CREATE VIEW read_model.orders AS SELECT * FROM read_model.{orders}; \
             ALTER TABLE read_model.sales_v1_orders \
                 DROP COLUMN review_payments, DROP COLUMN revenue_refunds;"
        ))
        .await?;
    Ok(())
}

/// What the migrations after the payments migration add to `orders` (V4's
/// `shipping_address`), and the view over it made again.
async fn migrate_after_payments(client: &tokio_postgres::Client, orders: &str) -> Result<()> {
    client
        .batch_execute(&format!(
            "ALTER TABLE read_model.{orders} ADD COLUMN shipping_address text; \
             CREATE OR REPLACE VIEW read_model.orders AS SELECT * FROM read_model.{orders};"
        ))
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payments_migration_fills_old_rows_with_what_projecting_them_gives() -> Result<()> {
    let events = TestDatabase::create().await?;
    let shop = Shop {
        store: events.store.clone(),
    };
    let mug = shop.create_product("MUG", 1299, 100).await?;
    let tea = shop.create_product("TEA", 450, 100).await?;
    // Histories from before payment providers: placed, paid (v1), shipped, cancelled.
    let mut ids = Vec::new();
    for n in 0..4 {
        let id = place(&shop, mug, tea).await?;
        if n > 0 {
            pay_v1(&shop, id).await?;
        }
        match n {
            2 => shop.ship(id).await?,
            3 => cancel_old_style(&shop, id).await?,
            _ => {}
        }
        ids.push(id);
    }
    let cancelled_placed = place(&shop, mug, tea).await?;
    shop.cancel(cancelled_placed).await?;

    // Projected with the migration: the reference.
    let reference = TestDatabase::create().await?;
    let projector = Projector::start(settings(&events, &reference, None)).await?;
    caught_up_with_log(&events, &reference, Duration::from_secs(60)).await?;
    projector.stop().await?;
    let expected = dump(&reference).await?;
    let client = reference.store.pool().get().await?;
    let paid = order_row(&client, ids[1]).await?;
    assert_eq!(paid["payments"][0]["status"], "succeeded", "{paid}");

    // Projected as before the migration, then migrated: the same model.
    let read = TestDatabase::create().await?;
    let projector = Projector::start(settings(&events, &read, None)).await?;
    caught_up_with_log(&events, &read, Duration::from_secs(60)).await?;
    projector.stop().await?;
    let client = read.store.pool().get().await?;
    unmigrate(&client, "orders_v1").await?;
    let row = order_row(&client, ids[1]).await?;
    assert!(row.get("payments").is_none(), "unmigrated: {row}");
    client.batch_execute(PAYMENTS_MIGRATION).await?;
    migrate_after_payments(&client, "orders_v1").await?;
    assert_eq!(dump(&read).await?, expected);

    // The same after a rebuild: the live table is the rebuilt one, the old one is gone.
    let read = TestDatabase::create().await?;
    let projector = Projector::start(settings(&events, &read, None)).await?;
    caught_up_with_log(&events, &read, Duration::from_secs(60)).await?;
    projector.stop().await?;
    let pool = connect_pool(&read.url, 2)?;
    rebuild(&events.store, &pool, "orders", 100, false, |_| {}).await?;
    let client = read.store.pool().get().await?;
    unmigrate(&client, "orders_v2").await?;
    client.batch_execute(PAYMENTS_MIGRATION).await?;
    migrate_after_payments(&client, "orders_v2").await?;
    let rows = |version: i32| {
        let client = &client;
        async move {
            let rows = client
                .query(
                    &format!(
                        "SELECT row_to_json(t)::text FROM read_model.orders_v{version} t \
                         ORDER BY 1"
                    ),
                    &[],
                )
                .await?;
            anyhow::Ok(
                rows.iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect::<Vec<_>>(),
            )
        }
    };
    let reference_client = reference.store.pool().get().await?;
    let reference_orders: Vec<String> = reference_client
        .query(
            "SELECT row_to_json(t)::text FROM read_model.orders_v1 t ORDER BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rows(2).await?, reference_orders);
    let through_view: i64 = client
        .query_one(
            "SELECT count(*) FROM read_model.orders WHERE jsonb_array_length(payments) = 1",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(through_view, 3, "the view shows the paid orders' payments");
    Ok(())
}
