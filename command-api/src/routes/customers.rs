//! Customers' personal data: `PUT /v1/me` (a customer's profile, sealed with their data key
//! before it is recorded) and `POST /v1/customers/{id}/erasure` (an admin, or the customer
//! themself), plus sealing an order's shipping address for [`super::orders`].
//!
//! Erasure destroys the data key first, then records `CustomerErased`, then drops the
//! customer's snapshots: a crash after any step leaves nothing readable (the key is gone
//! before anything says so), and asking again finishes the rest.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use domain::customer::{field, stream_id};
use domain::{ActorId, CustomerCommand, CustomerId, DomainError, PostalAddress, Sealed};
use eventstore::StreamWrite;
use platform::openapi::{Forbidden, InvalidRequest, Unauthenticated};
use platform::pii::{DataKey, PiiError};
use platform::{Caller, Problem, Role};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use crate::errors::{domain_problem, store_problem};
use crate::execution::{execute, CommandContext, CommandStreams, Decision};
use crate::openapi::{
    CommandHeaders, EraseRefused, SetProfileRefused, Unavailable, VersionMismatch,
};
use crate::requests;
use crate::streams::{event_rows, state_of};

const CUSTOMER: &str = domain::customer::STREAM_TYPE;

/// The code of an erasure that appends nothing (the customer is erased already).
const ALREADY_ERASED: &str = "already_erased";

/// Personal data trouble as an answer: unconfigured or unreadable keys are the operator's
/// (503), an erased customer the client's (422 `customer_erased`).
pub(crate) fn pii_problem(error: PiiError) -> Problem {
    match error {
        PiiError::Erased => domain_problem(DomainError::CustomerErased),
        PiiError::Store(error) => store_problem(error),
        PiiError::Unconfigured => Problem::unavailable(
            "personal_data_unavailable",
            "personal data is not configured on this server",
            60,
        ),
        other => {
            tracing::error!(error = %other, "personal data cannot be sealed or opened");
            Problem::unavailable(
                "personal_data_unavailable",
                "personal data cannot be handled right now",
                60,
            )
        }
    }
}

/// Seals `address` as the shipping address of `customer` (their data key, made now if
/// they have none).
pub(crate) async fn seal_address(
    state: &AppState,
    customer: &CustomerId,
    address: &PostalAddress,
) -> Result<Sealed, Problem> {
    let key = state
        .vault
        .key_for_writing(customer.as_str())
        .await
        .map_err(pii_problem)?;
    seal_json(&key, stream_id(customer), field::ADDRESS, address)
}

fn seal_json(
    key: &DataKey,
    stream: Uuid,
    field: &str,
    value: &impl Serialize,
) -> Result<Sealed, Problem> {
    let json = serde_json::to_vec(value).map_err(Problem::internal)?;
    seal(key, stream, field, &json)
}

fn seal(key: &DataKey, stream: Uuid, field: &str, plaintext: &[u8]) -> Result<Sealed, Problem> {
    key.seal(stream, field, plaintext).map_err(pii_problem)
}

/// The address `customer` gave in their profile (sealed), if any: what an order naming no
/// address ships to. Read fresh, or from what is kept while every change is heard
/// ([`crate::customer_cache`]).
pub(crate) async fn profile_address(
    state: &AppState,
    customer: &CustomerId,
) -> Result<Option<Sealed>, Problem> {
    let id = stream_id(customer);
    let stream = match state.customers.get(&id) {
        Some(kept) => kept,
        None => {
            let epoch = state.customers.epoch();
            let mut loaded = state
                .engine
                .store
                .load_states(&[id])
                .await
                .map_err(store_problem)?;
            let stream = std::sync::Arc::new(
                loaded
                    .remove(&id)
                    .unwrap_or_else(|| eventstore::StreamState::empty(id)),
            );
            state.customers.keep(stream.clone(), epoch);
            stream
        }
    };
    Ok(stream
        .customer()
        .profile()
        .and_then(|profile| profile.address.clone()))
}

/// `PUT /v1/me`.
#[utoipa::path(
    put,
    path = "/v1/me",
    operation_id = "setProfile",
    tag = "customers",
    summary = "Set the caller's profile",
    description = "Role `customer`. Replaces the caller's email, name and address. Every \
                   personal field is sealed with the customer's own data key before it is \
                   recorded: events, Kafka and exports carry only ciphertext. An erased \
                   customer gets 422 `customer_erased`.",
    security(("bearer" = [])),
    params(CommandHeaders),
    request_body = requests::SetProfile,
    responses(
        (status = 200, description = "Recorded.", body = crate::execution::CommandAccepted),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 412, response = VersionMismatch),
        (status = 422, response = SetProfileRefused),
        (status = 503, response = Unavailable),
    )
)]
pub async fn set_profile(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    body: web::Json<requests::SetProfile>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(&[Role::Customer])?;
    let customer = CustomerId::parse(caller.id.clone())
        .map_err(|e| Problem::invalid_request(format!("the token's sub: {e}")))?;
    let stream = stream_id(&customer);
    let body = body.into_inner();
    let context = CommandContext::new(&request, &caller, stream, &body)?;
    let key = state
        .vault
        .key_for_writing(customer.as_str())
        .await
        .map_err(pii_problem)?;
    let email = seal(&key, stream, field::EMAIL, body.email.as_str().as_bytes())?;
    let name = seal(&key, stream, field::NAME, body.name.as_str().as_bytes())?;
    let address = body
        .address
        .as_ref()
        .map(|address| seal_json(&key, stream, field::ADDRESS, address))
        .transpose()?;
    let command = CustomerCommand::SetProfile {
        customer_id: customer,
        email,
        name,
        address,
        email_updates: body.email_updates,
    };
    let outcome = execute(
        &state.engine,
        &context,
        &CommandStreams::existing(vec![stream]),
        |states| {
            let current = state_of(states, stream)?;
            context.check_if_match(current.version)?;
            let events = current
                .customer()
                .decide(command.clone())
                .map_err(domain_problem)?;
            Ok(customer_decision(current, &events))
        },
    )
    .await?;
    // Other processes hear of it from the store; this one forgets at once.
    state.customers.forget(&stream);
    Ok(outcome.respond(&context))
}

