//! Executing a command: idempotency, optimistic concurrency and retries.
//!
//! A command names its streams (the lock set, equal to its write set) and a `decide`
//! function from their states to the [`Decision`]: the events per stream (each at the
//! version it was decided on), unique claims, and the stream the answer is about. The
//! executor takes the streams' in-process locks, loads their states (from the cache where
//! it can, see [`crate::streams`]), decides, and appends in one statement; a lost race is
//! retried from a fresh load (with `If-Match` it is 412 instead). Commands on the same
//! streams in this process queue on striped locks first, so they rarely race at all.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use chrono::Utc;
use eventstore::{
    AppendError, AppendRequest, EventMetadata, EventStore, IdempotencyRecord, StreamWrite,
    UniqueClaim,
};
use platform::{Caller, Problem};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, MutexGuard};
use uuid::Uuid;

use crate::cache::StateCache;
use crate::errors::{append_problem, store_problem};
use crate::headers;
use crate::streams::{States, Streams};

/// How often a lost race is retried before giving up with 503.
const MAX_ATTEMPTS: u32 = 100;

/// What a command decided to append.
#[derive(Debug)]
pub struct Decision {
    pub writes: Vec<StreamWrite>,
    pub claims: Vec<UniqueClaim>,
}

/// The answer to a successful command.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "0190f5b2-7c1e-7a3d-9c4f-2b8e6d1a0f37", "version": 2, "position": 1417}))]
pub struct CommandAccepted {
    /// The stream named in the path, or created.
    pub id: Uuid,
    /// That stream's new version (also the `ETag`).
    #[schema(minimum = 1)]
    pub version: i64,
    /// The global log position of the last event the command appended.
    #[schema(minimum = 1)]
    pub position: i64,
}

/// Per-request facts every command needs.
#[derive(Debug, Clone)]
pub struct CommandContext {
    pub target: Uuid,
    pub if_match: Option<i64>,
    pub idempotency_key: Option<String>,
    pub fingerprint: Vec<u8>,
    pub metadata: EventMetadata,
    pub success: StatusCode,
    /// For 201 answers: the collection the new resource's `Location` is under.
    pub location_prefix: Option<&'static str>,
}

impl CommandContext {
    /// Reads the command headers and fingerprints the request for idempotency.
    pub fn new(
        request: &HttpRequest,
        caller: &Caller,
        target: Uuid,
        body: &impl Serialize,
    ) -> Result<Self, Problem> {
        let canonical = serde_json::to_vec(body).map_err(Problem::internal)?;
        let mut hasher = Sha256::new();
        hasher.update(request.method().as_str().as_bytes());
        hasher.update(b"\n");
        hasher.update(request.path().as_bytes());
        hasher.update(b"\n");
        hasher.update(&canonical);
        Ok(CommandContext {
            target,
            if_match: headers::if_match(request)?,
            idempotency_key: headers::idempotency_key(request)?,
            fingerprint: hasher.finalize().to_vec(),
            metadata: EventMetadata {
                actor: caller.id.clone(),
                correlation_id: headers::correlation_id(request),
                causation_id: None,
                command_id: Uuid::now_v7(),
            },
            success: StatusCode::OK,
            location_prefix: None,
        })
    }

    /// A command sent from inside Agora (a reactor, a benchmark) by `actor` on `target`:
    /// no `If-Match`, no idempotency key, a fresh correlation id.
    pub fn internal(actor: impl Into<String>, target: Uuid) -> Self {
        CommandContext {
            target,
            if_match: None,
            idempotency_key: None,
            fingerprint: Vec::new(),
            metadata: EventMetadata {
                actor: actor.into(),
                correlation_id: Uuid::now_v7().to_string(),
                causation_id: None,
                command_id: Uuid::now_v7(),
            },
            success: StatusCode::OK,
            location_prefix: None,
        }
    }

    /// A command that creates its target: 201 with `Location: {prefix}/{id}`.
    pub fn creating(mut self, location_prefix: &'static str) -> Self {
        self.success = StatusCode::CREATED;
        self.location_prefix = Some(location_prefix);
        self
    }

    /// 412 unless `If-Match` (when sent) names `current_version`.
    pub fn check_if_match(&self, current_version: i64) -> Result<(), Problem> {
        match self.if_match {
            Some(expected) if expected != current_version => Err(Problem::new(
                StatusCode::PRECONDITION_FAILED,
                "version_mismatch",
                format!("If-Match names version {expected}, but the current version is {current_version}"),
            )),
            _ => Ok(()),
        }
    }

