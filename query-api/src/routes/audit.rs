//! The audit endpoints (role `auditor` only; every other role gets 403): the event log as
//! recorded, read from the event store itself (never from read models) through read-only
//! sessions (see [`crate::audit::store`]).
//!
//! - `GET /v1/audit/events?after=<position>&limit=<1..10000>`: NDJSON, the log in log order
//!   after the event at `after`. `after` absent or `0`: from the start. A position no event
//!   has (yet) is 404 `not_found`: `after` must be the `position` of an event the client
//!   received (or of one a command answered with); a negative or non-integer `after` is 400.
//!   `limit` defaults to 1000. The body is streamed, [`PAGE_SIZE`] events at a time. To
//!   read on, pass the `position` of the last line as the next `after`; a response with
//!   fewer lines than `limit` has caught up with the log as it was then, an empty one with
//!   the log as it is. (No "next position" header: headers leave before the last line is
//!   read, and the last line carries it anyway.)
//! - `GET /v1/audit/streams/{stream_id}/events`: NDJSON of the stream's events in version
//!   order (streamed the same way); 404 if the stream has no events.
//! - `GET /v1/audit/streams/{stream_id}/state[?version=N | ?as_of=<RFC 3339>]`:
//!   `{"stream_id", "stream_type", "version", "state"}`, the aggregate folded from its
//!   events (each upcast to its current schema version first) up to version `N`, or up to
//!   the time `as_of`, or (neither) up to its current version. `N` must be ≥ 1 (else 400);
//!   beyond the current version it is 404 naming the current version. `as_of` folds the
//!   events recorded at or before that time: the longest prefix of the stream whose
//!   `occurred_at` ≤ `as_of` (a stream's times follow its versions unless writers' clocks
//!   disagree; the prefix keeps the state one the stream really went through); no such
//!   event is 404. Both parameters at once are 400. An event the code cannot fold (an
//!   unknown type, or a payload that does not decode even after upcasting) is 500
//!   `undecodable_event`, its detail naming the event's position, stream and version.
//! - `GET /v1/audit/verify[?stream_id=]`: recomputes the hash chain of every stream (or
//!   one) and answers `{"ok", "streams_checked", "events_checked", "failures": [{"stream_id",
//!   "version", "reason"}]}`; `ok` is true exactly when `failures` is empty. A `stream_id`
//!   without events is 404 (rather than a vacuous `ok` over nothing). Without `stream_id`
//!   it also checks the Merkle tree (adding `tree_size`, `root_hash`, `consistency_proof`),
//!   and takes a kept checkpoint as the optional extension `?tree_size=&root_hash=&
//!   timestamp=&key_id=&signature=` (all five or none, never with `stream_id`: else 400);
//!   docs/AUDIT.md documents them.
//!
//! Without `DATABASE_URL` the query API has no event store: these endpoints then answer
//! 503 `event_store_not_configured` (after authentication). They do not fall back to
//! `READ_DATABASE_URL`: the read models may live in a database without the event log, and
//! an audit must never read anything but the source of truth.
//!
//! Answers are `Cache-Control: private, no-store`: the log is sensitive and an export is
//! only a snapshot of a moving log.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use eventstore::checkpoint::Checkpoint;
use eventstore::{AggregateState, DecodeError, EventStore, LogCheckpoint};
use platform::openapi::{Forbidden, InvalidRequest, NotFound, Unauthenticated};
use platform::{Caller, Problem, Role};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::AppState;
use crate::audit::ndjson::{Cursor, PageError, Pages, PAGE_SIZE};
use crate::audit::store::{store_error, stream_page};
use crate::openapi::{AuditUnavailable, Envelope, StreamType, UndecodableEvent};
use crate::pagination;

