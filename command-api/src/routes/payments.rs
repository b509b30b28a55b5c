//! Payments: checkout at the provider (the owning customer or an admin), the provider's
//! signed webhook (the only way a provider payment reaches `paid`), the development
//! provider's confirmation (an admin), and refunds (an admin).
//!
//! Provider calls happen before the append, each with an idempotency key derived from the
//! command (the order and how many payments or refunds it has, or the client's own
//! `Idempotency-Key`), so a retried request never creates a second payment or refund. An
//! unreachable provider is 503 (retry with the same key); a refusal is 422
//! `payment_provider_refused`.
//!
//! Each provider event applies at most once: its id is a unique claim (`psp_event`) taken in
//! the transaction that records its effect, and the order's state machine turns a repeat
//! of the same fact into nothing. A success the order cannot take becomes
//! `PaymentNeedsReview`, never a silent `paid`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use domain::{
    Order, OrderCommand, OrderStatus, PaymentRef, ProviderEventId, ProviderName, Reason, RefundId,
    RefundRequest,
};
use eventstore::{StreamState, UniqueClaim};
use platform::openapi::{Forbidden, InvalidRequest, NotFound, Unauthenticated};
use platform::{Caller, Problem, Role};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use super::orders::{is_visible, order_decision, visible_order};
use super::AppState;
use crate::errors::domain_problem;
use crate::execution::{execute, CommandContext, CommandStreams, Decision, Engine};
use crate::openapi::{
    Applied, CheckoutRefused, CommandHeaders, ConfirmPaymentRefused, RefundRefused, Unavailable,
    VersionMismatch,
};
use crate::payments::webhook::{self, Effect, StripeEvent};
use crate::payments::{Payments, ProviderError, ProviderPayment};
use crate::requests;
use crate::streams::States;

/// The claims' scope: one per provider event id.
pub const PROVIDER_EVENT_SCOPE: &str = "psp_event";
/// The code of a decision that appends nothing (the fact is already recorded).
const NOTHING_TO_DO: &str = "nothing_to_do";

/// The answer to a checkout.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"provider": "stripe", "payment_id": "pi_3Mtw", "client_secret":
    "pi_3Mtw_secret_Yr", "amount_cents": 2598, "currency": "EUR", "status": "requires_payment_method"}))]
pub struct Checkout {
    /// `stripe` or `manual`.
    pub provider: &'static str,
    /// The payment's id at the provider.
    pub payment_id: String,
    /// What the storefront hands to the provider's browser library (null with `manual`).
    #[schema(required = true)]
    pub client_secret: Option<String>,
    pub amount_cents: i64,
    pub currency: String,
    /// The provider's status of the payment.
    pub status: String,
}

/// The answer to a refund.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"refund_id": "re_3Mtw", "status": "succeeded"}))]
pub struct RefundAccepted {
    pub refund_id: String,
    /// `requested` (the provider reports the outcome by webhook) or `succeeded`.
    pub status: &'static str,
}

/// A provider failure as an answer: 503 when a retry may work, 422 when it refused.
pub(crate) fn provider_problem(error: ProviderError) -> Problem {
    match error {
        ProviderError::Unavailable(detail) => {
            tracing::warn!(%detail, "payment provider unavailable");
            Problem::unavailable(
                "payment_provider_unavailable",
                "the payment provider cannot be reached; retry (the same request is safe)",
                5,
            )
        }
        ProviderError::Refused(detail) => {
            tracing::warn!(%detail, "payment provider refused a request");
            Problem::unprocessable("payment_provider_refused", detail)
        }
    }
}

fn nothing_to_do() -> Problem {
    Problem::new(StatusCode::OK, NOTHING_TO_DO, "already recorded")
}

/// Appending `events` (with `claims`) to the order `stream`, or nothing to do when there
/// are none (the fact is recorded already).
fn changes(
    stream: &StreamState,
    events: &[domain::OrderEvent],
    claims: Vec<UniqueClaim>,
) -> Result<Decision, Problem> {
    if events.is_empty() {
        return Err(nothing_to_do());
    }
    Ok(order_decision(stream, events, claims))
}

