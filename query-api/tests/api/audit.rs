//! The audit endpoints, over a real event store: the log is built by appending the events
//! the domain decides (as the command API does), and every answer is checked against the
//! store's own readers.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::{
    ActorId, CancelReason, Carrier, Currency, CustomerId, LineItem, LineQuantity, Order,
    OrderCommand, OrderEvent, OrderId, OrderLines, PaymentRef, PriceCents, Product, ProductCommand,
    ProductEvent, ProductId, ProductName, RestockQuantity, Sku, StockQuantity, TrackingNumber,
};
use eventstore::envelope::to_json_line;
use eventstore::hashchain::{chain_hash, truncate_to_micros, HashedFields};
use eventstore::{
    AppendRequest, EventMetadata, EventStore, Hash, LoadedStream, LogCheckpoint, NewEvent,
    RecordedEvent, StreamWrite, UniqueClaim,
};
use platform::Role;
use query_api::audit::store::connect_read_only;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{assert_problem, at, TestApp};

// ---------------------------------------------------------------------------------------
// Building a log
// ---------------------------------------------------------------------------------------

fn metadata(actor: &str) -> EventMetadata {
    EventMetadata {
        actor: actor.into(),
        correlation_id: Uuid::new_v4().to_string(),
        causation_id: None,
        command_id: Uuid::now_v7(),
    }
}

fn product_rows(events: &[ProductEvent]) -> Vec<NewEvent> {
    events
        .iter()
        .map(|e| NewEvent::new(e.event_type(), e.schema_version() as i32, e.payload()))
        .collect()
}

fn order_rows(events: &[OrderEvent]) -> Vec<NewEvent> {
    events
        .iter()
        .map(|e| NewEvent::new(e.event_type(), e.schema_version() as i32, e.payload()))
        .collect()
}

/// A stored event at its type's current schema version.
fn upcast(event: &RecordedEvent) -> (u32, Value) {
    schemas::upcast(
        &event.event_type,
        event.schema_version as u32,
        event.payload.clone(),
    )
    .expect("a stored event upcasts")
}

fn fold_product(loaded: &LoadedStream) -> Product {
    Product::from_events(loaded.events.iter().map(|e| {
        let (version, payload) = upcast(e);
        ProductEvent::from_stored(&e.event_type, version, &payload).expect("a product event")
    }))
}

fn fold_order(loaded: &LoadedStream) -> Order {
    Order::from_events(loaded.events.iter().map(|e| {
        let (version, payload) = upcast(e);
        OrderEvent::from_stored(&e.event_type, version, &payload).expect("an order event")
    }))
}

/// Runs commands the way the command API does: load, decide, append at the loaded
/// versions, all of a command's events in one transaction.
#[derive(Clone)]
struct Shop {
    store: EventStore,
    actor: String,
}

impl Shop {
    fn new(store: &EventStore) -> Shop {
        Shop {
            store: store.clone(),
            actor: "root".into(),
        }
    }

    async fn append(
        &self,
        streams: Vec<StreamWrite>,
        claims: Vec<UniqueClaim>,
        occurred_at: DateTime<Utc>,
    ) {
        self.store
            .append(AppendRequest {
                streams,
                metadata: metadata(&self.actor),
                occurred_at,
                claims,
                idempotency: None,
            })
            .await
            .expect("the append succeeds");
    }

    async fn create_product(&self, sku: &str, price: i64, stock: i64, when: DateTime<Utc>) -> Uuid {
        let id = Uuid::now_v7();
        let events = Product::default()
            .decide(ProductCommand::Create {
                sku: Sku::parse(sku).unwrap(),
                name: ProductName::parse(format!("Product {sku}")).unwrap(),
                price: PriceCents::parse(price).unwrap(),
                currency: Currency::parse("EUR").unwrap(),
                initial_stock: StockQuantity::parse(stock).unwrap(),
            })
            .unwrap();
        let write = StreamWrite::after(&LoadedStream::empty(id), "product", product_rows(&events));
        let claim = UniqueClaim {
            scope: "sku".into(),
            value: sku.into(),
            stream_id: id,
        };
        self.append(vec![write], vec![claim], when).await;
        id
    }

    async fn on_product(&self, id: Uuid, command: ProductCommand, when: DateTime<Utc>) {
        let loaded = self.store.load_stream(id).await.unwrap();
        let events = fold_product(&loaded).decide(command).unwrap();
        let write = StreamWrite::after(&loaded, "product", product_rows(&events));
        self.append(vec![write], vec![], when).await;
    }

    async fn restock(&self, id: Uuid, quantity: i64, when: DateTime<Utc>) {
        let quantity = RestockQuantity::parse(quantity).unwrap();
        self.on_product(id, ProductCommand::Restock { quantity }, when)
            .await;
    }

