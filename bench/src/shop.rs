//! Filling an event store fast with a realistic shop history, for the read-side
//! benchmarks (projector catch-up and rebuild, audit export).
//!
//! Every event is decided by the domain (`Product::decide`, `place_order`, `ship_order`,
//! `cancel_order`, `Order::decide`) on aggregates kept in memory, as the command API would
//! decide it after loading them, and appended with [`EventStore::append`], so the payloads,
//! versions and hash chains are the real ones. To fill fast, many commands share one append:
//! their events are grouped per stream (a stream's events stay in version order) and written
//! in one statement of about `batch_events` events, with one metadata record for the whole
//! append. The projections do not depend on the order of events across streams (they are
//! fed per Kafka partition too), so the grouping changes nothing they compute.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::Utc;
use domain::{
    ActorId, CancelReason, Carrier, Currency, CustomerId, LineItem, LineQuantity, Order,
    OrderCommand, OrderEvent, OrderId, OrderLines, PaymentRef, PriceCents, Product, ProductCommand,
    ProductEvent, ProductId, ProductName, RestockQuantity, Sku, StockQuantity, TrackingNumber,
};
use eventstore::{
    AppendRequest, EventMetadata, EventStore, Hash, NewEvent, StreamWrite, UniqueClaim,
};
use uuid::Uuid;

/// What to fill.
#[derive(Debug, Clone)]
pub struct FillConfig {
    /// Stop once at least this many events are appended (products included).
    pub events: u64,
    /// Products in the catalog (created first).
    pub products: usize,
    /// Events per append (one statement, one transaction), roughly.
    pub batch_events: usize,
    /// Seed of the deterministic workload.
    pub seed: u64,
}

impl Default for FillConfig {
    fn default() -> Self {
        FillConfig {
            events: 100_000,
            products: 1_000,
            batch_events: 500,
            seed: 42,
        }
    }
}

/// What a fill appended.
#[derive(Debug, Clone)]
pub struct FillReport {
    pub events: u64,
    pub appends: u64,
    pub seconds: f64,
    /// The products created, in creation order.
    pub products: Vec<Uuid>,
    /// Orders placed.
    pub orders: u64,
    /// Events per event type.
    pub mix: BTreeMap<&'static str, u64>,
}

impl FillReport {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.seconds.max(1e-9)
    }

    /// `ProductCreated 1000, OrderPlaced 23000, ...`
    pub fn mix_line(&self) -> String {
        self.mix
            .iter()
            .map(|(kind, count)| format!("{kind} {count}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A small deterministic generator (xorshift64*), so runs are comparable.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407)
            | 1)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }

    /// A uniformly chosen index of a non-empty slice of length `len`.
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }
}

/// The shop in memory and the append being gathered.
struct Filler<'a> {
    store: &'a EventStore,
    rng: Rng,
    sku_prefix: String,
    products: Vec<ProductId>,
    product_state: HashMap<ProductId, Product>,
    orders: HashMap<Uuid, Order>,
    placed: Vec<Uuid>,
    paid: Vec<Uuid>,
    /// Version and last hash of every stream as committed.
    committed: HashMap<Uuid, (i64, Hash)>,
    batch: Vec<StreamWrite>,
    claims: Vec<UniqueClaim>,
    in_batch: HashMap<Uuid, usize>,
    batch_len: usize,
    events: u64,
    appends: u64,
    orders_placed: u64,
    mix: BTreeMap<&'static str, u64>,
}

impl<'a> Filler<'a> {
    fn new(store: &'a EventStore, seed: u64) -> Self {
        Filler {
            store,
            rng: Rng::new(seed),
            sku_prefix: "SKU".into(),
            products: Vec::new(),
            product_state: HashMap::new(),
            orders: HashMap::new(),
            placed: Vec::new(),
            paid: Vec::new(),
            committed: HashMap::new(),
            batch: Vec::new(),
            claims: Vec::new(),
            in_batch: HashMap::new(),
            batch_len: 0,
            events: 0,
            appends: 0,
            orders_placed: 0,
            mix: BTreeMap::new(),
        }
    }

    /// Adds a stream's new events to the append being gathered.
    fn add(&mut self, stream_type: &str, stream_id: Uuid, events: Vec<NewEvent>) {
        self.batch_len += events.len();
        match self.in_batch.get(&stream_id) {
            Some(&index) => self.batch[index].events.extend(events),
            None => {
                let (version, hash) = self
                    .committed
                    .get(&stream_id)
                    .copied()
                    .unwrap_or((0, Hash::GENESIS));
                self.in_batch.insert(stream_id, self.batch.len());
                self.batch.push(StreamWrite {
                    stream_type: stream_type.to_owned(),
                    stream_id,
                    expected_version: version,
                    prev_hash: hash,
                    events,
                });
            }
        }
    }

