//! Every event the domain can emit validates against its schema; the schemas and the
//! domain know the same event types; the schemas are strict.

mod common;

use std::collections::{BTreeSet, HashMap};

use common::*;
use domain::*;
use serde_json::{json, Value};

/// One emitted event in its stored form.
#[derive(Debug, Clone)]
struct Stored {
    stream_type: &'static str,
    event_type: &'static str,
    schema_version: u32,
    payload: Value,
}

impl From<&ProductEvent> for Stored {
    fn from(e: &ProductEvent) -> Self {
        Self {
            stream_type: product::STREAM_TYPE,
            event_type: e.event_type(),
            schema_version: e.schema_version(),
            payload: e.payload(),
        }
    }
}

impl From<&OrderEvent> for Stored {
    fn from(e: &OrderEvent) -> Self {
        Self {
            stream_type: order::STREAM_TYPE,
            event_type: e.event_type(),
            schema_version: e.schema_version(),
            payload: e.payload(),
        }
    }
}

impl From<&CustomerEvent> for Stored {
    fn from(e: &CustomerEvent) -> Self {
        Self {
            stream_type: customer::STREAM_TYPE,
            event_type: e.event_type(),
            schema_version: e.schema_version(),
            payload: e.payload(),
        }
    }
}

impl From<&WebhookEvent> for Stored {
    fn from(e: &WebhookEvent) -> Self {
        Self {
            stream_type: webhook::STREAM_TYPE,
            event_type: e.event_type(),
            schema_version: e.schema_version(),
            payload: e.payload(),
        }
    }
}

/// The webhook subscription events, written by the webhook routes (no aggregate decides
/// them), with edge values.
fn webhook_events() -> Vec<WebhookEvent> {
    let id = uuid::Uuid::from_u128(42);
    vec![
        webhook::WebhookSubscribed {
            subscription_id: id,
            url: format!("https://{}.example.com/hook", "h".repeat(60)),
            event_types: vec!["OrderPaid".into(); 32],
            subscribed_by: ActorId::parse(chars(255)).unwrap(),
        }
        .into(),
        webhook::WebhookUnsubscribed {
            subscription_id: id,
            unsubscribed_by: ActorId::parse("a").unwrap(),
        }
        .into(),
    ]
}

/// Collects decided events and keeps the aggregates' states up to date.
#[derive(Default)]
struct World {
    products: HashMap<ProductId, Product>,
    orders: HashMap<OrderId, Order>,
    customers: HashMap<CustomerId, Customer>,
    log: Vec<Stored>,
}

impl World {
    fn product(&mut self, id: ProductId, command: ProductCommand) {
        let state = self.products.entry(id).or_default();
        let events = state.decide(command).expect("product command accepted");
        for e in events {
            self.log.push((&e).into());
            state.apply(e);
        }
    }

    fn order(&mut self, id: OrderId, command: OrderCommand) {
        let state = self.orders.entry(id).or_default();
        let events = state.decide(command).expect("order command accepted");
        for e in events {
            self.log.push((&e).into());
            state.apply(e);
        }
    }

    fn customer(&mut self, id: CustomerId, command: CustomerCommand) {
        let state = self.customers.entry(id).or_default();
        let events = state.decide(command).expect("customer command accepted");
        for e in events {
            self.log.push((&e).into());
            state.apply(e);
        }
    }

    fn placement(&mut self, order_id: OrderId, events: PlacementEvents) {
        let order = self.orders.entry(order_id).or_default();
        for e in events.order {
            self.log.push((&e).into());
            order.apply(e);
        }
        for (id, product_events) in events.products {
            let product = self.products.get_mut(&id).expect("product loaded");
            for e in product_events {
                self.log.push((&e).into());
                product.apply(e);
            }
        }
    }

    fn place(
        &mut self,
        order_id: OrderId,
        customer: CustomerId,
        placed_by: ActorId,
        lines: &OrderLines,
    ) {
        let events = place_order(order_id, customer, placed_by, lines, &self.products)
            .expect("order placed");
        self.placement(order_id, events);
    }

    fn ship(&mut self, order_id: OrderId, carrier: Carrier, tracking: TrackingNumber) {
        let events = ship_order(
            order_id,
            &self.orders[&order_id],
            carrier,
            tracking,
            &self.products,
        )
        .expect("order shipped");
        self.placement(order_id, events);
    }