/// A provider's id as a domain value (a provider answering nonsense is its failure).
fn provider_id<T>(
    parse: impl FnOnce(String) -> Result<T, domain::ValueError>,
    id: String,
) -> Result<T, Problem> {
    parse(id).map_err(|error| {
        provider_problem(ProviderError::Unavailable(format!(
            "an id the provider sent: {error}"
        )))
    })
}

/// `POST /v1/orders/{id}/payment`.
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/payment",
    operation_id = "checkoutOrder",
    tag = "payments",
    summary = "Pay an order at the payment provider",
    description = "The owning `customer` or an `admin`. Creates a payment of exactly the order's \
                   total at the provider (Stripe: a PaymentIntent with the order id in its \
                   metadata) and records `PaymentRequested`; the storefront lets the buyer pay \
                   with `client_secret`. Asking again returns the same payment while it is \
                   open. Only the provider's signed webhook then makes the order `paid`.",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The order."), CommandHeaders),
    responses(
        (status = 200, description = "The payment to complete at the provider.", body = Checkout),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 412, response = VersionMismatch),
        (status = 422, response = CheckoutRefused),
        (status = 503, response = Unavailable),
    )
)]
pub async fn checkout(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    path: web::Path<Uuid>,
    _body: web::Json<requests::Empty>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(&[Role::Admin, Role::Customer])?;
    let id = path.into_inner();
    let mut context = CommandContext::new(&request, &caller, id, &serde_json::json!({}))?;
    // Checkout is idempotent by itself (the open payment is returned again).
    context.idempotency_key = None;
    let stream = state.engine.streams.peek(id).await?;
    let order = stream.order();
    if !is_visible(&order, &caller) {
        return Err(Problem::not_found(format!("order {id} not found")));
    }
    context.check_if_match(stream.version)?;
    let payments = &state.payments;
    let currency = placed_currency(&order)?;
    if let Some(open) = order.payments().open() {
        return Ok(HttpResponse::Ok().json(open_payment(payments, &order, open).await?));
    }
    let key = format!("agora-checkout-{id}-{}", order.payments().payments.len());
    let payment = payments
        .provider
        .create_payment(id, order.total_cents(), &currency, &key)
        .await
        .map_err(provider_problem)?;
    let payment_id = provider_id(PaymentRef::parse, payment.id.clone())?;
    let provider = provider_id(ProviderName::parse, payments.provider.name().to_owned())?;
    let command = OrderCommand::RequestPayment {
        payment_id,
        provider,
    };
    let streams = CommandStreams::existing(vec![id]);
    let recorded = execute(&state.engine, &context, &streams, |states: &States| {
        let (stream, order) = visible_order(states, &caller, id)?;
        let events = order.decide(command.clone()).map_err(domain_problem)?;
        changes(stream, &events, vec![])
    })
    .await;
    match recorded {
        Ok(_) => {}
        Err(problem) if problem.code == NOTHING_TO_DO => {}
        Err(problem) => return Err(problem),
    }
    Ok(HttpResponse::Ok().json(checkout_of(payments, payment)))
}

/// The currency of a placed order (422 `invalid_state` for any other status).
fn placed_currency(order: &Order) -> Result<String, Problem> {
    match (order.status(), order.currency()) {
        (Some(OrderStatus::Placed), Some(currency)) => Ok(currency.as_str().to_owned()),
        (status, _) => Err(domain_problem(domain::DomainError::invalid_state(format!(
            "order is {}; only a placed order can be paid",
            status.map_or("unknown", OrderStatus::as_str)
        )))),
    }
}

fn checkout_of(payments: &Payments, payment: ProviderPayment) -> Checkout {
    Checkout {
        provider: payments.provider.name(),
        payment_id: payment.id,
        client_secret: payment.client_secret,
        amount_cents: payment.amount_cents,
        currency: payment.currency,
        status: payment.status,
    }
}

