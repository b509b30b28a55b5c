//! The query API's routes, and what their answers share: the application state and the
//! caching headers.

pub mod audit;
pub mod customers;
pub mod dashboard;
pub mod health;
pub mod orders;
pub mod page;
pub mod parked;
pub mod products;
pub mod stream;
pub mod verifiable;

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use eventstore::EventStore;
use platform::Role;
use serde::Serialize;

use crate::consistency::Consistency;
use crate::db::ReadModel;
use crate::etag::{etag, if_none_match};
use crate::live::Live;
use crate::progress::Progress;

/// Every role: what "any role" in API.md admits.
pub const ANY_ROLE: &[Role] = &[Role::Admin, Role::Customer, Role::Viewer, Role::Auditor];
/// The dashboard roles.
pub const DASHBOARD_ROLES: &[Role] = &[Role::Admin, Role::Viewer];

/// Entities may be kept by the caller's own cache, but must be revalidated (cheaply, by
/// `ETag`) before each use.
pub const ENTITY_CACHE_CONTROL: &str = "private, max-age=0, must-revalidate";
/// Lists and dashboards are per caller and change all the time.
pub const LIST_CACHE_CONTROL: &str = "private, no-cache";

/// What every handler of one HTTP worker shares ([`AppState::for_worker`]).
pub struct AppState {
    /// The read-model database: the pool, and this worker's shared connections.
    pub read: ReadModel,
    /// The event store over read-only sessions, for the audit endpoints; `None` when
    /// `DATABASE_URL` is unset (they then answer 503).
    pub events: Option<EventStore>,
    /// Customers' data keys (in the event store), to open personal data; `None` without
    /// `DATABASE_URL`.
    pub vault: Option<platform::pii::Vault>,
    /// `GET /v1/audit/verify` (a full scan) running, one at a time per auditor.
    pub verifications: crate::shares::SubjectShares,
    /// Read-your-writes waits (`?min_version=N`): their length and cap.
    pub consistency: Consistency,
    /// Read-model progress, as the projector reports it.
    pub progress: Progress,
    /// The live dashboards' fan-out.
    pub live: Live,
    /// The pause between two SSE heartbeats.
    pub heartbeat: Duration,
}

impl AppState {
    /// The state of another HTTP worker: the same pool and event store, connections of
    /// its own to share.
    pub fn for_worker(&self) -> AppState {
        AppState {
            read: ReadModel::new(self.read.pool().clone()),
            events: self.events.clone(),
            vault: self.vault.clone(),
            verifications: self.verifications.clone(),
            consistency: self.consistency.clone(),
            progress: self.progress.clone(),
            live: self.live.clone(),
            heartbeat: self.heartbeat,
        }
    }
}

/// An entity's answer: 200 with the body, or 304 without one when the request's
/// `If-None-Match` names its current `ETag`.
pub fn entity_response(request: &HttpRequest, version: i64, body: &impl Serialize) -> HttpResponse {
    let not_modified = if_none_match(request.headers(), version);
    let mut response = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag(version)))
        .insert_header((header::CACHE_CONTROL, ENTITY_CACHE_CONTROL));
    if not_modified {
        response.finish()
    } else {
        response.json(body)
    }
}

/// A list's or dashboard's answer.
pub fn list_response(body: &impl Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, LIST_CACHE_CONTROL))
        .json(body)
}
