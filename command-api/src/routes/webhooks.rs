//! Webhook subscriptions (role `admin`): create, list, read, delete, the delivery log and
//! manual retry. The secret is sealed at rest and never returned. Without
//! `AGORA_WEBHOOK_KEY` webhooks are off: every route answers 503 `unavailable`.

use actix_web::{web, HttpRequest, HttpResponse};
use domain::{ActorId, OrderEvent, ProductEvent};
use eventstore::EventMetadata;
use platform::openapi::{Forbidden, InvalidRequest, NotFound, Unauthenticated};
use platform::{Caller, Problem, Role};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::AppState;
use crate::errors::{append_problem, store_problem};
use crate::headers;
use crate::openapi::Unavailable;
use crate::webhooks::store::{
    self, ChangeError, ChangedBy, Delivery, Subscription, MAX_SUBSCRIPTIONS,
};
use crate::webhooks::target::check_url;
use crate::webhooks::WebhookSettings;

/// `POST /v1/webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://erp.example.com/agora", "event_types": ["OrderPaid"],
                          "secret": "whsec-0123456789abcdef"}))]
pub struct CreateWebhook {
    /// `https` to a public address (unless `AGORA_WEBHOOK_ALLOW_INSECURE=true`).
    pub url: String,
    /// Event types to deliver (`OrderPlaced`, `OrderPaid`, `StockReserved`, ...): 1 to 32.
    pub event_types: Vec<String>,
    /// The HMAC-SHA256 key of `Agora-Signature`: 16 to 128 visible ASCII characters.
    pub secret: String,
}

/// `GET /v1/webhooks`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Subscriptions {
    pub items: Vec<Subscription>,
    pub next_cursor: Option<String>,
}

/// `GET /v1/webhooks/{id}/deliveries`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deliveries {
    pub items: Vec<Delivery>,
    pub next_cursor: Option<String>,
}

/// The delivery log's filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// `pending`, `delivered` or `failed`.
    pub status: Option<String>,
    /// 1 to 500 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The webhook settings, or 503 when webhooks are off; 403 unless the caller is an admin.
fn enabled<'a>(state: &'a AppState, caller: &Caller) -> Result<&'a WebhookSettings, Problem> {
    caller.require_any(&[Role::Admin])?;
    state.webhooks.as_ref().ok_or_else(|| {
        Problem::unavailable(
            "unavailable",
            "webhooks are off: the server has no AGORA_WEBHOOK_KEY",
            60,
        )
    })
}

/// The admin changing a subscription, for the event that records the change.
fn changed_by(request: &HttpRequest, caller: &Caller) -> Result<ChangedBy, Problem> {
    Ok(ChangedBy {
        actor: ActorId::parse(caller.id.clone())
            .map_err(|e| Problem::invalid_request(format!("the token's sub: {e}")))?,
        metadata: EventMetadata {
            actor: caller.id.clone(),
            correlation_id: headers::correlation_id(request),
            causation_id: None,
            command_id: Uuid::now_v7(),
        },
    })
}

fn change_problem(error: ChangeError) -> Problem {
    match error {
        ChangeError::Store(error) => store_problem(error),
        ChangeError::Append(error) => append_problem(error),
    }
}

fn not_found(id: Uuid) -> Problem {
    Problem::not_found(format!("webhook {id} not found"))
}

/// `POST /v1/webhooks`.
#[utoipa::path(
    post,
    path = "/v1/webhooks",
    operation_id = "createWebhook",
    tag = "webhooks",
    summary = "Subscribe a URL to events",
    description = "Role `admin`. Every event of the listed types is POSTed to `url` (the \
                   event envelope as body; headers `Agora-Event-Id`, `Agora-Event-Type`, \
                   `Agora-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \
                   \"<t>.<body>\")>`), at least once, in per-stream order, retried with \
                   exponential backoff and jitter until the failure limit marks it `failed`. \
                   The secret is never returned. At most 100 subscriptions exist at once. \
                   Unless `AGORA_WEBHOOK_ALLOW_INSECURE=true`, `url` must be `https` to a \
                   public host: refused here when it is an IP literal of a special-use \
                   range or a local name; at each delivery the host is resolved again and \
                   a delivery is refused (recorded as `the target could not be reached`, \
                   like every failure before an HTTP answer) unless all its addresses are \
                   public, then sent to the address checked. The subscription is recorded \
                   in the log in the same transaction (`WebhookSubscribed` on stream type \
                   `webhook`: who, when, the URL and the event types; never the secret).",
    security(("bearer" = [])),
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "Subscribed.", body = Subscription),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 422, description = "`too_many_webhooks`: there are already 100 \
                                      subscriptions; nothing was stored.",
         body = platform::openapi::ProblemDetails, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    body: web::Json<CreateWebhook>,
) -> Result<HttpResponse, Problem> {
    let settings = enabled(&state, &caller)?;
    let by = changed_by(&request, &caller)?;
    let body = body.into_inner();
    let url = check_url(&body.url, settings.allow_insecure).map_err(Problem::invalid_request)?;
    let known: Vec<&str> = OrderEvent::EVENT_TYPES
        .iter()
        .chain(ProductEvent::EVENT_TYPES)
        .copied()
        .collect();
    if body.event_types.is_empty() || body.event_types.len() > 32 {
        return Err(Problem::invalid_request("event_types: 1 to 32 event types"));
    }
    let mut event_types = Vec::with_capacity(body.event_types.len());
    for event_type in body.event_types {
        if !known.contains(&event_type.as_str()) {
            return Err(Problem::invalid_request(format!(
                "event_types: unknown event type {event_type:?} (known: {})",
                known.join(", ")
            )));
        }
        if !event_types.contains(&event_type) {
            event_types.push(event_type);
        }
    }
    let secret = body.secret;
    if !(16..=128).contains(&secret.len()) || !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Problem::invalid_request(
            "secret: 16 to 128 visible ASCII characters",
        ));
    }
    let id = Uuid::now_v7();
    let sealed = settings
        .secrets
        .seal(id, &secret)
        .map_err(Problem::internal)?;
    let created = store::create(
        &state.engine.store,
        id,
        url.as_str(),
        &event_types,
        &sealed,
        by,
    )
    .await
    .map_err(change_problem)?
    .ok_or_else(|| {
        Problem::unprocessable(
            "too_many_webhooks",
            format!(
                "there are already {MAX_SUBSCRIPTIONS} webhook subscriptions, the most \
                 allowed: delete one first"
            ),
        )
    })?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/webhooks/{id}")))
        .json(created))
}