/// Who may read the audit endpoints.
pub const AUDIT_ROLES: &[Role] = &[Role::Auditor];
/// Events per export when `limit` is absent.
pub const DEFAULT_EXPORT_LIMIT: i64 = 1000;
/// The most events one export answers.
pub const MAX_EXPORT_LIMIT: i64 = 10_000;
/// The media type of the NDJSON answers.
pub const NDJSON: &str = "application/x-ndjson";
/// Audit answers are never stored by caches.
pub const AUDIT_CACHE_CONTROL: &str = "private, no-store";

/// The event store, or 503 when this query API runs without one.
pub(crate) fn event_store(state: &AppState) -> Result<&EventStore, Problem> {
    state.events.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "event_store_not_configured",
            "the audit endpoints read the event store, and this query API was started \
             without one: set DATABASE_URL",
        )
    })
}

/// A streamed NDJSON answer.
fn ndjson(pages: Pages) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(NDJSON)
        .insert_header((header::CACHE_CONTROL, AUDIT_CACHE_CONTROL))
        .streaming(pages.into_body())
}

/// `GET /v1/audit/events` query string.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The `position` of the last event received: the export continues after it in log
    /// order. Absent or `0`: from the start. A position no event has is 404.
    #[param(minimum = 0, example = 1417)]
    pub after: Option<i64>,
    /// The `sequence` of the last event received: the export continues with the next
    /// sequence (sequenced events only, in sequence order; it can never skip one). `0`: from
    /// the start. Not with `after`.
    #[param(minimum = 0, example = 1417)]
    pub after_sequence: Option<i64>,
    /// The most events to answer.
    #[param(minimum = 1, maximum = 10000, default = 1000)]
    pub limit: Option<i64>,
}

/// `GET /v1/audit/events`.
#[utoipa::path(
    get,
    path = "/v1/audit/events",
    operation_id = "exportEvents",
    tag = "audit",
    summary = "Export the event log",
    description = "Role `auditor`. The event log as recorded, read from the event store \
                   itself, in log order (the one order every reader sees, gap-free and \
                   stable): NDJSON, one envelope per line, streamed. `position` is not \
                   monotonic in log order: to read on, pass the `position` of the last line \
                   as the next `after`, or better the `sequence` of the last line as \
                   `after_sequence` (sequenced events in sequence order; never skips). Fewer \
                   lines than `limit`: caught up with the log.",
    security(("bearer" = [])),
    params(EventsQuery),
    responses(
        (status = 200,
         description = "NDJSON (`application/x-ndjson`): one `Envelope` JSON object per line, \
                        each line ending in `\\n`. A failure after the status is sent cuts \
                        the chunked body short (never a silently short export).",
         body = Envelope, content_type = "application/x-ndjson",
         headers(("Cache-Control" = String, description = "`private, no-store`."))),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = AuditUnavailable),
    )
)]
pub async fn events(
    caller: Caller,
    query: web::Query<EventsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(AUDIT_ROLES)?;
    let limit = pagination::limit(query.limit, DEFAULT_EXPORT_LIMIT, MAX_EXPORT_LIMIT)?;
    if let Some(after) = query.after.filter(|after| *after < 0) {
        return Err(Problem::invalid_request(format!(
            "after must be the position of an event (or 0 for the start), got {after}"
        )));
    }
    let store = event_store(&state)?;
    if let Some(after_sequence) = query.after_sequence {
        if query.after.is_some() {
            return Err(Problem::invalid_request(
                "pass either after or after_sequence, not both",
            ));
        }
        if after_sequence < 0 {
            return Err(Problem::invalid_request(format!(
                "after_sequence must be the sequence of an event (or 0 for the start), got \
                 {after_sequence}"
            )));
        }
        let pages = Pages::start(store.clone(), Cursor::Sequence(after_sequence), limit)
            .await
            .map_err(page_error)?;
        return Ok(ndjson(pages));
    }
    let start = match query.after {
        None | Some(0) => LogCheckpoint::START,
        Some(after) => store
            .checkpoint_of(after)
            .await
            .map_err(store_error)?
            .ok_or_else(|| {
                Problem::not_found(format!(
                    "no event has position {after}; pass the position of the last event \
                     received (or leave after out to start from the beginning)"
                ))
            })?,
    };
    let pages = Pages::start(store.clone(), Cursor::Log(start), limit)
        .await
        .map_err(page_error)?;
    Ok(ndjson(pages))
}