    fn cancel(&mut self, order_id: OrderId, reason: CancelReason, refund: Option<RefundRequest>) {
        let events = cancel_order(
            order_id,
            &self.orders[&order_id],
            reason,
            refund,
            &self.products,
        )
        .expect("order cancelled");
        self.placement(order_id, events);
    }
}

fn create(sku: Sku, name: ProductName, price_cents: i64, stock: i64) -> ProductCommand {
    ProductCommand::Create {
        sku,
        name,
        price: price(price_cents),
        currency: eur(),
        initial_stock: StockQuantity::parse(stock).unwrap(),
    }
}

/// Drives every command through the real `decide` and placement services, with edge
/// values: longest and shortest strings, smallest and largest numbers, 100-line orders.
fn emitted_by_decide() -> Vec<Stored> {
    let mut w = World::default();

    // A product at every maximum, one at every minimum.
    w.product(
        pid(1000),
        create(
            longest_sku(),
            ProductName::parse(chars(200)).unwrap(),
            PriceCents::MAX,
            StockQuantity::MAX,
        ),
    );
    w.product(
        pid(1001),
        create(
            Sku::parse("x").unwrap(),
            ProductName::parse("m").unwrap(),
            1,
            0,
        ),
    );
    w.product(
        pid(1001),
        ProductCommand::ChangePrice {
            price: price(PriceCents::MAX),
        },
    );
    w.product(pid(1001), ProductCommand::ChangePrice { price: price(1) });
    w.product(
        pid(1001),
        ProductCommand::Restock {
            quantity: RestockQuantity::parse(RestockQuantity::MAX).unwrap(),
        },
    );
    w.product(
        pid(1001),
        ProductCommand::Restock {
            quantity: RestockQuantity::parse(1).unwrap(),
        },
    );

    // 100 products at the highest price; an order of 100 lines × 1,000 units.
    for n in 0..100 {
        w.product(
            pid(n),
            create(
                Sku::parse(format!("SKU-{n}")).unwrap(),
                ProductName::parse(format!("Product {n}")).unwrap(),
                PriceCents::MAX,
                2_000,
            ),
        );
    }
    let biggest = OrderLines::parse(
        (0..100)
            .map(|n| LineItem {
                product_id: pid(n),
                quantity: qty(LineQuantity::MAX),
            })
            .collect(),
    )
    .unwrap();
    // Placed by an admin (the longest sub) on the longest customer's behalf.
    let longest_customer = CustomerId::parse(chars(255)).unwrap();
    let longest_actor = ActorId::parse(chars(255)).unwrap();
    w.place(oid(1), longest_customer, longest_actor, &biggest);
    assert_eq!(w.orders[&oid(1)].total_cents(), MAX_TOTAL_CENTS);
    w.order(
        oid(1),
        OrderCommand::Pay {
            amount_cents: MAX_TOTAL_CENTS,
            currency: eur(),
            payment_ref: PaymentRef::parse(chars(200)).unwrap(),
            reason: Reason::parse(chars(500)).unwrap(),
        },
    );
    // The longest refund: what was paid, in two parts, one of which the provider refused.
    for (refund, amount) in [("r1", 1), ("r2", MAX_TOTAL_CENTS - 1)] {
        w.order(
            oid(1),
            OrderCommand::Refund(RefundRequest {
                refund_id: RefundId::parse(format!("{refund}{}", chars(198))).unwrap(),
                payment_id: PaymentRef::parse(chars(200)).unwrap(),
                amount_cents: amount,
                reason: Reason::parse(chars(500)).unwrap(),
                succeeded: false,
            }),
        );
    }
    w.order(
        oid(1),
        OrderCommand::SettleRefund {
            refund_id: RefundId::parse(format!("r1{}", chars(198))).unwrap(),
            provider_event: Some(ProviderEventId::parse(chars(255)).unwrap()),
            failure: None,
        },
    );
    w.order(
        oid(1),
        OrderCommand::SettleRefund {
            refund_id: RefundId::parse(format!("r2{}", chars(198))).unwrap(),
            provider_event: None,
            failure: Some(chars(600)),
        },
    );
    w.ship(
        oid(1),
        Carrier::parse(chars(100)).unwrap(),
        TrackingNumber::parse(chars(100)).unwrap(),
    );

    // The smallest order, cancelled unpaid with the longest reason.
    let smallest = OrderLines::parse(vec![LineItem {
        product_id: pid(1001),
        quantity: qty(1),
    }])
    .unwrap();
    // Placed by the customer themself (the shortest sub).
    let c = CustomerId::parse("c").unwrap();
    w.place(oid(2), c.clone(), c.clone().into(), &smallest);
    // A payment asked of the provider, refused; then a success for another amount.
    w.order(
        oid(2),
        OrderCommand::RequestPayment {
            payment_id: PaymentRef::parse(chars(200)).unwrap(),
            provider: ProviderName::parse("a".repeat(32)).unwrap(),
        },
    );
    w.order(
        oid(2),
        OrderCommand::FailPayment {
            payment_id: PaymentRef::parse(chars(200)).unwrap(),
            provider_event: ProviderEventId::parse(chars(255)).unwrap(),
            reason: chars(900),
        },
    );
    w.order(
        oid(2),
        OrderCommand::ConfirmPayment {
            payment_id: PaymentRef::parse("q").unwrap(),
            amount_cents: 2,
            currency: eur(),
            provider_event: ProviderEventId::parse("e").unwrap(),
        },
    );
    w.cancel(oid(2), CancelReason::parse(chars(500)).unwrap(), None);

    // Paid, then cancelled with an empty reason (a refund); shortest strings elsewhere.
    w.place(oid(3), c.clone(), ActorId::parse("a").unwrap(), &smallest);
    w.order(
        oid(3),
        OrderCommand::ConfirmPayment {
            payment_id: PaymentRef::parse("p").unwrap(),
            amount_cents: 1,
            currency: eur(),
            provider_event: ProviderEventId::parse("e").unwrap(),
        },
    );
    let refund = RefundRequest {
        refund_id: RefundId::parse("r").unwrap(),
        payment_id: PaymentRef::parse("p").unwrap(),
        amount_cents: 1,
        reason: Reason::parse("r").unwrap(),
        succeeded: true,
    };
    w.cancel(oid(3), CancelReason::default(), Some(refund));

    // A customer sets a profile, orders to their address, and is erased.
    let ana = CustomerId::parse("ana").unwrap();
    let longest = Sealed::parse(format!("pii1.{}", "A".repeat(4091))).unwrap();
    w.customer(
        ana.clone(),
        CustomerCommand::SetProfile {
            customer_id: ana.clone(),
            email: Sealed::parse("pii1.e").unwrap(),
            name: longest.clone(),
            address: Some(longest.clone()),
            email_updates: false,
        },
    );
    let events = place_order_shipping_to(
        oid(5),
        ana.clone(),
        ana.clone().into(),
        Some(longest),
        &smallest,
        &w.products,
    )
    .expect("order placed");
    w.placement(oid(5), events);
    w.customer(
        ana.clone(),
        CustomerCommand::Erase {
            customer_id: ana,
            erased_by: ActorId::parse(chars(255)).unwrap(),
            reason: Reason::parse(chars(500)).unwrap(),
        },
    );

    // Shipping works after the product was discontinued.
    w.place(oid(4), c.clone(), c.into(), &smallest);
    w.order(
        oid(4),
        OrderCommand::Pay {
            amount_cents: 1,
            currency: eur(),
            payment_ref: PaymentRef::parse("p").unwrap(),
            reason: Reason::parse("r").unwrap(),
        },
    );
    w.product(pid(1001), ProductCommand::Discontinue);
    w.ship(
        oid(4),
        Carrier::parse("c").unwrap(),
        TrackingNumber::parse("t").unwrap(),
    );

    w.log.extend(webhook_events().iter().map(Stored::from));
    w.log
}

