//! Atomic multi-stream append: every event of a command, its unique claims and its
//! idempotency record in one statement, so one round trip and one transaction.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{AppendError, StoreError};
use crate::event::{EventMetadata, NewEvent, RecordedEvent};
use crate::hashchain::{chain_hash, truncate_to_micros, Hash, HashedFields};
use crate::load::LoadedStream;
use crate::state::StreamState;
use crate::xid8::Xid8;
use crate::EventStore;

/// Events for one stream, with the version and hash the writer saw when it decided them.
#[derive(Debug, Clone)]
pub struct StreamWrite {
    pub stream_type: String,
    pub stream_id: Uuid,
    /// The stream's version when it was loaded (0 for a new stream).
    pub expected_version: i64,
    /// The hash of the event at `expected_version` ([`Hash::GENESIS`] for a new stream).
    pub prev_hash: Hash,
    pub events: Vec<NewEvent>,
}

impl StreamWrite {
    /// Events to append after what `loaded` holds.
    pub fn after(
        loaded: &LoadedStream,
        stream_type: impl Into<String>,
        events: Vec<NewEvent>,
    ) -> Self {
        StreamWrite {
            stream_type: stream_type.into(),
            stream_id: loaded.stream_id,
            expected_version: loaded.version,
            prev_hash: loaded.last_hash,
            events,
        }
    }

    /// Events to append after the state a command decided on.
    pub fn onto(
        state: &StreamState,
        stream_type: impl Into<String>,
        events: Vec<NewEvent>,
    ) -> Self {
        StreamWrite {
            stream_type: stream_type.into(),
            stream_id: state.stream_id,
            expected_version: state.version,
            prev_hash: state.last_hash,
            events,
        }
    }
}

/// A value that must be unique within `scope` across all streams (e.g. a product's SKU).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueClaim {
    pub scope: String,
    pub value: String,
    pub stream_id: Uuid,
}

/// The response to remember for a command sent with an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub caller: String,
    pub key: String,
    pub request_hash: Vec<u8>,
    pub status_code: i16,
    pub resource_id: Uuid,
    pub resource_version: i64,
}

/// Everything one command appends.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub streams: Vec<StreamWrite>,
    pub metadata: EventMetadata,
    pub occurred_at: DateTime<Utc>,
    pub claims: Vec<UniqueClaim>,
    pub idempotency: Option<IdempotencyRecord>,
}

/// What an append recorded.
#[derive(Debug, Clone)]
pub struct Appended {
    /// The recorded events, in the order they were given (which is position order).
    pub events: Vec<RecordedEvent>,
}

impl Appended {
    /// The global position of the last event appended.
    pub fn last_position(&self) -> i64 {
        self.events.iter().map(|e| e.position).max().unwrap_or(0)
    }

    /// The new version of `stream_id`, if the append wrote to it.
    pub fn version_of(&self, stream_id: Uuid) -> Option<i64> {
        self.events
            .iter()
            .filter(|e| e.stream_id == stream_id)
            .map(|e| e.version)
            .max()
    }
}

/// Events, unique claims and idempotency records of one or more commands in one statement
/// (so one round trip and one transaction). Each idempotency record takes the position
/// of its command's last event.
const APPEND_SQL: &str = "\
WITH appended AS (
    INSERT INTO events (event_id, stream_type, stream_id, version, event_type, schema_version,
                        payload, metadata, occurred_at, prev_hash, hash)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::int8[], $5::text[], $6::int4[],
                         $7::jsonb[], $8::jsonb[], $9::timestamptz[], $10::bytea[], $11::bytea[])
    RETURNING event_id, position, transaction_id
), claimed AS (
    INSERT INTO unique_claims (scope, value, stream_id)
    SELECT * FROM unnest($12::text[], $13::text[], $14::uuid[])
), remembered AS (
    INSERT INTO idempotency_keys (caller, key, request_hash, status_code, resource_id,
                                  resource_version, position)
    SELECT r.caller, r.key, r.request_hash, r.status_code, r.resource_id, r.resource_version,
           a.position
    FROM unnest($15::text[], $16::text[], $17::bytea[], $18::int2[], $19::uuid[], $20::int8[],
                $21::uuid[])
         AS r(caller, key, request_hash, status_code, resource_id, resource_version, last_event)
    JOIN appended a ON a.event_id = r.last_event
)
SELECT event_id, position, transaction_id FROM appended";

