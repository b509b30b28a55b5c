//! The Product aggregate (stream type `product`): catalog data and stock.
//!
//! Stock is `on_hand` (physically present) and `reserved` (held by open orders);
//! `available = on_hand - reserved`. The rules keep `0 <= reserved <= on_hand <=`
//! [`StockQuantity::MAX`], so `available` is never negative.
//!
//! A discontinued product can no longer be reserved (ordered), repriced or restocked, but
//! the reservations it still holds can be released or shipped.
//!
//! The aggregate does not know its own id (the stream id is known outside), so errors it
//! decides alone carry no product id; [`DomainError::for_product`] adds it.

use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::stored::stored_events;
use crate::values::{
    Currency, LineQuantity, OrderId, PriceCents, ProductName, RestockQuantity, Sku, StockQuantity,
};

/// The stream type of product streams.
pub const STREAM_TYPE: &str = "product";

const ENTITY: &str = "product";

/// A command on one product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductCommand {
    /// Adds a product to the catalog. SKU uniqueness is checked by the store, not here.
    Create {
        /// The stock keeping unit.
        sku: Sku,
        /// The display name.
        name: ProductName,
        /// The unit price.
        price: PriceCents,
        /// The currency of the price.
        currency: Currency,
        /// Units on hand at creation.
        initial_stock: StockQuantity,
    },
    /// Sets a new unit price (orders already placed keep theirs).
    ChangePrice {
        /// The new unit price.
        price: PriceCents,
    },
    /// Adds units to the stock on hand.
    Restock {
        /// Units added.
        quantity: RestockQuantity,
    },
    /// Takes the product out of sale for good.
    Discontinue,
    /// Holds available units for an order.
    Reserve {
        /// The order holding the units.
        order_id: OrderId,
        /// Units held.
        quantity: LineQuantity,
    },
    /// Gives back units held for an order (the order was cancelled).
    Release {
        /// The order that held the units.
        order_id: OrderId,
        /// Units given back.
        quantity: LineQuantity,
    },
    /// Sends units held for an order out of the warehouse (`on_hand` and `reserved` drop).
    Ship {
        /// The order shipped.
        order_id: OrderId,
        /// Units shipped.
        quantity: LineQuantity,
    },
}

/// Payload of `ProductCreated`: a product was added to the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductCreated {
    /// The stock keeping unit.
    pub sku: Sku,
    /// The display name.
    pub name: ProductName,
    /// The unit price.
    pub price_cents: PriceCents,
    /// The currency of the price.
    pub currency: Currency,
    /// Units on hand at creation.
    pub initial_stock: StockQuantity,
}

/// Payload of `PriceChanged`: the unit price changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceChanged {
    /// The new unit price.
    pub price_cents: PriceCents,
    /// The unit price before.
    pub previous_price_cents: PriceCents,
}

/// Payload of `StockAdded`: the product was restocked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockAdded {
    /// Units added to `on_hand`.
    pub quantity: RestockQuantity,
}

/// Payload of `StockReserved`: units were held for an order (`reserved` grows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockReserved {
    /// The order holding the units.
    pub order_id: OrderId,
    /// Units held.
    pub quantity: LineQuantity,
}

/// Payload of `StockReleased`: units held for an order were given back (`reserved` drops).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockReleased {
    /// The order that held the units.
    pub order_id: OrderId,
    /// Units given back.
    pub quantity: LineQuantity,
}

/// Payload of `StockShipped`: units held for an order left the warehouse (`on_hand` and
/// `reserved` both drop).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockShipped {
    /// The order shipped.
    pub order_id: OrderId,
    /// Units shipped.
    pub quantity: LineQuantity,
}

/// Payload of `ProductDiscontinued`: the product was taken out of sale (empty object).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductDiscontinued {}

