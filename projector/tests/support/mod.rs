//! Test support for the projector: a small shop that runs domain commands against a real
//! event store (load, decide, append), a workload generator, and read-model helpers.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use domain::{
    CancelReason, Carrier, Currency, CustomerId, LineItem, LineQuantity, Order, OrderCommand,
    OrderEvent, OrderId, OrderLines, PaymentRef, PriceCents, Product, ProductCommand, ProductEvent,
    ProductId, ProductName, ProviderEventId, ProviderName, Reason, RefundId, RefundRequest, Sku,
    StockQuantity, TrackingNumber,
};
use eventstore::testing::TestDatabase;
use eventstore::{AppendRequest, EventMetadata, EventStore, LoadedStream, NewEvent, StreamWrite};
use projector::config::Settings;
use uuid::Uuid;

pub type Result<T> = anyhow::Result<T>;

/// The events of a stream, read as every reader must (upcast, then decoded).
fn events_of<E>(
    stream: &LoadedStream,
    pick: impl Fn(eventstore::ShopEvent) -> Option<E>,
) -> Result<Vec<E>> {
    stream
        .events
        .iter()
        .map(|e| {
            let event = eventstore::decode(e)?;
            pick(event).ok_or_else(|| anyhow::anyhow!("{} is of another stream type", e.stream_id))
        })
        .collect()
}

fn product_of(stream: &LoadedStream) -> Result<Product> {
    let events = events_of(stream, |e| match e {
        eventstore::ShopEvent::Product(event) => Some(event),
        _ => None,
    })?;
    Ok(Product::from_events(events))
}

