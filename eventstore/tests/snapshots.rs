//! Snapshots: a snapshot at any version plus the events after it folds to exactly the
//! state the whole stream folds to (a property test over random histories, then the same
//! through PostgreSQL), and snapshots that cannot be used are ignored, never read wrong.

use std::collections::HashMap;

use chrono::Utc;
use domain::{
    cancel_order, place_order, ship_order, ActorId, CancelReason, Carrier, CustomerId, Order,
    OrderCommand, OrderId, OrderLines, PaymentRef, Product, ProductCommand, ProductEvent,
    ProductId, TrackingNumber,
};
use eventstore::testing::TestDatabase;
use eventstore::{
    fold_version, AggregateState, AppendRequest, EventMetadata, EventStore, Hash, NewEvent,
    RecordedEvent, Snapshot, StreamState, StreamWrite,
};
use proptest::prelude::*;
use serde_json::json;
use uuid::Uuid;

fn metadata() -> EventMetadata {
    EventMetadata {
        actor: "tester".into(),
        correlation_id: "c".into(),
        causation_id: None,
        command_id: Uuid::nil(),
    }
}

/// Records `events` of one stream as the store would (versions from 1, chained).
fn recorded(stream_type: &str, stream_id: Uuid, events: &[NewEvent]) -> Vec<RecordedEvent> {
    let mut prev_hash = Hash::GENESIS;
    events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            let version = index as i64 + 1;
            let hash = Hash([version as u8; 32]);
            let recorded = RecordedEvent {
                position: version,
                transaction_id: 1,
                event_id: event.event_id,
                stream_type: stream_type.into(),
                stream_id,
                version,
                event_type: event.event_type.clone(),
                schema_version: event.schema_version,
                payload: event.payload.clone(),
                metadata: metadata(),
                occurred_at: Utc::now(),
                prev_hash,
                hash,
                sequence: None,
                stored_metadata: None,
            };
            prev_hash = hash;
            recorded
        })
        .collect()
}

fn rows(events: impl IntoIterator<Item = (&'static str, u32, serde_json::Value)>) -> Vec<NewEvent> {
    events
        .into_iter()
        .map(|(event_type, version, payload)| NewEvent::new(event_type, version as i32, payload))
        .collect()
}

/// One step of a random product history.
#[derive(Debug, Clone)]
enum Step {
    Restock(i64),
    Reserve(usize, i64),
    Release(usize),
    Ship(usize),
    Price(i64),
    Discontinue,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1i64..50).prop_map(Step::Restock),
        4 => (0usize..4, 1i64..20).prop_map(|(o, q)| Step::Reserve(o, q)),
        2 => (0usize..4).prop_map(Step::Release),
        2 => (0usize..4).prop_map(Step::Ship),
        1 => (1i64..10_000).prop_map(Step::Price),
        1 => Just(Step::Discontinue),
    ]
}

/// The events a random product history appends (refused steps append nothing).
fn product_history(initial_stock: i64, steps: &[Step]) -> Vec<NewEvent> {
    let orders: Vec<OrderId> = (0..4).map(|_| OrderId::from_uuid(Uuid::now_v7())).collect();
    let mut held: HashMap<usize, i64> = HashMap::new();
    let mut product = Product::default();
    let mut events = Vec::new();
    let create = ProductCommand::Create {
        sku: "SKU-1".try_into().expect("sku"),
        name: "Mug".try_into().expect("name"),
        price: 1299.try_into().expect("price"),
        currency: "EUR".try_into().expect("currency"),
        initial_stock: initial_stock.try_into().expect("stock"),
    };
    let mut commands = vec![(create, None)];
    for step in steps {
        let command = match step {
            Step::Restock(q) => ProductCommand::Restock {
                quantity: (*q).try_into().expect("quantity"),
            },
            Step::Reserve(o, q) if !held.contains_key(o) => ProductCommand::Reserve {
                order_id: orders[*o],
                quantity: (*q).try_into().expect("quantity"),
            },
            Step::Release(o) | Step::Ship(o) if held.contains_key(o) => {
                let quantity = held[o].try_into().expect("quantity");
                if matches!(step, Step::Release(_)) {
                    ProductCommand::Release {
                        order_id: orders[*o],
                        quantity,
                    }
                } else {
                    ProductCommand::Ship {
                        order_id: orders[*o],
                        quantity,
                    }
                }
            }
            Step::Price(p) => ProductCommand::ChangePrice {
                price: (*p).try_into().expect("price"),
            },
            Step::Discontinue => ProductCommand::Discontinue,
            _ => continue,
        };
        commands.push((command, Some(step.clone())));
    }
    for (command, step) in commands {
        let Ok(decided) = product.decide(command) else {
            continue;
        };
        match step {
            Some(Step::Reserve(o, q)) => {
                held.insert(o, q);
            }
            Some(Step::Release(o) | Step::Ship(o)) => {
                held.remove(&o);
            }
            _ => {}
        }
        for event in decided {
            events.push(NewEvent::new(
                event.event_type(),
                event.schema_version() as i32,
                event.payload(),
            ));
            product.apply(event);
        }
    }
    events
}