/// A query string that must be empty.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoQuery {}

/// `GET /v1/audit/streams/{stream_id}/events`.
#[utoipa::path(
    get,
    path = "/v1/audit/streams/{stream_id}/events",
    operation_id = "streamEvents",
    tag = "audit",
    summary = "Export one stream's events",
    description = "Role `auditor`. Every event of one stream (a product or an order), in \
                   version order, from the event store: NDJSON, one envelope per line, \
                   streamed. No query parameters (any is 400).",
    security(("bearer" = [])),
    params(("stream_id" = Uuid, Path, description = "The stream: a product or order id.")),
    responses(
        (status = 200,
         description = "NDJSON (`application/x-ndjson`): one `Envelope` JSON object per line.",
         body = Envelope, content_type = "application/x-ndjson",
         headers(("Cache-Control" = String, description = "`private, no-store`."))),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = AuditUnavailable),
    )
)]
pub async fn stream_events(
    caller: Caller,
    stream_id: web::Path<Uuid>,
    _query: web::Query<NoQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(AUDIT_ROLES)?;
    let store = event_store(&state)?;
    let stream_id = stream_id.into_inner();
    let cursor = Cursor::Stream {
        stream_id,
        version: 0,
    };
    let pages = Pages::start(store.clone(), cursor, i64::MAX)
        .await
        .map_err(page_error)?;
    if pages.is_empty() {
        return Err(no_events(stream_id));
    }
    Ok(ndjson(pages))
}

fn page_error(error: PageError) -> Problem {
    match error {
        PageError::Store(error) => store_error(error),
        other => Problem::internal(other),
    }
}

fn no_events(stream_id: Uuid) -> Problem {
    Problem::not_found(format!("stream {stream_id} has no events"))
}

/// `GET /v1/audit/streams/{stream_id}/state` query string.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StateQuery {
    /// Fold up to this version (beyond the current one: 404). Not with `as_of`.
    #[param(minimum = 1, example = 3)]
    pub version: Option<i64>,
    /// Fold the events recorded at or before this time, RFC 3339 (send a `+` of an offset
    /// as `%2B`); none: 404. Not with `version`.
    #[param(format = DateTime, example = "2024-05-01T12:00:00Z")]
    pub as_of: Option<String>,
}

/// How far to fold a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    Current,
    Version(i64),
    Time(DateTime<Utc>),
}

impl StateQuery {
    fn until(&self) -> Result<Until, Problem> {
        match (self.version, self.as_of.as_deref()) {
            (Some(_), Some(_)) => Err(Problem::invalid_request(
                "pass either version or as_of, not both",
            )),
            (Some(version), None) if version < 1 => Err(Problem::invalid_request(format!(
                "version must be at least 1, got {version}"
            ))),
            (Some(version), None) => Ok(Until::Version(version)),
            (None, Some(as_of)) => parse_time(as_of).map(Until::Time),
            (None, None) => Ok(Until::Current),
        }
    }
}

/// An RFC 3339 time. A `+` of an offset that was not percent-encoded arrives as a space;
/// it is read as the `+` it was meant to be.
fn parse_time(text: &str) -> Result<DateTime<Utc>, Problem> {
    let parse = |text: &str| DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc));
    parse(text)
        .or_else(|error| match text.rsplit_once(' ') {
            Some((time, offset)) => parse(&format!("{time}+{offset}")).map_err(|_| error),
            None => Err(error),
        })
        .map_err(|error| {
            Problem::invalid_request(format!(
                "as_of must be an RFC 3339 time such as 2026-01-02T03:04:05Z \
                 (percent-encode a + as %2B): {error}"
            ))
        })
}

