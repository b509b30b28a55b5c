//! Parked streams (role `admin`): `GET /v1/projections/{name}/parked` lists the streams a
//! projection stopped applying at an event it could not apply, with the error and the
//! events held since; `POST /v1/projections/{name}/parked/{stream_id}/retry` and `…/skip`
//! ask the projector to apply the held events again (after the cause was fixed) or to skip
//! the event that parked the stream and go on. Each request is recorded with who asked and
//! why (`read_model.parked_actions`, the audit trail); the projector carries it out within
//! seconds and records the outcome. This service writes nothing else.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use platform::openapi::{Forbidden, InvalidRequest, NotFound, Unauthenticated};
use platform::{Caller, Problem, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use crate::db;
use crate::openapi::ReadModelUnavailable;

/// An event of a parked stream that the projection has not applied.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeldEvent {
    pub stream_version: i64,
    pub event_id: Uuid,
    pub event_type: String,
    /// Where the projector read it: `log <transaction>/<position>` or
    /// `kafka <topic>/<partition>@<offset>`.
    pub source_position: String,
    pub held_at: DateTime<Utc>,
}

/// A request of an admin on a parked stream, and what became of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParkedAction {
    /// `retry` or `skip`.
    pub action: String,
    pub reason: String,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    /// The event skipped (a `skip` carried out).
    pub skipped_event_id: Option<Uuid>,
    /// Null while the projector has not carried it out.
    pub done_at: Option<DateTime<Utc>>,
    /// `drained` (every held event applied), `parked again: <error>`, ...
    pub outcome: Option<String>,
}

/// A stream a projection stopped applying.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "stream_id": "0190f5b2-7c1e-7a3d-9c4f-2b8e6d1a0f37", "version": 1,
    "event_id": "0190f5b4-0c1d-7e2f-8a3b-4c5d6e7f8091", "stream_version": 4,
    "event_type": "StockAdded", "error": "value too long for type character varying(200)",
    "parked_at": "2026-12-07T10:00:00Z", "retried_at": null,
    "held": [{"stream_version": 4, "event_id": "0190f5b4-0c1d-7e2f-8a3b-4c5d6e7f8091",
              "event_type": "StockAdded", "source_position": "log 812/1417",
              "held_at": "2026-12-07T10:00:00Z"}],
    "actions": []
}))]
pub struct ParkedStream {
    pub stream_id: Uuid,
    /// The projection version (a rebuild writes a new one).
    pub version: i32,
    /// The event that could not be applied, and why.
    pub event_id: Uuid,
    pub stream_version: i64,
    pub event_type: String,
    pub error: String,
    pub parked_at: DateTime<Utc>,
    /// When the last retry failed again.
    pub retried_at: Option<DateTime<Utc>>,
    /// The events held, in stream order (the first is the one that could not be applied).
    pub held: Vec<HeldEvent>,
    /// The admins' requests on this stream, newest first.
    pub actions: Vec<ParkedAction>,
}

/// `GET /v1/projections/{name}/parked`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParkedStreams {
    pub projection: String,
    pub items: Vec<ParkedStream>,
}

/// `POST …/retry` and `…/skip`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "the products table's name column was widened"}))]
pub struct ParkedActionRequest {
    /// Why (1 to 500 characters): kept with who asked.
    pub reason: String,
}

/// `202` to a retry or skip.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "requested", "action": "retry"}))]
pub struct ParkedActionAccepted {
    /// `requested`: the projector carries it out within seconds; `GET …/parked` shows the
    /// outcome.
    pub status: &'static str,
    pub action: &'static str,
}

const MOST_SHOWN: i64 = 500;

/// 404 unless `name` is a projection of the read models.
async fn known_projection(state: &AppState, name: &str) -> Result<(), Problem> {
    let found = db::query_opt(
        &state.read,
        "SELECT 1 FROM read_model.projections WHERE name = $1",
        &[&name],
        |_| Ok(()),
    )
    .await?;
    found.ok_or_else(|| Problem::not_found(format!("projection {name:?} not found")))
}

