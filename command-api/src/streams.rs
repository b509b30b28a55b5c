//! Between stored streams and aggregates: folding loaded events into state, running
//! commands through the cqrs-es aggregate traits, and turning decided events into rows.

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use domain::{Order, OrderEvent, Product, ProductEvent};
use eventstore::{LoadedStream, NewEvent, RecordedEvent};
use platform::Problem;

/// The product folded from `loaded` (a stream of another type is no product at all).
pub fn product_from(loaded: &LoadedStream) -> Result<Product, Problem> {
    if loaded.stream_type.as_deref() != Some(domain::product::STREAM_TYPE) {
        return Ok(Product::default());
    }
    let events = loaded
        .events
        .iter()
        .map(|e| decode(e, ProductEvent::from_stored))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Product::from_events(events))
}

/// The order folded from `loaded` (a stream of another type is no order at all).
pub fn order_from(loaded: &LoadedStream) -> Result<Order, Problem> {
    if loaded.stream_type.as_deref() != Some(domain::order::STREAM_TYPE) {
        return Ok(Order::default());
    }
    let events = loaded
        .events
        .iter()
        .map(|e| decode(e, OrderEvent::from_stored))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Order::from_events(events))
}

fn decode<E, D: std::fmt::Display>(
    event: &RecordedEvent,
    from_stored: impl Fn(&str, u32, &serde_json::Value) -> Result<E, D>,
) -> Result<E, Problem> {
    let (version, payload) = schemas::upcast(
        &event.event_type,
        event.schema_version as u32,
        event.payload.clone(),
    )
    .map_err(|error| {
        Problem::internal(format!(
            "event {} cannot be upcast: {error}",
            event.event_id
        ))
    })?;
    from_stored(&event.event_type, version, &payload).map_err(|error| {
        Problem::internal(format!(
            "event {} cannot be decoded: {error}",
            event.event_id
        ))
    })
}

/// Runs `command` through the aggregate's cqrs-es `handle`, collecting what it decided.
pub async fn handle<A>(aggregate: &A, command: A::Command) -> Result<Vec<A::Event>, A::Error>
where
    A: Aggregate<Services = ()> + Clone,
{
    let mut working = aggregate.clone();
    let sink = EventSink::default();
    working.handle(command, &(), &sink).await?;
    Ok(sink.collect().await)
}

/// Product events as rows to append.
pub fn product_rows(events: &[ProductEvent]) -> Vec<NewEvent> {
    events
        .iter()
        .map(|e| NewEvent::new(e.event_type(), e.schema_version() as i32, e.payload()))
        .collect()
}

/// Order events as rows to append.
pub fn order_rows(events: &[OrderEvent]) -> Vec<NewEvent> {
    events
        .iter()
        .map(|e| NewEvent::new(e.event_type(), e.schema_version() as i32, e.payload()))
        .collect()
}
