//! Errors: business rules refusing a command ([`DomainError`]) and stored events that
//! cannot be read back ([`EventDecodeError`]).

use crate::values::{Currency, ProductId};

/// A business rule refused a command. Nothing may be appended.
///
/// The `Display` text is written for the client (it becomes the problem+json `detail`);
/// [`DomainError::code`] gives the API's machine-readable `code`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The command targets an entity that does not exist (was never created or placed).
    #[error("{entity} not found")]
    NotFound {
        /// `"product"` or `"order"`.
        entity: &'static str,
    },

    /// A create/place command targets a stream that already has events.
    #[error("{entity} already exists")]
    AlreadyExists {
        /// `"product"` or `"order"`.
        entity: &'static str,
    },

    /// The command is not allowed in the entity's current state.
    #[error("{reason}")]
    InvalidState {
        /// A complete sentence for the client, like "order is shipped; only a placed or
        /// paid order can be cancelled".
        reason: String,
    },

    /// Not enough stock is available for a reservation.
    #[error(
        "insufficient stock{}: {requested} requested, {available} available",
        product_suffix(product_id)
    )]
    InsufficientStock {
        /// The product; `None` only when the product aggregate alone decided (it does not
        /// know its own id). The placement services always fill it in.
        product_id: Option<ProductId>,
        /// Units asked for.
        requested: i64,
        /// Units available (`on_hand - reserved`) at decision time.
        available: i64,
    },

    /// An order line names a product that does not exist.
    #[error("unknown product {product_id}")]
    UnknownProduct {
        /// The product named in the order line.
        product_id: ProductId,
    },

    /// A discontinued product cannot be ordered.
    #[error(
        "product{} is discontinued and cannot be ordered",
        id_suffix(product_id)
    )]
    ProductDiscontinued {
        /// The product; `None` only when the product aggregate alone decided. The
        /// placement services always fill it in.
        product_id: Option<ProductId>,
    },

    /// A payment's amount or currency differs from the order total.
    #[error(
        "the payment must be exactly the order total: {expected_cents} (minor units) {currency}"
    )]
    AmountMismatch {
        /// The order total in minor units.
        expected_cents: i64,
        /// The order currency.
        currency: Currency,
    },

    /// A refund asks for more than was paid and not yet refunded.
    #[error(
        "a refund may be at most what was paid and not yet refunded: {refundable_cents} \
         (minor units)"
    )]
    RefundExceedsPayment {
        /// What may still be refunded.
        refundable_cents: i64,
    },

    /// An order mixes products priced in different currencies.
    #[error(
        "all products of an order must have the same currency: the order is in \
         {order_currency}, but product {product_id} is priced in {product_currency}"
    )]
    CurrencyMismatch {
        /// The first product whose currency differs.
        product_id: ProductId,
        /// The order's currency (that of its first line's product).
        order_currency: Currency,
        /// That product's currency.
        product_currency: Currency,
    },

    /// The customer was erased: no personal data of theirs is recorded again.
    #[error("this customer's personal data was erased; no new personal data is recorded for them")]
    CustomerErased,
}

fn product_suffix(product_id: &Option<ProductId>) -> String {
    product_id
        .map(|id| format!(" for product {id}"))
        .unwrap_or_default()
}

fn id_suffix(product_id: &Option<ProductId>) -> String {
    product_id.map(|id| format!(" {id}")).unwrap_or_default()
}