    /// Writes an order event with the events of its lines' products, in one transaction.
    async fn multi_stream(
        &self,
        order: &LoadedStream,
        order_events: &[OrderEvent],
        products: &HashMap<ProductId, LoadedStream>,
        product_events: &[(ProductId, Vec<ProductEvent>)],
        when: DateTime<Utc>,
    ) {
        let mut streams = vec![StreamWrite::after(order, "order", order_rows(order_events))];
        for (product_id, events) in product_events {
            streams.push(StreamWrite::after(
                &products[product_id],
                "product",
                product_rows(events),
            ));
        }
        self.append(streams, vec![], when).await;
    }

    async fn load_products(
        &self,
        ids: &[Uuid],
    ) -> (
        HashMap<ProductId, LoadedStream>,
        HashMap<ProductId, Product>,
    ) {
        let loaded = self.store.load_streams(ids).await.unwrap();
        let loaded: HashMap<ProductId, LoadedStream> = loaded
            .into_iter()
            .map(|(id, stream)| (ProductId::from(id), stream))
            .collect();
        let folded = loaded
            .iter()
            .map(|(id, stream)| (*id, fold_product(stream)))
            .collect();
        (loaded, folded)
    }

    async fn place_order(
        &self,
        customer: &str,
        lines: &[(Uuid, i64)],
        when: DateTime<Utc>,
    ) -> Uuid {
        let order_id = Uuid::now_v7();
        let ids: Vec<Uuid> = lines.iter().map(|(id, _)| *id).collect();
        let (loaded, folded) = self.load_products(&ids).await;
        let lines = OrderLines::parse(
            lines
                .iter()
                .map(|(id, quantity)| LineItem {
                    product_id: ProductId::from(*id),
                    quantity: LineQuantity::parse(*quantity).unwrap(),
                })
                .collect(),
        )
        .unwrap();
        let customer = CustomerId::parse(customer).unwrap();
        let decided = domain::place_order(
            OrderId::from(order_id),
            customer.clone(),
            ActorId::from(customer),
            &lines,
            &folded,
        )
        .unwrap();
        let order = LoadedStream::empty(order_id);
        self.multi_stream(&order, &decided.order, &loaded, &decided.products, when)
            .await;
        order_id
    }

    async fn load_order(
        &self,
        order_id: Uuid,
    ) -> (
        LoadedStream,
        Order,
        HashMap<ProductId, LoadedStream>,
        HashMap<ProductId, Product>,
    ) {
        let loaded = self.store.load_stream(order_id).await.unwrap();
        let order = fold_order(&loaded);
        let ids: Vec<Uuid> = order.lines().iter().map(|l| l.product_id.into()).collect();
        let (products, folded) = self.load_products(&ids).await;
        (loaded, order, products, folded)
    }

    async fn pay(&self, order_id: Uuid, when: DateTime<Utc>) {
        let (loaded, order, _, _) = self.load_order(order_id).await;
        let events = order
            .decide(OrderCommand::Pay {
                amount_cents: order.total_cents(),
                currency: order.currency().unwrap().clone(),
                payment_ref: PaymentRef::parse("psp-1").unwrap(),
                reason: domain::Reason::parse("bank transfer").unwrap(),
            })
            .unwrap();
        let write = StreamWrite::after(&loaded, "order", order_rows(&events));
        self.append(vec![write], vec![], when).await;
    }

    async fn ship(&self, order_id: Uuid, when: DateTime<Utc>) {
        let (loaded, order, products, folded) = self.load_order(order_id).await;
        let decided = domain::ship_order(
            OrderId::from(order_id),
            &order,
            Carrier::parse("DHL").unwrap(),
            TrackingNumber::parse("JD0001").unwrap(),
            &folded,
        )
        .unwrap();
        self.multi_stream(&loaded, &decided.order, &products, &decided.products, when)
            .await;
    }

    async fn cancel(&self, order_id: Uuid, when: DateTime<Utc>) {
        let (loaded, order, products, folded) = self.load_order(order_id).await;
        let decided = domain::cancel_order(
            OrderId::from(order_id),
            &order,
            CancelReason::parse("changed my mind").unwrap(),
            None,
            &folded,
        )
        .unwrap();
        self.multi_stream(&loaded, &decided.order, &products, &decided.products, when)
            .await;
    }
}

const T0: &str = "2026-03-01T10:00:00Z";

/// `T0` plus `minutes`.
fn minute(minutes: i64) -> DateTime<Utc> {
    at(T0) + chrono::Duration::minutes(minutes)
}

/// A known history: one product through every kind of product event, one order shipped
/// and one cancelled. Version `k` of the product happened at `minute(MUG_MINUTES[k - 1])`.
struct History {
    mug: Uuid,
    shipped: Uuid,
    cancelled: Uuid,
}

