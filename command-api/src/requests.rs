//! Request bodies, parsed straight into domain value types: a body that deserializes is a
//! valid command input (unknown fields, wrong types and out-of-range values are 400).

use std::fmt;
use std::marker::PhantomData;

use domain::{
    CancelReason, Carrier, Currency, CustomerId, OrderLines, PaymentRef, PriceCents, ProductName,
    RestockQuantity, Sku, StockQuantity, TrackingNumber,
};
use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `POST /v1/products`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct CreateProduct {
    pub sku: Sku,
    pub name: ProductName,
    pub price_cents: PriceCents,
    pub currency: Currency,
    #[serde(default)]
    pub initial_stock: StockQuantity,
}

/// `POST /v1/products/{id}/price`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct ChangePrice {
    pub price_cents: PriceCents,
}

/// `POST /v1/products/{id}/restock`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct Restock {
    pub quantity: RestockQuantity,
}

/// `POST /v1/products/{id}/discontinue`: an empty object.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct Discontinue {}

/// `POST /v1/orders`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct PlaceOrder {
    pub lines: OrderLines,
    /// Only an admin may name the customer; a customer orders for themself.
    #[serde(default)]
    pub customer_id: Option<CustomerId>,
}

/// `POST /v1/orders/{id}/pay`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct PayOrder {
    pub amount_cents: i64,
    pub currency: Currency,
    pub payment_ref: PaymentRef,
}

/// `POST /v1/orders/{id}/ship`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct ShipOrder {
    pub carrier: Carrier,
    pub tracking_number: TrackingNumber,
}

/// `POST /v1/orders/{id}/cancel`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct CancelOrder {
    #[serde(default)]
    pub reason: CancelReason,
}

/// The derived (remote) deserializer of a request body.
trait DerivedDeserialize<'de>: Sized {
    fn derived<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error>;
}

/// Accepts a JSON object only, then hands it to the derived deserializer.
struct ObjectOnly<T>(PhantomData<T>);

impl<'de, T: DerivedDeserialize<'de>> Visitor<'de> for ObjectOnly<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::derived(MapAccessDeserializer::new(map))
    }
}

/// Request bodies are JSON objects only: serde's derived struct deserializers would also
/// take an array of the fields in order (`["A-1", "Mug", 1299, "EUR"]`, or `[]` for
/// `{}`), which the API does not accept. The derives above are `remote = "Self"`, so they
/// generate inherent `deserialize`/`serialize` functions that these impls wrap.
macro_rules! object_only {
    ($($name:ident),+ $(,)?) => {$(
        impl<'de> DerivedDeserialize<'de> for $name {
            fn derived<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                $name::deserialize(deserializer)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_map(ObjectOnly::<$name>(PhantomData))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                $name::serialize(self, serializer)
            }
        }
    )+};
}

object_only!(
    CreateProduct,
    ChangePrice,
    Restock,
    Discontinue,
    PlaceOrder,
    PayOrder,
    ShipOrder,
    CancelOrder,
);
