//! Request bodies, parsed straight into domain value types: a body that deserializes is a
//! valid command input (unknown fields, wrong types and out-of-range values are 400).
//!
//! Each body also derives its OpenAPI schema. The domain types know nothing of OpenAPI, so
//! every field says what it looks like on the wire (`value_type`) with the bounds its domain
//! type enforces; `tests::schemas_match_the_domain_bounds` checks them against the parsers.

use std::fmt;
use std::marker::PhantomData;

use domain::{
    CancelReason, Carrier, Currency, CustomerId, Email, OrderLines, PaymentRef, PersonName,
    PostalAddress, PriceCents, ProductName, Reason, RestockQuantity, Sku, StockQuantity,
    TrackingNumber,
};
use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /v1/products`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
#[schema(example = json!({
    "sku": "A-1", "name": "Mug", "price_cents": 1299, "currency": "EUR", "initial_stock": 10
}))]
pub struct CreateProduct {
    /// Unique among products (409 `sku_taken`).
    #[schema(value_type = String, min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub sku: Sku,
    #[schema(value_type = String, min_length = 1, max_length = 200)]
    pub name: ProductName,
    /// The unit price in minor units of `currency`.
    #[schema(value_type = i64, minimum = 1, maximum = 1000000000)]
    pub price_cents: PriceCents,
    /// ISO 4217 code: three capital letters (not checked against the ISO list).
    #[schema(value_type = String, pattern = "^[A-Z]{3}$", min_length = 3, max_length = 3)]
    pub currency: Currency,
    /// Units on hand at creation.
    #[serde(default)]
    #[schema(value_type = i64, minimum = 0, maximum = 1000000000, default = 0)]
    pub initial_stock: StockQuantity,
}

/// `POST /v1/products/{id}/price`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
#[schema(example = json!({"price_cents": 1499}))]
pub struct ChangePrice {
    /// The new unit price in minor units of the product's currency.
    #[schema(value_type = i64, minimum = 1, maximum = 1000000000)]
    pub price_cents: PriceCents,
}

/// `POST /v1/products/{id}/restock`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
#[schema(example = json!({"quantity": 5}))]
pub struct Restock {
    /// Units added on hand (at most 1,000,000,000 may be on hand: 422 `invalid_state`).
    #[schema(value_type = i64, minimum = 1, maximum = 1000000)]
    pub quantity: RestockQuantity,
}

/// `POST /v1/products/{id}/discontinue`: an empty object.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
#[schema(example = json!({}))]
pub struct Discontinue {}

/// `POST /v1/orders`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
#[schema(example = json!({
    "lines": [{"product_id": "0190f5b2-7c1e-7a3d-9c4f-2b8e6d1a0f37", "quantity": 2}]
}))]
pub struct PlaceOrder {
    /// 1 to 100 lines, each product at most once, all priced in one currency (422
    /// `currency_mismatch` otherwise).
    #[schema(value_type = Vec<OrderLine>, min_items = 1, max_items = 100)]
    pub lines: OrderLines,
    /// Only an admin may name the customer; a customer orders for themself.
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 255)]
    pub customer_id: Option<CustomerId>,
    /// Where to ship the order; without it the customer's own address (`PUT /v1/me`) if
    /// they have one, else none (digital goods). Recorded sealed with the customer's data
    /// key.
    #[serde(default)]
    #[schema(value_type = Option<Address>)]
    pub shipping_address: Option<PostalAddress>,
}

/// A postal address (the wire form of `domain::PostalAddress`; documentation only).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"line1": "Hauptstraße 1", "line2": null, "postal_code": "10115",
    "city": "Berlin", "country": "DE"}))]
#[allow(dead_code)]
pub struct Address {
    #[schema(min_length = 1, max_length = 200)]
    pub line1: String,
    #[schema(min_length = 1, max_length = 200)]
    pub line2: Option<String>,
    #[schema(min_length = 1, max_length = 20)]
    pub postal_code: String,
    #[schema(min_length = 1, max_length = 100)]
    pub city: String,
    /// ISO 3166-1 alpha-2.
    #[schema(pattern = "^[A-Z]{2}$", min_length = 2, max_length = 2)]
    pub country: String,
}

/// `PUT /v1/me`: the customer's profile (replaces the previous one).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
#[schema(example = json!({"email": "ana@example.com", "name": "Ana Lima", "address": {
    "line1": "Hauptstraße 1", "line2": null, "postal_code": "10115", "city": "Berlin",
    "country": "DE"}}))]
pub struct SetProfile {
    #[schema(value_type = String, min_length = 3, max_length = 254)]
    pub email: Email,
    #[schema(value_type = String, min_length = 1, max_length = 200)]
    pub name: PersonName,
    /// The address orders ship to when they name none.
    #[serde(default)]
    #[schema(value_type = Option<Address>)]
    pub address: Option<PostalAddress>,
    /// Emails beyond receipts (shipping and expiry notices); order confirmations, payment
    /// receipts and refunds always go.
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub email_updates: bool,
}

fn yes() -> bool {
    true
}

/// `POST /v1/customers/{id}/erasure`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
#[schema(example = json!({"reason": "the customer asked (GDPR art. 17)"}))]
pub struct Erasure {
    #[schema(value_type = String, min_length = 1, max_length = 500)]
    pub reason: Reason,
}

/// One line of `POST /v1/orders` (the wire form of `domain::LineItem`; documentation only).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"product_id": "0190f5b2-7c1e-7a3d-9c4f-2b8e6d1a0f37", "quantity": 2}))]
#[allow(dead_code)]
pub struct OrderLine {
    pub product_id: Uuid,
    #[schema(minimum = 1, maximum = 1000)]
    pub quantity: i64,
}

/// `POST /v1/orders/{id}/pay`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
#[schema(example = json!({"amount_cents": 2598, "currency": "EUR", "payment_ref": "bank-2024-0042",
                          "reason": "bank transfer received on 2024-05-02"}))]
pub struct PayOrder {
    /// Must equal the order total (422 `amount_mismatch`).
    pub amount_cents: i64,
    /// Must equal the order currency (422 `amount_mismatch`).
    #[schema(value_type = String, pattern = "^[A-Z]{3}$", min_length = 3, max_length = 3)]
    pub currency: Currency,
    /// The offline payment's reference (a bank transfer's, a receipt's).
    #[schema(value_type = String, min_length = 1, max_length = 200)]
    pub payment_ref: PaymentRef,
    /// Why the payment is recorded by hand (required, not blank).
    #[schema(value_type = String, min_length = 1, max_length = 500)]
    pub reason: Reason,
}

/// `POST /v1/orders/{id}/refunds`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
#[schema(example = json!({"amount_cents": 1299, "reason": "one mug arrived broken"}))]
pub struct RefundOrder {
    /// At most what was paid minus what was refunded (422 `refund_exceeds_payment`).
    #[schema(minimum = 1)]
    pub amount_cents: i64,
    /// Why (required, not blank).
    #[schema(value_type = String, min_length = 1, max_length = 500)]
    pub reason: Reason,
}

/// A command without a body: `{}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
#[schema(example = json!({}))]
pub struct Empty {}

/// `POST /v1/orders/{id}/ship`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
#[schema(example = json!({"carrier": "DHL", "tracking_number": "JD0001"}))]
pub struct ShipOrder {
    #[schema(value_type = String, min_length = 1, max_length = 100)]
    pub carrier: Carrier,
    #[schema(value_type = String, min_length = 1, max_length = 100)]
    pub tracking_number: TrackingNumber,
}

/// `POST /v1/orders/{id}/cancel`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
#[schema(example = json!({"reason": "changed my mind"}))]
pub struct CancelOrder {
    #[serde(default)]
    #[schema(value_type = String, min_length = 0, max_length = 500, default = "")]
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
    RefundOrder,
    Empty,
    ShipOrder,
    CancelOrder,
    SetProfile,
    Erasure,
);