fn customer_decision(
    stream: &eventstore::StreamState,
    events: &[domain::CustomerEvent],
) -> Decision {
    Decision {
        writes: vec![StreamWrite::onto(stream, CUSTOMER, event_rows(events))],
        claims: vec![],
    }
}

/// The answer to an erasure.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"customer_id": "ana", "erased": true}))]
pub struct Erased {
    pub customer_id: String,
    /// Always true: the data key is destroyed and `CustomerErased` recorded.
    pub erased: bool,
}

/// `POST /v1/customers/{id}/erasure`.
#[utoipa::path(
    post,
    path = "/v1/customers/{id}/erasure",
    operation_id = "eraseCustomer",
    tag = "customers",
    summary = "Erase a customer's personal data",
    description = "An `admin`, or the `customer` themself (someone else's id is 403). Destroys \
                   the customer's data key, so every personal field ever sealed with it (in \
                   their profile and their orders' shipping addresses) is unreadable \
                   everywhere at once, then records `CustomerErased` (who, why; no personal \
                   data). The events stay as recorded: every checkpoint and proof still \
                   verifies. Orders stay with their totals, lines and statuses. Idempotent.",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The customer (token `sub`)."), CommandHeaders),
    request_body = requests::Erasure,
    responses(
        (status = 202, description = "Erased.", body = Erased),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 422, response = EraseRefused),
        (status = 503, response = Unavailable),
    )
)]
pub async fn erase(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Json<requests::Erasure>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(&[Role::Admin, Role::Customer])?;
    let customer = CustomerId::parse(path.into_inner())
        .map_err(|e| Problem::invalid_request(e.to_string()))?;
    if !caller.has(Role::Admin) && customer.as_str() != caller.id {
        return Err(Problem::forbidden(
            "a customer may only erase their own personal data",
        ));
    }
    let erased_by = ActorId::parse(caller.id.clone())
        .map_err(|e| Problem::invalid_request(format!("the token's sub: {e}")))?;
    let stream = stream_id(&customer);
    let body = body.into_inner();
    let mut context = CommandContext::new(&request, &caller, stream, &body)?;
    context.success = StatusCode::ACCEPTED;

    // 1. The key: from now on nothing of theirs opens, in any process.
    if state
        .vault
        .destroy(customer.as_str())
        .await
        .map_err(pii_problem)?
    {
        metrics::counter!("customer_keys_destroyed_total").increment(1);
    }
    crash_point("key_destroyed");

    // 2. The record of it.
    let command = CustomerCommand::Erase {
        customer_id: customer.clone(),
        erased_by,
        reason: body.reason,
    };
    let recorded = execute(
        &state.engine,
        &context,
        &CommandStreams::existing(vec![stream]),
        |states| {
            let current = state_of(states, stream)?;
            let events = current
                .customer()
                .decide(command.clone())
                .map_err(domain_problem)?;
            if events.is_empty() {
                return Err(Problem::new(
                    StatusCode::ACCEPTED,
                    ALREADY_ERASED,
                    "already erased",
                ));
            }
            Ok(customer_decision(current, &events))
        },
    )
    .await;
    state.customers.forget(&stream);
    match recorded {
        Ok(_) => {}
        Err(problem) if problem.code == ALREADY_ERASED => {}
        Err(problem) => return Err(problem),
    }
    crash_point("event_recorded");

    // 3. Snapshots of the stream (they held ciphertext only; the cache already holds the
    //    erased state).
    state
        .engine
        .store
        .delete_snapshots_of(stream)
        .await
        .map_err(store_problem)?;
    Ok(HttpResponse::Accepted().json(Erased {
        customer_id: customer.into_inner(),
        erased: true,
    }))
}

/// Fault injection for the crash tests: with `AGORA_FAULT_ABORT_AT=<point>` the process
/// aborts (as abruptly as SIGKILL) when erasure reaches `point`.
fn crash_point(point: &str) {
    if std::env::var("AGORA_FAULT_ABORT_AT").is_ok_and(|at| at == point) {
        tracing::error!(point, "AGORA_FAULT_ABORT_AT: aborting");
        std::process::abort();
    }
}
