//! The Message DB contender: Eventide's Message DB (the `@eventide/message-db` package's
//! SQL, installed into the scratch database by `scripts/bench-peers.sh`), driven as its
//! clients drive it: `message_store.write_message(id, stream_name, type, data, metadata,
//! expected_version)` on `product-<uuid>` streams, one connection per client, with the
//! `message_store` role and schema.
//!
//! Two ways to run a command:
//! - [`Mode::LoadAndWrite`]: read the stream as a command handler would
//!   (`get_stream_messages`, folding the stock from every message), then write at the
//!   version read;
//! - [`Mode::KnownVersion`]: write at the version the client remembers from its own last
//!   write, without reading (like Agora's append at a known version).
//!
//! Note: `write_message` takes a transaction-scoped advisory lock on the stream's
//! *category* (`acquire_lock`), so every write to a `product-*` stream commits one at a
//! time, whatever the stream. That is Message DB's design (it keeps category readers in
//! order), and part of what this measures.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tokio_postgres::{Client, NoTls, Statement};
use uuid::Uuid;

use crate::appender::split;
use crate::drive::CommandClient;

/// How a command finds the version it writes at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    LoadAndWrite,
    KnownVersion,
}

const WRITE_SQL: &str = "SELECT message_store.write_message($1, $2, $3, $4, $5, $6)";
const READ_SQL: &str =
    "SELECT position, data FROM message_store.get_stream_messages($1, 0, 1000000)";

/// The error Message DB raises when the expected version is not the stream's.
const WRONG_VERSION: &str = "Wrong expected version";

/// A stream and the version (position of its last message, 0-based) the client knows.
struct Stream {
    name: String,
    version: i64,
}

/// One Message DB client.
pub struct MessageDbClient {
    client: Client,
    write: Statement,
    read: Statement,
    streams: Vec<Stream>,
    turn: usize,
    mode: Mode,
}

/// Connects `clients` clients to the Message DB at `url` (a database where its schema is
/// installed) as its `message_store` role, creates `streams` product streams (a
/// `ProductCreated` message each) and splits them between the clients.
pub async fn clients(
    url: &str,
    clients: usize,
    streams: usize,
    mode: Mode,
) -> Result<Vec<MessageDbClient>> {
    let names: Vec<String> = (0..streams)
        .map(|_| format!("product-{}", Uuid::now_v7()))
        .collect();
    let mut out = Vec::with_capacity(clients);
    for share in split(&names, clients) {
        let mut client = MessageDbClient::connect(url, mode).await?;
        for name in share {
            client.create(name).await?;
        }
        out.push(client);
    }
    Ok(out)
}

impl MessageDbClient {
    async fn connect(url: &str, mode: Mode) -> Result<MessageDbClient> {
        let mut config: tokio_postgres::Config = url.parse().context("parsing the URL")?;
        // Message DB's functions name their tables and helpers without a schema: its clients
        // connect as the `message_store` role with `message_store` on the search path.
        config
            .user("message_store")
            .options("-c search_path=message_store,public");
        let (client, connection) = config
            .connect(NoTls)
            .await
            .context("connecting as the message_store role")?;
        tokio::spawn(connection);
        let write = client.prepare(WRITE_SQL).await?;
        let read = client.prepare(READ_SQL).await?;
        Ok(MessageDbClient {
            client,
            write,
            read,
            streams: Vec::new(),
            turn: 0,
            mode,
        })
    }

    /// Writes the stream's first message (`expected_version` -1: the stream must not exist).
    async fn create(&mut self, name: &str) -> Result<()> {
        let created = json!({ "sku": name, "name": "Product", "price_cents": 1299,
                              "currency": "EUR", "initial_stock": 1_000_000 });
        let version = self.write(name, "ProductCreated", &created, -1).await?;
        self.streams.push(Stream {
            name: name.to_owned(),
            version,
        });
        Ok(())
    }

    /// `write_message` at `expected_version`; returns the stream's new version.
    async fn write(
        &self,
        name: &str,
        message_type: &str,
        data: &Value,
        expected_version: i64,
    ) -> Result<i64> {
        let id = Uuid::new_v4().to_string();
        let metadata = json!({ "actor": "peers-bench" });
        let row = self
            .client
            .query_one(
                &self.write,
                &[
                    &id,
                    &name,
                    &message_type,
                    data,
                    &metadata,
                    &expected_version,
                ],
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Reads the whole stream and folds it: its version and the stock on hand.
    async fn load(&self, name: &str) -> Result<(i64, i64)> {
        let rows = self.client.query(&self.read, &[&name]).await?;
        let mut version = -1;
        let mut on_hand = 0;
        for row in rows {
            version = row.try_get(0)?;
            let data: Option<String> = row.try_get(1)?;
            let data: Value = serde_json::from_str(data.as_deref().unwrap_or("{}"))?;
            let units = |field: &str| data.get(field).and_then(Value::as_i64).unwrap_or(0);
            on_hand += units("initial_stock") + units("quantity");
        }
        Ok((version, on_hand))
    }
}

impl CommandClient for MessageDbClient {
    async fn command(&mut self) -> Result<u64> {
        if self.streams.is_empty() {
            bail!("a Message DB client without streams");
        }
        self.turn = (self.turn + 1) % self.streams.len();
        let name = self.streams[self.turn].name.clone();
        let mut conflicts = 0;
        loop {
            let expected = match self.mode {
                Mode::KnownVersion => self.streams[self.turn].version,
                Mode::LoadAndWrite => {
                    let (version, on_hand) = self.load(&name).await?;
                    if version < 0 || on_hand + 1 > 1_000_000_000 {
                        bail!("{name}: no such product, or its stock is full");
                    }
                    version
                }
            };
            let restocked = json!({ "quantity": 1 });
            match self.write(&name, "StockAdded", &restocked, expected).await {
                Ok(version) => {
                    self.streams[self.turn].version = version;
                    return Ok(conflicts);
                }
                // Cannot happen while clients own disjoint streams; reloaded and retried
                // should it ever.
                Err(error) if format!("{error:#}").contains(WRONG_VERSION) => {
                    conflicts += 1;
                    self.streams[self.turn].version = self.load(&name).await?.0;
                }
                Err(error) => return Err(error.context(format!("write_message on {name}"))),
            }
        }
    }
}