    fn add_product_events(&mut self, id: ProductId, events: Vec<ProductEvent>) {
        let rows = events
            .iter()
            .map(|e| {
                *self.mix.entry(e.event_type()).or_default() += 1;
                NewEvent::new(e.event_type(), e.schema_version() as i32, e.payload())
            })
            .collect();
        let state = self.product_state.entry(id).or_default();
        for event in events {
            state.apply(event);
        }
        self.add(domain::product::STREAM_TYPE, id.as_uuid(), rows);
    }

    fn add_order_events(&mut self, id: Uuid, events: Vec<OrderEvent>) {
        let rows = events
            .iter()
            .map(|e| {
                *self.mix.entry(e.event_type()).or_default() += 1;
                NewEvent::new(e.event_type(), e.schema_version() as i32, e.payload())
            })
            .collect();
        let state = self.orders.entry(id).or_default();
        for event in events {
            state.apply(event);
        }
        self.add(domain::order::STREAM_TYPE, id, rows);
    }

    fn add_placement(&mut self, order: Uuid, decided: domain::PlacementEvents) {
        self.add_order_events(order, decided.order);
        for (product, events) in decided.products {
            self.add_product_events(product, events);
        }
    }

    /// Appends what was gathered, in one statement.
    async fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let streams = std::mem::take(&mut self.batch);
        let claims = std::mem::take(&mut self.claims);
        self.in_batch.clear();
        self.batch_len = 0;
        let appended = self
            .store
            .append(AppendRequest {
                streams,
                metadata: EventMetadata {
                    actor: "bench-fill".into(),
                    correlation_id: Uuid::new_v4().to_string(),
                    causation_id: None,
                    command_id: Uuid::new_v4(),
                },
                occurred_at: Utc::now(),
                claims,
                idempotency: None,
            })
            .await
            .context("appending a fill batch")?;
        for event in &appended.events {
            let entry = self
                .committed
                .entry(event.stream_id)
                .or_insert((0, Hash::GENESIS));
            if event.version > entry.0 {
                *entry = (event.version, event.hash);
            }
        }
        self.events += appended.events.len() as u64;
        self.appends += 1;
        Ok(())
    }

    async fn flush_if_full(&mut self, batch_events: usize) -> Result<()> {
        if self.batch_len >= batch_events {
            self.flush().await?;
        }
        Ok(())
    }

    fn create_product(&mut self, n: usize) -> Result<()> {
        let id = ProductId::from_uuid(Uuid::now_v7());
        let sku = format!("{}-{n:06}", self.sku_prefix);
        let price = 100 + self.rng.below(9_900) as i64;
        let events = Product::default().decide(ProductCommand::Create {
            sku: Sku::parse(sku.clone())?,
            name: ProductName::parse(format!("Product {n}"))?,
            price: PriceCents::parse(price)?,
            currency: Currency::parse("EUR")?,
            initial_stock: StockQuantity::parse(1_000_000)?,
        })?;
        self.claims.push(UniqueClaim {
            scope: "sku".into(),
            value: sku,
            stream_id: id.as_uuid(),
        });
        self.products.push(id);
        self.add_product_events(id, events);
        Ok(())
    }

    fn place(&mut self) -> Result<()> {
        let count = 1 + self.rng.below(3) as usize;
        let mut items: Vec<LineItem> = Vec::with_capacity(count);
        while items.len() < count {
            let product = self.products[self.rng.index(self.products.len())];
            if items.iter().all(|l| l.product_id != product) {
                items.push(LineItem {
                    product_id: product,
                    quantity: LineQuantity::parse(1 + self.rng.below(4) as i64)?,
                });
            }
        }
        let customer = format!("customer-{}", self.rng.below(500));
        let id = Uuid::now_v7();
        let decided = domain::place_order(
            OrderId::from_uuid(id),
            CustomerId::parse(customer.clone())?,
            ActorId::parse(customer)?,
            &OrderLines::parse(items)?,
            &self.product_state,
        );
        // Refused (out of stock or discontinued): not an event, as in the command API.
        let Ok(decided) = decided else {
            return Ok(());
        };
        self.add_placement(id, decided);
        self.placed.push(id);
        self.orders_placed += 1;
        Ok(())
    }

    fn pay(&mut self) -> Result<()> {
        if self.placed.is_empty() {
            return self.place();
        }
        let id = self.placed.swap_remove(self.rng.index(self.placed.len()));
        let order = &self.orders[&id];
        // As the provider's webhook records it.
        let events = order.decide(OrderCommand::ConfirmPayment {
            amount_cents: order.total_cents(),
            currency: order
                .currency()
                .cloned()
                .context("an order has a currency")?,
            payment_id: PaymentRef::parse(format!("pi_{}", id.simple()))?,
            provider_event: domain::ProviderEventId::parse(format!("evt_{}", id.simple()))?,
        })?;
        self.add_order_events(id, events);
        self.paid.push(id);
        Ok(())
    }

    fn ship(&mut self) -> Result<()> {
        if self.paid.is_empty() {
            return self.pay();
        }
        let id = self.paid.swap_remove(self.rng.index(self.paid.len()));
        let decided = domain::ship_order(
            OrderId::from_uuid(id),
            &self.orders[&id],
            Carrier::parse("DHL")?,
            TrackingNumber::parse(format!("T{}", id.simple()))?,
            &self.product_state,
        )?;
        self.add_placement(id, decided);
        Ok(())
    }

    fn cancel(&mut self) -> Result<()> {
        let from_paid = !self.paid.is_empty() && (self.placed.is_empty() || self.rng.below(2) == 0);
        let id = if from_paid {
            self.paid.swap_remove(self.rng.index(self.paid.len()))
        } else if !self.placed.is_empty() {
            self.placed.swap_remove(self.rng.index(self.placed.len()))
        } else {
            return self.place();
        };
        let order = &self.orders[&id];
        let refund = order
            .payments()
            .refundable_payment(order.payments().refundable_cents())
            .filter(|_| from_paid)
            .map(|payment| -> Result<domain::RefundRequest> {
                Ok(domain::RefundRequest {
                    refund_id: domain::RefundId::parse(format!("re_{}", id.simple()))?,
                    payment_id: payment.payment_id.clone(),
                    amount_cents: order.payments().refundable_cents(),
                    reason: domain::Reason::parse("order cancelled")?,
                    succeeded: true,
                })
            })
            .transpose()?;
        let decided = domain::cancel_order(
            OrderId::from_uuid(id),
            order,
            CancelReason::parse("customer request")?,
            refund,
            &self.product_state,
        )?;
        self.add_placement(id, decided);
        Ok(())
    }

    fn product_command(&mut self, command: ProductCommand) -> Result<()> {
        let id = self.products[self.rng.index(self.products.len())];
        // A refusal (e.g. the price it already has) is not an event, as in the command API.
        if let Ok(events) = self.product_state[&id].decide(command) {
            self.add_product_events(id, events);
        }
        Ok(())
    }
}