async fn history(shop: &Shop) -> History {
    let mug = shop.create_product("MUG-1", 1299, 10, minute(0)).await; // mug v1
    shop.restock(mug, 5, minute(1)).await; // v2
    let shipped = shop.place_order("alice", &[(mug, 3)], minute(2)).await; // v3; order v1
    let price = PriceCents::parse(1499).unwrap();
    shop.on_product(mug, ProductCommand::ChangePrice { price }, minute(3))
        .await; // v4
    shop.pay(shipped, minute(4)).await; // order v2 (the mug has no event at minute 4)
    shop.ship(shipped, minute(5)).await; // v5; order v3
    let cancelled = shop.place_order("bob", &[(mug, 2)], minute(6)).await; // v6; order v1
    shop.cancel(cancelled, minute(7)).await; // v7; order v2
    shop.on_product(mug, ProductCommand::Discontinue, minute(8))
        .await; // v8
    History {
        mug,
        shipped,
        cancelled,
    }
}

/// The minute (after `T0`) of each version of the mug.
const MUG_MINUTES: [i64; 8] = [0, 1, 2, 3, 5, 6, 7, 8];

/// The mug's `(price_cents, on_hand, reserved, discontinued)` after each version.
const MUG_STATES: [(i64, i64, i64, bool); 8] = [
    (1299, 10, 0, false),
    (1299, 15, 0, false),
    (1299, 15, 3, false),
    (1499, 15, 3, false),
    (1499, 12, 0, false),
    (1499, 12, 2, false),
    (1499, 12, 0, false),
    (1499, 12, 0, true),
];

/// Appends `count` restocks of one unit to `id` in appends of up to 100 events.
async fn bulk_restocks(store: &EventStore, id: Uuid, count: usize) {
    let one = ProductEvent::StockAdded(domain::product::StockAdded {
        quantity: RestockQuantity::parse(1).unwrap(),
    });
    let mut left = count;
    while left > 0 {
        let batch = left.min(100);
        let loaded = store.load_stream(id).await.unwrap();
        let events = product_rows(&vec![one.clone(); batch]);
        store
            .append(AppendRequest {
                streams: vec![StreamWrite::after(&loaded, "product", events)],
                metadata: metadata("bulk"),
                occurred_at: Utc::now(),
                claims: vec![],
                idempotency: None,
            })
            .await
            .unwrap();
        left -= batch;
    }
}

// ---------------------------------------------------------------------------------------
// Reading answers
// ---------------------------------------------------------------------------------------

/// Waits until the log reader sees every committed event. The log's horizon is the oldest
/// running transaction of the whole PostgreSQL cluster, so other tests' transactions (in
/// their own databases) hold our events back while they run; once every transaction older
/// than our last one has ended, nothing can hold them back again.
async fn settle(store: &EventStore) {
    let client = store.pool().get().await.expect("a connection");
    for _ in 0..6_000 {
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE transaction_id < \
                        pg_snapshot_xmin(pg_current_snapshot())), count(*) FROM events",
                &[],
            )
            .await
            .expect("the count runs");
        if row.get::<_, i64>(0) == row.get::<_, i64>(1) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("a transaction of the cluster held the log horizon back for a minute");
}

/// The whole log in log order, as NDJSON lines, read by the store's own reader.
async fn log_lines(store: &EventStore) -> Vec<String> {
    let mut lines = Vec::new();
    let mut after = LogCheckpoint::START;
    loop {
        let page = store.read_log(after, 5000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = LogCheckpoint::after(last);
        lines.extend(page.iter().map(|e| to_json_line(e).unwrap()));
    }
    lines
}

fn stream_lines(loaded: &LoadedStream) -> Vec<String> {
    loaded
        .events
        .iter()
        .map(|e| to_json_line(e).unwrap())
        .collect()
}

/// GETs an NDJSON answer and returns its lines (each must end in `\n`).
async fn ndjson(app: &TestApp, path: &str) -> Vec<String> {
    let response = app.get(path, &app.auditor).await;
    let status = response.status();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let cache_control = response.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.text().await.expect("a body");
    assert_eq!(status, 200, "GET {path}: {body}");
    assert_eq!(content_type, "application/x-ndjson", "GET {path}");
    assert_eq!(cache_control, "private, no-store");
    if body.is_empty() {
        return Vec::new();
    }
    assert!(
        body.ends_with('\n'),
        "the last line of {path} ends in a newline"
    );
    body.lines().map(str::to_owned).collect()
}

fn position(line: &str) -> i64 {
    let event: Value = serde_json::from_str(line).expect("a JSON line");
    event["position"].as_i64().expect("a position")
}

fn state_path(id: Uuid, query: &str) -> String {
    format!("/v1/audit/streams/{id}/state{query}")
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_export_is_the_log_line_for_line() {
    let app = TestApp::spawn().await;
    let shop = Shop::new(&app.db.store);
    let history = history(&shop).await;
    // Long enough to span several of the server's pages (1,000 events each).
    bulk_restocks(&app.db.store, history.mug, 2_400).await;
    settle(&app.db.store).await;
    let log = log_lines(&app.db.store).await;
    assert_eq!(log.len(), 13 + 2_400);

    let everything = ndjson(&app, "/v1/audit/events?limit=10000").await;
    assert_eq!(everything, log);

    // The default limit is 1,000; limits cut across the server's pages exactly.
    assert_eq!(ndjson(&app, "/v1/audit/events").await, log[..1000]);
    assert_eq!(
        ndjson(&app, "/v1/audit/events?limit=1500").await,
        log[..1500]
    );
    assert_eq!(
        ndjson(&app, "/v1/audit/events?after=0&limit=3").await,
        log[..3]
    );

    // `after` resumes right after the event at that position.
    let after = position(&log[1499]);
    let rest = ndjson(&app, &format!("/v1/audit/events?after={after}&limit=10000")).await;
    assert_eq!(rest, log[1500..]);
    let after = position(&log[12]);
    let rest = ndjson(&app, &format!("/v1/audit/events?after={after}&limit=1")).await;
    assert_eq!(rest, log[13..14]);

    // After the last event there is nothing (yet).
    let last = position(log.last().unwrap());
    assert!(ndjson(&app, &format!("/v1/audit/events?after={last}"))
        .await
        .is_empty());

    // Every line is the envelope of API.md.
    let first: Value = serde_json::from_str(&log[0]).unwrap();
    let mut keys: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "event_id",
            "event_type",
            "hash",
            "metadata",
            "occurred_at",
            "payload",
            "position",
            "prev_hash",
            "schema_version",
            "sequence",
            "stream_id",
            "stream_type",
            "version"
        ]
    );
    assert_eq!(first["event_type"], "ProductCreated");
    assert_eq!(first["occurred_at"], "2026-03-01T10:00:00.000000Z");
}