/// `GET /v1/webhooks`.
#[utoipa::path(
    get,
    path = "/v1/webhooks",
    operation_id = "listWebhooks",
    tag = "webhooks",
    summary = "List the subscriptions",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every subscription.", body = Subscriptions),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    )
)]
pub async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, Problem> {
    enabled(&state, &caller)?;
    let items = store::list(state.engine.store.pool())
        .await
        .map_err(store_problem)?;
    Ok(HttpResponse::Ok().json(Subscriptions {
        items,
        next_cursor: None,
    }))
}

/// `GET /v1/webhooks/{id}`.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}",
    operation_id = "getWebhook",
    tag = "webhooks",
    summary = "Read a subscription",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The subscription.")),
    responses(
        (status = 200, description = "The subscription.", body = Subscription),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, Problem> {
    enabled(&state, &caller)?;
    let id = path.into_inner();
    let target = store::target(state.engine.store.pool(), id)
        .await
        .map_err(store_problem)?
        .ok_or_else(|| not_found(id))?;
    Ok(HttpResponse::Ok().json(target.subscription))
}

/// `DELETE /v1/webhooks/{id}`.
#[utoipa::path(
    delete,
    path = "/v1/webhooks/{id}",
    operation_id = "deleteWebhook",
    tag = "webhooks",
    summary = "Delete a subscription",
    description = "Role `admin`. Deliveries stop, and its delivery log is deleted with it. \
                   The deletion is recorded in the log in the same transaction \
                   (`WebhookUnsubscribed`: who and when).",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The subscription.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, Problem> {
    enabled(&state, &caller)?;
    let by = changed_by(&request, &caller)?;
    let id = path.into_inner();
    if store::delete(&state.engine.store, id, by)
        .await
        .map_err(change_problem)?
    {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(not_found(id))
    }
}

/// `GET /v1/webhooks/{id}/deliveries`.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}/deliveries",
    operation_id = "listWebhookDeliveries",
    tag = "webhooks",
    summary = "The delivery log",
    description = "Role `admin`. Newest first, optionally of one status.",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The subscription."), DeliveryQuery),
    responses(
        (status = 200, description = "A page of deliveries.", body = Deliveries),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub async fn deliveries(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    query: web::Query<DeliveryQuery>,
) -> Result<HttpResponse, Problem> {
    enabled(&state, &caller)?;
    let id = path.into_inner();
    let query = query.into_inner();
    if let Some(status) = &query.status {
        if !["pending", "delivered", "failed"].contains(&status.as_str()) {
            return Err(Problem::invalid_request(
                "status: one of pending, delivered, failed",
            ));
        }
    }
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(Problem::invalid_request("limit: 1 to 500"));
    }
    let cursor = query
        .cursor
        .as_deref()
        .map(|c| c.parse::<i64>())
        .transpose()
        .map_err(|_| Problem::invalid_request("cursor: not one this API gave out"))?;
    let pool = state.engine.store.pool();
    if store::target(pool, id)
        .await
        .map_err(store_problem)?
        .is_none()
    {
        return Err(not_found(id));
    }
    let (items, next) = store::deliveries(pool, id, query.status.as_deref(), cursor, limit)
        .await
        .map_err(store_problem)?;
    Ok(HttpResponse::Ok().json(Deliveries {
        items,
        next_cursor: next.map(|n| n.to_string()),
    }))
}

/// `POST /v1/webhooks/{id}/deliveries/{event_id}/retry`.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/deliveries/{event_id}/retry",
    operation_id = "retryWebhookDelivery",
    tag = "webhooks",
    summary = "Deliver an event again",
    description = "Role `admin`. The delivery becomes `pending`, due now, with a fresh \
                   attempt count (a `failed` one gets the whole failure limit again).",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The subscription."),
        ("event_id" = Uuid, Path, description = "The event.")
    ),
    request_body(content = serde_json::Value, description = "`{}`"),
    responses(
        (status = 202, description = "Queued for delivery."),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub async fn retry(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
    _body: web::Json<Empty>,
) -> Result<HttpResponse, Problem> {
    enabled(&state, &caller)?;
    let (id, event_id) = path.into_inner();
    if store::retry(state.engine.store.pool(), id, event_id)
        .await
        .map_err(store_problem)?
    {
        Ok(HttpResponse::Accepted().json(serde_json::json!({})))
    } else {
        Err(Problem::not_found(format!(
            "webhook {id} has no delivery of event {event_id}"
        )))
    }
}

/// An empty JSON object (`{}`): nothing else is accepted.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}
