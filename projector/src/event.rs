//! Events as projections see them: decoded into domain events by the one decoder
//! (`eventstore::decode`, which upcasts first), with the stream facts projections need.

use chrono::{DateTime, Utc};
use eventstore::RecordedEvent;
use uuid::Uuid;

pub use eventstore::ShopEvent;

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
    let body = eventstore::decode(event).map_err(|error| error.reason)?;
    Ok(ProjectedEvent {
        event_id: event.event_id,
        stream_id: event.stream_id,
        version: event.version,
        occurred_at: event.occurred_at,
        body,
    })
}
