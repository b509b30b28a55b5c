//! Request bodies, parsed straight into domain value types: a body that deserializes is a
//! valid command input (unknown fields, wrong types and out-of-range values are 400).

use domain::{
    CancelReason, Carrier, Currency, CustomerId, OrderLines, PaymentRef, PriceCents, ProductName,
    RestockQuantity, Sku, StockQuantity, TrackingNumber,
};
use serde::{Deserialize, Serialize};

/// `POST /v1/products`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
pub struct ChangePrice {
    pub price_cents: PriceCents,
}

/// `POST /v1/products/{id}/restock`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restock {
    pub quantity: RestockQuantity,
}

/// `POST /v1/products/{id}/discontinue`: an empty object.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Discontinue {}

/// `POST /v1/orders`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    pub lines: OrderLines,
    /// Only an admin may name the customer; a customer orders for themself.
    #[serde(default)]
    pub customer_id: Option<CustomerId>,
}

/// `POST /v1/orders/{id}/pay`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayOrder {
    pub amount_cents: i64,
    pub currency: Currency,
    pub payment_ref: PaymentRef,
}

/// `POST /v1/orders/{id}/ship`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipOrder {
    pub carrier: Carrier,
    pub tracking_number: TrackingNumber,
}

/// `POST /v1/orders/{id}/cancel`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelOrder {
    #[serde(default)]
    pub reason: CancelReason,
}