stored_events!(
    /// An event of a product stream.
    ProductEvent, stream_type = STREAM_TYPE, {
        /// See [`ProductCreated`].
        ProductCreated,
        /// See [`PriceChanged`].
        PriceChanged,
        /// See [`StockAdded`].
        StockAdded,
        /// See [`StockReserved`].
        StockReserved,
        /// See [`StockReleased`].
        StockReleased,
        /// See [`StockShipped`].
        StockShipped,
        /// See [`ProductDiscontinued`].
        ProductDiscontinued,
    }
);

/// The state of one product, folded from its events. `Default` is "not created".
///
/// Serialized (for snapshots and the audit state endpoint) as
/// `{"exists", "sku", "name", "price_cents", "currency", "on_hand", "reserved",
/// "discontinued"}`, with `null` catalog fields while not created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    exists: bool,
    sku: Option<Sku>,
    name: Option<ProductName>,
    price_cents: Option<PriceCents>,
    currency: Option<Currency>,
    on_hand: i64,
    reserved: i64,
    discontinued: bool,
}

impl Product {
    /// Folds events, oldest first, into a state.
    pub fn from_events(events: impl IntoIterator<Item = ProductEvent>) -> Self {
        let mut product = Self::default();
        for event in events {
            product.apply(event);
        }
        product
    }

    /// Whether the product was created.
    pub fn exists(&self) -> bool {
        self.exists
    }

    /// The SKU (`None` while not created).
    pub fn sku(&self) -> Option<&Sku> {
        self.sku.as_ref()
    }

    /// The display name (`None` while not created).
    pub fn name(&self) -> Option<&ProductName> {
        self.name.as_ref()
    }

    /// The current unit price (`None` while not created).
    pub fn price(&self) -> Option<PriceCents> {
        self.price_cents
    }

    /// The currency of the price (`None` while not created).
    pub fn currency(&self) -> Option<&Currency> {
        self.currency.as_ref()
    }

    /// Units physically present.
    pub fn on_hand(&self) -> i64 {
        self.on_hand
    }

    /// Units held by open orders.
    pub fn reserved(&self) -> i64 {
        self.reserved
    }

    /// Units that can still be reserved: `on_hand - reserved`, never negative.
    pub fn available(&self) -> i64 {
        self.on_hand.saturating_sub(self.reserved).max(0)
    }

    /// Whether the product was discontinued.
    pub fn is_discontinued(&self) -> bool {
        self.discontinued
    }

    /// Decides the events a command produces, or why it is refused. Pure: `self` is not
    /// changed; apply the events to move on.
    ///
    /// Refusals: `Create` on an existing product is `AlreadyExists`; anything else on a
    /// product not created is `NotFound`. On a discontinued product, `Reserve` is
    /// `ProductDiscontinued` and `ChangePrice`, `Restock` and `Discontinue` are
    /// `InvalidState`. `Reserve` beyond `available` is `InsufficientStock`; `Restock`
    /// beyond [`StockQuantity::MAX`] units on hand and `Release`/`Ship` of more than is
    /// reserved are `InvalidState`.
    pub fn decide(&self, command: ProductCommand) -> Result<Vec<ProductEvent>, DomainError> {
        if let ProductCommand::Create {
            sku,
            name,
            price,
            currency,
            initial_stock,
        } = command
        {
            if self.exists {
                return Err(DomainError::AlreadyExists { entity: ENTITY });
            }
            return Ok(vec![ProductCreated {
                sku,
                name,
                price_cents: price,
                currency,
                initial_stock,
            }
            .into()]);
        }
        let Some(previous_price) = self.price_cents.filter(|_| self.exists) else {
            return Err(DomainError::NotFound { entity: ENTITY });
        };
        let event: ProductEvent = match command {
            ProductCommand::Create { .. } => {
                return Err(DomainError::AlreadyExists { entity: ENTITY })
            }
            ProductCommand::ChangePrice { price } => {
                self.ensure_on_sale("its price cannot be changed")?;
                PriceChanged {
                    price_cents: price,
                    previous_price_cents: previous_price,
                }
                .into()
            }
            ProductCommand::Restock { quantity } => {
                self.ensure_on_sale("it cannot be restocked")?;
                let after = self.on_hand.saturating_add(quantity.get());
                if after > StockQuantity::MAX {
                    return Err(DomainError::invalid_state(format!(
                        "restocking {quantity} units would put {after} units on hand; \
                         at most {} are allowed",
                        StockQuantity::MAX
                    )));
                }
                StockAdded { quantity }.into()
            }
            ProductCommand::Discontinue => {
                if self.discontinued {
                    return Err(DomainError::invalid_state(
                        "product is already discontinued",
                    ));
                }
                ProductDiscontinued {}.into()
            }
            ProductCommand::Reserve { order_id, quantity } => {
                if self.discontinued {
                    return Err(DomainError::ProductDiscontinued { product_id: None });
                }
                let available = self.available();
                if quantity.get() > available {
                    return Err(DomainError::InsufficientStock {
                        product_id: None,
                        requested: quantity.get(),
                        available,
                    });
                }
                StockReserved { order_id, quantity }.into()
            }
            ProductCommand::Release { order_id, quantity } => {
                self.ensure_reserved(quantity, "release")?;
                StockReleased { order_id, quantity }.into()
            }
            ProductCommand::Ship { order_id, quantity } => {
                self.ensure_reserved(quantity, "ship")?;
                StockShipped { order_id, quantity }.into()
            }
        };
        Ok(vec![event])
    }