/// `GET /v1/projections/{name}/parked`.
#[utoipa::path(
    get,
    path = "/v1/projections/{name}/parked",
    operation_id = "listParkedStreams",
    tag = "operations",
    summary = "Streams a projection stopped applying",
    description = "Role `admin`. Each stream of the projection's active version that is \
                   parked at an event it could not apply: the event and the error, the \
                   events held since (in stream order; their content is in the log), and \
                   the retries and skips asked for. Every other stream goes on. At most 500.",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The projection (`products`, `orders`, ...).")),
    responses(
        (status = 200, description = "The parked streams.", body = ParkedStreams),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = ReadModelUnavailable),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(&[Role::Admin])?;
    let name = path.into_inner();
    known_projection(&state, &name).await?;
    let mut items = db::query(
        &state.read,
        "SELECT s.stream_id, s.version, s.event_id, s.stream_version, s.event_type, s.error, \
                s.parked_at, s.retried_at \
         FROM read_model.parked_streams s \
         JOIN read_model.projections p ON p.name = s.projection AND p.active_version = s.version \
         WHERE s.projection = $1 ORDER BY s.parked_at, s.stream_id LIMIT $2",
        &[&name, &MOST_SHOWN],
        |row| {
            Ok(ParkedStream {
                stream_id: row.try_get(0)?,
                version: row.try_get(1)?,
                event_id: row.try_get(2)?,
                stream_version: row.try_get(3)?,
                event_type: row.try_get(4)?,
                error: row.try_get(5)?,
                parked_at: row.try_get(6)?,
                retried_at: row.try_get(7)?,
                held: Vec::new(),
                actions: Vec::new(),
            })
        },
    )
    .await?;
    let streams: Vec<Uuid> = items.iter().map(|s| s.stream_id).collect();
    let held = db::query(
        &state.read,
        "SELECT h.stream_id, h.stream_version, h.event_id, h.event_type, h.source_position, \
                h.held_at \
         FROM read_model.held_events h \
         JOIN read_model.projections p ON p.name = h.projection AND p.active_version = h.version \
         WHERE h.projection = $1 AND h.stream_id = ANY($2) \
         ORDER BY h.stream_id, h.stream_version",
        &[&name, &streams],
        |row| {
            Ok((
                row.try_get::<_, Uuid>(0)?,
                HeldEvent {
                    stream_version: row.try_get(1)?,
                    event_id: row.try_get(2)?,
                    event_type: row.try_get(3)?,
                    source_position: row.try_get(4)?,
                    held_at: row.try_get(5)?,
                },
            ))
        },
    )
    .await?;
    let actions = db::query(
        &state.read,
        "SELECT stream_id, action, reason, requested_by, requested_at, skipped_event_id, \
                done_at, outcome \
         FROM read_model.parked_actions WHERE projection = $1 AND stream_id = ANY($2) \
         ORDER BY id DESC",
        &[&name, &streams],
        |row| {
            Ok((
                row.try_get::<_, Uuid>(0)?,
                ParkedAction {
                    action: row.try_get(1)?,
                    reason: row.try_get(2)?,
                    requested_by: row.try_get(3)?,
                    requested_at: row.try_get(4)?,
                    skipped_event_id: row.try_get(5)?,
                    done_at: row.try_get(6)?,
                    outcome: row.try_get(7)?,
                },
            ))
        },
    )
    .await?;
    for item in &mut items {
        item.held.extend(
            held.iter()
                .filter(|(stream, _)| *stream == item.stream_id)
                .map(|(_, event)| HeldEvent {
                    stream_version: event.stream_version,
                    event_id: event.event_id,
                    event_type: event.event_type.clone(),
                    source_position: event.source_position.clone(),
                    held_at: event.held_at,
                }),
        );
    }
    let mut actions = actions;
    for (stream, action) in actions.drain(..) {
        if let Some(item) = items.iter_mut().find(|item| item.stream_id == stream) {
            item.actions.push(action);
        }
    }
    Ok(HttpResponse::Ok().json(ParkedStreams {
        projection: name,
        items,
    }))
}