/// The common case, no unique claims and no idempotency record: one plain insert, without
/// the empty CTEs (measured: their executor start-up is a tenth of the backend's CPU).
const APPEND_EVENTS_ONLY_SQL: &str = "\
INSERT INTO events (event_id, stream_type, stream_id, version, event_type, schema_version,
                    payload, metadata, occurred_at, prev_hash, hash)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::int8[], $5::text[], $6::int4[],
                     $7::jsonb[], $8::jsonb[], $9::timestamptz[], $10::bytea[], $11::bytea[])
RETURNING event_id, position, transaction_id";

/// A command ready to be written: its request and its numbered, chained events.
pub(crate) struct Prepared {
    pub request: AppendRequest,
    pub events: Vec<RecordedEvent>,
}

impl Prepared {
    pub fn new(request: AppendRequest) -> Result<Prepared, AppendError> {
        let events = prepare(&request)?;
        Ok(Prepared { request, events })
    }
}

impl EventStore {
    /// Appends all of a command's events atomically: either every stream gets its events
    /// at exactly the expected versions (and the claims and idempotency record are written),
    /// or nothing is written. With group commit on, concurrent commands share a
    /// transaction, each still all or nothing ([`crate::group_commit`]).
    pub async fn append(&self, request: AppendRequest) -> Result<Appended, AppendError> {
        let prepared = Prepared::new(request)?;
        if let Some(group) = &self.group {
            return group.append(prepared).await;
        }
        let mut results = self.append_prepared(vec![prepared]).await;
        results
            .pop()
            .unwrap_or_else(|| Err(AppendError::Invalid("no result".into())))
    }

    /// Appends several commands in one transaction, each all or nothing: a command that
    /// conflicts (or whose claim or idempotency key is taken) gets its error and the others
    /// are written without it. Commands must not share a stream, claim or key (the same
    /// process serializes those on its stream locks). One result per request, in order.
    pub async fn append_batch(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Vec<Result<Appended, AppendError>> {
        let mut results: Vec<Option<Result<Appended, AppendError>>> = Vec::new();
        let mut prepared = Vec::new();
        let mut slots = Vec::new();
        for request in requests {
            match Prepared::new(request) {
                Ok(ready) => {
                    slots.push(results.len());
                    results.push(None);
                    prepared.push(ready);
                }
                Err(error) => results.push(Some(Err(error))),
            }
        }
        for (slot, result) in slots.into_iter().zip(self.append_prepared(prepared).await) {
            results[slot] = Some(result);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(AppendError::Invalid("no result".into()))))
            .collect()
    }

    /// [`EventStore::append_batch`] for prepared commands.
    pub(crate) async fn append_prepared(
        &self,
        commands: Vec<Prepared>,
    ) -> Vec<Result<Appended, AppendError>> {
        let mut results: Vec<Option<Result<Appended, AppendError>>> =
            commands.iter().map(|_| None).collect();
        let mut live: Vec<usize> = (0..commands.len()).collect();
        while !live.is_empty() {
            let batch: Vec<&Prepared> = live.iter().map(|i| &commands[*i]).collect();
            match self.insert(&batch).await {
                Ok(mut appended) => {
                    for (index, events) in live.iter().zip(appended.drain(..)) {
                        results[*index] = Some(Ok(Appended { events }));
                    }
                    live.clear();
                }
                Err(error) => match culprit(&error, &batch) {
                    // One command's conflict, claim or key: it alone fails; the rest retry.
                    Some((at, refused)) => {
                        results[live[at]] = Some(Err(refused));
                        live.remove(at);
                    }
                    // The statement failed for a reason we cannot pin on one command
                    // (nothing was written): each command alone, so only that one fails.
                    None if live.len() > 1 && error.as_db_error().is_some() => {
                        for index in live.drain(..) {
                            let alone = [&commands[index]];
                            results[index] = Some(match self.insert(&alone).await {
                                Ok(mut appended) => Ok(Appended {
                                    events: appended.pop().unwrap_or_default(),
                                }),
                                Err(error) => Err(culprit(&error, &alone)
                                    .map(|(_, refused)| refused)
                                    .unwrap_or_else(|| error.into())),
                            });
                        }
                    }
                    // Not a statement error (the connection, say): the outcome is unknown
                    // for every command of the batch.
                    None => {
                        let message = error.to_string();
                        let mut error = Some(AppendError::from(error));
                        for index in live.drain(..) {
                            results[index] = Some(Err(error.take().unwrap_or_else(|| {
                                AppendError::Store(StoreError::Unavailable(message.clone()))
                            })));
                        }
                    }
                },
            }
        }
        if results.iter().any(|r| matches!(r, Some(Ok(_)))) {
            if let Some(notifier) = &self.notifier {
                notifier.appended();
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(AppendError::Invalid("no result".into()))))
            .collect()
    }

