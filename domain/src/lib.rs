//! Agora's pure domain model: products, orders and customers, their commands, events and rules.
//!
//! No I/O, no clock, no randomness: ids and times are passed in. Each aggregate has a pure
//! `decide(&self, command) -> Result<Vec<Event>, DomainError>` and a fold
//! `apply(&mut self, event)`; both also implement [`cqrs_es::Aggregate`]. Commands that
//! span an order and its products go through [`placement`].
//!
//! Events are stored as a type name, a schema version and a payload object, separately:
//! see `event_type`, `schema_version`, `payload` and `from_stored` on [`ProductEvent`] and
//! [`OrderEvent`].

pub mod customer;
pub mod error;
pub mod order;
pub mod payment;
pub mod placement;
pub mod product;
mod stored;
pub mod values;
pub mod webhook;

pub use customer::{Customer, CustomerCommand, CustomerEvent};
pub use error::{DomainError, EventDecodeError};
pub use order::{Order, OrderCommand, OrderEvent, OrderStatus, RefundRequest};
pub use payment::{Payment, PaymentStatus, Payments, Refund, RefundStatus};
pub use placement::{
    cancel_order, expire_order, place_order, place_order_shipping_to, ship_order, PlacementEvents,
};
pub use product::{Product, ProductCommand, ProductEvent};
pub use stored::StoredEvent;
pub use values::*;
pub use webhook::{WebhookEvent, WebhookSubscription};

/// The revision of the aggregates' folds (`apply`) and of their serialized state. Raise it
/// whenever a fold or a state's fields change: snapshots of aggregates are keyed by it
/// (together with the event schemas and upcasters), so snapshots written by an older fold
/// are ignored and rebuilt instead of being read wrong.
pub const FOLD_VERSION: u32 = 3;

#[cfg(test)]
mod test_support;