/// The events of a random order's life: placed (a v1 or a current payload), then maybe paid, then
/// maybe shipped or cancelled.
fn order_history(v1: bool, paid: bool, end: u8) -> Vec<NewEvent> {
    let order_id = OrderId::from_uuid(Uuid::now_v7());
    let product_id = ProductId::from_uuid(Uuid::now_v7());
    let mut product = Product::default();
    for event in product
        .decide(ProductCommand::Create {
            sku: "SKU-1".try_into().expect("sku"),
            name: "Mug".try_into().expect("name"),
            price: 500.try_into().expect("price"),
            currency: "EUR".try_into().expect("currency"),
            initial_stock: 10.try_into().expect("stock"),
        })
        .expect("create")
    {
        product.apply(event);
    }
    let mut products = HashMap::from([(product_id, product)]);
    let lines: OrderLines =
        serde_json::from_value(json!([{"product_id": product_id, "quantity": 2}])).expect("lines");
    let customer = CustomerId::parse("alice").expect("customer");
    let placed = place_order(
        order_id,
        customer.clone(),
        ActorId::parse("alice").expect("actor"),
        &lines,
        &products,
    )
    .expect("place");
    let mut order = Order::default();
    let mut events = Vec::new();
    for event in placed.order {
        let mut payload = event.payload();
        let mut version = event.schema_version();
        if v1 {
            let object = payload.as_object_mut().expect("object");
            object.remove("placed_by");
            object.remove("shipping_address");
            version = 1;
        }
        events.push(NewEvent::new(event.event_type(), version as i32, payload));
        order.apply(event);
    }
    for (id, product_events) in placed.products {
        let product: &mut Product = products.get_mut(&id).expect("product");
        product_events
            .into_iter()
            .for_each(|e: ProductEvent| product.apply(e));
    }
    let mut follow = |decided: Vec<domain::OrderEvent>, order: &mut Order| {
        for event in decided {
            events.push(NewEvent::new(
                event.event_type(),
                event.schema_version() as i32,
                event.payload(),
            ));
            order.apply(event);
        }
    };
    if paid {
        let pay = order
            .decide(OrderCommand::Pay {
                amount_cents: 1000,
                currency: "EUR".try_into().expect("currency"),
                payment_ref: PaymentRef::parse("psp-1").expect("ref"),
                reason: domain::Reason::parse("bank transfer").expect("reason"),
            })
            .expect("pay");
        follow(pay, &mut order);
    }
    let ended = match end {
        1 if paid => ship_order(
            order_id,
            &order,
            Carrier::parse("DHL").expect("carrier"),
            TrackingNumber::parse("T1").expect("tracking"),
            &products,
        )
        .ok(),
        2 => cancel_order(
            order_id,
            &order,
            CancelReason::parse("changed my mind").expect("reason"),
            paid.then(|| domain::RefundRequest {
                refund_id: domain::RefundId::parse("offline_re_1").expect("refund id"),
                payment_id: PaymentRef::parse("psp-1").expect("ref"),
                amount_cents: 1000,
                reason: domain::Reason::parse("order cancelled").expect("reason"),
                succeeded: true,
            }),
            &products,
        )
        .ok(),
        _ => None,
    };
    if let Some(ended) = ended {
        follow(ended.order, &mut order);
    }
    events
}