    fn ensure_on_sale(&self, consequence: &str) -> Result<(), DomainError> {
        if self.discontinued {
            Err(DomainError::invalid_state(format!(
                "product is discontinued; {consequence}"
            )))
        } else {
            Ok(())
        }
    }

    /// `Release` and `Ship` act on reserved units only, so counts never go negative.
    fn ensure_reserved(&self, quantity: LineQuantity, verb: &str) -> Result<(), DomainError> {
        if quantity.get() > self.reserved {
            Err(DomainError::invalid_state(format!(
                "cannot {verb} {quantity} units: only {} are reserved",
                self.reserved
            )))
        } else {
            Ok(())
        }
    }

    /// Applies one event (a fact: never refused). Arithmetic saturates, so even a corrupt
    /// log cannot make this panic.
    pub fn apply(&mut self, event: ProductEvent) {
        match event {
            ProductEvent::ProductCreated(e) => {
                *self = Self {
                    exists: true,
                    sku: Some(e.sku),
                    name: Some(e.name),
                    price_cents: Some(e.price_cents),
                    currency: Some(e.currency),
                    on_hand: e.initial_stock.get(),
                    reserved: 0,
                    discontinued: false,
                };
            }
            ProductEvent::PriceChanged(e) => self.price_cents = Some(e.price_cents),
            ProductEvent::StockAdded(e) => {
                self.on_hand = self.on_hand.saturating_add(e.quantity.get());
            }
            ProductEvent::StockReserved(e) => {
                self.reserved = self.reserved.saturating_add(e.quantity.get());
            }
            ProductEvent::StockReleased(e) => {
                self.reserved = self.reserved.saturating_sub(e.quantity.get());
            }
            ProductEvent::StockShipped(e) => {
                self.on_hand = self.on_hand.saturating_sub(e.quantity.get());
                self.reserved = self.reserved.saturating_sub(e.quantity.get());
            }
            ProductEvent::ProductDiscontinued(_) => self.discontinued = true,
        }
    }
}

impl cqrs_es::Aggregate for Product {
    const TYPE: &'static str = STREAM_TYPE;
    type Command = ProductCommand;
    type Event = ProductEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: ProductCommand,
        _services: &(),
        sink: &cqrs_es::event_sink::EventSink<Self>,
    ) -> Result<(), DomainError> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: ProductEvent) {
        // The inherent `Product::apply` (inherent functions take precedence).
        Product::apply(self, event);
    }
}

#[cfg(test)]
mod tests;