/// One instance of every variant built directly, with edge values.
fn built_from_enums() -> Vec<Stored> {
    let product_events: Vec<ProductEvent> = vec![
        product::ProductCreated {
            sku: longest_sku(),
            name: ProductName::parse(chars(200)).unwrap(),
            price_cents: price(PriceCents::MAX),
            currency: Currency::parse("ZZZ").unwrap(),
            initial_stock: StockQuantity::parse(StockQuantity::MAX).unwrap(),
        }
        .into(),
        product::ProductCreated {
            sku: Sku::parse("_").unwrap(),
            name: ProductName::parse("é").unwrap(),
            price_cents: price(1),
            currency: Currency::parse("AAA").unwrap(),
            initial_stock: StockQuantity::default(),
        }
        .into(),
        product::PriceChanged {
            price_cents: price(1),
            previous_price_cents: price(PriceCents::MAX),
        }
        .into(),
        product::StockAdded {
            quantity: RestockQuantity::parse(RestockQuantity::MAX).unwrap(),
        }
        .into(),
        product::StockReserved {
            order_id: oid(9),
            quantity: qty(LineQuantity::MAX),
        }
        .into(),
        product::StockReleased {
            order_id: oid(9),
            quantity: qty(1),
        }
        .into(),
        product::StockShipped {
            order_id: oid(9),
            quantity: qty(LineQuantity::MAX),
        }
        .into(),
        product::ProductDiscontinued {}.into(),
    ];
    let order_events: Vec<OrderEvent> = vec![
        order::OrderPlaced {
            customer_id: CustomerId::parse(chars(255)).unwrap(),
            placed_by: ActorId::parse(chars(255)).unwrap(),
            lines: PricedLines::parse(
                (0..100)
                    .map(|n| PricedLine {
                        product_id: pid(n),
                        quantity: qty(LineQuantity::MAX),
                        unit_price_cents: price(PriceCents::MAX),
                    })
                    .collect(),
            )
            .unwrap(),
            total_cents: MAX_TOTAL_CENTS,
            currency: eur(),
            shipping_address: Some(Sealed::parse(format!("pii1.{}", "A".repeat(4091))).unwrap()),
        }
        .into(),
        order::OrderPaid {
            amount_cents: MAX_TOTAL_CENTS,
            currency: eur(),
            payment_ref: PaymentRef::parse(chars(200)).unwrap(),
            provider_event: Some(ProviderEventId::parse(chars(255)).unwrap()),
            reason: None,
        }
        .into(),
        order::OrderPaid {
            amount_cents: 1,
            currency: eur(),
            payment_ref: PaymentRef::parse("p").unwrap(),
            provider_event: None,
            reason: Some(Reason::parse(chars(500)).unwrap()),
        }
        .into(),
        order::PaymentRequested {
            payment_id: PaymentRef::parse(chars(200)).unwrap(),
            provider: ProviderName::parse("a".repeat(32)).unwrap(),
            amount_cents: MAX_TOTAL_CENTS,
            currency: eur(),
        }
        .into(),
        order::PaymentFailed {
            payment_id: PaymentRef::parse("p").unwrap(),
            provider_event: ProviderEventId::parse("e").unwrap(),
            reason: String::new(),
        }
        .into(),
        order::PaymentNeedsReview {
            payment_id: PaymentRef::parse("p").unwrap(),
            amount_cents: 1,
            currency: eur(),
            provider_event: ProviderEventId::parse("e").unwrap(),
            reason: chars(500),
        }
        .into(),
        order::RefundRequested {
            refund_id: RefundId::parse(chars(200)).unwrap(),
            payment_id: PaymentRef::parse(chars(200)).unwrap(),
            amount_cents: MAX_TOTAL_CENTS,
            currency: eur(),
            reason: Reason::parse(chars(500)).unwrap(),
        }
        .into(),
        order::Refunded {
            refund_id: RefundId::parse("r").unwrap(),
            amount_cents: 1,
            currency: eur(),
            provider_event: None,
        }
        .into(),
        order::RefundFailed {
            refund_id: RefundId::parse("r").unwrap(),
            provider_event: Some(ProviderEventId::parse(chars(255)).unwrap()),
            reason: chars(500),
        }
        .into(),
        order::OrderShipped {
            carrier: Carrier::parse(chars(100)).unwrap(),
            tracking_number: TrackingNumber::parse(chars(100)).unwrap(),
        }
        .into(),
        order::OrderCancelled {
            reason: CancelReason::parse(chars(500)).unwrap(),
            refunded_cents: MAX_TOTAL_CENTS,
        }
        .into(),
        order::OrderCancelled {
            reason: CancelReason::default(),
            refunded_cents: 0,
        }
        .into(),
    ];
    let customer_events: Vec<CustomerEvent> = vec![
        customer::CustomerProfileSet {
            customer_id: CustomerId::parse(chars(255)).unwrap(),
            email: Sealed::parse("pii1.e").unwrap(),
            name: Sealed::parse("pii1.n").unwrap(),
            address: None,
            email_updates: true,
        }
        .into(),
        customer::CustomerErased {
            customer_id: CustomerId::parse("c").unwrap(),
            erased_by: ActorId::parse("a").unwrap(),
            reason: Reason::parse("r").unwrap(),
        }
        .into(),
    ];
    for e in &webhook_events() {
        let back = WebhookEvent::from_stored(e.event_type(), e.schema_version(), &e.payload());
        assert_eq!(back.as_ref(), Ok(e));
    }
    for e in &customer_events {
        let back = CustomerEvent::from_stored(e.event_type(), e.schema_version(), &e.payload());
        assert_eq!(back.as_ref(), Ok(e));
    }
    for e in &product_events {
        let back = ProductEvent::from_stored(e.event_type(), e.schema_version(), &e.payload());
        assert_eq!(back.as_ref(), Ok(e));
    }
    for e in &order_events {
        let back = OrderEvent::from_stored(e.event_type(), e.schema_version(), &e.payload());
        assert_eq!(back.as_ref(), Ok(e));
    }
    product_events
        .iter()
        .map(Stored::from)
        .chain(order_events.iter().map(Stored::from))
        .chain(customer_events.iter().map(Stored::from))
        .chain(webhook_events().iter().map(Stored::from))
        .collect()
}