    /// Appends one command's events inside `transaction`, a transaction of the caller's on
    /// this store's database, so the events commit (or roll back) with whatever else the
    /// caller writes in it: a record the log must not miss, such as a webhook subscription
    /// and the event that says who made it. No group commit; call
    /// [`EventStore::committed_elsewhere`] after the commit to wake the log's followers.
    pub async fn append_in(
        &self,
        transaction: &deadpool_postgres::Transaction<'_>,
        request: AppendRequest,
    ) -> Result<Appended, AppendError> {
        let prepared = Prepared::new(request)?;
        let batch = [&prepared];
        match insert_on(transaction, &batch).await {
            Ok(mut appended) => Ok(Appended {
                events: appended.pop().unwrap_or_default(),
            }),
            Err(error) => Err(culprit(&error, &batch)
                .map(|(_, refused)| refused)
                .unwrap_or_else(|| error.into())),
        }
    }

    /// Wakes the log's followers after events written by [`EventStore::append_in`] committed.
    pub fn committed_elsewhere(&self) {
        if let Some(notifier) = &self.notifier {
            notifier.appended();
        }
    }

    /// One statement writing every command of `batch`; the recorded events per command.
    async fn insert(&self, batch: &[&Prepared]) -> Result<Vec<Vec<RecordedEvent>>, InsertError> {
        let client = self.pool.get().await.map_err(InsertError::Pool)?;
        insert_on(&client, batch).await
    }
}