/// The open payment, as the provider has it now (the manual provider keeps nothing: the
/// order's record is the answer).
async fn open_payment(
    payments: &Payments,
    order: &Order,
    open: &domain::Payment,
) -> Result<Checkout, Problem> {
    if payments.is_manual() {
        return Ok(Checkout {
            provider: payments.provider.name(),
            payment_id: open.payment_id.as_str().to_owned(),
            client_secret: None,
            amount_cents: open.amount_cents,
            currency: order
                .currency()
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default(),
            status: "requires_confirmation".into(),
        });
    }
    let payment = payments
        .provider
        .payment(open.payment_id.as_str())
        .await
        .map_err(provider_problem)?;
    Ok(checkout_of(payments, payment))
}

/// `POST /v1/orders/{id}/payment/confirm`.
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/payment/confirm",
    operation_id = "confirmManualPayment",
    tag = "payments",
    summary = "Confirm a payment (development provider)",
    description = "Role `admin`, and only with `AGORA_PAYMENTS=manual` (404 otherwise): the \
                   order's open payment succeeded, so a `placed` order becomes `paid`. A \
                   customer can never do this.",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The order."), CommandHeaders),
    responses(
        (status = 200, response = Applied),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 412, response = VersionMismatch),
        (status = 422, response = ConfirmPaymentRefused),
        (status = 503, response = Unavailable),
    )
)]
pub async fn confirm(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Json<requests::Empty>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(&[Role::Admin])?;
    if !state.payments.is_manual() {
        return Err(Problem::not_found(
            "payments are confirmed by the provider's webhook (AGORA_PAYMENTS is not manual)",
        ));
    }
    let id = path.into_inner();
    let context = CommandContext::new(&request, &caller, id, &body.into_inner())?;
    let streams = CommandStreams::existing(vec![id]);
    let outcome = execute(&state.engine, &context, &streams, |states: &States| {
        let (stream, order) = visible_order(states, &caller, id)?;
        context.check_if_match(stream.version)?;
        let open = order.payments().open().ok_or_else(|| {
            domain_problem(domain::DomainError::invalid_state(
                "the order has no open payment: check out first",
            ))
        })?;
        let currency = order
            .currency()
            .cloned()
            .ok_or_else(|| Problem::not_found("order"))?;
        let event = ProviderEventId::parse(format!("manual:{}", open.payment_id))
            .map_err(|e| Problem::invalid_request(e.to_string()))?;
        let events = order
            .decide(OrderCommand::ConfirmPayment {
                payment_id: open.payment_id.clone(),
                amount_cents: open.amount_cents,
                currency,
                provider_event: event,
            })
            .map_err(domain_problem)?;
        Ok(order_decision(stream, &events, vec![]))
    })
    .await?;
    Ok(outcome.respond(&context))
}