/// Every event validates against the schema of its recorded version, which is the current
/// version of its type: the domain writes nothing older.
fn assert_all_valid(events: &[Stored]) {
    for e in events {
        assert_eq!(
            Some(e.schema_version),
            schemas::current_version(e.event_type),
            "{} is written at v{}, not at its current schema version",
            e.event_type,
            e.schema_version
        );
        let schema = schemas::event_schema(e.stream_type, e.event_type, e.schema_version);
        let schema = schema.unwrap_or_else(|| {
            panic!(
                "no schema for {}/{} v{}",
                e.stream_type, e.event_type, e.schema_version
            )
        });
        let errors = errors(&compile(schema), &e.payload);
        assert!(
            errors.is_empty(),
            "{}/{}: {errors:?}\n{}",
            e.stream_type,
            e.event_type,
            e.payload
        );
    }
}

fn all_domain_event_types() -> BTreeSet<(&'static str, &'static str)> {
    ProductEvent::EVENT_TYPES
        .iter()
        .map(|t| (product::STREAM_TYPE, *t))
        .chain(
            OrderEvent::EVENT_TYPES
                .iter()
                .map(|t| (order::STREAM_TYPE, *t)),
        )
        .chain(
            CustomerEvent::EVENT_TYPES
                .iter()
                .map(|t| (customer::STREAM_TYPE, *t)),
        )
        .chain(
            WebhookEvent::EVENT_TYPES
                .iter()
                .map(|t| (webhook::STREAM_TYPE, *t)),
        )
        .collect()
}