    /// The record that makes a repeat of this command with its key replay its answer.
    fn idempotency_record(&self, version: i64) -> Option<IdempotencyRecord> {
        self.idempotency_key.as_ref().map(|key| IdempotencyRecord {
            caller: self.metadata.actor.clone(),
            key: key.clone(),
            request_hash: self.fingerprint.clone(),
            status_code: self.success.as_u16() as i16,
            resource_id: self.target,
            resource_version: version,
        })
    }

    /// The first answer to this command's idempotency key, when one is recorded (422 when
    /// the key was used with another request).
    pub(crate) async fn replay_if_recorded(
        &self,
        store: &EventStore,
    ) -> Result<Option<Outcome>, Problem> {
        let Some(key) = &self.idempotency_key else {
            return Ok(None);
        };
        let Some(stored) = store
            .find_idempotent_response(&self.metadata.actor, key)
            .await
            .map_err(store_problem)?
        else {
            return Ok(None);
        };
        if stored.request_hash != self.fingerprint {
            return Err(Problem::unprocessable(
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request",
            ));
        }
        metrics::counter!("idempotency_replays_total").increment(1);
        Ok(Some(Outcome {
            status: StatusCode::from_u16(stored.status_code as u16).unwrap_or(self.success),
            accepted: CommandAccepted {
                id: stored.resource_id,
                version: stored.resource_version,
                position: stored.position,
            },
            replayed: true,
        }))
    }

    /// Answers a refusal, unless a duplicate of this command succeeded meanwhile: then
    /// its answer is replayed.
    async fn refuse(&self, store: &EventStore, problem: Problem) -> Result<Outcome, Problem> {
        if let Some(outcome) = self.replay_if_recorded(store).await? {
            return Ok(outcome);
        }
        metrics::counter!("commands_total", "outcome" => "refused").increment(1);
        Err(problem)
    }
}

/// Striped in-process locks keyed by stream id.
pub struct StreamLocks {
    stripes: Vec<Mutex<()>>,
}

impl Default for StreamLocks {
    fn default() -> Self {
        StreamLocks {
            stripes: (0..1024).map(|_| Mutex::new(())).collect(),
        }
    }
}

impl StreamLocks {
    /// Locks the stripes of `streams` in a fixed order (no deadlocks).
    pub async fn lock(&self, streams: &[Uuid]) -> Vec<MutexGuard<'_, ()>> {
        let mut indices: Vec<usize> = streams
            .iter()
            .map(|id| (id.as_u128() % self.stripes.len() as u128) as usize)
            .collect();
        indices.sort_unstable();
        indices.dedup();
        let mut guards = Vec::with_capacity(indices.len());
        for index in indices {
            guards.push(self.stripes[index].lock().await);
        }
        guards
    }
}

/// What a command needs to run: the store, the streams (cache, snapshots) and the
/// per-stream locks of this process.
pub struct Engine {
    pub store: EventStore,
    pub streams: Streams,
    pub locks: StreamLocks,
}

impl Engine {
    /// An engine on `store` with a state cache of `cache_megabytes` MiB (0: no cache).
    /// Needs a running tokio runtime.
    pub fn new(store: EventStore, cache_megabytes: usize) -> Self {
        Engine {
            streams: Streams::new(store.clone(), StateCache::with_megabytes(cache_megabytes)),
            store,
            locks: StreamLocks::default(),
        }
    }
}

/// The streams a command works on: the lock set, which equals its write set.
#[derive(Debug, Clone, Default)]
pub struct CommandStreams {
    /// Streams that exist (or may): loaded before deciding.
    pub existing: Vec<Uuid>,
    /// Streams the command creates under fresh ids: never loaded, empty.
    pub created: Vec<Uuid>,
}

impl CommandStreams {
    /// A command on the existing streams `ids`.
    pub fn existing(ids: Vec<Uuid>) -> Self {
        CommandStreams {
            existing: ids,
            created: Vec::new(),
        }
    }

    fn all(&self) -> Vec<Uuid> {
        self.existing.iter().chain(&self.created).copied().collect()
    }
}

/// How a command ended well: accepted now, or the first answer replayed.
#[derive(Debug)]
pub struct Outcome {
    pub status: StatusCode,
    pub accepted: CommandAccepted,
    pub replayed: bool,
}

impl Outcome {
    /// The HTTP answer.
    pub fn respond(&self, context: &CommandContext) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.insert_header(("ETag", format!("\"{}\"", self.accepted.version)));
        if let Some(prefix) = context.location_prefix {
            response.insert_header(("Location", format!("{prefix}/{}", self.accepted.id)));
        }
        if self.replayed {
            response.insert_header(("Idempotent-Replayed", "true"));
        }
        response.insert_header(("X-Correlation-Id", context.metadata.correlation_id.clone()));
        response.json(&self.accepted)
    }
}