/// The state endpoint's answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "stream_id": "0190f5b2-7c1e-7a3d-9c4f-2b8e6d1a0f37", "stream_type": "product", "version": 3,
    "state": {"exists": true, "sku": "A-1", "name": "Mug", "price_cents": 1299,
              "currency": "EUR", "on_hand": 15, "reserved": 3, "discontinued": false}
}))]
pub struct StreamState {
    pub stream_id: Uuid,
    #[schema(value_type = StreamType)]
    pub stream_type: &'static str,
    /// The version folded up to.
    #[schema(minimum = 1)]
    pub version: i64,
    /// The aggregate (product or order) folded from the stream's events, each upcast to its
    /// type's current schema version first.
    #[schema(value_type = Object)]
    pub state: Value,
}

/// `GET /v1/audit/streams/{stream_id}/state`.
#[utoipa::path(
    get,
    path = "/v1/audit/streams/{stream_id}/state",
    operation_id = "streamState",
    tag = "audit",
    summary = "A stream's state at a version or time",
    description = "Role `auditor`. The aggregate folded from the stream's recorded events up \
                   to `version`, or up to the time `as_of` (the longest prefix of the stream \
                   recorded at or before it), or (neither) up to its current version. Both at \
                   once: 400.",
    security(("bearer" = [])),
    params(
        ("stream_id" = Uuid, Path, description = "The stream: a product or order id."),
        StateQuery
    ),
    responses(
        (status = 200, description = "The folded state.", body = StreamState,
         headers(("Cache-Control" = String, description = "`private, no-store`."))),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = UndecodableEvent),
        (status = 503, response = AuditUnavailable),
    )
)]
pub async fn stream_state(
    caller: Caller,
    stream_id: web::Path<Uuid>,
    query: web::Query<StateQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(AUDIT_ROLES)?;
    let until = query.until()?;
    let store = event_store(&state)?;
    let body = fold_stream(store, stream_id.into_inner(), until).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, AUDIT_CACHE_CONTROL))
        .json(body))
}

/// Folds `stream_id` page by page (only the aggregate is kept, not its events).
async fn fold_stream(
    store: &EventStore,
    stream_id: Uuid,
    until: Until,
) -> Result<StreamState, Problem> {
    let mut folded: Option<AggregateState> = None;
    let mut version = 0;
    let mut exists = false;
    'pages: loop {
        let wanted = match until {
            Until::Version(target) => (target - version).min(PAGE_SIZE),
            Until::Current | Until::Time(_) => PAGE_SIZE,
        };
        if wanted <= 0 {
            break;
        }
        let page = stream_page(store.pool(), stream_id, version, wanted)
            .await
            .map_err(store_error)?;
        exists |= !page.is_empty();
        for event in &page {
            let beyond = match until {
                Until::Version(target) => event.version > target,
                Until::Time(at) => event.occurred_at > at,
                Until::Current => false,
            };
            if beyond {
                break 'pages;
            }
            let aggregate = match &mut folded {
                Some(aggregate) => aggregate,
                None => {
                    folded.insert(AggregateState::empty(&event.stream_type).ok_or_else(|| {
                        undecodable(DecodeError::new(
                            event,
                            format!("unknown stream type {:?}", event.stream_type),
                        ))
                    })?)
                }
            };
            aggregate.apply(event).map_err(undecodable)?;
            version = event.version;
        }
        if i64::try_from(page.len()).unwrap_or(i64::MAX) < wanted {
            break;
        }
    }
    let Some(aggregate) = folded else {
        return Err(match until {
            Until::Time(at) if exists => Problem::not_found(format!(
                "stream {stream_id} has no event recorded at or before {}",
                at.to_rfc3339()
            )),
            _ => no_events(stream_id),
        });
    };
    if let Until::Version(target) = until {
        if version < target {
            return Err(Problem::not_found(format!(
                "stream {stream_id} is at version {version}; it has no version {target}"
            )));
        }
    }
    let state = aggregate.to_json().map_err(Problem::internal)?;
    Ok(StreamState {
        stream_id,
        stream_type: aggregate.stream_type(),
        version,
        state,
    })
}