/// `POST /v1/orders/{id}/refunds`.
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/refunds",
    operation_id = "refundOrder",
    tag = "payments",
    summary = "Refund (part of) an order's payment",
    description = "Role `admin`. Sends a refund to the provider (with an idempotency key: a \
                   retry with the same `Idempotency-Key` never refunds twice) and records \
                   `RefundRequested`; the provider's answer or webhook records `Refunded` or \
                   `RefundFailed`. At most what was paid minus what was already refunded \
                   (422 `refund_exceeds_payment`).",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The order."), CommandHeaders),
    request_body = requests::RefundOrder,
    responses(
        (status = 202, description = "Sent to the provider.", body = RefundAccepted),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 412, response = VersionMismatch),
        (status = 422, response = RefundRefused),
        (status = 503, response = Unavailable),
    )
)]
pub async fn refund(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Json<requests::RefundOrder>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(&[Role::Admin])?;
    let id = path.into_inner();
    let body = body.into_inner();
    let mut context = CommandContext::new(&request, &caller, id, &body)?;
    context.success = StatusCode::ACCEPTED;
    let stream = state.engine.streams.peek(id).await?;
    let order = stream.order();
    if !is_visible(&order, &caller) {
        return Err(Problem::not_found(format!("order {id} not found")));
    }
    // Everything that can refuse the command is checked before money moves: a repeat of
    // this request (its first answer), a key reused with another body, a stale If-Match.
    if let Some(outcome) = context.replay_if_recorded(&state.engine.store).await? {
        return replayed_refund(&state.engine, id, outcome.accepted.version).await;
    }
    context.check_if_match(stream.version)?;
    let key = match &context.idempotency_key {
        Some(client_key) => format!(
            "agora-refund-{id}-{}",
            &hex::encode(Sha256::digest(format!("{}\n{client_key}", caller.id)))[..32]
        ),
        None => format!("agora-refund-{id}-{}", order.payments().refunds.len()),
    };
    let refund = request_refund(
        &state.payments,
        id,
        &order,
        body.amount_cents,
        body.reason,
        &key,
    )
    .await?;
    let answer = RefundAccepted {
        refund_id: refund.refund_id.as_str().to_owned(),
        status: if refund.succeeded {
            "succeeded"
        } else {
            "requested"
        },
    };
    match record_refund(&state.engine, &context, id, &refund).await {
        Ok(()) => Ok(HttpResponse::Accepted().json(answer)),
        Err(problem) => Err(problem),
    }
}

/// Records a refund the provider accepted. Should the command be refused now because the
/// order changed since the checks (a stale `If-Match` in a race), the refund is recorded all
/// the same by the system, without the condition: the money moved, and the log must say so.
pub(crate) async fn record_refund(
    engine: &Engine,
    context: &CommandContext,
    id: Uuid,
    refund: &RefundRequest,
) -> Result<(), Problem> {
    let streams = CommandStreams::existing(vec![id]);
    let decide = |context: &CommandContext| {
        let refund = refund.clone();
        let context = context.clone();
        move |states: &States| {
            let stream = crate::streams::state_of(states, id)?;
            context.check_if_match(stream.version)?;
            let events = stream
                .order()
                .decide(OrderCommand::Refund(refund.clone()))
                .map_err(domain_problem)?;
            changes(stream, &events, vec![])
        }
    };
    match execute(engine, context, &streams, decide(context)).await {
        Ok(_) => Ok(()),
        Err(problem) if problem.code == NOTHING_TO_DO => Ok(()),
        Err(problem) if problem.status == StatusCode::PRECONDITION_FAILED => {
            tracing::warn!(order = %id, refund = %refund.refund_id, "the order changed while its refund was at the provider: recording the refund unconditionally");
            // Recorded by the system: the refused request itself appends nothing.
            let unconditional = CommandContext::internal(super::orders::SYSTEM_ACTOR, id);
            match execute(engine, &unconditional, &streams, decide(&unconditional)).await {
                Ok(_) => Err(problem),
                Err(again) if again.code == NOTHING_TO_DO => Err(problem),
                Err(again) => {
                    tracing::error!(order = %id, refund = %refund.refund_id, detail = %again.detail, "a refund the provider made could not be recorded: reconcile");
                    Err(problem)
                }
            }
        }
        Err(problem) => {
            tracing::error!(order = %id, refund = %refund.refund_id, detail = %problem.detail, "a refund the provider made could not be recorded: reconcile");
            Err(problem)
        }
    }
}