/// [`EventStore::insert`] on `client` (a pooled connection, or a caller's transaction).
async fn insert_on(
    client: &impl deadpool_postgres::GenericClient,
    batch: &[&Prepared],
) -> Result<Vec<Vec<RecordedEvent>>, InsertError> {
    {
        let events: Vec<&RecordedEvent> = batch.iter().flat_map(|c| &c.events).collect();
        let mut metadata_column = Vec::with_capacity(events.len());
        for command in batch {
            let metadata = serde_json::to_value(&command.request.metadata)
                .map_err(|e| InsertError::Serialize(e.to_string()))?;
            metadata_column.extend(std::iter::repeat_n(metadata, command.events.len()));
        }
        let event_ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        let stream_types: Vec<&str> = events.iter().map(|e| e.stream_type.as_str()).collect();
        let stream_ids: Vec<Uuid> = events.iter().map(|e| e.stream_id).collect();
        let versions: Vec<i64> = events.iter().map(|e| e.version).collect();
        let event_types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        let schema_versions: Vec<i32> = events.iter().map(|e| e.schema_version).collect();
        let payloads: Vec<&serde_json::Value> = events.iter().map(|e| &e.payload).collect();
        let occurred: Vec<DateTime<Utc>> = events.iter().map(|e| e.occurred_at).collect();
        let prev_hashes: Vec<&[u8]> = events.iter().map(|e| &e.prev_hash.0[..]).collect();
        let hashes: Vec<&[u8]> = events.iter().map(|e| &e.hash.0[..]).collect();
        let claims: Vec<&UniqueClaim> = batch.iter().flat_map(|c| &c.request.claims).collect();
        let claim_scopes: Vec<&str> = claims.iter().map(|c| c.scope.as_str()).collect();
        let claim_values: Vec<&str> = claims.iter().map(|c| c.value.as_str()).collect();
        let claim_streams: Vec<Uuid> = claims.iter().map(|c| c.stream_id).collect();
        let records: Vec<(&IdempotencyRecord, Uuid)> = batch
            .iter()
            .filter_map(|c| {
                let last = c.events.last()?.event_id;
                c.request.idempotency.as_ref().map(|r| (r, last))
            })
            .collect();
        let callers: Vec<&str> = records.iter().map(|(r, _)| r.caller.as_str()).collect();
        let keys: Vec<&str> = records.iter().map(|(r, _)| r.key.as_str()).collect();
        let request_hashes: Vec<&[u8]> = records.iter().map(|(r, _)| &r.request_hash[..]).collect();
        let status_codes: Vec<i16> = records.iter().map(|(r, _)| r.status_code).collect();
        let resource_ids: Vec<Uuid> = records.iter().map(|(r, _)| r.resource_id).collect();
        let resource_versions: Vec<i64> = records.iter().map(|(r, _)| r.resource_version).collect();
        let last_events: Vec<Uuid> = records.iter().map(|(_, last)| *last).collect();
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![
            &event_ids,
            &stream_types,
            &stream_ids,
            &versions,
            &event_types,
            &schema_versions,
            &payloads,
            &metadata_column,
            &occurred,
            &prev_hashes,
            &hashes,
        ];
        let sql = if claims.is_empty() && records.is_empty() {
            APPEND_EVENTS_ONLY_SQL
        } else {
            params.extend_from_slice(&[
                &claim_scopes,
                &claim_values,
                &claim_streams,
                &callers,
                &keys,
                &request_hashes,
                &status_codes,
                &resource_ids,
                &resource_versions,
                &last_events,
            ]);
            APPEND_SQL
        };
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(InsertError::Database)?;
        let rows = client
            .query(&statement, &params)
            .await
            .map_err(InsertError::Database)?;
        let mut assigned = HashMap::with_capacity(rows.len());
        for row in &rows {
            let event_id: Uuid = row.try_get(0).map_err(InsertError::Database)?;
            let position: i64 = row.try_get(1).map_err(InsertError::Database)?;
            let transaction_id: Xid8 = row.try_get(2).map_err(InsertError::Database)?;
            assigned.insert(event_id, (position, transaction_id.0));
        }
        if assigned.len() != events.len() {
            return Err(InsertError::Corrupt(format!(
                "appended {} events but {} came back",
                events.len(),
                assigned.len()
            )));
        }
        let mut recorded = Vec::with_capacity(batch.len());
        for command in batch {
            let mut events = command.events.clone();
            for event in &mut events {
                let (position, transaction_id) = assigned[&event.event_id];
                event.position = position;
                event.transaction_id = transaction_id;
            }
            recorded.push(events);
        }
        Ok(recorded)
    }
}

/// Numbers the events, chains their hashes and checks the request is well formed.
fn prepare(request: &AppendRequest) -> Result<Vec<RecordedEvent>, AppendError> {
    if request.streams.iter().all(|s| s.events.is_empty()) {
        return Err(AppendError::Invalid("no events to append".into()));
    }
    let mut seen = HashSet::new();
    let occurred_at = truncate_to_micros(request.occurred_at);
    let mut pending = Vec::new();
    for stream in &request.streams {
        if !seen.insert(stream.stream_id) {
            return Err(AppendError::Invalid(format!(
                "stream {} appears twice",
                stream.stream_id
            )));
        }
        if stream.expected_version < 0 {
            return Err(AppendError::Invalid("negative expected version".into()));
        }
        let mut prev_hash = stream.prev_hash;
        for (offset, event) in stream.events.iter().enumerate() {
            let version = stream.expected_version + 1 + offset as i64;
            let hash = chain_hash(
                &prev_hash,
                &HashedFields {
                    event_id: event.event_id,
                    stream_type: &stream.stream_type,
                    stream_id: stream.stream_id,
                    version,
                    event_type: &event.event_type,
                    schema_version: event.schema_version,
                    occurred_at,
                    payload: &event.payload,
                    metadata: &request.metadata,
                    stored_metadata: None,
                },
            )
            .map_err(StoreError::from)?;
            pending.push(RecordedEvent {
                position: 0,
                transaction_id: 0,
                event_id: event.event_id,
                stream_type: stream.stream_type.clone(),
                stream_id: stream.stream_id,
                version,
                event_type: event.event_type.clone(),
                schema_version: event.schema_version,
                payload: event.payload.clone(),
                metadata: request.metadata.clone(),
                occurred_at,
                prev_hash,
                hash,
                sequence: None,
                stored_metadata: None,
            });
            prev_hash = hash;
        }
    }
    Ok(pending)
}