#[tokio::test]
async fn paging_while_writers_append_loses_and_repeats_nothing() {
    let app = TestApp::spawn().await;
    let store = app.db.store.clone();

    // A writer whose transactions take their id early, insert late and commit later still:
    // events of later transactions commit before it, so positions are not monotonic in
    // log order and a reader going by position alone would skip or repeat events.
    let slow_finished = Arc::new(AtomicBool::new(false));
    let slow = {
        let url = app.db.url.clone();
        let finished = slow_finished.clone();
        tokio::spawn(async move {
            slow_writer(&url, 6).await;
            finished.store(true, Ordering::SeqCst);
        })
    };
    // Ordinary writers, each on its own product (so they never conflict), until the slow
    // one is done: single-event restocks and two-stream order placements.
    let writers: Vec<_> = (0..4)
        .map(|n| {
            let shop = Shop::new(&store);
            let slow_finished = slow_finished.clone();
            tokio::spawn(async move {
                let id = shop
                    .create_product(&format!("W-{n}"), 100, 1_000, Utc::now())
                    .await;
                let mut commands = 0;
                while commands < 30 || !slow_finished.load(Ordering::SeqCst) {
                    if commands % 3 == 0 {
                        shop.place_order(&format!("c{n}"), &[(id, 1)], Utc::now())
                            .await;
                    } else {
                        shop.restock(id, 1, Utc::now()).await;
                    }
                    commands += 1;
                    assert!(commands < 2_000, "the slow writer does not finish");
                }
            })
        })
        .collect();
    // Done: every writer has finished and the log reader sees all they wrote.
    let writers_done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = writers_done.clone();
        let store = store.clone();
        tokio::spawn(async move {
            slow.await.expect("the slow writer");
            for writer in writers {
                writer.await.expect("a writer");
            }
            settle(&store).await;
            done.store(true, Ordering::SeqCst);
        })
    };

    let mut seen: Vec<String> = Vec::new();
    let mut after: Option<i64> = None;
    let mut pages = 0;
    loop {
        let stopped = writers_done.load(Ordering::SeqCst);
        let path = match after {
            Some(after) => format!("/v1/audit/events?after={after}&limit=13"),
            None => "/v1/audit/events?limit=13".to_owned(),
        };
        let page = ndjson(&app, &path).await;
        pages += 1;
        assert!(page.len() <= 13);
        if let Some(last) = page.last() {
            after = Some(position(last));
        } else if stopped {
            break;
        } else {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        seen.extend(page);
        assert!(pages < 100_000, "the walk does not end");
    }
    watcher.await.unwrap();

    let log = log_lines(&app.db.store).await;
    let ids: HashSet<String> = seen
        .iter()
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["event_id"].to_string())
        .collect();
    assert_eq!(ids.len(), seen.len(), "no event is repeated");
    assert_eq!(seen.len(), log.len(), "no event is lost");
    assert_eq!(seen, log, "the pages are the log, in log order");
    let positions: Vec<i64> = log.iter().map(|line| position(line)).collect();
    assert!(
        positions.windows(2).any(|pair| pair[0] > pair[1]),
        "the slow writer made positions non-monotonic in log order"
    );
    let verify = app.get_json("/v1/audit/verify", &app.auditor).await;
    assert_eq!(verify["ok"], true, "{verify}");
}

