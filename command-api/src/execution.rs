//! Executing a command: idempotency, optimistic concurrency and retries.
//!
//! A command is an `attempt` that loads the streams it needs, checks the preconditions,
//! lets the domain decide, and returns the [`Decision`]: the events per stream (each at the
//! version it was loaded at), unique claims, and the stream the answer is about. The
//! executor appends it in one statement; a lost race is retried from the load (with
//! `If-Match` it is 412 instead). Commands on the same streams in this process queue on
//! striped locks first, so they rarely race at all.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use chrono::Utc;
use eventstore::{
    AppendError, AppendRequest, EventMetadata, EventStore, IdempotencyRecord, StoredResponse,
    StreamWrite, UniqueClaim,
};
use platform::{Caller, Problem};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, MutexGuard};
use uuid::Uuid;

use crate::errors::{append_problem, store_problem};
use crate::headers;

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

    fn respond(&self, accepted: &CommandAccepted, replayed: bool) -> HttpResponse {
        let mut response = HttpResponse::build(self.success);
        response.insert_header(("ETag", format!("\"{}\"", accepted.version)));
        if let Some(prefix) = self.location_prefix {
            response.insert_header(("Location", format!("{prefix}/{}", accepted.id)));
        }
        if replayed {
            response.insert_header(("Idempotent-Replayed", "true"));
        }
        response.insert_header(("X-Correlation-Id", self.metadata.correlation_id.clone()));
        response.json(accepted)
    }

    fn replay(&self, stored: StoredResponse) -> Result<HttpResponse, Problem> {
        if stored.request_hash != self.fingerprint {
            return Err(Problem::unprocessable(
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request",
            ));
        }
        metrics::counter!("idempotency_replays_total").increment(1);
        let replay = CommandContext {
            success: StatusCode::from_u16(stored.status_code as u16).unwrap_or(self.success),
            ..self.clone()
        };
        Ok(replay.respond(
            &CommandAccepted {
                id: stored.resource_id,
                version: stored.resource_version,
                position: stored.position,
            },
            true,
        ))
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

/// Runs a command to completion: replays a known idempotency key, else attempts, appends
/// and retries lost races.
pub async fn execute(
    store: &EventStore,
    locks: &StreamLocks,
    context: &CommandContext,
    lock_streams: &[Uuid],
    attempt: impl AsyncFn() -> Result<Decision, Problem>,
) -> Result<HttpResponse, Problem> {
    let caller = context.metadata.actor.clone();
    if let Some(key) = &context.idempotency_key {
        let stored = store
            .find_idempotent_response(&caller, key)
            .await
            .map_err(store_problem)?;
        if let Some(stored) = stored {
            return context.replay(stored);
        }
    }
    let _guards = locks.lock(lock_streams).await;
    for attempt_number in 0..MAX_ATTEMPTS {
        let decision = match attempt().await {
            Ok(decision) => decision,
            Err(problem) => {
                metrics::counter!("commands_total", "outcome" => "refused").increment(1);
                return Err(problem);
            }
        };
        let target_version = |writes: &[StreamWrite]| {
            writes
                .iter()
                .find(|w| w.stream_id == context.target)
                .map(|w| w.expected_version + w.events.len() as i64)
                .unwrap_or(0)
        };
        let version = target_version(&decision.writes);
        let idempotency = context
            .idempotency_key
            .as_ref()
            .map(|key| IdempotencyRecord {
                caller: caller.clone(),
                key: key.clone(),
                request_hash: context.fingerprint.clone(),
                status_code: context.success.as_u16() as i16,
                resource_id: context.target,
                resource_version: version,
            });
        let request = AppendRequest {
            streams: decision.writes,
            metadata: context.metadata.clone(),
            occurred_at: Utc::now(),
            claims: decision.claims,
            idempotency,
        };
        match store.append(request).await {
            Ok(appended) => {
                metrics::counter!("commands_total", "outcome" => "accepted").increment(1);
                metrics::counter!("events_appended_total").increment(appended.events.len() as u64);
                let accepted = CommandAccepted {
                    id: context.target,
                    version,
                    position: appended.last_position(),
                };
                return Ok(context.respond(&accepted, false));
            }
            Err(AppendError::Conflict { stream_id }) => {
                metrics::counter!("command_conflicts_total").increment(1);
                if context.if_match.is_some() && stream_id.is_none_or(|id| id == context.target) {
                    return Err(Problem::new(
                        StatusCode::PRECONDITION_FAILED,
                        "version_mismatch",
                        "the stream changed since the If-Match version",
                    ));
                }
                let ceiling = 1u64 << attempt_number.min(5);
                let jitter = rand::random_range(0..=ceiling);
                tokio::time::sleep(Duration::from_millis(jitter)).await;
            }
            Err(AppendError::ClaimTaken { scope, value }) => {
                metrics::counter!("commands_total", "outcome" => "refused").increment(1);
                return Err(Problem::new(
                    StatusCode::CONFLICT,
                    if scope == "sku" {
                        "sku_taken"
                    } else {
                        "conflict"
                    },
                    format!("{scope} {value:?} is already taken"),
                ));
            }
            Err(AppendError::IdempotencyKeyTaken) => {
                let key = context.idempotency_key.as_deref().unwrap_or_default();
                let stored = store
                    .find_idempotent_response(&caller, key)
                    .await
                    .map_err(store_problem)?;
                return match stored {
                    Some(stored) => context.replay(stored),
                    None => Err(Problem::internal("idempotency record vanished")),
                };
            }
            Err(other) => {
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
