//! `GET /healthz` (the process is alive) and `GET /readyz` (the read-model database
//! answers within two seconds).

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;

/// How long readiness waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let check = async {
        match state.read.get().await {
            Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
            Err(_) => false,
        }
    };
    let reachable = tokio::time::timeout(READY_TIMEOUT, check)
        .await
        .unwrap_or(false);
    if reachable {
        HttpResponse::Ok().json(json!({"status": "ready", "read_database": "ok"}))
    } else {
        HttpResponse::ServiceUnavailable()
            .json(json!({"status": "unready", "read_database": "unreachable"}))
    }
}