/// Appends `rounds` events to a stream of its own, each in a transaction that takes its id
/// first, inserts a while later and commits later still.
async fn slow_writer(url: &str, rounds: usize) {
    let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("a connection");
    tokio::spawn(connection);
    let stream_id = Uuid::now_v7();
    let meta = metadata("slow");
    let mut prev_hash = Hash::GENESIS;
    for round in 0..rounds {
        let version = round as i64 + 1;
        let (event_type, payload) = if version == 1 {
            let created = Product::default()
                .decide(ProductCommand::Create {
                    sku: Sku::parse("SLOW-1").unwrap(),
                    name: ProductName::parse("Slow").unwrap(),
                    price: PriceCents::parse(5).unwrap(),
                    currency: Currency::parse("EUR").unwrap(),
                    initial_stock: StockQuantity::parse(0).unwrap(),
                })
                .unwrap();
            (created[0].event_type(), created[0].payload())
        } else {
            ("StockAdded", json!({"quantity": 1}))
        };
        let event_id = Uuid::now_v7();
        let occurred_at = truncate_to_micros(Utc::now());
        let hash = chain_hash(
            &prev_hash,
            &HashedFields {
                event_id,
                stream_type: "product",
                stream_id,
                version,
                event_type,
                schema_version: 1,
                occurred_at,
                payload: &payload,
                metadata: &meta,
                stored_metadata: None,
            },
        )
        .unwrap();
        let transaction = client.transaction().await.unwrap();
        transaction
            .execute("SELECT pg_current_xact_id()", &[])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(25)).await;
        transaction
            .execute(
                "INSERT INTO events (event_id, stream_type, stream_id, version, event_type, \
                 schema_version, payload, metadata, occurred_at, prev_hash, hash) \
                 VALUES ($1, 'product', $2, $3, $4, 1, $5, $6, $7, $8, $9)",
                &[
                    &event_id,
                    &stream_id,
                    &version,
                    &event_type,
                    &payload,
                    &serde_json::to_value(&meta).unwrap(),
                    &occurred_at,
                    &&prev_hash.0[..],
                    &&hash.0[..],
                ],
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(25)).await;
        transaction.commit().await.unwrap();
        prev_hash = hash;
    }
}