#[test]
fn every_event_emitted_by_decide_validates() {
    let log = emitted_by_decide();
    assert_all_valid(&log);
    let emitted: BTreeSet<_> = log.iter().map(|e| (e.stream_type, e.event_type)).collect();
    assert_eq!(
        emitted,
        all_domain_event_types(),
        "the scenario should emit every event type"
    );
}

#[test]
fn every_event_built_from_the_enums_validates() {
    let events = built_from_enums();
    assert_all_valid(&events);
    let built: BTreeSet<_> = events
        .iter()
        .map(|e| (e.stream_type, e.event_type))
        .collect();
    assert_eq!(built, all_domain_event_types());
}

#[test]
fn every_schema_is_a_valid_draft_2020_12_schema() {
    let documents = schemas::all_event_schemas()
        .iter()
        .map(|s| s.schema)
        .chain([schemas::envelope_schema()]);
    for document in documents {
        let schema: Value = serde_json::from_str(document).unwrap();
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        if let Err(e) = jsonschema::draft202012::meta::validate(&schema) {
            panic!("{}: {e}", schema["$id"]);
        }
        compile(document);
    }
}

#[test]
fn schemas_and_domain_know_the_same_event_types() {
    let with_schema: BTreeSet<_> = schemas::all_event_schemas()
        .iter()
        .map(|s| (s.stream_type, s.event_type))
        .collect();
    assert_eq!(with_schema, all_domain_event_types());
    // The domain writes each type at the current schema version, and one schema per
    // (type, version).
    let mut seen = BTreeSet::new();
    for s in schemas::all_event_schemas() {
        assert!(seen.insert((s.event_type, s.version)), "duplicate {s:?}");
        assert_eq!(schemas::stream_type_of(s.event_type), Some(s.stream_type));
        let schema: Value = serde_json::from_str(s.schema).unwrap();
        assert_eq!(
            schema["$id"],
            format!(
                "urn:agora:event:{}:{}:v{}",
                s.stream_type, s.event_type, s.version
            )
        );
        assert_eq!(schema["additionalProperties"], false, "{}", s.event_type);
    }
    // The domain reads and writes each type at the schemas' current version.
    for (_, event_type) in all_domain_event_types() {
        assert_eq!(
            schemas::current_version(event_type),
            domain_version(event_type),
            "{event_type}"
        );
    }
    assert_eq!(schemas::current_version("OrderPlaced"), Some(3));
    assert_eq!(OrderEvent::current_schema_version("OrderPlaced"), Some(3));
    assert!(schemas::event_schema("order", "OrderPlaced", 1).is_some());
    assert_eq!(schemas::event_schema("order", "ProductCreated", 1), None);
    assert_eq!(schemas::event_schema("product", "ProductCreated", 2), None);
}