/// The log holds an event this code cannot fold: a server-side problem, reported in full
/// (an auditor needs to know which event).
fn undecodable(error: DecodeError) -> Problem {
    tracing::error!(%error, "cannot fold an event for the audit state endpoint");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "undecodable_event",
        error.to_string(),
    )
}

/// `GET /v1/audit/verify` query string.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VerifyQuery {
    /// Verify only this stream's chain (no events: 404). Absent: every stream, and the
    /// Merkle tree of the whole log.
    pub stream_id: Option<Uuid>,
    /// A checkpoint the auditor kept (all five fields of `GET /v1/audit/checkpoint`, or
    /// none): the log must be an honest extension of it.
    #[param(minimum = 1)]
    pub tree_size: Option<u64>,
    /// The kept checkpoint's `root_hash` (hex).
    pub root_hash: Option<String>,
    /// The kept checkpoint's `timestamp`.
    pub timestamp: Option<String>,
    /// The kept checkpoint's `key_id`.
    pub key_id: Option<String>,
    /// The kept checkpoint's `signature` (base64; percent-encode `+`, `/`, `=`).
    pub signature: Option<String>,
}

impl VerifyQuery {
    /// The kept checkpoint, when one was passed.
    fn kept(&self) -> Result<Option<Checkpoint>, Problem> {
        match (
            self.tree_size,
            &self.root_hash,
            &self.timestamp,
            &self.key_id,
            &self.signature,
        ) {
            (None, None, None, None, None) => Ok(None),
            (Some(tree_size), Some(root_hash), Some(timestamp), Some(key_id), Some(signature)) => {
                let checkpoint = Checkpoint {
                    tree_size,
                    root_hash: root_hash.clone(),
                    timestamp: timestamp.clone(),
                    key_id: key_id.clone(),
                    signature: signature.clone(),
                };
                checkpoint.root().map_err(Problem::invalid_request)?;
                if self.stream_id.is_some() {
                    return Err(Problem::invalid_request(
                        "a checkpoint covers the whole log: pass it without stream_id",
                    ));
                }
                Ok(Some(checkpoint))
            }
            _ => Err(Problem::invalid_request(
                "a checkpoint is tree_size, root_hash, timestamp, key_id and signature \
                 together",
            )),
        }
    }
}

/// The verify endpoint's answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "ok": true, "streams_checked": 42, "events_checked": 1417, "failures": [],
    "tree_size": 1417,
    "root_hash": "5d1c0e6b2f3a4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5",
    "consistency_proof": null
}))]
pub struct Verification {
    /// True exactly when `failures` is empty.
    pub ok: bool,
    pub streams_checked: u64,
    pub events_checked: u64,
    pub failures: Vec<Failure>,
    /// The sequenced events (absent with `stream_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tree_size: Option<u64>,
    /// The Merkle root recomputed from them (hex; absent with `stream_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_hash: Option<String>,
    /// With a kept checkpoint: the RFC 9162 consistency proof from it to `tree_size`
    /// (hex), already checked; null otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency_proof: Option<Vec<String>>,
}

/// One difference: an event that breaks its stream's chain or the tree, or (`stream_id`
/// and `version` null) a difference of the log as a whole.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "stream_id": "0190f5b2-7c1e-7a3d-9c4f-2b8e6d1a0f37", "version": 3,
    "reason": "stored hash 5d1c0e… does not match the recomputed 0b7e42…"
}))]
pub struct Failure {
    pub stream_id: Option<Uuid>,
    pub version: Option<i64>,
    /// What is wrong.
    pub reason: String,
}