#[tokio::test]
async fn a_stream_lists_its_events_in_version_order() {
    let app = TestApp::spawn().await;
    let shop = Shop::new(&app.db.store);
    let history = history(&shop).await;

    for (id, versions) in [
        (history.mug, 8),
        (history.shipped, 3),
        (history.cancelled, 2),
    ] {
        let lines = ndjson(&app, &format!("/v1/audit/streams/{id}/events")).await;
        let loaded = app.db.store.load_stream(id).await.unwrap();
        assert_eq!(lines, stream_lines(&loaded));
        let seen: Vec<i64> = lines
            .iter()
            .map(|line| {
                serde_json::from_str::<Value>(line).unwrap()["version"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        assert_eq!(seen, (1..=versions).collect::<Vec<_>>());
    }

    // A stream longer than one of the server's pages.
    let long = shop.create_product("LONG-1", 100, 0, Utc::now()).await;
    bulk_restocks(&app.db.store, long, 2_100).await;
    let lines = ndjson(&app, &format!("/v1/audit/streams/{long}/events")).await;
    assert_eq!(lines.len(), 2_101);
    assert_eq!(
        lines,
        stream_lines(&app.db.store.load_stream(long).await.unwrap())
    );

    let missing = Uuid::new_v4();
    let response = app
        .get(&format!("/v1/audit/streams/{missing}/events"), &app.auditor)
        .await;
    let problem = assert_problem(response, 404, "not_found").await;
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains(&missing.to_string()));
}

#[tokio::test]
async fn state_as_of_a_version_or_a_time_follows_the_history() {
    let app = TestApp::spawn().await;
    let shop = Shop::new(&app.db.store);
    let history = history(&shop).await;
    let mug = history.mug;

    let check = |body: &Value, version: usize| {
        let (price, on_hand, reserved, discontinued) = MUG_STATES[version - 1];
        assert_eq!(body["stream_id"], mug.to_string(), "{body}");
        assert_eq!(body["stream_type"], "product", "{body}");
        assert_eq!(body["version"], version, "{body}");
        let state = &body["state"];
        assert_eq!(state["exists"], true, "{body}");
        assert_eq!(state["sku"], "MUG-1", "{body}");
        assert_eq!(state["currency"], "EUR", "{body}");
        assert_eq!(state["price_cents"], price, "{body}");
        assert_eq!(state["on_hand"], on_hand, "{body}");
        assert_eq!(state["reserved"], reserved, "{body}");
        assert_eq!(state["discontinued"], discontinued, "{body}");
    };
    for version in 1..=8 {
        let body = app
            .get_json(
                &state_path(mug, &format!("?version={version}")),
                &app.auditor,
            )
            .await;
        check(&body, version);
        assert_eq!(body.as_object().unwrap().len(), 4, "{body}");
        // From the instant of its event until the next one, the state is that version's.
        let since = minute(MUG_MINUTES[version - 1]);
        for when in [since, since + chrono::Duration::seconds(59)] {
            let when = when.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let body = app
                .get_json(&state_path(mug, &format!("?as_of={when}")), &app.auditor)
                .await;
            check(&body, version);
        }
    }
    // Neither: the current state. Any offset is understood.
    check(&app.get_json(&state_path(mug, ""), &app.auditor).await, 8);
    let later = app
        .get_json(
            &state_path(mug, "?as_of=2026-03-01T12:05:00%2B02:00"),
            &app.auditor,
        )
        .await;
    check(&later, 5);
    check(
        &app.get_json(
            &state_path(mug, "?as_of=2030-01-01T00:00:00Z"),
            &app.auditor,
        )
        .await,
        8,
    );

    // Orders fold too (their OrderPlaced upcast to the current schema first).
    let shipped = app
        .get_json(&state_path(history.shipped, "?version=2"), &app.auditor)
        .await;
    assert_eq!(shipped["stream_type"], "order");
    assert_eq!(shipped["version"], 2);
    assert_eq!(shipped["state"]["status"], "paid", "{shipped}");
    assert_eq!(shipped["state"]["customer_id"], "alice");
    assert_eq!(shipped["state"]["total_cents"], 3 * 1299);
    assert_eq!(shipped["state"]["payment_ref"], "psp-1");
    assert!(shipped["state"]["carrier"].is_null());
    let now = app
        .get_json(&state_path(history.shipped, ""), &app.auditor)
        .await;
    assert_eq!(now["version"], 3);
    assert_eq!(now["state"]["status"], "shipped");
    assert_eq!(now["state"]["carrier"], "DHL");
    let cancelled = app
        .get_json(
            &state_path(history.cancelled, "?as_of=2026-03-01T10:07:00Z"),
            &app.auditor,
        )
        .await;
    assert_eq!(cancelled["state"]["status"], "cancelled");
    assert_eq!(cancelled["state"]["refunded_cents"], 0);
    let placed = app
        .get_json(
            &state_path(history.cancelled, "?as_of=2026-03-01T10:06:59.999999Z"),
            &app.auditor,
        )
        .await;
    assert_eq!(placed["version"], 1);
    assert_eq!(placed["state"]["status"], "placed");

    // Beyond the current version, before the first event, or no such stream: 404.
    let response = app.get(&state_path(mug, "?version=9"), &app.auditor).await;
    let problem = assert_problem(response, 404, "not_found").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("version 8"),
        "{problem}"
    );
    let response = app
        .get(
            &state_path(mug, "?as_of=2026-03-01T09:59:59Z"),
            &app.auditor,
        )
        .await;
    assert_problem(response, 404, "not_found").await;
    for query in ["", "?version=1", "?as_of=2030-01-01T00:00:00Z"] {
        let response = app
            .get(&state_path(Uuid::new_v4(), query), &app.auditor)
            .await;
        assert_problem(response, 404, "not_found").await;
    }
}

#[tokio::test]
async fn order_placed_v1_is_upcast_before_folding() {
    let app = TestApp::spawn().await;
    let shop = Shop::new(&app.db.store);
    let mug = shop.create_product("MUG-1", 1299, 10, minute(0)).await;
    // An order recorded before OrderPlaced had `placed_by` (schema version 1).
    let order_id = Uuid::now_v7();
    let v1 = NewEvent::new(
        "OrderPlaced",
        1,
        json!({"customer_id": "alice", "currency": "EUR", "total_cents": 2598,
               "lines": [{"product_id": mug, "quantity": 2, "unit_price_cents": 1299}]}),
    );
    let order = StreamWrite::after(&LoadedStream::empty(order_id), "order", vec![v1]);
    shop.append(vec![order], vec![], minute(1)).await;

    let body = app.get_json(&state_path(order_id, ""), &app.auditor).await;
    assert_eq!(body["version"], 1);
    assert_eq!(body["state"]["status"], "placed", "{body}");
    assert_eq!(body["state"]["customer_id"], "alice");
    assert_eq!(
        body["state"]["placed_by"], "alice",
        "v1 orders were placed by the customer"
    );
    assert_eq!(body["state"]["total_cents"], 2598);
    // The export shows the event as recorded, not upcast.
    let lines = ndjson(&app, &format!("/v1/audit/streams/{order_id}/events")).await;
    let recorded: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(recorded["schema_version"], 1);
    assert!(recorded["payload"].get("placed_by").is_none());
}

#[tokio::test]
async fn an_undecodable_event_is_a_clear_500() {
    let app = TestApp::spawn().await;
    let shop = Shop::new(&app.db.store);
    let id = Uuid::now_v7();
    let odd = NewEvent::new("ProductTeleported", 1, json!({"to": "mars"}));
    let write = StreamWrite::after(&LoadedStream::empty(id), "product", vec![odd]);
    shop.append(vec![write], vec![], minute(0)).await;
    let response = app.get(&state_path(id, ""), &app.auditor).await;
    let problem = assert_problem(response, 500, "undecodable_event").await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains(&id.to_string()) && detail.contains("ProductTeleported"),
        "{detail}"
    );
    // The export still shows it as recorded.
    assert_eq!(
        ndjson(&app, &format!("/v1/audit/streams/{id}/events"))
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn verify_names_exactly_the_tampered_event() {
    let app = TestApp::spawn().await;
    let shop = Shop::new(&app.db.store);
    let history = history(&shop).await;

    let report = app.get_json("/v1/audit/verify", &app.auditor).await;
    assert_eq!(
        (
            &report["ok"],
            &report["streams_checked"],
            &report["events_checked"],
            &report["failures"]
        ),
        (&json!(true), &json!(3), &json!(13), &json!([])),
        "{report}"
    );
    // No sequencer runs here: the tree is empty, and says so.
    assert_eq!(report["tree_size"], 0, "{report}");

    // Someone with write access changes the price the mug was repriced to.
    app.execute(
        "UPDATE events SET payload = jsonb_set(payload, '{price_cents}', '1') \
         WHERE stream_id = $1 AND version = 4",
        &[&history.mug],
    )
    .await;
    let report = app.get_json("/v1/audit/verify", &app.auditor).await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(
        (
            report["streams_checked"].clone(),
            report["events_checked"].clone()
        ),
        (json!(3), json!(13))
    );
    let failures = report["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{report}");
    assert_eq!(failures[0]["stream_id"], history.mug.to_string());
    assert_eq!(failures[0]["version"], 4);
    assert!(
        failures[0]["reason"].as_str().unwrap().contains("hash"),
        "{report}"
    );

    let one = app
        .get_json(
            &format!("/v1/audit/verify?stream_id={}", history.mug),
            &app.auditor,
        )
        .await;
    assert_eq!(one["ok"], false);
    assert_eq!(one["failures"], report["failures"]);
    let other = app
        .get_json(
            &format!("/v1/audit/verify?stream_id={}", history.shipped),
            &app.auditor,
        )
        .await;
    assert_eq!(
        other,
        json!({"ok": true, "streams_checked": 1, "events_checked": 3, "failures": []})
    );
    let response = app
        .get(
            &format!("/v1/audit/verify?stream_id={}", Uuid::new_v4()),
            &app.auditor,
        )
        .await;
    assert_problem(response, 404, "not_found").await;
}

#[tokio::test]
async fn only_auditors_may_read_the_audit_endpoints() {
    let app = TestApp::spawn().await;
    let shop = Shop::new(&app.db.store);
    let mug = shop.create_product("MUG-1", 1299, 10, minute(0)).await;
    let paths = [
        "/v1/audit/events".to_owned(),
        format!("/v1/audit/streams/{mug}/events"),
        format!("/v1/audit/streams/{mug}/state"),
        "/v1/audit/verify".to_owned(),
    ];
    let admin_and_auditor = app.token("both", &[Role::Admin, Role::Auditor]);
    let customer = app.token("alice", &[Role::Customer]);
    let nobody = app.token("nobody", &[]);
    let expired = app.keys.mint("audit", &[Role::Auditor], -3600).unwrap();
    let foreign = platform::JwtKeys::hs256(b"another secret")
        .mint("audit", &[Role::Auditor], 3600)
        .unwrap();
    for path in &paths {
        assert_problem(app.get_anonymous(path).await, 401, "unauthenticated").await;
        for token in ["not-a-jwt", &expired, &foreign] {
            assert_problem(app.get(path, token).await, 401, "unauthenticated").await;
        }
        // Authentication comes before input checks.
        let bad_input = format!("{path}?limit=0&version=0&x=1");
        assert_problem(app.get_anonymous(&bad_input).await, 401, "unauthenticated").await;
        for token in [&app.admin, &app.viewer, &customer, &nobody] {
            assert_problem(app.get(path, token).await, 403, "forbidden").await;
        }
        for token in [&app.auditor, &admin_and_auditor] {
            let response = app.get(path, token).await;
            assert_eq!(response.status(), 200, "{path}");
        }
    }
    let bad_id = "/v1/audit/streams/not-a-uuid/state";
    assert_problem(app.get_anonymous(bad_id).await, 401, "unauthenticated").await;
}

#[tokio::test]
async fn bad_parameters_are_400_and_unknown_positions_404() {
    let app = TestApp::spawn().await;
    let shop = Shop::new(&app.db.store);
    let mug = shop.create_product("MUG-1", 1299, 10, minute(0)).await;
    settle(&app.db.store).await;
    let bad = [
        "/v1/audit/events?after=abc".to_owned(),
        "/v1/audit/events?after=1.5".to_owned(),
        "/v1/audit/events?after=-1".to_owned(),
        "/v1/audit/events?limit=0".to_owned(),
        "/v1/audit/events?limit=10001".to_owned(),
        "/v1/audit/events?limit=ten".to_owned(),
        "/v1/audit/events?from=1".to_owned(),
        "/v1/audit/streams/not-a-uuid/events".to_owned(),
        format!("/v1/audit/streams/{mug}/events?version=1"),
        "/v1/audit/streams/not-a-uuid/state".to_owned(),
        state_path(mug, "?version=0"),
        state_path(mug, "?version=-2"),
        state_path(mug, "?version=two"),
        state_path(mug, "?as_of=yesterday"),
        state_path(mug, "?as_of=2026-03-01"),
        state_path(mug, "?as_of="),
        state_path(mug, "?version=1&as_of=2026-03-01T10:00:00Z"),
        state_path(mug, "?at=2026-03-01T10:00:00Z"),
        "/v1/audit/verify?stream_id=42".to_owned(),
        "/v1/audit/verify?stream=x".to_owned(),
        "/v1/audit/events?after_sequence=-1".to_owned(),
        "/v1/audit/events?after=1&after_sequence=1".to_owned(),
        "/v1/audit/verify?tree_size=1".to_owned(),
        "/v1/audit/verify?tree_size=1&root_hash=00&timestamp=t&key_id=k&signature=s".to_owned(),
        "/v1/audit/proofs/inclusion?sequence=0&tree_size=1".to_owned(),
        "/v1/audit/proofs/inclusion?sequence=2&tree_size=1".to_owned(),
        "/v1/audit/proofs/inclusion?sequence=-1&tree_size=1".to_owned(),
        "/v1/audit/proofs/inclusion?sequence=1".to_owned(),
        "/v1/audit/proofs/consistency?from=2&to=1".to_owned(),
        "/v1/audit/proofs/consistency?from=0&to=1".to_owned(),
        "/v1/audit/proofs/consistency?from=1".to_owned(),
    ];
    for path in &bad {
        let problem =
            assert_problem(app.get(path, &app.auditor).await, 400, "invalid_request").await;
        assert!(!problem["detail"].as_str().unwrap().is_empty(), "{path}");
    }
    // A position no event has is 404; the limit bounds are inclusive.
    let response = app.get("/v1/audit/events?after=999999", &app.auditor).await;
    assert_problem(response, 404, "not_found").await;
    assert_eq!(ndjson(&app, "/v1/audit/events?limit=1").await.len(), 1);
    assert_eq!(ndjson(&app, "/v1/audit/events?limit=10000").await.len(), 1);
}

#[tokio::test]
async fn without_an_event_store_the_audit_endpoints_are_503() {
    let app = TestApp::spawn_with(|settings| settings.database_url = None).await;
    for path in [
        "/v1/audit/events",
        "/v1/audit/verify",
        "/v1/audit/checkpoint",
        "/v1/audit/public-key",
        "/v1/audit/proofs/inclusion?sequence=1&tree_size=1",
        "/v1/audit/proofs/consistency?from=1&to=1",
    ] {
        assert_problem(app.get_anonymous(path).await, 401, "unauthenticated").await;
        assert_problem(app.get(path, &app.admin).await, 403, "forbidden").await;
        let problem = assert_problem(
            app.get(path, &app.auditor).await,
            503,
            "event_store_not_configured",
        )
        .await;
        assert!(problem["detail"].as_str().unwrap().contains("DATABASE_URL"));
    }
    // The read models are still served.
    app.get_json("/v1/products", &app.viewer).await;
}

#[tokio::test]
async fn the_audit_connection_cannot_write() {
    let app = TestApp::spawn().await;
    let shop = Shop::new(&app.db.store);
    shop.create_product("MUG-1", 1299, 10, minute(0)).await;
    settle(&app.db.store).await;
    // Even a URL that asks for writable sessions gets read-only ones.
    let writable = format!(
        "{}?options=-c%20default_transaction_read_only%3Doff",
        app.db.url
    );
    for url in [app.db.url.as_str(), writable.as_str()] {
        let pool = connect_read_only(url, 1).expect("a pool");
        let client = pool.get().await.expect("a connection");
        let setting = client
            .query_one("SHOW default_transaction_read_only", &[])
            .await
            .unwrap();
        assert_eq!(setting.get::<_, String>(0), "on");
        let refused = [
            "UPDATE events SET payload = '{}'::jsonb",
            "DELETE FROM events",
            "INSERT INTO relay_checkpoints (name) VALUES ('audit')",
            "CREATE TABLE audit_scratch (id int)",
        ];
        for sql in refused {
            let error = client.execute(sql, &[]).await.expect_err(sql);
            let code = error.as_db_error().map(|e| e.code().code().to_owned());
            assert_eq!(code.as_deref(), Some("25006"), "{sql}: {error}");
        }
        // Reading the log works through it, as the audit endpoints do.
        drop(client);
        let store = EventStore::new(pool.clone());
        assert_eq!(
            store
                .read_log(LogCheckpoint::START, 10)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(store.verify(None).await.unwrap().ok());
    }
    let untouched = app
        .db
        .store
        .read_log(LogCheckpoint::START, 10)
        .await
        .unwrap();
    assert_eq!(untouched.len(), 1);
}