/// A valid sample payload per event type (from the enums).
fn samples() -> Vec<Stored> {
    let mut seen = BTreeSet::new();
    built_from_enums()
        .into_iter()
        .filter(|e| seen.insert(e.event_type))
        .collect()
}

#[test]
fn an_extra_field_fails_validation() {
    for e in samples() {
        let validator = payload_validator(e.stream_type, e.event_type);
        let mut payload = e.payload.clone();
        payload
            .as_object_mut()
            .unwrap()
            .insert("unexpected".into(), json!(1));
        assert!(!validator.is_valid(&payload), "{}", e.event_type);
        // The domain refuses it too.
        let decoded = domain_decodes(e.stream_type, e.event_type, e.schema_version, &payload);
        assert!(decoded.is_err(), "{}", e.event_type);
    }
    // Also inside an order line.
    let validator = payload_validator("order", "OrderPlaced");
    let mut placed = samples()
        .into_iter()
        .find(|e| e.event_type == "OrderPlaced")
        .unwrap()
        .payload;
    placed["lines"][0]["unexpected"] = json!(true);
    assert!(!validator.is_valid(&placed));
}

#[test]
fn a_missing_field_fails_validation() {
    for e in samples() {
        let validator = payload_validator(e.stream_type, e.event_type);
        let fields: Vec<String> = e.payload.as_object().unwrap().keys().cloned().collect();
        for field in fields {
            let mut payload = e.payload.clone();
            payload.as_object_mut().unwrap().remove(&field);
            assert!(
                !validator.is_valid(&payload),
                "{} without {field}",
                e.event_type
            );
        }
    }
    let validator = payload_validator("order", "OrderPlaced");
    for field in ["product_id", "quantity", "unit_price_cents"] {
        let mut placed = samples()
            .into_iter()
            .find(|e| e.event_type == "OrderPlaced")
            .unwrap()
            .payload;
        placed["lines"][0].as_object_mut().unwrap().remove(field);
        assert!(!validator.is_valid(&placed), "line without {field}");
    }
}

