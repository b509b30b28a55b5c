//! Agora's append path as a benchmark client: single- or N-event restocks of `product`
//! streams through [`EventStore::append`], at the version the client remembers from its
//! own last append (a command that knows its version), or after loading the stream first.
//! `append-bench` runs it alone; `peers-bench` runs it as the "append at a known version"
//! contender.

use anyhow::{Context, Result};
use chrono::Utc;
use eventstore::{
    AppendError, AppendRequest, EventMetadata, EventStore, Hash, IdempotencyRecord, NewEvent,
    StreamWrite,
};
use serde_json::json;
use uuid::Uuid;

use crate::drive::CommandClient;

const STREAM_TYPE: &str = domain::product::STREAM_TYPE;
const EVENT_TYPE: &str = "StockAdded";

/// What each command does.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppendOptions {
    /// Events per command (to one stream, in one statement); at least 1.
    pub events_per_command: usize,
    /// Load the stream before every append instead of using the remembered version.
    pub load_each: bool,
    /// Also write an idempotency record with every command.
    pub idempotency: bool,
    /// The actor recorded in the metadata.
    pub actor: &'static str,
}

/// A stream a client owns and what it knows about it.
#[derive(Debug, Clone, Copy)]
pub struct Owned {
    pub id: Uuid,
    pub version: i64,
    pub last_hash: Hash,
}

impl Owned {
    /// A stream that does not exist yet.
    pub fn fresh() -> Self {
        Owned {
            id: Uuid::now_v7(),
            version: 0,
            last_hash: Hash::GENESIS,
        }
    }

    /// An existing stream, as the store has it now.
    pub async fn load(store: &EventStore, id: Uuid) -> Result<Self> {
        let loaded = store.load_stream(id).await?;
        Ok(Owned {
            id,
            version: loaded.version,
            last_hash: loaded.last_hash,
        })
    }
}

/// One client of the append path. With no streams, every command starts a new one.
pub struct Appender {
    store: EventStore,
    streams: Vec<Owned>,
    turn: usize,
    options: AppendOptions,
}

impl Appender {
    pub fn new(store: EventStore, streams: Vec<Owned>, options: AppendOptions) -> Self {
        Appender {
            store,
            streams,
            turn: 0,
            options,
        }
    }

    /// One client per slice of `streams` (existing streams, loaded now for their versions),
    /// `per_client` streams each.
    pub async fn for_streams(
        store: &EventStore,
        streams: &[Uuid],
        clients: usize,
        options: AppendOptions,
    ) -> Result<Vec<Appender>> {
        let mut appenders = Vec::with_capacity(clients);
        for share in split(streams, clients) {
            let mut owned = Vec::with_capacity(share.len());
            for id in share {
                owned.push(Owned::load(store, *id).await?);
            }
            appenders.push(Appender::new(store.clone(), owned, options));
        }
        Ok(appenders)
    }
}

impl CommandClient for Appender {
    async fn command(&mut self) -> Result<u64> {
        let mut fresh;
        let stream = if self.streams.is_empty() {
            fresh = Owned::fresh();
            &mut fresh
        } else {
            self.turn = (self.turn + 1) % self.streams.len();
            &mut self.streams[self.turn]
        };
        let mut conflicts = 0;
        loop {
            if self.options.load_each {
                *stream = Owned::load(&self.store, stream.id).await?;
            }
            match self.store.append(restock(&self.options, stream)).await {
                Ok(appended) => {
                    if let Some(last) = appended.events.last() {
                        stream.version = last.version;
                        stream.last_hash = last.hash;
                    }
                    return Ok(conflicts);
                }
                // Cannot happen while clients own disjoint streams; counted, reloaded and
                // retried like the command API would, should it ever.
                Err(AppendError::Conflict { .. }) => {
                    conflicts += 1;
                    *stream = Owned::load(&self.store, stream.id).await?;
                }
                Err(other) => return Err(other).context("append failed"),
            }
        }
    }
}

/// One command's append: `events_per_command` restocks of one unit at the stream's version.
pub fn restock(options: &AppendOptions, stream: &Owned) -> AppendRequest {
    let command_id = Uuid::now_v7();
    let events = (0..options.events_per_command)
        .map(|_| NewEvent::new(EVENT_TYPE, 1, json!({ "quantity": 1 })))
        .collect();
    let idempotency = options.idempotency.then(|| IdempotencyRecord {
        caller: options.actor.into(),
        key: command_id.to_string(),
        request_hash: vec![0; 32],
        status_code: 200,
        resource_id: stream.id,
        resource_version: stream.version + options.events_per_command as i64,
    });
    AppendRequest {
        streams: vec![StreamWrite {
            stream_type: STREAM_TYPE.into(),
            stream_id: stream.id,
            expected_version: stream.version,
            prev_hash: stream.last_hash,
            events,
        }],
        metadata: metadata(options.actor, command_id),
        occurred_at: Utc::now(),
        claims: vec![],
        idempotency,
    }
}

/// The metadata of a benchmark command.
pub fn metadata(actor: &str, command_id: Uuid) -> EventMetadata {
    EventMetadata {
        actor: actor.into(),
        correlation_id: command_id.to_string(),
        causation_id: None,
        command_id,
    }
}

/// `items` split into `parts` contiguous shares whose lengths differ by at most one (the
/// first `items.len() % parts` shares get the extra item). `parts` must be at least 1.
pub fn split<T>(items: &[T], parts: usize) -> Vec<&[T]> {
    let parts = parts.max(1);
    let base = items.len() / parts;
    let extra = items.len() % parts;
    let mut shares = Vec::with_capacity(parts);
    let mut start = 0;
    for part in 0..parts {
        let len = base + usize::from(part < extra);
        shares.push(&items[start..start + len]);
        start += len;
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_evenly_with_the_remainder_first() {
        let items: Vec<u32> = (0..10).collect();
        let shares = split(&items, 4);
        let lens: Vec<usize> = shares.iter().map(|s| s.len()).collect();
        assert_eq!(lens, [3, 3, 2, 2]);
        assert_eq!(shares.concat(), items);
        assert_eq!(split(&items, 1), [&items[..]]);
        assert!(split::<u32>(&[], 3).iter().all(|s| s.is_empty()));
    }
}