/// Folds the whole stream, then, for every version, a snapshot there (through its JSON
/// form, as stored) plus the events after it: each must equal the whole fold.
fn check_every_snapshot(events: &[RecordedEvent]) -> Result<(), TestCaseError> {
    let stream_id = events[0].stream_id;
    let mut whole = StreamState::empty(stream_id);
    for event in events {
        whole
            .apply(event)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    let mut prefix = StreamState::empty(stream_id);
    for at in 0..=events.len() {
        if at > 0 {
            prefix
                .apply(&events[at - 1])
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        let mut resumed =
            match Snapshot::of(&prefix).map_err(|e| TestCaseError::fail(e.to_string()))? {
                None => StreamState::empty(stream_id),
                Some(snapshot) => StreamState {
                    stream_id,
                    version: snapshot.version,
                    last_hash: snapshot.last_hash,
                    aggregate: Some(
                        AggregateState::from_json(snapshot.stream_type, snapshot.state)
                            .map_err(TestCaseError::fail)?,
                    ),
                    snapshot_version: snapshot.version,
                    events_folded: 0,
                },
            };
        for event in &events[at..] {
            resumed
                .apply(event)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        prop_assert_eq!(
            &resumed.aggregate,
            &whole.aggregate,
            "snapshot at version {}",
            at
        );
        prop_assert_eq!(resumed.version, whole.version);
        prop_assert_eq!(resumed.last_hash, whole.last_hash);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_product_snapshot_plus_its_tail_is_the_whole_fold(
        initial_stock in 0i64..30,
        steps in prop::collection::vec(step(), 0..60),
    ) {
        let events = recorded("product", Uuid::now_v7(), &product_history(initial_stock, &steps));
        check_every_snapshot(&events)?;
    }

    #[test]
    fn an_order_snapshot_plus_its_tail_is_the_whole_fold(
        v1 in any::<bool>(),
        paid in any::<bool>(),
        end in 0u8..3,
    ) {
        let events = recorded("order", Uuid::now_v7(), &order_history(v1, paid, end));
        check_every_snapshot(&events)?;
    }
}

fn request(writes: Vec<StreamWrite>) -> AppendRequest {
    AppendRequest {
        streams: writes,
        metadata: metadata(),
        occurred_at: Utc::now(),
        claims: vec![],
        idempotency: None,
    }
}

/// A product stream of `1 + restocks` events, appended in batches; returns its id.
async fn product_stream(store: &EventStore, restocks: usize) -> anyhow::Result<Uuid> {
    let id = Uuid::now_v7();
    let create = rows([(
        "ProductCreated",
        1,
        json!({"sku": format!("S-{}", id.simple()), "name": "Mug", "price_cents": 100,
               "currency": "EUR", "initial_stock": 0}),
    )]);
    store
        .append(request(vec![StreamWrite::after(
            &eventstore::LoadedStream::empty(id),
            "product",
            create,
        )]))
        .await?;
    let mut left = restocks;
    while left > 0 {
        let batch = left.min(50);
        let state = store.load_states(&[id]).await?.remove(&id).expect("loaded");
        let events = rows((0..batch).map(|i| ("StockAdded", 1, json!({"quantity": i + 1}))));
        store
            .append(request(vec![StreamWrite::onto(&state, "product", events)]))
            .await?;
        left -= batch;
    }
    Ok(id)
}

/// The whole fold of a stream, from its events alone.
async fn whole_fold(store: &EventStore, id: Uuid) -> anyhow::Result<StreamState> {
    let stream = store.load_stream(id).await?;
    let mut state = StreamState::empty(id);
    for event in &stream.events {
        state.apply(event)?;
    }
    Ok(state)
}

fn same_state(a: &StreamState, b: &StreamState) {
    assert_eq!(
        (a.version, a.last_hash, &a.aggregate),
        (b.version, b.last_hash, &b.aggregate)
    );
}

#[tokio::test]
async fn loading_reads_the_newest_snapshot_and_only_the_events_after_it() -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    let store = &db.store;
    let id = product_stream(store, 120).await?;
    let whole = whole_fold(store, id).await?;
    assert_eq!(whole.version, 121);

    // No snapshot yet: the whole stream is folded.
    let loaded = store.load_states(&[id]).await?.remove(&id).expect("loaded");
    same_state(&loaded, &whole);
    assert_eq!((loaded.snapshot_version, loaded.events_folded), (0, 121));

    // A snapshot at version 100: 21 events after it.
    let mut at_100 = StreamState::empty(id);
    for event in store.load_stream(id).await?.events.iter().take(100) {
        at_100.apply(event)?;
    }
    let snapshot = Snapshot::of(&at_100)?.expect("a snapshot");
    assert_eq!(
        store
            .save_snapshots(std::slice::from_ref(&snapshot))
            .await?,
        1
    );
    let loaded = store.load_states(&[id]).await?.remove(&id).expect("loaded");
    same_state(&loaded, &whole);
    assert_eq!((loaded.snapshot_version, loaded.events_folded), (100, 21));

    // An older snapshot never replaces a newer one.
    let mut at_50 = StreamState::empty(id);
    for event in store.load_stream(id).await?.events.iter().take(50) {
        at_50.apply(event)?;
    }
    assert_eq!(
        store
            .save_snapshots(&[Snapshot::of(&at_50)?.expect("snapshot")])
            .await?,
        0
    );
    let loaded = store.load_states(&[id]).await?.remove(&id).expect("loaded");
    assert_eq!(loaded.snapshot_version, 100);

    // A snapshot at the head: nothing to fold. Several streams load in one call, and an
    // unknown id is an empty stream.
    let other = product_stream(store, 3).await?;
    store
        .save_snapshots(&[Snapshot::of(&whole)?.expect("snapshot")])
        .await?;
    let nobody = Uuid::now_v7();
    let states = store.load_states(&[id, other, nobody]).await?;
    same_state(&states[&id], &whole);
    assert_eq!(states[&id].events_folded, 0);
    same_state(&states[&other], &whole_fold(store, other).await?);
    assert!(!states[&nobody].exists());

    // Snapshots are only an optimization: deleted, the stream still loads.
    assert_eq!(store.delete_snapshots().await?, 1);
    same_state(&store.load_states(&[id]).await?[&id], &whole);
    Ok(())
}

#[tokio::test]
async fn snapshots_of_another_fold_or_unreadable_ones_are_ignored() -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    let store = &db.store;
    let id = product_stream(store, 10).await?;
    let whole = whole_fold(store, id).await?;
    let client = store.pool().get().await?;
    let write = "INSERT INTO snapshots (stream_id, stream_type, fold_version, version, \
                 last_hash, state) VALUES ($1, 'product', $2, 5, $3, $4) \
                 ON CONFLICT (stream_id) DO UPDATE SET fold_version = EXCLUDED.fold_version, \
                 state = EXCLUDED.state";
    // Written by another fold, with a state that would be wrong today: ignored.
    let wrong = json!({"exists": true, "sku": "X", "name": "Old", "price_cents": 1,
                       "currency": "EUR", "on_hand": 999_999, "reserved": 0,
                       "discontinued": true});
    let hash = vec![7u8; 32];
    client
        .execute(write, &[&id, &(fold_version() ^ 1), &hash, &wrong])
        .await?;
    let loaded = store.load_states(&[id]).await?.remove(&id).expect("loaded");
    same_state(&loaded, &whole);
    assert_eq!(loaded.snapshot_version, 0);

    // This fold's number but a state it cannot read: ignored, folded from the start.
    let unreadable = json!({"colour": "red"});
    client
        .execute(write, &[&id, &fold_version(), &hash, &unreadable])
        .await?;
    let loaded = store.load_states(&[id]).await?.remove(&id).expect("loaded");
    same_state(&loaded, &whole);
    assert_eq!(loaded.snapshot_version, 0);
    Ok(())
}
