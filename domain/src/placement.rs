//! Domain services spanning an order and its products: placing (order + reservations),
//! shipping (order + stock out), cancelling and expiring (order + reservations released).
//!
//! They are pure: the caller loads the order and every product its lines name, calls one
//! of these, and appends all returned events in one transaction, each stream at the
//! version it was loaded at. Either every event is appended or none is.

use std::collections::HashMap;

use crate::error::DomainError;
use crate::order::{Order, OrderCommand, OrderEvent, OrderStatus, RefundRequest};
use crate::product::{Product, ProductCommand, ProductEvent};
use crate::values::{
    ActorId, CancelReason, Carrier, Currency, CustomerId, LineQuantity, OrderId, OrderLines,
    ProductId, Sealed, TrackingNumber,
};

/// The events of one multi-stream decision, to append in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlacementEvents {
    /// The order stream's new events.
    pub order: Vec<OrderEvent>,
    /// Each touched product's new events, in the order's line order (each product once).
    pub products: Vec<(ProductId, Vec<ProductEvent>)>,
}

/// Places an order: prices every line at its product's current price, records the order
/// and reserves the stock of every line.
///
/// `customer_id` is whose order it is; `placed_by` is who places it (the token `sub` of
/// the caller): the customer themself, or an admin on the customer's behalf. Who may
/// place for whom is the caller's concern (authorization), not the domain's.
///
/// `products` holds the current state of (at least) every product named in `lines`.
/// The lines are checked in order and the first failing one is reported:
/// missing or not created → `UnknownProduct`, discontinued → `ProductDiscontinued`,
/// priced in another currency than the first line's product → `CurrencyMismatch`,
/// `quantity` above `available` → `InsufficientStock`. The order's currency is that of
/// its products.
///
/// The order stream must be new (append it at expected version 0). The order names no
/// shipping address; [`place_order_shipping_to`] names one.
pub fn place_order(
    order_id: OrderId,
    customer_id: CustomerId,
    placed_by: ActorId,
    lines: &OrderLines,
    products: &HashMap<ProductId, Product>,
) -> Result<PlacementEvents, DomainError> {
    place_order_shipping_to(order_id, customer_id, placed_by, None, lines, products)
}

/// [`place_order`] with where to ship the order: an address sealed with the customer's
/// data key, recorded in `OrderPlaced` (none: digital goods).
pub fn place_order_shipping_to(
    order_id: OrderId,
    customer_id: CustomerId,
    placed_by: ActorId,
    shipping_address: Option<Sealed>,
    lines: &OrderLines,
    products: &HashMap<ProductId, Product>,
) -> Result<PlacementEvents, DomainError> {
    let mut order_currency: Option<&Currency> = None;
    let mut product_events = Vec::with_capacity(lines.len());
    let priced = lines.try_priced(|line| {
        let product_id = line.product_id;
        let product = lookup(products, product_id)?;
        let (true, Some(price), Some(currency)) =
            (product.exists(), product.price(), product.currency())
        else {
            return Err(DomainError::UnknownProduct { product_id });
        };
        if product.is_discontinued() {
            return Err(DomainError::ProductDiscontinued {
                product_id: Some(product_id),
            });
        }
        let order_currency = *order_currency.get_or_insert(currency);
        if order_currency != currency {
            return Err(DomainError::CurrencyMismatch {
                product_id,
                order_currency: order_currency.clone(),
                product_currency: currency.clone(),
            });
        }
        let events = product
            .decide(ProductCommand::Reserve {
                order_id,
                quantity: line.quantity,
            })
            .map_err(|e| e.for_product(product_id))?;
        product_events.push((product_id, events));
        Ok(price)
    })?;
    let Some(currency) = order_currency.cloned() else {
        // Unreachable: `lines` has at least one line, which set the currency.
        return Err(DomainError::invalid_state(
            "an order needs at least one line",
        ));
    };
    let order = Order::default().decide(OrderCommand::Place {
        customer_id,
        placed_by,
        lines: priced,
        currency,
        shipping_address,
    })?;
    Ok(PlacementEvents {
        order,
        products: product_events,
    })
}

/// Ships a paid order: records the shipment and sends every line's reserved stock out of
/// the warehouse (`on_hand` and `reserved` drop). Works for products discontinued since.
///
/// `products` holds the current state of every product in the order's lines (a missing
/// one is `UnknownProduct`). The order must be `paid`, else `InvalidState` (`NotFound` if
/// it was never placed).
pub fn ship_order(
    order_id: OrderId,
    order: &Order,
    carrier: Carrier,
    tracking_number: TrackingNumber,
    products: &HashMap<ProductId, Product>,
) -> Result<PlacementEvents, DomainError> {
    let order_events = order.decide(OrderCommand::Ship {
        carrier,
        tracking_number,
    })?;
    let products = per_line(order, products, |quantity| ProductCommand::Ship {
        order_id,
        quantity,
    })?;
    Ok(PlacementEvents {
        order: order_events,
        products,
    })
}

/// Cancels a placed or paid order: records the cancellation (with a refund of the total
/// if it was paid) and releases every line's reservation. Works for products discontinued
/// since.
///
/// `products` holds the current state of every product in the order's lines (a missing
/// one is `UnknownProduct`). The order must be `placed` or `paid`, else `InvalidState`
/// (`NotFound` if it was never placed).
pub fn cancel_order(
    order_id: OrderId,
    order: &Order,
    reason: CancelReason,
    refund: Option<RefundRequest>,
    products: &HashMap<ProductId, Product>,
) -> Result<PlacementEvents, DomainError> {
    let order_events = order.decide(OrderCommand::Cancel { reason, refund })?;
    let products = per_line(order, products, |quantity| ProductCommand::Release {
        order_id,
        quantity,
    })?;
    Ok(PlacementEvents {
        order: order_events,
        products,
    })
}

/// Expires an unpaid order: a `placed` order is cancelled with reason `payment_timeout`
/// and its reservations released, exactly like [`cancel_order`]. Any other status is
/// `InvalidState`: a paid order is never expired (a payment that won the race stands), and
/// an order cancelled already is not cancelled twice.
pub fn expire_order(
    order_id: OrderId,
    order: &Order,
    products: &HashMap<ProductId, Product>,
) -> Result<PlacementEvents, DomainError> {
    match order.status() {
        Some(OrderStatus::Placed) => cancel_order(
            order_id,
            order,
            CancelReason::payment_timeout(),
            None,
            products,
        ),
        Some(status) => Err(DomainError::invalid_state(format!(
            "order is {status}; only a placed order expires"
        ))),
        None => Err(DomainError::NotFound { entity: "order" }),
    }
}

fn lookup(
    products: &HashMap<ProductId, Product>,
    product_id: ProductId,
) -> Result<&Product, DomainError> {
    products
        .get(&product_id)
        .ok_or(DomainError::UnknownProduct { product_id })
}

/// Decides `command(quantity)` on each order line's product, in line order.
fn per_line(
    order: &Order,
    products: &HashMap<ProductId, Product>,
    command: impl Fn(LineQuantity) -> ProductCommand,
) -> Result<Vec<(ProductId, Vec<ProductEvent>)>, DomainError> {
    order
        .lines()
        .iter()
        .map(|line| {
            let product = lookup(products, line.product_id)?;
            let events = product
                .decide(command(line.quantity))
                .map_err(|e| e.for_product(line.product_id))?;
            Ok((line.product_id, events))
        })
        .collect()
}

#[cfg(test)]
mod tests;
