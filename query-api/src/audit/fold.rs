//! Folding a stream's recorded events into its aggregate's state, for the audit state
//! endpoint. Every payload is upcast to its type's current schema version
//! (`schemas::upcast`) before it is decoded (`from_stored`) and applied, as the command
//! side does when it loads an aggregate.

use domain::{Order, OrderEvent, Product, ProductEvent};
use eventstore::RecordedEvent;
use serde_json::Value;

/// Why an event could not be folded: the log holds something this code cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event at position {position} (stream {stream_id}, version {version}): {reason}")]
pub struct FoldError {
    pub position: i64,
    pub stream_id: uuid::Uuid,
    pub version: i64,
    pub reason: String,
}

impl FoldError {
    fn new(event: &RecordedEvent, reason: impl Into<String>) -> Self {
        FoldError {
            position: event.position,
            stream_id: event.stream_id,
            version: event.version,
            reason: reason.into(),
        }
    }
}

/// An aggregate being folded, by stream type.
#[derive(Debug, Clone, PartialEq)]
pub enum Folded {
    Product(Product),
    Order(Order),
}

impl Folded {
    /// The empty aggregate of the stream `first` belongs to.
    pub fn for_stream_of(first: &RecordedEvent) -> Result<Folded, FoldError> {
        match first.stream_type.as_str() {
            domain::product::STREAM_TYPE => Ok(Folded::Product(Product::default())),
            domain::order::STREAM_TYPE => Ok(Folded::Order(Order::default())),
            other => Err(FoldError::new(
                first,
                format!("unknown stream type {other:?}"),
            )),
        }
    }

    /// The stream type this aggregate is folded from.
    pub fn stream_type(&self) -> &'static str {
        match self {
            Folded::Product(_) => domain::product::STREAM_TYPE,
            Folded::Order(_) => domain::order::STREAM_TYPE,
        }
    }

    /// Upcasts, decodes and applies the next event of the stream.
    pub fn apply(&mut self, event: &RecordedEvent) -> Result<(), FoldError> {
        if event.stream_type != self.stream_type() {
            return Err(FoldError::new(
                event,
                format!(
                    "stream type {:?} differs from the stream's {:?}",
                    event.stream_type,
                    self.stream_type()
                ),
            ));
        }
        let (schema_version, payload) = upcast(event)?;
        let undecodable =
            |error: domain::EventDecodeError| FoldError::new(event, error.to_string());
        match self {
            Folded::Product(product) => product.apply(
                ProductEvent::from_stored(&event.event_type, schema_version, &payload)
                    .map_err(undecodable)?,
            ),
            Folded::Order(order) => order.apply(
                OrderEvent::from_stored(&event.event_type, schema_version, &payload)
                    .map_err(undecodable)?,
            ),
        }
        Ok(())
    }

    /// The state object (the aggregate's own serialization).
    pub fn state(&self) -> Result<Value, serde_json::Error> {
        match self {
            Folded::Product(product) => serde_json::to_value(product),
            Folded::Order(order) => serde_json::to_value(order),
        }
    }
}

/// The event's payload at its type's current schema version.
fn upcast(event: &RecordedEvent) -> Result<(u32, Value), FoldError> {
    let stored_version = u32::try_from(event.schema_version).map_err(|_| {
        FoldError::new(
            event,
            format!("schema version {} is negative", event.schema_version),
        )
    })?;
    schemas::upcast(&event.event_type, stored_version, event.payload.clone())
        .map_err(|error| FoldError::new(event, format!("cannot be upcast: {error}")))
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use eventstore::{EventMetadata, Hash};
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

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
        }
    }

    fn fold(events: &[RecordedEvent]) -> Result<Value, FoldError> {
        let mut folded = Folded::for_stream_of(&events[0])?;
        for event in events {
            folded.apply(event)?;
        }
        Ok(folded.state().unwrap())
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