/// Records an admin's `action` on a parked stream for the projector to carry out.
async fn request(
    state: &AppState,
    caller: &Caller,
    name: &str,
    stream_id: Uuid,
    action: &'static str,
    body: ParkedActionRequest,
) -> Result<HttpResponse, Problem> {
    caller.require_any(&[Role::Admin])?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(Problem::invalid_request("reason: 1 to 500 characters"));
    }
    known_projection(state, name).await?;
    let inserted = db::query_opt(
        &state.read,
        "INSERT INTO read_model.parked_actions (projection, stream_id, action, reason, requested_by) \
         SELECT $1, $2, $3, $4, $5 \
         WHERE EXISTS (SELECT 1 FROM read_model.parked_streams s \
                       JOIN read_model.projections p \
                         ON p.name = s.projection AND p.active_version = s.version \
                       WHERE s.projection = $1 AND s.stream_id = $2) \
         RETURNING id",
        &[&name, &stream_id, &action, &reason, &caller.id],
        |row| row.try_get::<_, i64>(0),
    )
    .await?;
    if inserted.is_none() {
        return Err(Problem::not_found(format!(
            "stream {stream_id} is not parked in projection {name:?}"
        )));
    }
    tracing::warn!(projection = name, %stream_id, action, reason, requested_by = %caller.id,
                   "parked stream: action requested");
    Ok(HttpResponse::Accepted().json(ParkedActionAccepted {
        status: "requested",
        action,
    }))
}

/// `POST /v1/projections/{name}/parked/{stream_id}/retry`.
#[utoipa::path(
    post,
    path = "/v1/projections/{name}/parked/{stream_id}/retry",
    operation_id = "retryParkedStream",
    tag = "operations",
    summary = "Apply a parked stream's held events again",
    description = "Role `admin`. Once the cause is fixed (the read model, or a new \
                   version deployed): the projector applies the held events in order; the \
                   stream goes on if all apply, else it stays parked at the first that \
                   fails. Recorded with who asked and why.",
    security(("bearer" = [])),
    params(
        ("name" = String, Path, description = "The projection."),
        ("stream_id" = Uuid, Path, description = "The parked stream."),
    ),
    request_body = ParkedActionRequest,
    responses(
        (status = 202, description = "Requested.", body = ParkedActionAccepted),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = ReadModelUnavailable),
    )
)]
pub async fn retry(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, Uuid)>,
    body: web::Json<ParkedActionRequest>,
) -> Result<HttpResponse, Problem> {
    let (name, stream_id) = path.into_inner();
    request(
        &state,
        &caller,
        &name,
        stream_id,
        "retry",
        body.into_inner(),
    )
    .await
}

/// `POST /v1/projections/{name}/parked/{stream_id}/skip`.
#[utoipa::path(
    post,
    path = "/v1/projections/{name}/parked/{stream_id}/skip",
    operation_id = "skipParkedEvent",
    tag = "operations",
    summary = "Skip the event a stream is parked at",
    description = "Role `admin`. The projector leaves the event that parked the stream \
                   unapplied (it stays in the log and among the poison events) and applies \
                   the held events after it. Recorded with who asked, why, and the event \
                   skipped.",
    security(("bearer" = [])),
    params(
        ("name" = String, Path, description = "The projection."),
        ("stream_id" = Uuid, Path, description = "The parked stream."),
    ),
    request_body = ParkedActionRequest,
    responses(
        (status = 202, description = "Requested.", body = ParkedActionAccepted),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = ReadModelUnavailable),
    )
)]
pub async fn skip(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, Uuid)>,
    body: web::Json<ParkedActionRequest>,
) -> Result<HttpResponse, Problem> {
    let (name, stream_id) = path.into_inner();
    request(&state, &caller, &name, stream_id, "skip", body.into_inner()).await
}