/// `GET /v1/audit/verify`.
#[utoipa::path(
    get,
    path = "/v1/audit/verify",
    operation_id = "verifyLog",
    tag = "audit",
    summary = "Verify the hash chains and the Merkle tree",
    description = "Role `auditor`. Recomputes the hash chain of every stream (or of \
                   `stream_id`) from the event store and reports each event that breaks it. \
                   Without `stream_id` it also recomputes the Merkle tree of the sequenced \
                   log from the events as stored and checks it against the stored tree, the \
                   newest signed checkpoint and, when given, a checkpoint the auditor kept \
                   (its signature, its root, and the consistency proof to the current tree). \
                   A full scan: one at a time per auditor (429 `rate_limited` while the \
                   previous one runs).",
    security(("bearer" = [])),
    params(VerifyQuery),
    responses(
        (status = 200, description = "The verification report.", body = Verification,
         headers(("Cache-Control" = String, description = "`private, no-store`."))),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, description = "`rate_limited`: this auditor's previous verification is still running."),
        (status = 503, response = AuditUnavailable),
    )
)]
pub async fn verify(
    caller: Caller,
    query: web::Query<VerifyQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(AUDIT_ROLES)?;
    let kept = query.kept()?;
    let store = event_store(&state)?;
    // A full scan: one at a time per auditor.
    let _running = state.verifications.take(&caller.id).ok_or_else(|| {
        Problem::rate_limited(
            "this auditor's previous verification is still running; one at a time",
            5,
        )
    })?;
    let report = store.verify(query.stream_id).await.map_err(store_error)?;
    if let (Some(stream_id), 0) = (query.stream_id, report.streams_checked) {
        return Err(no_events(stream_id));
    }
    let mut failures: Vec<Failure> = report
        .failures
        .into_iter()
        .map(|failure| Failure {
            stream_id: Some(failure.stream_id),
            version: Some(failure.version),
            reason: failure.reason,
        })
        .collect();
    let mut body = Verification {
        ok: false,
        streams_checked: report.streams_checked,
        events_checked: report.events_checked,
        failures: Vec::new(),
        tree_size: None,
        root_hash: None,
        consistency_proof: None,
    };
    if query.stream_id.is_none() {
        let log = store
            .verify_log(kept.as_ref(), None)
            .await
            .map_err(store_error)?;
        failures.extend(log.tree.failures.into_iter().map(|failure| Failure {
            stream_id: failure.stream_id,
            version: failure.version,
            reason: failure.reason,
        }));
        body.tree_size = Some(log.tree.tree_size);
        body.root_hash = Some(log.tree.root.to_hex());
        body.consistency_proof = log
            .consistency_proof
            .map(|proof| proof.iter().map(|hash| hash.to_hex()).collect());
    }
    body.ok = failures.is_empty();
    body.failures = failures;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, AUDIT_CACHE_CONTROL))
        .json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(version: Option<i64>, as_of: Option<&str>) -> StateQuery {
        StateQuery {
            version,
            as_of: as_of.map(Into::into),
        }
    }

    #[test]
    fn state_takes_a_version_or_a_time_or_neither() {
        assert_eq!(query(None, None).until().unwrap(), Until::Current);
        assert_eq!(query(Some(3), None).until().unwrap(), Until::Version(3));
        let at = DateTime::parse_from_rfc3339("2026-01-02T01:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        for text in [
            "2026-01-02T01:04:05Z",
            "2026-01-02T03:04:05+02:00",
            "2026-01-02T03:04:05 02:00",
            "2026-01-02T01:04:05.000Z",
        ] {
            assert_eq!(
                query(None, Some(text)).until().unwrap(),
                Until::Time(at),
                "{text}"
            );
        }
        for (version, as_of) in [
            (Some(0), None),
            (Some(-1), None),
            (Some(1), Some("2026-01-02T01:04:05Z")),
            (None, Some("yesterday")),
            (None, Some("2026-01-02")),
            (None, Some("")),
        ] {
            let problem = query(version, as_of).until().unwrap_err();
            assert_eq!(problem.code, "invalid_request", "{version:?} {as_of:?}");
        }
    }
}
