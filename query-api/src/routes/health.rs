//! `GET /healthz` (the process is alive) and `GET /readyz` (the read-model database
//! answers within two seconds).

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;

/// How long readiness waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The answer of `/healthz` and `/readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` (alive), `ready` or `unready` (the read-model database is unreachable).
    #[schema(example = "ready")]
    pub status: &'static str,
    /// The read-model database: `ok` or `unreachable` (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false, example = "ok")]
    pub read_database: Option<&'static str>,
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
    HttpResponse::Ok().json(Health {
        status: "ok",
        read_database: None,
    })
}

/// `GET /readyz`.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness",
    description = "Ready when the read-model database answers `SELECT 1` within two seconds. \
                   No token needed.",
    responses(
        (status = 200, description = "Ready.", body = Health,
         example = json!({"status": "ready", "read_database": "ok"})),
        (status = 503, description = "Not ready: the read-model database is unreachable.",
         body = Health, example = json!({"status": "unready", "read_database": "unreachable"}))
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let check = async {
        match state.read.pool().get().await {
            Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
            Err(_) => false,
        }
    };
    let reachable = tokio::time::timeout(READY_TIMEOUT, check)
        .await
        .unwrap_or(false);
    if reachable {
        HttpResponse::Ok().json(Health {
            status: "ready",
            read_database: Some("ok"),
        })
    } else {
        HttpResponse::ServiceUnavailable().json(Health {
            status: "unready",
            read_database: Some("unreachable"),
        })
    }
}