/// Fills `store` with a shop history: `config.products` products, then a mix of commands
/// (per 100: 45 orders placed with 1 to 3 lines, 25 payments, 15 shipments, 5
/// cancellations, 8 restocks, 2 price changes) until at least `config.events` events.
pub async fn fill(store: &EventStore, config: &FillConfig) -> Result<FillReport> {
    anyhow::ensure!(config.products > 0, "at least one product");
    let started = Instant::now();
    let mut filler = Filler::new(store, config.seed);
    let batch_events = config.batch_events.max(1);
    for n in 0..config.products {
        filler.create_product(n)?;
        filler.flush_if_full(batch_events).await?;
    }
    filler.flush().await?;
    while filler.events + (filler.batch_len as u64) < config.events {
        match filler.rng.below(100) {
            0..45 => filler.place()?,
            45..70 => filler.pay()?,
            70..85 => filler.ship()?,
            85..90 => filler.cancel()?,
            90..98 => {
                let quantity = RestockQuantity::parse(1 + filler.rng.below(50) as i64)?;
                filler.product_command(ProductCommand::Restock { quantity })?
            }
            _ => {
                let price = PriceCents::parse(100 + filler.rng.below(9_900) as i64)?;
                filler.product_command(ProductCommand::ChangePrice { price })?
            }
        }
        filler.flush_if_full(batch_events).await?;
    }
    filler.flush().await?;
    Ok(FillReport {
        events: filler.events,
        appends: filler.appends,
        seconds: started.elapsed().as_secs_f64(),
        products: filler.products.iter().map(|p| p.as_uuid()).collect(),
        orders: filler.orders_placed,
        mix: filler.mix,
    })
}

/// Creates `count` products (initial stock 1,000,000, SKUs `{sku_prefix}-000000` on)
/// straight through the store, in appends of up to 500, and returns their ids. For
/// benchmarks that then run commands on them over HTTP.
pub async fn create_products(
    store: &EventStore,
    count: usize,
    sku_prefix: &str,
) -> Result<Vec<Uuid>> {
    create_products_with_history(store, count, 1, 500, sku_prefix).await
}

/// Creates `count` products (as [`create_products`] does) whose streams each hold `length`
/// events (at least 1): its `ProductCreated`, then `length - 1` restocks of one unit, each
/// decided by the domain, in appends of about `batch_events` events. Returns their ids.
pub async fn create_products_with_history(
    store: &EventStore,
    count: usize,
    length: usize,
    batch_events: usize,
    sku_prefix: &str,
) -> Result<Vec<Uuid>> {
    let mut filler = Filler::new(store, 7);
    filler.sku_prefix = sku_prefix.to_owned();
    for n in 0..count {
        filler.create_product(n)?;
        filler.flush_if_full(batch_events).await?;
        let id = filler.products[n];
        for _ in 1..length {
            let restock = ProductCommand::Restock {
                quantity: RestockQuantity::parse(1)?,
            };
            let events = filler.product_state[&id].decide(restock)?;
            filler.add_product_events(id, events);
            filler.flush_if_full(batch_events).await?;
        }
    }
    filler.flush().await?;
    Ok(filler.products.iter().map(|p| p.as_uuid()).collect())
}
