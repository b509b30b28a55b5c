//! Events as projections see them: decoded into domain events (upcast first), with the
//! stream facts projections need.

use chrono::{DateTime, Utc};
use domain::{OrderEvent, ProductEvent};
use eventstore::RecordedEvent;
use uuid::Uuid;

/// A domain event of either stream type.
#[derive(Debug, Clone, PartialEq)]
pub enum ShopEvent {
    Product(ProductEvent),
    Order(OrderEvent),
}

/// One event to project.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectedEvent {
    pub event_id: Uuid,
    pub stream_id: Uuid,
    pub version: i64,
    pub occurred_at: DateTime<Utc>,
    pub body: ShopEvent,
}

/// Decodes a recorded event; an error is the reason it is poison.
pub fn decode(event: &RecordedEvent) -> Result<ProjectedEvent, String> {
    let (schema_version, payload) = schemas::upcast(
        &event.event_type,
        u32::try_from(event.schema_version).map_err(|_| "negative schema version".to_owned())?,
        event.payload.clone(),
    )
    .map_err(|e| e.to_string())?;
    let body = match event.stream_type.as_str() {
        domain::product::STREAM_TYPE => {
            ProductEvent::from_stored(&event.event_type, schema_version, &payload)
                .map(ShopEvent::Product)
                .map_err(|e| e.to_string())?
        }
        domain::order::STREAM_TYPE => {
            OrderEvent::from_stored(&event.event_type, schema_version, &payload)
                .map(ShopEvent::Order)
                .map_err(|e| e.to_string())?
        }
        other => return Err(format!("unknown stream type {other:?}")),
    };
    Ok(ProjectedEvent {
        event_id: event.event_id,
        stream_id: event.stream_id,
        version: event.version,
        occurred_at: event.occurred_at,
        body,
    })
}
