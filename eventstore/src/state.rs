//! Stream states: the aggregate folded from a stream's events (through the one decoder,
//! [`crate::decode`]), with where the stream stands (version and last hash, what the next
//! append chains from). What snapshots store and the command side's cache holds.

use std::sync::OnceLock;

use domain::{Customer, Order, Product, WebhookSubscription};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::decode::{decode, DecodeError, ShopEvent};
use crate::event::RecordedEvent;
use crate::hashchain::Hash;

/// An aggregate being folded, by stream type.
#[derive(Debug, Clone, PartialEq)]
pub enum AggregateState {
    Product(Product),
    Order(Order),
    Customer(Customer),
    Webhook(WebhookSubscription),
}

impl AggregateState {
    /// The empty aggregate of `stream_type`, if it is one we know.
    pub fn empty(stream_type: &str) -> Option<AggregateState> {
        match stream_type {
            domain::product::STREAM_TYPE => Some(AggregateState::Product(Product::default())),
            domain::order::STREAM_TYPE => Some(AggregateState::Order(Order::default())),
            domain::customer::STREAM_TYPE => Some(AggregateState::Customer(Customer::default())),
            domain::webhook::STREAM_TYPE => {
                Some(AggregateState::Webhook(WebhookSubscription::default()))
            }
            _ => None,
        }
    }

    /// The stream type this aggregate is folded from.
    pub fn stream_type(&self) -> &'static str {
        match self {
            AggregateState::Product(_) => domain::product::STREAM_TYPE,
            AggregateState::Order(_) => domain::order::STREAM_TYPE,
            AggregateState::Customer(_) => domain::customer::STREAM_TYPE,
            AggregateState::Webhook(_) => domain::webhook::STREAM_TYPE,
        }
    }

    /// Decodes (upcasting first) and applies the next event of the stream.
    pub fn apply(&mut self, event: &RecordedEvent) -> Result<(), DecodeError> {
        if event.stream_type != self.stream_type() {
            return Err(DecodeError::new(
                event,
                format!(
                    "stream type {:?} differs from the stream's {:?}",
                    event.stream_type,
                    self.stream_type()
                ),
            ));
        }
        match (self, decode(event)?) {
            (AggregateState::Product(product), ShopEvent::Product(e)) => product.apply(e),
            (AggregateState::Order(order), ShopEvent::Order(e)) => order.apply(e),
            (AggregateState::Customer(customer), ShopEvent::Customer(e)) => customer.apply(e),
            (AggregateState::Webhook(subscription), ShopEvent::Webhook(e)) => subscription.apply(e),
            _ => return Err(DecodeError::new(event, "event of another stream type")),
        }
        Ok(())
    }

    /// The state as JSON (the aggregate's own serialization): what a snapshot stores and
    /// the audit state endpoint shows.
    pub fn to_json(&self) -> Result<Value, serde_json::Error> {
        match self {
            AggregateState::Product(product) => serde_json::to_value(product),
            AggregateState::Order(order) => serde_json::to_value(order),
            AggregateState::Customer(customer) => serde_json::to_value(customer),
            AggregateState::Webhook(subscription) => serde_json::to_value(subscription),
        }
    }

    /// Reads a state written by [`AggregateState::to_json`] for `stream_type`.
    pub fn from_json(stream_type: &str, state: Value) -> Result<AggregateState, String> {
        match stream_type {
            domain::product::STREAM_TYPE => serde_json::from_value(state)
                .map(AggregateState::Product)
                .map_err(|e| e.to_string()),
            domain::order::STREAM_TYPE => serde_json::from_value(state)
                .map(AggregateState::Order)
                .map_err(|e| e.to_string()),
            domain::customer::STREAM_TYPE => serde_json::from_value(state)
                .map(AggregateState::Customer)
                .map_err(|e| e.to_string()),
            domain::webhook::STREAM_TYPE => serde_json::from_value(state)
                .map(AggregateState::Webhook)
                .map_err(|e| e.to_string()),
            other => Err(format!("unknown stream type {other:?}")),
        }
    }
}

/// One stream as folded: where it stands and its aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamState {
    pub stream_id: Uuid,
    /// The current version: 0 for a stream with no events.
    pub version: i64,
    /// The hash of the last event, what the next event chains from.
    pub last_hash: Hash,
    /// `None` while the stream has no events.
    pub aggregate: Option<AggregateState>,
    /// The version of the snapshot this state was loaded from (0: none).
    pub snapshot_version: i64,
    /// Events folded to get here on the last load (after the snapshot, if any).
    pub events_folded: usize,
}

impl StreamState {
    /// A stream that has no events.
    pub fn empty(stream_id: Uuid) -> Self {
        StreamState {
            stream_id,
            version: 0,
            last_hash: Hash::GENESIS,
            aggregate: None,
            snapshot_version: 0,
            events_folded: 0,
        }
    }

    /// True when the stream has at least one event.
    pub fn exists(&self) -> bool {
        self.version > 0
    }