impl DomainError {
    /// The API's machine-readable error code.
    ///
    /// | variant | code |
    /// |---|---|
    /// | `NotFound` | `not_found` |
    /// | `AlreadyExists` | `conflict` (a SKU clash is `sku_taken`, decided by the store) |
    /// | `InvalidState` | `invalid_state` |
    /// | `InsufficientStock` | `insufficient_stock` |
    /// | `UnknownProduct` | `unknown_product` |
    /// | `ProductDiscontinued` | `product_discontinued` |
    /// | `AmountMismatch` | `amount_mismatch` |
    /// | `CurrencyMismatch` | `currency_mismatch` |
    /// | `RefundExceedsPayment` | `refund_exceeds_payment` |
    /// | `CustomerErased` | `customer_erased` |
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::AlreadyExists { .. } => "conflict",
            Self::InvalidState { .. } => "invalid_state",
            Self::InsufficientStock { .. } => "insufficient_stock",
            Self::UnknownProduct { .. } => "unknown_product",
            Self::ProductDiscontinued { .. } => "product_discontinued",
            Self::AmountMismatch { .. } => "amount_mismatch",
            Self::CurrencyMismatch { .. } => "currency_mismatch",
            Self::RefundExceedsPayment { .. } => "refund_exceeds_payment",
            Self::CustomerErased => "customer_erased",
        }
    }

    /// An `InvalidState` error with the given reason.
    pub fn invalid_state(reason: impl Into<String>) -> Self {
        Self::InvalidState {
            reason: reason.into(),
        }
    }

    /// Attributes an error decided by a product aggregate to that product: fills in the
    /// product id, turns "product not found" into `UnknownProduct`, and prefixes the reason
    /// of `InvalidState` with the product. Other errors are returned unchanged.
    pub fn for_product(self, id: ProductId) -> Self {
        match self {
            Self::NotFound { .. } => Self::UnknownProduct { product_id: id },
            Self::InsufficientStock {
                requested,
                available,
                ..
            } => Self::InsufficientStock {
                product_id: Some(id),
                requested,
                available,
            },
            Self::ProductDiscontinued { .. } => Self::ProductDiscontinued {
                product_id: Some(id),
            },
            Self::InvalidState { reason } => Self::InvalidState {
                reason: format!("product {id}: {reason}"),
            },
            other => other,
        }
    }
}

/// A stored event (type name, schema version, payload) that this domain cannot decode.
///
/// Older schema versions must be upcast (see the `schemas` crate) before decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventDecodeError {
    /// The event type is not one of the stream type's events.
    #[error("unknown {stream_type} event type {event_type:?}")]
    UnknownEventType {
        /// `"product"` or `"order"`.
        stream_type: &'static str,
        /// The stored event type.
        event_type: String,
    },

    /// The schema version is not the one this domain reads (upcast it first).
    #[error("{event_type} schema version {schema_version} is not supported (expected {expected})")]
    UnsupportedSchemaVersion {
        /// The stored event type.
        event_type: String,
        /// The stored schema version.
        schema_version: u32,
        /// The version this domain reads.
        expected: u32,
    },

    /// The payload does not match the event's schema.
    #[error("invalid {event_type} payload: {reason}")]
    InvalidPayload {
        /// The stored event type.
        event_type: String,
        /// What is wrong with it.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn pid() -> ProductId {
        ProductId::from_uuid(Uuid::from_u128(1))
    }

    #[test]
    fn codes_match_the_api() {
        let eur = Currency::parse("EUR").unwrap();
        let cases = [
            (DomainError::NotFound { entity: "order" }, "not_found"),
            (DomainError::AlreadyExists { entity: "order" }, "conflict"),
            (DomainError::invalid_state("x"), "invalid_state"),
            (
                DomainError::InsufficientStock {
                    product_id: None,
                    requested: 2,
                    available: 1,
                },
                "insufficient_stock",
            ),
            (
                DomainError::UnknownProduct { product_id: pid() },
                "unknown_product",
            ),
            (
                DomainError::ProductDiscontinued { product_id: None },
                "product_discontinued",
            ),
            (
                DomainError::AmountMismatch {
                    expected_cents: 1,
                    currency: eur.clone(),
                },
                "amount_mismatch",
            ),
            (
                DomainError::CurrencyMismatch {
                    product_id: pid(),
                    order_currency: eur.clone(),
                    product_currency: Currency::parse("USD").unwrap(),
                },
                "currency_mismatch",
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code, "{error}");
        }
    }

    #[test]
    fn for_product_fills_in_the_id() {
        let id = pid();
        let e = DomainError::InsufficientStock {
            product_id: None,
            requested: 5,
            available: 3,
        };
        assert_eq!(
            e.to_string(),
            "insufficient stock: 5 requested, 3 available"
        );
        assert_eq!(
            e.for_product(id).to_string(),
            "insufficient stock for product 00000000-0000-0000-0000-000000000001: \
             5 requested, 3 available"
        );
        assert_eq!(
            DomainError::ProductDiscontinued { product_id: None }
                .for_product(id)
                .to_string(),
            "product 00000000-0000-0000-0000-000000000001 is discontinued and cannot be ordered"
        );
        assert_eq!(
            DomainError::NotFound { entity: "product" }.for_product(id),
            DomainError::UnknownProduct { product_id: id }
        );
        assert_eq!(
            DomainError::invalid_state("nope")
                .for_product(id)
                .to_string(),
            "product 00000000-0000-0000-0000-000000000001: nope"
        );
    }
}
