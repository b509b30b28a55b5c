//! The one decoder of recorded events: a stored row's payload is upcast to its type's
//! current schema version (`schemas::upcast`) and decoded into the domain event of its
//! stream type (`from_stored`). The command side's loading, snapshots, the state cache,
//! the audit state endpoint and the projections all read events through [`decode`].

use domain::{CustomerEvent, OrderEvent, ProductEvent, WebhookEvent};
use uuid::Uuid;

use crate::event::RecordedEvent;

/// A domain event of any stream type.
#[derive(Debug, Clone, PartialEq)]
pub enum ShopEvent {
    Product(ProductEvent),
    Order(OrderEvent),
    Customer(CustomerEvent),
    /// A webhook subscription's change (no read model but the log's own reads them).
    Webhook(WebhookEvent),
}

/// Why a recorded event cannot be read: the log holds something this code does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event at position {position} (stream {stream_id}, version {version}): {reason}")]
pub struct DecodeError {
    pub position: i64,
    pub stream_id: Uuid,
    pub version: i64,
    pub reason: String,
}

impl DecodeError {
    /// An error about `event`.
    pub fn new(event: &RecordedEvent, reason: impl Into<String>) -> Self {
        DecodeError {
            position: event.position,
            stream_id: event.stream_id,
            version: event.version,
            reason: reason.into(),
        }
    }
}

/// Upcasts and decodes one recorded event.
pub fn decode(event: &RecordedEvent) -> Result<ShopEvent, DecodeError> {
    let stored_version = u32::try_from(event.schema_version).map_err(|_| {
        DecodeError::new(
            event,
            format!("schema version {} is negative", event.schema_version),
        )
    })?;
    let undecodable = |error: domain::EventDecodeError| DecodeError::new(event, error.to_string());
    // The common case reads the payload in place; only an older version is copied to be
    // upcast.
    let upcast;
    let (schema_version, payload) =
        if schemas::current_version(&event.event_type) == Some(stored_version) {
            (stored_version, &event.payload)
        } else {
            upcast = schemas::upcast(&event.event_type, stored_version, event.payload.clone())
                .map_err(|error| DecodeError::new(event, format!("cannot be upcast: {error}")))?;
            (upcast.0, &upcast.1)
        };
    match event.stream_type.as_str() {
        domain::product::STREAM_TYPE => {
            ProductEvent::from_stored(&event.event_type, schema_version, payload)
                .map(ShopEvent::Product)
                .map_err(undecodable)
        }
        domain::order::STREAM_TYPE => {
            OrderEvent::from_stored(&event.event_type, schema_version, payload)
                .map(ShopEvent::Order)
                .map_err(undecodable)
        }
        domain::customer::STREAM_TYPE => {
            CustomerEvent::from_stored(&event.event_type, schema_version, payload)
                .map(ShopEvent::Customer)
                .map_err(undecodable)
        }
        domain::webhook::STREAM_TYPE => {
            WebhookEvent::from_stored(&event.event_type, schema_version, payload)
                .map(ShopEvent::Webhook)
                .map_err(undecodable)
        }
        other => Err(DecodeError::new(
            event,
            format!("unknown stream type {other:?}"),
        )),
    }
}