/// Runs a command to completion under the locks of its streams: replays a known
/// idempotency key, else loads (from the cache where it can), decides, appends, and
/// retries a lost race from a fresh load.
///
/// A refusal decided on cached state is decided again on a fresh load before it is
/// answered; a refusal, a lost race and a taken claim look for the idempotency key again
/// first (a concurrent duplicate, here or in another process, may have just succeeded).
pub async fn execute(
    engine: &Engine,
    context: &CommandContext,
    streams: &CommandStreams,
    decide: impl Fn(&States) -> Result<Decision, Problem>,
) -> Result<Outcome, Problem> {
    let all = streams.all();
    // Lock only streams that exist (and those the command creates): ids a client names
    // that have no stream take no lock, so made-up ids cannot tie up stripes. A stream
    // that comes into being meanwhile is still guarded by its expected version. (One
    // stream's stripe costs nothing worth a look-up.)
    let mut lockable = if streams.existing.len() > 1 {
        engine.streams.existing(&streams.existing).await?
    } else {
        streams.existing.clone()
    };
    lockable.extend(&streams.created);
    let _guards = engine.locks.lock(&lockable).await;
    if let Some(outcome) = context.replay_if_recorded(&engine.store).await? {
        return Ok(outcome);
    }
    let mut fresh = false;
    for attempt_number in 0..MAX_ATTEMPTS {
        let loaded = engine
            .streams
            .load(&streams.existing, &streams.created, fresh)
            .await?;
        let decision = match decide(&loaded.states) {
            Ok(decision) => decision,
            Err(_) if loaded.from_cache && !fresh => {
                // Decided on cached state, which may be stale: decide again on a fresh load.
                engine.streams.evict(&streams.existing);
                fresh = true;
                continue;
            }
            Err(problem) => return context.refuse(&engine.store, problem).await,
        };
        let version = decision
            .writes
            .iter()
            .find(|w| w.stream_id == context.target)
            .map(|w| w.expected_version + w.events.len() as i64)
            .unwrap_or(0);
        let request = AppendRequest {
            streams: decision.writes,
            metadata: context.metadata.clone(),
            occurred_at: Utc::now(),
            claims: decision.claims,
            idempotency: context.idempotency_record(version),
        };
        match engine.store.append(request).await {
            Ok(appended) => {
                engine.streams.record(&loaded.states, &appended.events);
                metrics::counter!("commands_total", "outcome" => "accepted").increment(1);
                metrics::counter!("events_appended_total").increment(appended.events.len() as u64);
                return Ok(Outcome {
                    status: context.success,
                    accepted: CommandAccepted {
                        id: context.target,
                        version,
                        position: appended.last_position(),
                    },
                    replayed: false,
                });
            }
            Err(AppendError::Conflict { stream_id }) => {
                metrics::counter!("command_conflicts_total").increment(1);
                engine.streams.evict(&all);
                fresh = true;
                if context.if_match.is_some() && stream_id.is_none_or(|id| id == context.target) {
                    let problem = Problem::new(
                        StatusCode::PRECONDITION_FAILED,
                        "version_mismatch",
                        "the stream changed since the If-Match version",
                    );
                    return context.refuse(&engine.store, problem).await;
                }
                if let Some(outcome) = context.replay_if_recorded(&engine.store).await? {
                    return Ok(outcome);
                }
                let ceiling = 1u64 << attempt_number.min(5);
                let jitter = rand::random_range(0..=ceiling);
                tokio::time::sleep(Duration::from_millis(jitter)).await;
            }
            Err(AppendError::ClaimTaken { scope, value }) => {
                let problem = Problem::new(
                    StatusCode::CONFLICT,
                    if scope == "sku" {
                        "sku_taken"
                    } else {
                        "conflict"
                    },
                    format!("{scope} {value:?} is already taken"),
                );
                return context.refuse(&engine.store, problem).await;
            }
            Err(AppendError::IdempotencyKeyTaken) => {
                return match context.replay_if_recorded(&engine.store).await? {
                    Some(outcome) => Ok(outcome),
                    None => Err(Problem::internal("idempotency record vanished")),
                };
            }
            Err(other) => {
                // The outcome may be unknown (a connection lost at commit): forget what we
                // believed of these streams.
                engine.streams.evict(&all);
                metrics::counter!("commands_total", "outcome" => "failed").increment(1);
                return Err(append_problem(other));
            }
        }
    }
    Err(Problem::unavailable(
        "contention",
        "too many concurrent writers on these streams; retry",
        1,
    ))
}
