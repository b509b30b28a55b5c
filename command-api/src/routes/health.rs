//! `GET /healthz` (the process is alive) and `GET /readyz` (the event store answers).

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::reactors::ReactorReport;

/// The answer of `/healthz` and `/readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` (alive), `ready`, `unready` (the event store is unreachable) or `stopping`
    /// (shutting down: load balancers should drain this instance).
    #[schema(example = "ready")]
    pub status: &'static str,
    /// The event store: `ok` or `unreachable` (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false, example = "ok")]
    pub database: Option<&'static str>,
    /// The reactors of this process (readiness only): `active`, `standby` or
    /// `disconnected` each.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reactors: Option<ReactorReport>,
    /// Why this process stopped sequencing and signing the verifiable log (readiness only,
    /// when it did): the stored Merkle tree is not what the signer computed. The instance
    /// stays ready for commands; the alert `AgoraLogSignerHalted` fires.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    pub signer_halted: Option<String>,
}

fn health(status: &'static str, database: Option<&'static str>) -> Health {
    Health {
        status,
        database,
        reactors: None,
        signer_halted: None,
    }
}

/// `GET /healthz`.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Liveness",
    description = "The process is alive. No token needed.",
    responses(
        (status = 200, description = "Alive: `{\"status\": \"ok\"}`.", body = Health,
         example = json!({"status": "ok"}))
    )
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(health("ok", None))
}

/// `GET /readyz`.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness",
    description = "Ready when the event store answers and the service is not shutting down. \
                   No token needed.",
    responses(
        (status = 200, description = "Ready.", body = Health,
         example = json!({"status": "ready", "database": "ok"})),
        (status = 503, description = "Not ready: the event store is unreachable, or the \
                                      service is shutting down.", body = Health,
         examples(
             ("unready" = (value = json!({"status": "unready", "database": "unreachable"}))),
             ("stopping" = (value = json!({"status": "stopping"})))
         ))
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if !state.ready.load(std::sync::atomic::Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().json(health("stopping", None));
    }
    if state.engine.store.is_reachable().await {
        let mut ready = health("ready", Some("ok"));
        ready.reactors = Some(state.reactors.report());
        ready.signer_halted = state.sequencer.halted();
        HttpResponse::Ok().json(ready)
    } else {
        HttpResponse::ServiceUnavailable().json(health("unready", Some("unreachable")))
    }
}
