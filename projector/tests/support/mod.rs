//! Test support for the projector: a small shop that runs domain commands against a real
//! event store (load, decide, append), a workload generator, and read-model helpers.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use domain::{
    CancelReason, Carrier, Currency, CustomerId, LineItem, LineQuantity, Order, OrderCommand,
    OrderEvent, OrderId, OrderLines, PaymentRef, PriceCents, Product, ProductCommand, ProductEvent,
    ProductId, ProductName, Sku, StockQuantity, TrackingNumber,
};
use eventstore::testing::TestDatabase;
use eventstore::{AppendRequest, EventMetadata, EventStore, LoadedStream, NewEvent, StreamWrite};
use projector::config::Settings;
use uuid::Uuid;

pub type Result<T> = anyhow::Result<T>;

fn product_of(stream: &LoadedStream) -> Result<Product> {
    let events = stream
        .events
        .iter()
        .map(|e| ProductEvent::from_stored(&e.event_type, e.schema_version as u32, &e.payload))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Product::from_events(events))
}

fn order_of(stream: &LoadedStream) -> Result<Order> {
    let events = stream
        .events
        .iter()
        .map(|e| OrderEvent::from_stored(&e.event_type, e.schema_version as u32, &e.payload))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Order::from_events(events))
}

fn rows<E>(
    events: &[E],
    f: impl Fn(&E) -> (&'static str, u32, serde_json::Value),
) -> Vec<NewEvent> {
    events
        .iter()
        .map(|e| {
            let (t, v, p) = f(e);
            NewEvent::new(t, v as i32, p)
        })
        .collect()
}

fn product_rows(events: &[ProductEvent]) -> Vec<NewEvent> {
    rows(events, |e| {
        (e.event_type(), e.schema_version(), e.payload())
    })
}

fn order_rows(events: &[OrderEvent]) -> Vec<NewEvent> {
    rows(events, |e| {
        (e.event_type(), e.schema_version(), e.payload())
    })
}

/// Runs shop commands against the store, single-threaded (no races to retry).
pub struct Shop {
    pub store: EventStore,
}

impl Shop {
    /// Appends to `product` an event this domain cannot read (a `StockAdded` whose quantity
    /// is a word), as a buggy writer would.
    pub async fn append_unreadable(&self, product: Uuid) -> Result<()> {
        let stream = self.store.load_stream(product).await?;
        let bad = NewEvent::new("StockAdded", 1, serde_json::json!({"quantity": "lots"}));
        self.append_as(
            "buggy",
            vec![StreamWrite::after(&stream, "product", vec![bad])],
        )
        .await
    }

    async fn append(&self, writes: Vec<StreamWrite>) -> Result<()> {
        self.append_as("workload", writes).await
    }

    /// Appends `writes` in one transaction, as `actor`.
    pub async fn append_as(&self, actor: &str, writes: Vec<StreamWrite>) -> Result<()> {
        self.store
            .append(AppendRequest {
                streams: writes,
                metadata: EventMetadata {
                    actor: actor.into(),
                    correlation_id: Uuid::new_v4().to_string(),
                    causation_id: None,
                    command_id: Uuid::new_v4(),
                },
                occurred_at: Utc::now(),
                claims: vec![],
                idempotency: None,
            })
            .await?;
        Ok(())
    }

    pub async fn create_product(&self, sku: &str, price: i64, stock: i64) -> Result<Uuid> {
        let id = Uuid::now_v7();
        let events = Product::default().decide(ProductCommand::Create {
            sku: Sku::parse(sku)?,
            name: ProductName::parse(format!("Product {sku}"))?,
            price: PriceCents::parse(price)?,
            currency: Currency::parse("EUR")?,
            initial_stock: StockQuantity::parse(stock)?,
        })?;
        let stream = LoadedStream::empty(id);
        self.append(vec![StreamWrite::after(
            &stream,
            "product",
            product_rows(&events),
        )])
        .await?;
        Ok(id)
    }

    pub async fn product_command(&self, id: Uuid, command: ProductCommand) -> Result<()> {
        let stream = self.store.load_stream(id).await?;
        let events = product_of(&stream)?.decide(command)?;
        self.append(vec![StreamWrite::after(
            &stream,
            "product",
            product_rows(&events),
        )])
        .await
    }

    /// Places an order; a refusal (e.g. out of stock) is `Ok(None)`.
    pub async fn place(&self, customer: &str, lines: &[(Uuid, i64)]) -> Result<Option<Uuid>> {
        let id = Uuid::now_v7();
        let items = lines
            .iter()
            .map(|(p, q)| {
                Ok(LineItem {
                    product_id: ProductId::from_uuid(*p),
                    quantity: LineQuantity::parse(*q)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let lines = OrderLines::parse(items)?;
        let ids: Vec<Uuid> = lines.iter().map(|l| l.product_id.as_uuid()).collect();
        let streams = self.store.load_streams(&ids).await?;
        let mut products = HashMap::new();
        for (pid, stream) in &streams {
            products.insert(ProductId::from_uuid(*pid), product_of(stream)?);
        }
        let Ok(decided) = domain::place_order(
            OrderId::from_uuid(id),
            CustomerId::parse(customer)?,
            domain::ActorId::parse(customer)?,
            &lines,
            &products,
        ) else {
            return Ok(None);
        };
        self.append_placement(&LoadedStream::empty(id), &streams, decided)
            .await?;
        Ok(Some(id))
    }

    async fn append_placement(
        &self,
        order: &LoadedStream,
        products: &HashMap<Uuid, LoadedStream>,
        decided: domain::PlacementEvents,
    ) -> Result<()> {
        let mut writes = vec![StreamWrite::after(
            order,
            "order",
            order_rows(&decided.order),
        )];
        for (pid, events) in &decided.products {
            let stream = products
                .get(&pid.as_uuid())
                .ok_or_else(|| anyhow::anyhow!("product not loaded"))?;
            writes.push(StreamWrite::after(stream, "product", product_rows(events)));
        }
        self.append(writes).await
    }

    async fn load_order(
        &self,
        id: Uuid,
    ) -> Result<(
        LoadedStream,
        Order,
        HashMap<Uuid, LoadedStream>,
        HashMap<ProductId, Product>,
    )> {
        let stream = self.store.load_stream(id).await?;
        let order = order_of(&stream)?;
        let ids: Vec<Uuid> = order
            .lines()
            .iter()
            .map(|l| l.product_id.as_uuid())
            .collect();
        let streams = self.store.load_streams(&ids).await?;
        let mut products = HashMap::new();
        for (pid, s) in &streams {
            products.insert(ProductId::from_uuid(*pid), product_of(s)?);
        }
        Ok((stream, order, streams, products))
    }

    pub async fn pay(&self, id: Uuid) -> Result<()> {
        let stream = self.store.load_stream(id).await?;
        let order = order_of(&stream)?;
        let events = order.decide(OrderCommand::Pay {
            amount_cents: order.total_cents(),
            currency: order
                .currency()
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("no currency"))?,
            payment_ref: PaymentRef::parse(format!("psp-{id}"))?,
        })?;
        self.append(vec![StreamWrite::after(
            &stream,
            "order",
            order_rows(&events),
        )])
        .await
    }

    pub async fn ship(&self, id: Uuid) -> Result<()> {
        let (stream, order, streams, products) = self.load_order(id).await?;
        let decided = domain::ship_order(
            OrderId::from_uuid(id),
            &order,
            Carrier::parse("DHL")?,
            TrackingNumber::parse(format!("T-{id}"))?,
            &products,
        )?;
        self.append_placement(&stream, &streams, decided).await
    }

    pub async fn cancel(&self, id: Uuid) -> Result<()> {
        let (stream, order, streams, products) = self.load_order(id).await?;
        let decided = domain::cancel_order(
            OrderId::from_uuid(id),
            &order,
            CancelReason::parse("test")?,
            &products,
        )?;
        self.append_placement(&stream, &streams, decided).await
    }
}

/// A deterministic mixed workload: products, orders, payments, shipments, cancellations.
/// Returns the number of events appended.
pub async fn workload(shop: &Shop, seed: u64, orders: usize) -> Result<()> {
    let mut rng = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut products = Vec::new();
    for i in 0..12 {
        let price = 100 + 50 * i as i64;
        products.push(
            shop.create_product(&format!("S{seed}-{i}"), price, 100_000)
                .await?,
        );
    }
    for (i, product) in products.iter().enumerate().take(4) {
        shop.product_command(
            *product,
            ProductCommand::Restock {
                quantity: domain::RestockQuantity::parse(10 + i as i64)?,
            },
        )
        .await?;
    }
    for n in 0..orders {
        let count = 1 + next(3) as usize;
        let mut lines: Vec<(Uuid, i64)> = Vec::new();
        while lines.len() < count {
            let product = products[next(products.len() as u64) as usize];
            if !lines.iter().any(|(p, _)| *p == product) {
                lines.push((product, 1 + next(4) as i64));
            }
        }
        let customer = format!("customer-{}", next(7));
        let Some(order) = shop.place(&customer, &lines).await? else {
            continue;
        };
        match next(10) {
            0..=4 => {
                shop.pay(order).await?;
                match next(4) {
                    0 | 1 => shop.ship(order).await?,
                    2 => shop.cancel(order).await?,
                    _ => {}
                }
            }
            5 => shop.cancel(order).await?,
            _ => {}
        }
        if n % 97 == 0 {
            let product = products[next(products.len() as u64) as usize];
            shop.product_command(
                product,
                ProductCommand::ChangePrice {
                    price: PriceCents::parse(200 + n as i64)?,
                },
            )
            .await?;
        }
    }
    Ok(())
}

/// Settings for a projector over `events` into `read` (log source unless `kafka`).
pub fn settings(
    events: &TestDatabase,
    read: &TestDatabase,
    kafka: Option<(&str, &str, &str)>,
) -> Settings {
    Settings {
        database_url: events.url.clone(),
        read_database_url: Some(read.url.clone()),
        kafka_brokers: kafka.map(|(brokers, _, _)| brokers.to_owned()),
        topic_prefix: kafka
            .map(|(_, prefix, _)| prefix.to_owned())
            .unwrap_or_else(|| "agora".into()),
        group_id: kafka
            .map(|(_, _, group)| group.to_owned())
            .unwrap_or_else(|| "g".into()),
        addr: "127.0.0.1:0".into(),
        batch_size: 500,
    }
}

/// The read-model tables, dumped as sorted JSON lines, for comparing two builds.
pub async fn dump(read: &TestDatabase) -> Result<Vec<String>> {
    dump_version(read, 1).await
}

/// The tables of version `v` of every projection, dumped as sorted JSON lines.
pub async fn dump_version(read: &TestDatabase, v: i32) -> Result<Vec<String>> {
    let client = read.store.pool().get().await?;
    let mut lines = Vec::new();
    for table in [
        "products_v{v}",
        "orders_v{v}",
        "sales_v{v}",
        "sales_v{v}_orders",
        "top_products_v{v}",
        "top_products_v{v}_orders",
    ] {
        let table = table.replace("{v}", &v.to_string());
        let kind = table.replace(&format!("_v{v}"), "");
        let rows = client
            .query(
                &format!(
                    "SELECT '{kind} ' || row_to_json(t)::text FROM read_model.{table} t ORDER BY 1"
                ),
                &[],
            )
            .await?;
        lines.extend(rows.iter().map(|r| r.get::<_, String>(0)));
    }
    Ok(lines)
}

/// The log of `events` once it shows all `count` of them (a transaction open anywhere on
/// the server holds log readers back for a while).
pub async fn whole_log(
    events: &TestDatabase,
    count: usize,
) -> Result<Vec<eventstore::RecordedEvent>> {
    let read = || {
        events
            .store
            .read_log(eventstore::LogCheckpoint::START, 1_000_000)
    };
    eventually(
        "the log to show every event",
        Duration::from_secs(30),
        || async { Ok(read().await?.len() >= count) },
    )
    .await?;
    Ok(read().await?)
}

/// The last event in log order.
pub async fn log_head(events: &TestDatabase) -> Result<(i64, i64)> {
    let client = events.store.pool().get().await?;
    let row = client
        .query_one(
            "SELECT transaction_id::text::int8, position FROM events \
             ORDER BY transaction_id DESC, position DESC LIMIT 1",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// The log checkpoints of the live projections (one per projection).
pub async fn log_checkpoints(read: &TestDatabase) -> Result<Vec<(i64, i64)>> {
    let client = read.store.pool().get().await?;
    let rows = client
        .query(
            "SELECT c.transaction_id, c.position FROM read_model.checkpoints c \
             JOIN read_model.projections p ON p.name = c.projection AND p.active_version = c.version \
             WHERE c.source = 'log'",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Waits until every live projection's log checkpoint is at the head of the log.
pub async fn caught_up_with_log(
    events: &TestDatabase,
    read: &TestDatabase,
    deadline: Duration,
) -> Result<()> {
    let head = log_head(events).await?;
    eventually(
        "the projections to reach the head of the log",
        deadline,
        || async {
            let checkpoints = log_checkpoints(read).await?;
            Ok(checkpoints.len() == 4 && checkpoints.iter().all(|c| *c == head))
        },
    )
    .await
}

/// A projector's `/healthz` or `/readyz` (`path`) on `port`: the status code and the body
/// (`None` while nothing answers).
pub async fn health(port: u16, path: &str) -> Option<(u16, serde_json::Value)> {
    let response = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.ok()?))
}

/// Makes `read` refuse every write from new sessions (as a read-only standby does), and
/// ends every other session on it so that the projector's pools reconnect into that.
/// Returns the session this ran on (still usable for reads).
pub async fn make_read_only(read: &TestDatabase) -> Result<deadpool_postgres::Object> {
    let client = read.store.pool().get().await?;
    client
        .batch_execute(&format!(
            "ALTER DATABASE {} SET default_transaction_read_only = on",
            read.name
        ))
        .await?;
    client
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await?;
    Ok(client)
}

/// Polls `condition` until it holds (its error ends the wait at once); fails once
/// `deadline` passed.
pub async fn eventually<F, Fut>(what: &str, deadline: Duration, condition: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    eventstore::testing::try_eventually(what, deadline, condition).await
}

/// A product's `on_hand` in the read model.
pub async fn on_hand(client: &tokio_postgres::Client, product: Uuid) -> Result<i64> {
    Ok(client
        .query_one(
            "SELECT on_hand FROM read_model.products WHERE id = $1",
            &[&product],
        )
        .await?
        .get(0))
}