/// The answer of a refund request repeated with its `Idempotency-Key`: the refund the first
/// one recorded (the last `RefundRequested` at or before the version it answered).
async fn replayed_refund(engine: &Engine, id: Uuid, version: i64) -> Result<HttpResponse, Problem> {
    let stream = engine
        .store
        .load_stream(id)
        .await
        .map_err(crate::errors::store_problem)?;
    let mut refund_id = None;
    let mut succeeded = false;
    for event in stream.events.iter().filter(|e| e.version <= version) {
        match event.event_type.as_str() {
            "RefundRequested" => {
                refund_id = event.payload["refund_id"].as_str().map(str::to_owned);
                succeeded = false;
            }
            "Refunded" if event.payload["refund_id"].as_str() == refund_id.as_deref() => {
                succeeded = true;
            }
            _ => {}
        }
    }
    let refund_id =
        refund_id.ok_or_else(|| Problem::internal("a replayed refund names no refund"))?;
    Ok(HttpResponse::Accepted()
        .insert_header(("Idempotent-Replayed", "true"))
        .json(RefundAccepted {
            refund_id,
            status: if succeeded { "succeeded" } else { "requested" },
        }))
}

/// Sends a refund of `amount_cents` of `order` to the provider (offline payments are
/// refunded offline), keyed by `key`; the request to record.
pub(crate) async fn request_refund(
    payments: &Payments,
    order_id: Uuid,
    order: &Order,
    amount_cents: i64,
    reason: Reason,
    key: &str,
) -> Result<RefundRequest, Problem> {
    let refundable = order.payments().refundable_cents();
    let payment = order
        .payments()
        .refundable_payment(amount_cents)
        .filter(|_| amount_cents > 0)
        .ok_or_else(|| {
            domain_problem(domain::DomainError::RefundExceedsPayment {
                refundable_cents: refundable,
            })
        })?;
    let (refund_id, succeeded) = if payment.offline {
        let digest = hex::encode(Sha256::digest(key.as_bytes()));
        (format!("offline_re_{}", &digest[..24]), true)
    } else {
        let refund = payments
            .provider
            .refund(order_id, payment.payment_id.as_str(), amount_cents, key)
            .await
            .map_err(provider_problem)?;
        let succeeded = refund.status == "succeeded";
        (refund.id, succeeded)
    };
    Ok(RefundRequest {
        refund_id: provider_id(RefundId::parse, refund_id)?,
        payment_id: payment.payment_id.clone(),
        amount_cents,
        reason,
        succeeded,
    })
}

/// `POST /v1/payments/stripe/webhook`.
#[utoipa::path(
    post,
    path = "/v1/payments/stripe/webhook",
    operation_id = "stripeWebhook",
    tag = "payments",
    summary = "Stripe's webhook",
    description = "For the provider, no token: the body must carry a valid `Stripe-Signature` \
                   (`t=<unix>,v1=<hex HMAC-SHA256(secret, \"<t>.<raw body>\")>`, several `v1` \
                   allowed during a secret rotation) no older than the tolerance (default \
                   5 minutes). `payment_intent.succeeded` for an order's exact total makes a \
                   placed order `paid` (actor `psp:stripe`); any other success is recorded as \
                   `PaymentNeedsReview`; `payment_intent.payment_failed` records the failure; \
                   refund events settle refunds. Each event id counts once: a replay, an \
                   event for no order of ours, or a type Agora ignores is 200 and appends \
                   nothing.",
    request_body(content = serde_json::Value, description = "A Stripe event.", content_type = "application/json"),
    responses(
        (status = 200, description = "Applied, or nothing to apply."),
        (status = 400, response = InvalidRequest),
        (status = 503, response = Unavailable),
    )
)]
pub async fn stripe_webhook(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let payments = &state.payments;
    if payments.webhook_secrets.is_empty() {
        return Err(Problem::invalid_request(
            "this instance takes no Stripe webhooks (AGORA_PAYMENTS is not stripe)",
        ));
    }
    let header = request
        .headers()
        .get("Stripe-Signature")
        .and_then(|value| value.to_str().ok());
    let tolerance = i64::try_from(payments.webhook_tolerance.as_secs()).unwrap_or(i64::MAX);
    webhook::verify(
        header,
        &body,
        &payments.webhook_secrets,
        chrono::Utc::now().timestamp(),
        tolerance,
    )
    .map_err(|error| {
        metrics::counter!("payment_webhooks_total", "outcome" => "refused").increment(1);
        Problem::invalid_request(format!("bad Stripe-Signature: {error}"))
    })?;
    let event: StripeEvent = serde_json::from_slice(&body)
        .map_err(|error| Problem::invalid_request(format!("not a Stripe event: {error}")))?;
    let Ok(event_id) = ProviderEventId::parse(event.id.clone()) else {
        return Err(Problem::invalid_request("the event's id is not usable"));
    };
    let mut outcome = "ignored";
    for effect in event.effects() {
        if apply_effect(&state.engine, "psp:stripe", &event_id, &effect).await? {
            outcome = "applied";
        }
    }
    metrics::counter!("payment_webhooks_total", "outcome" => outcome).increment(1);
    Ok(HttpResponse::Ok().json(serde_json::json!({"received": true})))
}

