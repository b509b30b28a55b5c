//! The Agora command-path contender (in-process, no HTTP): what the command API does for
//! `POST /v1/products/{id}/restock` between parsing the request and answering it.
//!
//! # The contender slot
//!
//! [`AgoraCommandClient::restock`] is the one place that runs the command. Today it does
//! what `command-api`'s `on_product` does on main: load the whole stream
//! ([`EventStore::load_stream`]), fold it ([`command_api::streams::product_from`]), decide
//! with the domain through cqrs-es's `Aggregate::handle` ([`command_api::streams::handle`])
//! and append the decided events at the loaded version; a lost race is retried from the
//! load. When the command API gets its aggregate cache and snapshots, swap the body of
//! `restock` (and the state [`AgoraCommandClient`] keeps) for the cached engine's entry
//! point, so this contender measures what the service runs.

use anyhow::{anyhow, Result};
use chrono::Utc;
use command_api::streams::{handle, product_from, product_rows};
use domain::{ProductCommand, RestockQuantity};
use eventstore::{AppendError, AppendRequest, EventStore, StreamWrite};
use uuid::Uuid;

use crate::appender::{metadata, split};
use crate::drive::CommandClient;

const ACTOR: &str = "peers-bench";

/// One client of the command path, with its share of the products.
pub struct AgoraCommandClient {
    store: EventStore,
    products: Vec<Uuid>,
    turn: usize,
}

/// One client per share of `products` (existing products), on `store`.
pub fn clients(store: &EventStore, products: &[Uuid], clients: usize) -> Vec<AgoraCommandClient> {
    split(products, clients)
        .into_iter()
        .map(|share| AgoraCommandClient {
            store: store.clone(),
            products: share.to_vec(),
            turn: 0,
        })
        .collect()
}

impl AgoraCommandClient {
    /// THE CONTENDER SLOT: one restock of `id` by `quantity` as the command API runs it
    /// (load, fold, decide, append; a lost race retried from the load). Returns the lost
    /// races. Switch this to the cached engine once it is merged.
    async fn restock(&self, id: Uuid, quantity: RestockQuantity) -> Result<u64> {
        let mut conflicts = 0;
        loop {
            let stream = self.store.load_stream(id).await?;
            let product = product_from(&stream).map_err(|problem| anyhow!("{problem}"))?;
            if !product.exists() {
                return Err(anyhow!("product {id} not found"));
            }
            let events = handle(&product, ProductCommand::Restock { quantity })
                .await
                .map_err(|refused| anyhow!("restock of {id} refused: {refused}"))?;
            let request = AppendRequest {
                streams: vec![StreamWrite::after(
                    &stream,
                    domain::product::STREAM_TYPE,
                    product_rows(&events),
                )],
                metadata: metadata(ACTOR, Uuid::now_v7()),
                occurred_at: Utc::now(),
                claims: vec![],
                idempotency: None,
            };
            match self.store.append(request).await {
                Ok(_) => return Ok(conflicts),
                Err(AppendError::Conflict { .. }) => conflicts += 1,
                Err(other) => return Err(other.into()),
            }
        }
    }
}

impl CommandClient for AgoraCommandClient {
    async fn command(&mut self) -> Result<u64> {
        if self.products.is_empty() {
            return Err(anyhow!("a command-path client without products"));
        }
        self.turn = (self.turn + 1) % self.products.len();
        let quantity = RestockQuantity::parse(1)?;
        self.restock(self.products[self.turn], quantity).await
    }
}
