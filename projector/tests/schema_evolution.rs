//! Schema evolution in the projector: `OrderPlaced` v1 (recorded by the previous release,
//! no `placed_by`) and v2 events in one log project identically, because the projector
//! upcasts each payload before decoding it.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use domain::{Order, OrderEvent, OrderId, ProductId};
use eventstore::{LoadedStream, NewEvent, RecordedEvent, StreamWrite};
use projector::service::Projector;
use serde_json::Value;
use support::*;
use uuid::Uuid;

/// Places an order the way the previous release recorded it: the domain decides, then the
/// `OrderPlaced` payload is written in its v1 form (without `placed_by`) at schema version 1,
/// with the products' `StockReserved` events in the same command.
async fn place_v1(shop: &Shop, customer: &str, lines: &[(Uuid, i64)]) -> Result<Uuid> {
    let id = Uuid::now_v7();
    let items = lines
        .iter()
        .map(|(p, q)| {
            Ok(domain::LineItem {
                product_id: ProductId::from_uuid(*p),
                quantity: domain::LineQuantity::parse(*q)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let lines = domain::OrderLines::parse(items)?;
    let ids: Vec<Uuid> = lines.iter().map(|l| l.product_id.as_uuid()).collect();
    let streams = shop.store.load_streams(&ids).await?;
    let mut products = HashMap::new();
    for (pid, stream) in &streams {
        let events = stream
            .events
            .iter()
            .map(|e| decode::<domain::ProductEvent>(e, domain::ProductEvent::from_stored))
            .collect::<Result<Vec<_>>>()?;
        products.insert(
            ProductId::from_uuid(*pid),
            domain::Product::from_events(events),
        );
    }
    let customer_id = domain::CustomerId::parse(customer)?;
    let decided = domain::place_order(
        OrderId::from_uuid(id),
        customer_id.clone(),
        customer_id.into(),
        &lines,
        &products,
    )?;
    let [placed] = &decided.order[..] else {
        anyhow::bail!("one OrderPlaced");
    };
    let mut v1 = placed.payload();
    let object = v1
        .as_object_mut()
        .ok_or_else(|| anyhow::anyhow!("a payload object"))?;
    object
        .remove("placed_by")
        .ok_or_else(|| anyhow::anyhow!("a current payload has placed_by"))?;
    object.remove("shipping_address");
    let mut writes = vec![StreamWrite::after(
        &LoadedStream::empty(id),
        "order",
        vec![NewEvent::new("OrderPlaced", 1, v1)],
    )];
    for (pid, events) in &decided.products {
        let rows = events
            .iter()
            .map(|e| NewEvent::new(e.event_type(), e.schema_version() as i32, e.payload()))
            .collect();
        writes.push(StreamWrite::after(
            &streams[&pid.as_uuid()],
            "product",
            rows,
        ));
    }
    shop.append_as(customer, writes).await?;
    Ok(id)
}

/// Decodes a recorded event the way every reader must: upcast, then decode.
fn decode<E>(
    event: &RecordedEvent,
    from_stored: impl Fn(&str, u32, &Value) -> std::result::Result<E, domain::EventDecodeError>,
) -> Result<E> {
    let (version, payload) = schemas::upcast(
        &event.event_type,
        u32::try_from(event.schema_version)?,
        event.payload.clone(),
    )?;
    Ok(from_stored(&event.event_type, version, &payload)?)
}

/// Pays an order of either version (loading it through the upcaster).
async fn pay(shop: &Shop, id: Uuid) -> Result<()> {
    let stream = shop.store.load_stream(id).await?;
    let order = Order::from_events(
        stream
            .events
            .iter()
            .map(|e| decode(e, OrderEvent::from_stored))
            .collect::<Result<Vec<_>>>()?,
    );
    let events = order.decide(domain::OrderCommand::Pay {
        amount_cents: order.total_cents(),
        currency: order
            .currency()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("placed"))?,
        payment_ref: domain::PaymentRef::parse("psp-1")?,
        reason: domain::Reason::parse("bank transfer")?,
    })?;
    let rows = events
        .iter()
        .map(|e| NewEvent::new(e.event_type(), e.schema_version() as i32, e.payload()))
        .collect();
    shop.append_as("alice", vec![StreamWrite::after(&stream, "order", rows)])
        .await
}

/// The orders read-model row, without the id and the times (which differ between orders).
async fn order_row(read: &eventstore::testing::TestDatabase, id: Uuid) -> Result<Value> {
    let client = read.store.pool().get().await?;
    let row = client
        .query_one(
            "SELECT (to_jsonb(o) - 'id' - 'placed_at' - 'updated_at') FROM read_model.orders o \
             WHERE id = $1",
            &[&id],
        )
        .await?;
    Ok(row.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_placed_v1_and_v2_in_one_log_project_identically() -> Result<()> {
    let events = eventstore::testing::TestDatabase::create().await?;
    let read = eventstore::testing::TestDatabase::create().await?;
    let shop = Shop {
        store: events.store.clone(),
    };
    let mug = shop.create_product("MUG", 1299, 100).await?;
    let tea = shop.create_product("TEA", 450, 100).await?;
    let lines = [(mug, 2), (tea, 3)];

    // Interleaved: v1, v2, v1, v2. The first pair is paid, the second stays placed.
    let v1_paid = place_v1(&shop, "alice", &lines).await?;
    let v2_paid = shop
        .place("alice", &lines)
        .await?
        .ok_or_else(|| anyhow::anyhow!("placed"))?;
    let v1_placed = place_v1(&shop, "alice", &lines).await?;
    let v2_placed = shop
        .place("alice", &lines)
        .await?
        .ok_or_else(|| anyhow::anyhow!("placed"))?;
    pay(&shop, v1_paid).await?;
    pay(&shop, v2_paid).await?;

    // The store holds both versions, as recorded (the domain now writes v3: v2 plus a
    // shipping address, none here).
    for (id, version) in [(v1_paid, 1), (v1_placed, 1), (v2_paid, 3), (v2_placed, 3)] {
        let stream = events.store.load_stream(id).await?;
        let placed = &stream.events[0];
        assert_eq!(placed.event_type, "OrderPlaced");
        assert_eq!(placed.schema_version, version);
        assert_eq!(placed.payload.get("placed_by").is_some(), version == 3);
    }

    let projector = Projector::start(settings(&events, &read, None)).await?;
    caught_up_with_log(&events, &read, Duration::from_secs(60)).await?;

    // Nothing was poison: every projection decoded the v1 events.
    let client = read.store.pool().get().await?;
    let poison: i64 = client
        .query_one("SELECT count(*) FROM read_model.poison_events", &[])
        .await?
        .get(0);
    assert_eq!(poison, 0);

    // Same rows for v1 and v2, and the right ones.
    let paid = order_row(&read, v1_paid).await?;
    assert_eq!(paid, order_row(&read, v2_paid).await?);
    assert_eq!(paid["customer_id"], "alice");
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["total_cents"], 2 * 1299 + 3 * 450);
    assert_eq!(paid["currency"], "EUR");
    assert_eq!(paid["payment_ref"], "psp-1");
    assert_eq!(paid["version"], 2);
    assert_eq!(
        paid["lines"],
        serde_json::json!([
            {"product_id": mug, "quantity": 2, "unit_price_cents": 1299},
            {"product_id": tea, "quantity": 3, "unit_price_cents": 450}
        ])
    );
    let placed = order_row(&read, v1_placed).await?;
    assert_eq!(placed, order_row(&read, v2_placed).await?);
    assert_eq!(placed["status"], "placed");
    assert_eq!(placed["version"], 1);
    assert_eq!(placed["payment_ref"], Value::Null);

    // The other projections count both versions: 4 placed, 2 paid, stock held by all 4.
    let row = client
        .query_one(
            "SELECT sum(orders_placed)::int8, sum(orders_paid)::int8, sum(units_sold)::int8 \
             FROM read_model.sales WHERE bucket = 'day'",
            &[],
        )
        .await?;
    let sales: (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(sales, (4, 2, 2 * (2 + 3)));
    let row = client
        .query_one(
            "SELECT units_sold FROM read_model.top_products WHERE product_id = $1",
            &[&mug],
        )
        .await?;
    assert_eq!(row.get::<_, i64>(0), 2 * 2);
    let row = client
        .query_one(
            "SELECT reserved FROM read_model.products WHERE id = $1",
            &[&tea],
        )
        .await?;
    assert_eq!(row.get::<_, i64>(0), 4 * 3);
    projector.stop().await?;
    Ok(())
}