/// Applies one effect of provider event `event_id` to its order, at most once; whether
/// anything was appended. An order that does not exist (not ours, or an id from another
/// shop on the same account) and a refund we never requested are logged and left alone.
pub async fn apply_effect(
    engine: &Engine,
    actor: &str,
    event_id: &ProviderEventId,
    effect: &Effect,
) -> Result<bool, Problem> {
    let order_id = match effect {
        Effect::PaymentSucceeded { order_id, .. }
        | Effect::PaymentFailed { order_id, .. }
        | Effect::RefundSettled { order_id, .. } => *order_id,
    };
    let command = match effect.clone() {
        Effect::PaymentSucceeded {
            payment_id,
            amount_cents,
            currency,
            ..
        } => {
            let Ok(currency) = domain::Currency::parse(currency) else {
                tracing::warn!(%event_id, "a provider payment in a currency we cannot name");
                return Ok(false);
            };
            OrderCommand::ConfirmPayment {
                payment_id: provider_id(PaymentRef::parse, payment_id)?,
                amount_cents,
                currency,
                provider_event: event_id.clone(),
            }
        }
        Effect::PaymentFailed {
            payment_id, reason, ..
        } => OrderCommand::FailPayment {
            payment_id: provider_id(PaymentRef::parse, payment_id)?,
            provider_event: event_id.clone(),
            reason,
        },
        Effect::RefundSettled {
            refund_id, failure, ..
        } => OrderCommand::SettleRefund {
            refund_id: provider_id(RefundId::parse, refund_id)?,
            provider_event: Some(event_id.clone()),
            failure,
        },
    };
    let context = CommandContext::internal(actor, order_id);
    let streams = CommandStreams::existing(vec![order_id]);
    let claim = UniqueClaim {
        scope: PROVIDER_EVENT_SCOPE.into(),
        value: event_id.as_str().to_owned(),
        stream_id: order_id,
    };
    let applied = execute(engine, &context, &streams, |states: &States| {
        let stream = crate::streams::state_of(states, order_id)?;
        let order = stream.order();
        if !order.exists() {
            return Err(Problem::not_found("no such order"));
        }
        let events = order.decide(command.clone()).map_err(domain_problem)?;
        changes(stream, &events, vec![claim.clone()])
    })
    .await;
    match applied {
        Ok(_) => Ok(true),
        Err(problem) if problem.code == NOTHING_TO_DO => Ok(false),
        // The claim is taken: this provider event was applied already.
        Err(problem) if problem.code == "conflict" => Ok(false),
        Err(problem) if problem.status == StatusCode::NOT_FOUND => {
            tracing::warn!(%event_id, %order_id, "a provider event for no order or refund of ours");
            Ok(false)
        }
        Err(problem) if problem.status == StatusCode::UNPROCESSABLE_ENTITY => {
            tracing::warn!(%event_id, %order_id, detail = %problem.detail, "a provider event the order refused");
            Ok(false)
        }
        Err(problem) => Err(problem),
    }
}