    /// The stream's type, `None` while it has no events.
    pub fn stream_type(&self) -> Option<&'static str> {
        self.aggregate.as_ref().map(AggregateState::stream_type)
    }

    /// Applies the stream's next event (version + 1, chained from the last hash).
    pub fn apply(&mut self, event: &RecordedEvent) -> Result<(), DecodeError> {
        if event.stream_id != self.stream_id || event.version != self.version + 1 {
            return Err(DecodeError::new(
                event,
                format!(
                    "expected version {} of stream {}",
                    self.version + 1,
                    self.stream_id
                ),
            ));
        }
        let aggregate = match &mut self.aggregate {
            Some(aggregate) => aggregate,
            None => self
                .aggregate
                .insert(AggregateState::empty(&event.stream_type).ok_or_else(|| {
                    DecodeError::new(
                        event,
                        format!("unknown stream type {:?}", event.stream_type),
                    )
                })?),
        };
        aggregate.apply(event)?;
        self.version = event.version;
        self.last_hash = event.hash;
        self.events_folded += 1;
        Ok(())
    }

    /// The product this stream holds; a stream of another type (or none) is no product.
    pub fn product(&self) -> Product {
        match &self.aggregate {
            Some(AggregateState::Product(product)) => product.clone(),
            _ => Product::default(),
        }
    }

    /// The order this stream holds; a stream of another type (or none) is no order.
    pub fn order(&self) -> Order {
        match &self.aggregate {
            Some(AggregateState::Order(order)) => order.clone(),
            _ => Order::default(),
        }
    }

    /// The customer this stream holds; a stream of another type (or none) is no customer.
    pub fn customer(&self) -> Customer {
        match &self.aggregate {
            Some(AggregateState::Customer(customer)) => customer.clone(),
            _ => Customer::default(),
        }
    }
}

/// The fold version snapshots are keyed by: a digest of the domain's
/// [`domain::FOLD_VERSION`], every event type's current schema version and every
/// registered upcaster. A changed fold, schema or upcaster yields another number, so
/// snapshots written by older code are ignored instead of read wrong.
pub fn fold_version() -> i64 {
    static FOLD_VERSION: OnceLock<i64> = OnceLock::new();
    *FOLD_VERSION.get_or_init(|| {
        let mut hasher = Sha256::new();
        hasher.update(domain::FOLD_VERSION.to_be_bytes());
        for schema in schemas::all_event_schemas() {
            hasher.update(schema.stream_type.as_bytes());
            hasher.update(b"/");
            hasher.update(schema.event_type.as_bytes());
            hasher.update(schema.version.to_be_bytes());
        }
        for upcaster in schemas::upcasters() {
            hasher.update(upcaster.event_type.as_bytes());
            hasher.update(upcaster.from_version.to_be_bytes());
        }
        let digest = hasher.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        // Positive, so it reads plainly in the table.
        i64::from_be_bytes(first) & i64::MAX
    })
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::event::EventMetadata;

    fn event(
        stream_type: &str,
        version: i64,
        event_type: &str,
        schema: i32,
        payload: Value,
    ) -> RecordedEvent {
        RecordedEvent {
            position: version,
            transaction_id: 1,
            event_id: Uuid::now_v7(),
            stream_type: stream_type.into(),
            stream_id: Uuid::nil(),
            version,
            event_type: event_type.into(),
            schema_version: schema,
            payload,
            metadata: EventMetadata {
                actor: "root".into(),
                correlation_id: "c".into(),
                causation_id: None,
                command_id: Uuid::nil(),
            },
            occurred_at: Utc::now(),
            prev_hash: Hash::GENESIS,
            hash: Hash::GENESIS,
            sequence: None,
            stored_metadata: None,
        }
    }

    fn fold(events: &[RecordedEvent]) -> Result<Value, DecodeError> {
        let mut folded = AggregateState::empty(&events[0].stream_type).ok_or_else(|| {
            DecodeError::new(
                &events[0],
                format!("unknown stream type {:?}", events[0].stream_type),
            )
        })?;
        for event in events {
            folded.apply(event)?;
        }
        Ok(folded.to_json().unwrap())
    }

    #[test]
    fn product_events_fold_into_the_product_state() {
        let created = json!({"sku": "A-1", "name": "Mug", "price_cents": 1299,
                             "currency": "EUR", "initial_stock": 10});
        let state = fold(&[
            event("product", 1, "ProductCreated", 1, created),
            event("product", 2, "StockAdded", 1, json!({"quantity": 5})),
            event(
                "product",
                3,
                "StockReserved",
                1,
                json!({"order_id": Uuid::nil(), "quantity": 3}),
            ),
        ])
        .unwrap();
        assert_eq!(state["on_hand"], 15);
        assert_eq!(state["reserved"], 3);
        assert_eq!(state["sku"], "A-1");
    }

    #[test]
    fn an_order_placed_v1_is_upcast_first() {
        let placed = json!({"customer_id": "alice", "currency": "EUR", "total_cents": 500,
                            "lines": [{"product_id": Uuid::nil(), "quantity": 1,
                                       "unit_price_cents": 500}]});
        let state = fold(&[event("order", 1, "OrderPlaced", 1, placed)]).unwrap();
        assert_eq!(state["status"], "placed");
        assert_eq!(state["placed_by"], "alice");
    }

    #[test]
    fn what_cannot_be_read_names_the_event() {
        let unknown_type = event("invoice", 1, "InvoiceSent", 1, json!({}));
        let error = fold(&[unknown_type]).unwrap_err();
        assert!(error.reason.contains("invoice"), "{error}");

        let created = json!({"sku": "A-1", "name": "Mug", "price_cents": 1299,
                             "currency": "EUR", "initial_stock": 10});
        let first = event("product", 1, "ProductCreated", 1, created);
        let cases = [
            event("order", 2, "OrderPaid", 1, json!({})),
            event("product", 2, "StockAdded", 99, json!({"quantity": 1})),
            event("product", 2, "StockAdded", -1, json!({"quantity": 1})),
            event("product", 2, "StockAdded", 1, json!({"quantity": "many"})),
            event("product", 2, "ProductTeleported", 1, json!({})),
        ];
        for bad in cases {
            let error = fold(&[first.clone(), bad.clone()]).unwrap_err();
            assert_eq!((error.position, error.version), (2, 2), "{error}");
            assert!(error.to_string().contains("version 2"), "{error}");
        }
    }
}