/// Why one statement writing a batch failed.
#[derive(Debug, thiserror::Error)]
enum InsertError {
    #[error("no database connection available: {0}")]
    Pool(deadpool_postgres::PoolError),
    #[error("database error: {0}")]
    Database(tokio_postgres::Error),
    #[error("cannot serialize metadata: {0}")]
    Serialize(String),
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
}

impl InsertError {
    /// The server's error, when the statement reached it and failed (then nothing of it
    /// was written: it ran in a transaction of its own).
    fn as_db_error(&self) -> Option<&tokio_postgres::error::DbError> {
        match self {
            InsertError::Database(error) => error.as_db_error(),
            _ => None,
        }
    }
}

impl From<InsertError> for AppendError {
    fn from(error: InsertError) -> Self {
        AppendError::Store(match error {
            InsertError::Pool(error) => StoreError::Pool(error),
            InsertError::Database(error) => StoreError::Database(error),
            InsertError::Serialize(message) | InsertError::Corrupt(message) => {
                StoreError::Corrupt(message)
            }
        })
    }
}

/// The command of `batch` a unique violation is about, and the append error it means
/// for that command.
fn culprit(error: &InsertError, batch: &[&Prepared]) -> Option<(usize, AppendError)> {
    let db = error.as_db_error()?;
    if db.code() != &tokio_postgres::error::SqlState::UNIQUE_VIOLATION {
        return None;
    }
    let detail = db.detail().unwrap_or_default();
    let find =
        |matches: &dyn Fn(&AppendRequest) -> bool| batch.iter().position(|c| matches(&c.request));
    match db.constraint() {
        Some("events_stream_version_key") => {
            let stream_id = batch
                .iter()
                .flat_map(|c| c.request.streams.iter().map(|s| s.stream_id))
                .find(|id| detail.contains(&id.to_string()));
            let at = match stream_id {
                Some(id) => find(&|r| r.streams.iter().any(|s| s.stream_id == id))?,
                None if batch.len() == 1 => 0,
                None => return None,
            };
            Some((at, AppendError::Conflict { stream_id }))
        }
        Some("unique_claims_pkey") => {
            let claimed = |c: &UniqueClaim| detail.contains(&format!("({}, {})", c.scope, c.value));
            let at = find(&|r| r.claims.iter().any(claimed))
                .or_else(|| (batch.len() == 1).then_some(0))?;
            let claim = batch[at]
                .request
                .claims
                .iter()
                .find(|c| claimed(c))
                .or(batch[at].request.claims.first());
            Some((
                at,
                AppendError::ClaimTaken {
                    scope: claim.map(|c| c.scope.clone()).unwrap_or_default(),
                    value: claim.map(|c| c.value.clone()).unwrap_or_default(),
                },
            ))
        }
        Some("idempotency_keys_pkey") => {
            let at = find(&|r| {
                r.idempotency
                    .as_ref()
                    .is_some_and(|i| detail.contains(&format!("({}, {})", i.caller, i.key)))
            })
            .or_else(|| (batch.len() == 1).then_some(0))?;
            Some((at, AppendError::IdempotencyKeyTaken))
        }
        _ => None,
    }
}