/// Values just outside the value types' bounds: the schema and the domain both refuse.
#[test]
fn schema_bounds_match_the_value_types() {
    let uuid = "00000000-0000-0000-0000-000000000001";
    let created = |field: &str, value: Value| {
        let mut p = json!({"sku": "A-1", "name": "Mug", "price_cents": 1299,
                           "currency": "EUR", "initial_stock": 10});
        p[field] = value;
        ("product", "ProductCreated", p)
    };
    let placed = |field: &str, value: Value| {
        let mut p = json!({"customer_id": "alice", "placed_by": "root",
            "lines": [{"product_id": uuid, "quantity": 2, "unit_price_cents": 1299}],
            "total_cents": 2598, "currency": "EUR", "shipping_address": null});
        p[field] = value;
        ("order", "OrderPlaced", p)
    };
    let line = |field: &str, value: Value| {
        let mut l = json!({"product_id": uuid, "quantity": 2, "unit_price_cents": 1299});
        l[field] = value;
        placed("lines", json!([l]))
    };
    let bad: Vec<(&str, &str, Value)> = vec![
        // Personal data is only ever sealed: plaintext is refused.
        placed("shipping_address", json!("Main Street 1, Berlin")),
        placed("shipping_address", json!({"line1": "Main Street 1"})),
        placed("shipping_address", json!("pii1.")),
        placed(
            "shipping_address",
            json!(format!("pii1.{}", "A".repeat(4092))),
        ),
        (
            "customer",
            "CustomerProfileSet",
            json!({"customer_id": "ana", "email": "ana@example.com", "name": "pii1.n",
                   "address": null, "email_updates": true}),
        ),
        (
            "customer",
            "CustomerErased",
            json!({"customer_id": "ana", "erased_by": "root", "reason": ""}),
        ),
        created("sku", json!("")),
        created("sku", json!("x".repeat(65))),
        created("sku", json!("a b")),
        created("sku", json!("a.b")),
        created("name", json!("")),
        created("name", json!(chars(201))),
        created("price_cents", json!(0)),
        created("price_cents", json!(PriceCents::MAX + 1)),
        created("price_cents", json!("1299")),
        created("currency", json!("eur")),
        created("currency", json!("EURO")),
        created("initial_stock", json!(-1)),
        created("initial_stock", json!(StockQuantity::MAX + 1)),
        ("product", "StockAdded", json!({"quantity": 0})),
        (
            "product",
            "StockAdded",
            json!({"quantity": RestockQuantity::MAX + 1}),
        ),
        (
            "product",
            "StockReserved",
            json!({"order_id": uuid, "quantity": 0}),
        ),
        (
            "product",
            "StockReserved",
            json!({"order_id": uuid, "quantity": 1001}),
        ),
        (
            "product",
            "StockReleased",
            json!({"order_id": "nope", "quantity": 1}),
        ),
        (
            "product",
            "StockShipped",
            json!({"order_id": 7, "quantity": 1}),
        ),
        (
            "product",
            "PriceChanged",
            json!({"price_cents": 1, "previous_price_cents": 0}),
        ),
        ("product", "ProductDiscontinued", json!([])),
        placed("customer_id", json!("")),
        placed("customer_id", json!(chars(256))),
        placed("placed_by", json!("")),
        placed("placed_by", json!(chars(256))),
        placed("placed_by", json!(7)),
        placed("placed_by", json!(null)),
        placed("lines", json!([])),
        placed(
            "lines",
            json!((0..101u128)
                .map(|n| json!({"product_id": pid(n), "quantity": 1, "unit_price_cents": 1}))
                .collect::<Vec<_>>()),
        ),
        line("product_id", json!("not-a-uuid")),
        line("quantity", json!(1001)),
        line("unit_price_cents", json!(0)),
        (
            "order",
            "OrderPaid",
            json!({"amount_cents": 1, "currency": "EUR", "payment_ref": ""}),
        ),
        (
            "order",
            "OrderPaid",
            json!({"amount_cents": 1, "currency": "EUR", "payment_ref": chars(201)}),
        ),
        (
            "order",
            "OrderShipped",
            json!({"carrier": chars(101), "tracking_number": "t"}),
        ),
        (
            "order",
            "OrderShipped",
            json!({"carrier": "c", "tracking_number": ""}),
        ),
        (
            "order",
            "OrderCancelled",
            json!({"reason": chars(501), "refunded_cents": 0}),
        ),
    ];
    // The unchanged sample itself is valid for both (so each refusal is the bad value's).
    let (_, _, good) = placed("currency", json!("EUR"));
    assert!(payload_validator("order", "OrderPlaced").is_valid(&good));
    assert!(OrderEvent::from_stored("OrderPlaced", 3, &good).is_ok());
    for (stream_type, event_type, payload) in bad {
        let validator = payload_validator(stream_type, event_type);
        assert!(
            !validator.is_valid(&payload),
            "schema accepts {event_type} {payload}"
        );
        let version = domain_version(event_type).unwrap();
        let decoded = domain_decodes(stream_type, event_type, version, &payload);
        assert!(decoded.is_err(), "domain accepts {event_type} {payload}");
    }
}
