//! The email ledger for admins: `GET /v1/emails?status=…` lists what was (or will be) sent,
//! `POST /v1/emails/{id}/retry` puts a failed email back in the queue. Neither shows
//! personal data: the ledger holds none.

use actix_web::{web, HttpResponse};
use platform::openapi::{Forbidden, InvalidRequest, NotFound, Unauthenticated};
use platform::{Caller, Problem, Role};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::webhooks::Empty;
use super::AppState;
use crate::emails::ledger::{self, EmailRow};
use crate::errors::store_problem;
use crate::openapi::Unavailable;

/// `GET /v1/emails` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EmailQuery {
    /// `pending`, `sending`, `sent`, `failed` or `skipped` (all when absent).
    pub status: Option<String>,
    /// At most this many, newest first (1 to 1000; default 100).
    pub limit: Option<i64>,
}

/// A page of the ledger.
#[derive(Debug, Serialize, ToSchema)]
pub struct Emails {
    pub emails: Vec<EmailRow>,
}

const STATUSES: &[&str] = &["pending", "sending", "sent", "failed", "skipped"];

/// `GET /v1/emails`.
#[utoipa::path(
    get,
    path = "/v1/emails",
    operation_id = "listEmails",
    tag = "emails",
    summary = "The email ledger",
    description = "Role `admin`. One row per (template, event): `pending`, `sending`, `sent`, \
                   `failed` (after the attempt limit, or a permanent refusal) or `skipped` \
                   (the customer was erased, has no email address, or switched these emails \
                   off). Newest first. No personal data.",
    security(("bearer" = [])),
    params(EmailQuery),
    responses(
        (status = 200, description = "The emails.", body = Emails),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<EmailQuery>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(&[Role::Admin])?;
    let status = query.status.as_deref();
    if let Some(status) = status {
        if !STATUSES.contains(&status) {
            return Err(Problem::invalid_request(format!(
                "status must be one of {}",
                STATUSES.join(", ")
            )));
        }
    }
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::invalid_request("limit must be from 1 to 1000"));
    }
    let emails = ledger::list(state.engine.store.pool(), status, limit, &state.mail_domain)
        .await
        .map_err(store_problem)?;
    Ok(HttpResponse::Ok().json(Emails { emails }))
}

/// `POST /v1/emails/{id}/retry`.
#[utoipa::path(
    post,
    path = "/v1/emails/{id}/retry",
    operation_id = "retryEmail",
    tag = "emails",
    summary = "Send a failed email again",
    description = "Role `admin`. A `failed` email becomes `pending`, due now, with the whole \
                   attempt limit again; any other is 409 `conflict` (a sent email is never \
                   sent again by hand).",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The email.")),
    request_body(content = serde_json::Value, description = "`{}`"),
    responses(
        (status = 202, description = "Queued again.", body = EmailRow),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, description = "`conflict`: the email is not failed."),
        (status = 503, response = Unavailable),
    )
)]
pub async fn retry(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    _body: web::Json<Empty>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(&[Role::Admin])?;
    let id = path.into_inner();
    match ledger::retry(state.engine.store.pool(), id, &state.mail_domain)
        .await
        .map_err(store_problem)?
    {
        Some(Ok(row)) => Ok(HttpResponse::Accepted().json(row)),
        Some(Err(status)) => Err(Problem::new(
            actix_web::http::StatusCode::CONFLICT,
            "conflict",
            format!("email {id} is {status}; only a failed email is retried"),
        )),
        None => Err(Problem::not_found(format!("no email {id}"))),
    }
}