fn order_of(stream: &LoadedStream) -> Result<Order> {
    let events = events_of(stream, |e| match e {
        eventstore::ShopEvent::Order(event) => Some(event),
        _ => None,
    })?;
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

    /// Runs `command` on order `id` (decided on the fold of its stream) and appends what it
    /// decides.
    pub async fn order_command(&self, id: Uuid, command: OrderCommand) -> Result<()> {
        let stream = self.store.load_stream(id).await?;
        let events = order_of(&stream)?.decide(command)?;
        self.append(vec![StreamWrite::after(
            &stream,
            "order",
            order_rows(&events),
        )])
        .await
    }

    /// The fold of order `id`.
    pub async fn order(&self, id: Uuid) -> Result<Order> {
        order_of(&self.store.load_stream(id).await?)
    }

    /// An admin's offline payment of the total (`psp-<id>`).
    pub async fn pay(&self, id: Uuid) -> Result<()> {
        let order = self.order(id).await?;
        self.order_command(
            id,
            OrderCommand::Pay {
                amount_cents: order.total_cents(),
                currency: currency_of(&order)?,
                payment_ref: PaymentRef::parse(format!("psp-{id}"))?,
                reason: Reason::parse("bank transfer")?,
            },
        )
        .await
    }

    /// Asks the provider for a payment of the total.
    pub async fn request_payment(&self, id: Uuid, payment: &str) -> Result<()> {
        self.order_command(
            id,
            OrderCommand::RequestPayment {
                payment_id: PaymentRef::parse(payment)?,
                provider: ProviderName::parse("stripe")?,
            },
        )
        .await
    }

    /// The provider's word that `payment` captured `amount_cents` (the total pays the order;
    /// anything else needs review).
    pub async fn confirm_payment(&self, id: Uuid, payment: &str, amount_cents: i64) -> Result<()> {
        let order = self.order(id).await?;
        self.order_command(
            id,
            OrderCommand::ConfirmPayment {
                payment_id: PaymentRef::parse(payment)?,
                amount_cents,
                currency: currency_of(&order)?,
                provider_event: ProviderEventId::parse(format!("evt-{id}-{payment}"))?,
            },
        )
        .await
    }

    /// The provider's word that `payment` failed.
    pub async fn fail_payment(&self, id: Uuid, payment: &str) -> Result<()> {
        self.order_command(
            id,
            OrderCommand::FailPayment {
                payment_id: PaymentRef::parse(payment)?,
                provider_event: ProviderEventId::parse(format!("evt-{id}-{payment}-failed"))?,
                reason: "card declined".into(),
            },
        )
        .await
    }

    /// Refunds `amount_cents` of what may still be refunded (from the first payment with
    /// that much left); `succeeded`: the provider answered that it already succeeded.
    pub async fn refund(
        &self,
        id: Uuid,
        refund: &str,
        amount_cents: i64,
        succeeded: bool,
    ) -> Result<()> {
        let order = self.order(id).await?;
        let request = refund_request(&order, refund, Some(amount_cents), succeeded)?;
        self.order_command(id, OrderCommand::Refund(request)).await
    }

    /// The provider's word on `refund`: succeeded, or failed.
    pub async fn settle_refund(&self, id: Uuid, refund: &str, succeeded: bool) -> Result<()> {
        self.order_command(
            id,
            OrderCommand::SettleRefund {
                refund_id: RefundId::parse(refund)?,
                provider_event: Some(ProviderEventId::parse(format!("evt-{id}-{refund}"))?),
                failure: (!succeeded).then(|| "insufficient funds".to_owned()),
            },
        )
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

    /// Cancels the order, a paid one with the refund (already succeeded) of what its first
    /// refundable payment may still pay back (`re-<id>`).
    pub async fn cancel(&self, id: Uuid) -> Result<()> {
        let (stream, order, streams, products) = self.load_order(id).await?;
        let refund = match order.status() {
            Some(domain::OrderStatus::Paid) if order.payments().refundable_cents() > 0 => {
                Some(refund_request(&order, &format!("re-{id}"), None, true)?)
            }
            _ => None,
        };
        let decided = domain::cancel_order(
            OrderId::from_uuid(id),
            &order,
            CancelReason::parse("test")?,
            refund,
            &products,
        )?;
        self.append_placement(&stream, &streams, decided).await
    }
}

fn currency_of(order: &Order) -> Result<Currency> {
    order
        .currency()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no currency: the order is not placed"))
}

/// A refund of `amount_cents` (all it may pay back: `None`) from the first captured payment
/// of `order` with that much left to pay back.
fn refund_request(
    order: &Order,
    refund: &str,
    amount_cents: Option<i64>,
    succeeded: bool,
) -> Result<RefundRequest> {
    let money = order.payments();
    let left = |payment: &domain::Payment| {
        let claimed: i64 = money
            .refunds
            .iter()
            .filter(|r| r.payment_id == payment.payment_id)
            .filter(|r| r.status != domain::RefundStatus::Failed)
            .map(|r| r.amount_cents)
            .sum();
        payment.amount_cents - claimed
    };
    let payment = money
        .payments
        .iter()
        .filter(|p| p.status.is_captured())
        .find(|p| left(p) >= amount_cents.unwrap_or(1))
        .ok_or_else(|| anyhow::anyhow!("nothing left to refund"))?;
    Ok(RefundRequest {
        refund_id: RefundId::parse(refund)?,
        payment_id: payment.payment_id.clone(),
        amount_cents: amount_cents.unwrap_or_else(|| left(payment)),
        reason: Reason::parse("customer asked")?,
        succeeded,
    })
}

/// A deterministic mixed workload: products, orders, payments (offline, through the
/// provider, declined, captured for review), refunds (confirmed, pending, failed),
/// shipments, cancellations.
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
        let total = shop.order(order).await?.total_cents();
        match next(10) {
            0..=4 => {
                // Paid offline, through the provider, or through it after a declined card.
                match next(3) {
                    0 => shop.pay(order).await?,
                    way => {
                        if way == 2 {
                            shop.request_payment(order, "pi_declined").await?;
                            shop.fail_payment(order, "pi_declined").await?;
                        }
                        shop.request_payment(order, "pi_1").await?;
                        shop.confirm_payment(order, "pi_1", total).await?;
                    }
                }
                match next(5) {
                    0 | 1 => shop.ship(order).await?,
                    2 => shop.cancel(order).await?,
                    // A partial refund, confirmed with the request, later, or failed.
                    3 => {
                        let confirmed = next(3);
                        shop.refund(order, "re_1", 1 + total / 3, confirmed == 0)
                            .await?;
                        if confirmed > 0 {
                            shop.settle_refund(order, "re_1", confirmed == 1).await?;
                        }
                    }
                    _ => {}
                }
            }
            5 => shop.cancel(order).await?,
            // The provider captures less than the total: captured money the order cannot
            // take, refunded by an admin, or left for review; the order stays placed.
            6 => {
                shop.request_payment(order, "pi_short").await?;
                shop.confirm_payment(order, "pi_short", total - 1).await?;
                if next(2) == 0 {
                    shop.refund(order, "re_short", total - 1, true).await?;
                }
            }
            // Cancelled while a payment is open.
            7 => {
                shop.request_payment(order, "pi_open").await?;
                shop.cancel(order).await?;
            }
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
        stall_after: std::time::Duration::from_secs(30),
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
            Ok(checkpoints.len() == projector::projections::all().len()
                && checkpoints.iter().all(|c| *c == head))
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

/// What the dashboards count of an order, by the domain's fold of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sale {
    /// Whether it was paid (`OrderPaid`): counted in `orders_paid`.
    pub paid: bool,
    /// Money the provider confirmed (the payment that paid the order) minus the refunds of
    /// it the provider confirmed, or minus an old-style cancellation's refund.
    pub revenue_cents: i64,
    /// `(product, units, revenue)` of each line, when the order counts as sold (paid and
    /// not cancelled).
    pub sold: Vec<(Uuid, i64, i64)>,
}

pub fn sale_of(order: &Order) -> Sale {
    use domain::{PaymentStatus, RefundStatus};
    let money = order.payments();
    let paid_cents: i64 = money
        .payments
        .iter()
        .filter(|p| p.status == PaymentStatus::Succeeded)
        .map(|p| p.amount_cents)
        .sum();
    let revenue_refunds: i64 = money
        .refunds
        .iter()
        .filter(|r| r.status == RefundStatus::Succeeded)
        .filter(|r| {
            money
                .payment(&r.payment_id)
                .is_some_and(|p| p.status == PaymentStatus::Succeeded)
        })
        .map(|r| r.amount_cents)
        .sum();
    // Before refunds went through the provider, the cancellation recorded the refund.
    let old_style_refund = order.refunded_cents().unwrap_or(0) - money.refunded_cents();
    let paid = order.payment_ref().is_some();
    let cancelled = order.status() == Some(domain::OrderStatus::Cancelled);
    let sold = if paid && !cancelled {
        order
            .lines()
            .iter()
            .map(|l| {
                let units = l.quantity.get();
                (
                    l.product_id.as_uuid(),
                    units,
                    units * l.unit_price_cents.get(),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    Sale {
        paid,
        revenue_cents: paid_cents - revenue_refunds - old_style_refund,
        sold,
    }
}

/// Asserts that the orders read model's row of `id` is what the domain's fold of its
/// events says: status, total, version, payment reference, refunded amount, payments and
/// refunds.
pub async fn assert_order_row(
    client: &tokio_postgres::Client,
    id: Uuid,
    order: &Order,
    version: i64,
) -> Result<()> {
    let row = client
        .query_one(
            "SELECT status, total_cents, version, payment_ref, refunded_cents, payments, refunds \
             FROM read_model.orders WHERE id = $1",
            &[&id],
        )
        .await?;
    let got: (String, i64, i64, Option<String>, Option<i64>) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    let expected = (
        order
            .status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        order.total_cents(),
        version,
        order.payment_ref().map(|p| p.as_str().to_owned()),
        order.refunded_cents(),
    );
    anyhow::ensure!(
        got == expected,
        "order {id}: {got:?}, the domain says {expected:?}"
    );
    let money = order.payments();
    let payments: Vec<serde_json::Value> = money
        .payments
        .iter()
        .map(|p| {
            serde_json::json!({
                "payment_id": p.payment_id.as_str(),
                "status": p.status.as_str(),
                "amount_cents": p.amount_cents,
            })
        })
        .collect();
    let refunds: Vec<serde_json::Value> = money
        .refunds
        .iter()
        .map(|r| {
            serde_json::json!({
                "refund_id": r.refund_id.as_str(),
                "status": r.status.as_str(),
                "amount_cents": r.amount_cents,
            })
        })
        .collect();
    let got: (serde_json::Value, serde_json::Value) = (row.get(5), row.get(6));
    let expected = (
        serde_json::Value::from(payments),
        serde_json::Value::from(refunds),
    );
    anyhow::ensure!(
        got == expected,
        "order {id}: payments and refunds {got:?}, the domain says {expected:?}"
    );
    Ok(())
}
