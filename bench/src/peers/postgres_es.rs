//! The cqrs-es + postgres-es contender: a small Product aggregate (create, restock) run
//! through `CqrsFramework::execute` on postgres-es's plain event store (load every event,
//! handle, insert the new events), as the crates' documentation shows. Its snapshot and
//! aggregate stores are not used: in cqrs-es 0.5.0 they apply each new event twice
//! (DESIGN.md).
//!
//! The aggregate is the benchmark's own, equivalent to Agora's for a restock: it refuses a
//! product that does not exist, a quantity outside 1..=1,000,000 and stock above
//! 1,000,000,000 units.

use std::sync::Arc;

use anyhow::{Context, Result};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, AggregateError, DomainEvent};
use postgres_es::{postgres_cqrs, PostgresCqrs};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::appender::split;
use crate::drive::CommandClient;

/// postgres-es's tables, from its documented schema (`db/init.sql` of postgres-es 0.5.0;
/// the `snapshots` table is unused by the plain event store, created as documented).
pub const SCHEMA: &str = "
CREATE TABLE events
(
    aggregate_type text                         NOT NULL,
    aggregate_id   text                         NOT NULL,
    sequence       bigint CHECK (sequence >= 0) NOT NULL,
    event_type     text                         NOT NULL,
    event_version  text                         NOT NULL,
    payload        json                         NOT NULL,
    metadata       json                         NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);
CREATE TABLE snapshots
(
    aggregate_type   text                                 NOT NULL,
    aggregate_id     text                                 NOT NULL,
    last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
    payload          json                                 NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);";

const MAX_ON_HAND: i64 = 1_000_000_000;
const MAX_RESTOCK: i64 = 1_000_000;

/// The aggregate: a product's existence and stock on hand.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Product {
    exists: bool,
    on_hand: i64,
}

/// Its commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductCommand {
    Create { initial_stock: i64 },
    Restock { quantity: i64 },
}

/// Its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProductEvent {
    ProductCreated { initial_stock: i64 },
    StockAdded { quantity: i64 },
}

impl DomainEvent for ProductEvent {
    fn event_type(&self) -> String {
        match self {
            ProductEvent::ProductCreated { .. } => "ProductCreated".into(),
            ProductEvent::StockAdded { .. } => "StockAdded".into(),
        }
    }

    fn event_version(&self) -> String {
        "1".into()
    }
}

/// A refused command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(&'static str);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Refused {}

impl Aggregate for Product {
    const TYPE: &'static str = "Product";
    type Command = ProductCommand;
    type Event = ProductEvent;
    type Error = Refused;
    type Services = ();

    async fn handle(
        &mut self,
        command: ProductCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), Refused> {
        let event = match command {
            ProductCommand::Create { .. } if self.exists => return Err(Refused("already exists")),
            ProductCommand::Create { initial_stock }
                if (0..=MAX_ON_HAND).contains(&initial_stock) =>
            {
                ProductEvent::ProductCreated { initial_stock }
            }
            ProductCommand::Create { .. } => return Err(Refused("initial stock out of range")),
            ProductCommand::Restock { .. } if !self.exists => {
                return Err(Refused("no such product"))
            }
            ProductCommand::Restock { quantity } if !(1..=MAX_RESTOCK).contains(&quantity) => {
                return Err(Refused("quantity out of range"))
            }
            ProductCommand::Restock { quantity } if self.on_hand + quantity > MAX_ON_HAND => {
                return Err(Refused("too much stock"))
            }
            ProductCommand::Restock { quantity } => ProductEvent::StockAdded { quantity },
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: ProductEvent) {
        match event {
            ProductEvent::ProductCreated { initial_stock } => {
                self.exists = true;
                self.on_hand = initial_stock;
            }
            ProductEvent::StockAdded { quantity } => self.on_hand += quantity,
        }
    }
}

/// One cqrs-es client: its products, on the framework all clients share.
pub struct CqrsEsClient {
    cqrs: Arc<PostgresCqrs<Product>>,
    products: Vec<String>,
    turn: usize,
}

/// Builds the framework on the database at `url` (where [`SCHEMA`] is created) with a pool
/// of `clients` connections (postgres-es's own `default_postgress_pool` is a
/// `PgPoolOptions` pool of 10), creates `streams` products through it and splits them
/// between `clients` clients.
pub async fn clients(url: &str, clients: usize, streams: usize) -> Result<Vec<CqrsEsClient>> {
    let pool = PgPoolOptions::new()
        .max_connections(clients as u32)
        .connect(url)
        .await
        .context("connecting postgres-es's pool")?;
    let cqrs = Arc::new(postgres_cqrs(pool, vec![], ()));
    let ids: Vec<String> = (0..streams).map(|_| Uuid::now_v7().to_string()).collect();
    for id in &ids {
        execute(
            &cqrs,
            id,
            ProductCommand::Create {
                initial_stock: 1_000_000,
            },
        )
        .await?;
    }
    Ok(split(&ids, clients)
        .into_iter()
        .map(|share| CqrsEsClient {
            cqrs: cqrs.clone(),
            products: share.to_vec(),
            turn: 0,
        })
        .collect())
}

/// Executes `command`, retrying lost races (as a caller of cqrs-es must); returns how many.
async fn execute(cqrs: &PostgresCqrs<Product>, id: &str, command: ProductCommand) -> Result<u64> {
    let mut conflicts = 0;
    loop {
        match cqrs.execute(id, command.clone()).await {
            Ok(()) => return Ok(conflicts),
            Err(AggregateError::AggregateConflict) => conflicts += 1,
            Err(error) => return Err(anyhow::anyhow!("cqrs-es execute on {id}: {error}")),
        }
    }
}

impl CommandClient for CqrsEsClient {
    async fn command(&mut self) -> Result<u64> {
        if self.products.is_empty() {
            anyhow::bail!("a cqrs-es client without products");
        }
        self.turn = (self.turn + 1) % self.products.len();
        execute(
            &self.cqrs,
            &self.products[self.turn],
            ProductCommand::Restock { quantity: 1 },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    #[test]
    fn restocks_only_existing_products_within_bounds() {
        TestFramework::<Product>::with(())
            .given_no_previous_events()
            .when(ProductCommand::Restock { quantity: 1 })
            .then_expect_error(Refused("no such product"));
        TestFramework::<Product>::with(())
            .given(vec![ProductEvent::ProductCreated { initial_stock: 5 }])
            .when(ProductCommand::Restock { quantity: 2 })
            .then_expect_events(vec![ProductEvent::StockAdded { quantity: 2 }]);
        TestFramework::<Product>::with(())
            .given(vec![ProductEvent::ProductCreated {
                initial_stock: MAX_ON_HAND,
            }])
            .when(ProductCommand::Restock { quantity: 1 })
            .then_expect_error(Refused("too much stock"));
    }
}
