//! The event contract: a JSON Schema (draft 2020-12) per event type and version, the
//! envelope schema, and the upcasters that bring old payloads to the current version.
//!
//! The schema files live beside this crate and are embedded at build time:
//!
//! - `events/<stream_type>/<EventType>.v<N>.json`: the payload object of one event type at
//!   schema version `N` (`additionalProperties: false`, every field required);
//! - `envelope.v1.json`: one recorded event as exported by the audit API and published to
//!   Kafka. Its `payload` is only checked to be an object; validate it against
//!   [`event_schema`]`(stream_type, event_type, schema_version)`.
//!
//! The schemas use `"format": "uuid"` and `"format": "date-time"`; in draft 2020-12
//! formats are annotations unless the validator is told to assert them, so enable format
//! validation (with the `jsonschema` crate: `should_validate_formats(true)`).
//!
//! Adding a schema version is three steps: add the `.v<N+1>.json` file, list it in
//! `EVENT_SCHEMAS` below, and add one upcaster from `N` to `N + 1` (see [`upcast`]); the
//! domain then writes version `N + 1` of that event type. Older schema files stay: stored
//! events keep the version they were written at, and the audit export shows them as
//! recorded. Current versions: every event type is at 1, except `OrderPlaced` at 3 (it
//! gained `placed_by`, then `shipping_address`) and `OrderPaid` at 2 (it gained
//! `provider_event` and `reason`).
//!
//! Personal data (a customer's email, name and addresses) is never a plain field: the
//! schemas describe it as a sealed string (`$defs/sealed`: `pii1.` and base64url), opened
//! only with the customer's data key.

mod upcast;

pub use upcast::{upcast, upcasters, UpcastError, Upcaster};

/// One embedded event payload schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSchema {
    /// The stream type (`product`, `order` or `customer`).
    pub stream_type: &'static str,
    /// The PascalCase event type (`OrderPlaced`).
    pub event_type: &'static str,
    /// The payload schema version.
    pub version: u32,
    /// The schema document (JSON).
    pub schema: &'static str,
}

/// Embeds `events/<stream>/<Event>.v<version>.json`.
macro_rules! event_schema {
    ($stream:literal, $event:literal, $version:literal) => {
        EventSchema {
            stream_type: $stream,
            event_type: $event,
            version: $version,
            schema: include_str!(concat!(
                "../events/",
                $stream,
                "/",
                $event,
                ".v",
                $version,
                ".json"
            )),
        }
    };
}

/// Every event payload schema, every version.
static EVENT_SCHEMAS: &[EventSchema] = &[
    event_schema!("product", "ProductCreated", 1),
    event_schema!("product", "PriceChanged", 1),
    event_schema!("product", "StockAdded", 1),
    event_schema!("product", "StockReserved", 1),
    event_schema!("product", "StockReleased", 1),
    event_schema!("product", "StockShipped", 1),
    event_schema!("product", "ProductDiscontinued", 1),
    event_schema!("order", "OrderPlaced", 1),
    event_schema!("order", "OrderPlaced", 2),
    event_schema!("order", "OrderPlaced", 3),
    event_schema!("order", "OrderPaid", 1),
    event_schema!("order", "OrderPaid", 2),
    event_schema!("order", "OrderShipped", 1),
    event_schema!("order", "OrderCancelled", 1),
    event_schema!("order", "PaymentRequested", 1),
    event_schema!("order", "PaymentFailed", 1),
    event_schema!("order", "PaymentNeedsReview", 1),
    event_schema!("order", "RefundRequested", 1),
    event_schema!("order", "Refunded", 1),
    event_schema!("order", "RefundFailed", 1),
    event_schema!("customer", "CustomerProfileSet", 1),
    event_schema!("customer", "CustomerErased", 1),
    event_schema!("webhook", "WebhookSubscribed", 1),
    event_schema!("webhook", "WebhookUnsubscribed", 1),
];

/// The version of the envelope schema.
pub const ENVELOPE_VERSION: u32 = 1;

static ENVELOPE_SCHEMA: &str = include_str!("../envelope.v1.json");

/// The payload schema of `event_type` in `stream_type` at `version`, if there is one.
pub fn event_schema(stream_type: &str, event_type: &str, version: u32) -> Option<&'static str> {
    EVENT_SCHEMAS
        .iter()
        .find(|s| {
            s.stream_type == stream_type && s.event_type == event_type && s.version == version
        })
        .map(|s| s.schema)
}

/// Every embedded event payload schema, every version.
pub fn all_event_schemas() -> &'static [EventSchema] {
    EVENT_SCHEMAS
}

/// The envelope schema (version [`ENVELOPE_VERSION`]).
pub fn envelope_schema() -> &'static str {
    ENVELOPE_SCHEMA
}

/// The current (highest) schema version of `event_type`: the version events are written
/// at and the one [`upcast`] brings older payloads to. `None` for an unknown event type.
///
/// Event type names are unique across stream types.
pub fn current_version(event_type: &str) -> Option<u32> {
    EVENT_SCHEMAS
        .iter()
        .filter(|s| s.event_type == event_type)
        .map(|s| s.version)
        .max()
}

/// The stream type `event_type` belongs to, if it is known.
pub fn stream_type_of(event_type: &str) -> Option<&'static str> {
    EVENT_SCHEMAS
        .iter()
        .find(|s| s.event_type == event_type)
        .map(|s| s.stream_type)
}
