//! The Agora command-path contender (in-process, no HTTP): what the command API runs for
//! `POST /v1/products/{id}/restock` between parsing the request and answering it —
//! `command_api::routes::products::run_on_product` on one shared [`Engine`] (the
//! process's aggregate cache and stream locks; the store's group commit when it is on):
//! take the stream's lock, read its state (the cache, else snapshot + tail), decide through
//! cqrs-es's `Aggregate::handle`, append, retry a lost race from a fresh load.

use std::sync::Arc;

use anyhow::{anyhow, Result};
use command_api::execution::{CommandContext, Engine};
use command_api::routes::products::run_on_product;
use domain::{ProductCommand, RestockQuantity};
use eventstore::EventStore;
use uuid::Uuid;

use crate::appender::split;
use crate::drive::CommandClient;

const ACTOR: &str = "peers-bench";

/// The command API's default cache size, MiB.
const CACHE_MB: usize = 64;

/// One client of the command path, with its share of the products.
pub struct AgoraCommandClient {
    engine: Arc<Engine>,
    products: Vec<Uuid>,
    turn: usize,
}

/// One client per share of `products` (existing products), all on one engine over
/// `store` (as the clients of one command-api process share it). Needs a tokio runtime.
pub fn clients(store: &EventStore, products: &[Uuid], clients: usize) -> Vec<AgoraCommandClient> {
    let engine = Arc::new(Engine::new(store.clone(), CACHE_MB));
    split(products, clients)
        .into_iter()
        .map(|share| AgoraCommandClient {
            engine: engine.clone(),
            products: share.to_vec(),
            turn: 0,
        })
        .collect()
}

impl AgoraCommandClient {
    /// One restock of `id` by `quantity`, as the command API runs it. Lost races are
    /// retried inside the engine (it reports none).
    async fn restock(&self, id: Uuid, quantity: RestockQuantity) -> Result<u64> {
        let context = CommandContext::internal(ACTOR, id);
        run_on_product(
            &self.engine,
            &context,
            id,
            ProductCommand::Restock { quantity },
        )
        .await
        .map_err(|problem| anyhow!("restock of {id}: {problem}"))?;
        Ok(0)
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
