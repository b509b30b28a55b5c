//! Order commands: place (`customer` for themself, `admin` for anyone), cancel (the owning
//! customer or an admin; a paid order's money is refunded through the provider), ship and
//! record an offline payment (`admin`). A customer acting on someone else's order gets
//! 404, so order ids leak nothing. Payments through the provider are in
//! [`super::payments`].

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use domain::{
    cancel_order, expire_order, place_order_shipping_to, ship_order, ActorId, CustomerId, Order,
    OrderCommand, OrderId, PlacementEvents, Product, ProductId,
};
use eventstore::{StreamState, StreamWrite};
use platform::openapi::{Forbidden, InvalidRequest, NotFound, Unauthenticated};
use platform::{Caller, Problem, Role};
use uuid::Uuid;

use super::AppState;
use crate::errors::domain_problem;
use crate::execution::{execute, CommandContext, CommandStreams, Decision, Engine, Outcome};
use crate::openapi::{
    Applied, CancelOrderRefused, CommandHeaders, Created, PayOrderRefused, PlaceOrderRefused,
    ShipOrderRefused, Unavailable, VersionMismatch,
};
use crate::requests;
use crate::streams::{order_rows, product_rows, state_of, States};

pub(crate) const ORDER: &str = domain::order::STREAM_TYPE;
const PRODUCT: &str = domain::product::STREAM_TYPE;

/// `POST /v1/orders`.
#[utoipa::path(
    post,
    path = "/v1/orders",
    operation_id = "placeOrder",
    tag = "orders",
    summary = "Place an order",
    description = "Role `customer` (for themself) or `admin` (may pass `customer_id`; a \
                   customer naming someone else is 403). Takes each product's current price \
                   and reserves its stock in the same transaction as the order is recorded: \
                   either the order and every reservation are appended, or nothing is.",
    security(("bearer" = [])),
    params(CommandHeaders),
    responses(
        (status = 201, response = Created),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 412, response = VersionMismatch),
        (status = 422, response = PlaceOrderRefused),
        (status = 503, response = Unavailable),
    )
)]
pub async fn place(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    body: web::Json<requests::PlaceOrder>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(&[Role::Admin, Role::Customer])?;
    let body = body.into_inner();
    let customer_id = match (&body.customer_id, caller.has(Role::Admin)) {
        (Some(named), true) => named.clone(),
        (Some(named), false) if named.as_str() == caller.id => named.clone(),
        (Some(_), false) => {
            return Err(Problem::forbidden(
                "only an admin may place an order for another customer",
            ))
        }
        (None, _) => CustomerId::parse(caller.id.clone())
            .map_err(|e| Problem::invalid_request(format!("the token's sub: {e}")))?,
    };
    // Where it ships: the address given, else the customer's own (both sealed with the
    // customer's data key), else nowhere.
    let shipping_address = match &body.shipping_address {
        Some(address) => Some(super::customers::seal_address(&state, &customer_id, address).await?),
        None => super::customers::profile_address(&state, &customer_id).await?,
    };
    // Who places it (recorded in OrderPlaced v2): the caller, customer or admin.
    let placed_by = ActorId::parse(caller.id.clone())
        .map_err(|e| Problem::invalid_request(format!("the token's sub: {e}")))?;
    let id = Uuid::now_v7();
    let context = CommandContext::new(&request, &caller, id, &body)?.creating("/v1/orders");
    let streams = CommandStreams {
        existing: body.lines.iter().map(|l| l.product_id.as_uuid()).collect(),
        created: vec![id],
    };
    // With a limit, one customer's placements queue here (in this process), so they pick
    // distinct open-order slots; another process picking the same slot loses at the append.
    let limited = [open_orders::lock_key(&customer_id)];
    let _customer = state
        .customer_locks
        .lock(if state.max_open_orders > 0 {
            &limited
        } else {
            &[]
        })
        .await;
    let mut slot_races = 0;
    let outcome = loop {
        let slot = open_orders::free_slot(&state, &customer_id, id).await?;
        let placed = execute(&state.engine, &context, &streams, |states: &States| {
            let order_stream = state_of(states, id)?;
            context.check_if_match(order_stream.version)?;
            let claim = slot
                .clone()
                .ok_or_else(|| open_orders::too_many(state.max_open_orders))?;
            let products = products_of(states, &streams.existing)?;
            let decided = place_order_shipping_to(
                OrderId::from_uuid(id),
                customer_id.clone(),
                placed_by.clone(),
                shipping_address.clone(),
                &body.lines,
                &products,
            )
            .map_err(domain_problem)?;
            let mut decided = decision(order_stream, states, decided)?;
            decided.claims.extend(claim);
            Ok(decided)
        })
        .await;
        match placed {
            // Another process took that slot first: pick again.
            Err(problem) if problem.code == "conflict" && slot_races < 10 => slot_races += 1,
            other => break other?,
        }
    };
    Ok(outcome.respond(&context))
}

/// The open-order limit: each order in `placed` holds one of its customer's
/// `AGORA_MAX_OPEN_ORDERS_PER_CUSTOMER` slots, a unique claim taken in the statement that
/// appends the order (atomic across processes) and released by the database in the
/// transaction that records its payment or cancellation (migration `V20__reactors.sql`).
mod open_orders {
    use domain::CustomerId;
    use eventstore::UniqueClaim;
    use platform::Problem;
    use sha2::{Digest, Sha256};
    use uuid::Uuid;

    use super::AppState;
    use crate::errors::store_problem;

    /// The claims' scope.
    pub const SCOPE: &str = "open_order";

    /// The key `customer`'s placements are serialized on in this process.
    pub fn lock_key(customer: &CustomerId) -> Uuid {
        let digest = Sha256::digest(customer.as_str().as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Uuid::from_bytes(bytes)
    }

    /// The claim for a free slot of `customer` for order `order` (`Some(None)` when there
    /// is no limit), or `None` when every slot is held.
    pub async fn free_slot(
        state: &AppState,
        customer: &CustomerId,
        order: Uuid,
    ) -> Result<Option<Option<UniqueClaim>>, Problem> {
        if state.max_open_orders == 0 {
            return Ok(Some(None));
        }
        let slots: Vec<String> = (0..state.max_open_orders)
            .map(|n| format!("{}#{n}", customer.as_str()))
            .collect();
        let held = state
            .engine
            .store
            .claimed_values(SCOPE, &slots)
            .await
            .map_err(store_problem)?;
        Ok(slots
            .into_iter()
            .find(|slot| !held.contains(slot))
            .map(|value| {
                Some(UniqueClaim {
                    scope: SCOPE.into(),
                    value,
                    stream_id: order,
                })
            }))
    }

    /// 422 `too_many_open_orders`.
    pub fn too_many(limit: u32) -> Problem {
        Problem::unprocessable(
            "too_many_open_orders",
            format!(
                "this customer already has {limit} orders awaiting payment; pay or cancel one first"
            ),
        )
    }
}

/// The order in `states` if the caller may act on it (404 otherwise).
pub(crate) fn visible_order<'a>(
    states: &'a States,
    caller: &Caller,
    id: Uuid,
) -> Result<(&'a StreamState, Order), Problem> {
    let stream = state_of(states, id)?;
    let order = stream.order();
    if !is_visible(&order, caller) {
        return Err(Problem::not_found(format!("order {id} not found")));
    }
    Ok((stream, order))
}

pub(crate) fn is_visible(order: &Order, caller: &Caller) -> bool {
    order.exists()
        && (caller.has(Role::Admin)
            || order
                .customer_id()
                .is_some_and(|owner| owner.as_str() == caller.id))
}

/// The streams a command on order `id` writes: the order and, when the caller may see it,
/// every product in it (an order's lines never change once it is placed).
async fn order_streams(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
) -> Result<CommandStreams, Problem> {
    let order = state.engine.streams.peek(id).await?.order();
    let mut ids = vec![id];
    if is_visible(&order, caller) {
        ids.extend(order.lines().iter().map(|l| l.product_id.as_uuid()));
    }
    Ok(CommandStreams::existing(ids))
}

/// `POST /v1/orders/{id}/pay`.
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/pay",
    operation_id = "payOrder",
    tag = "orders",
    summary = "Record an offline payment",
    description = "Role `admin` only (a customer gets 403: a customer never pays by saying \
                   so; storefronts use `POST /v1/orders/{id}/payment`). Records a payment \
                   made outside the provider (a bank transfer, cash on delivery) with a \
                   required `reason`, audited like any command: a `placed` order becomes \
                   `paid`; the amount and currency must equal the order total.",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The order."), CommandHeaders),
    responses(
        (status = 200, response = Applied),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 412, response = VersionMismatch),
        (status = 422, response = PayOrderRefused),
        (status = 503, response = Unavailable),
    )
)]
pub async fn pay(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Json<requests::PayOrder>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(&[Role::Admin])?;
    let id = path.into_inner();
    let body = body.into_inner();
    let context = CommandContext::new(&request, &caller, id, &body)?;
    let command = OrderCommand::Pay {
        amount_cents: body.amount_cents,
        currency: body.currency,
        payment_ref: body.payment_ref,
        reason: body.reason,
    };
    let streams = CommandStreams::existing(vec![id]);
    let outcome = execute(&state.engine, &context, &streams, |states: &States| {
        let (stream, order) = visible_order(states, &caller, id)?;
        context.check_if_match(stream.version)?;
        let events = order.decide(command.clone()).map_err(domain_problem)?;
        Ok(order_decision(stream, &events, vec![]))
    })
    .await?;
    Ok(outcome.respond(&context))
}

/// `POST /v1/orders/{id}/ship`.
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/ship",
    operation_id = "shipOrder",
    tag = "orders",
    summary = "Ship an order",
    description = "Role `admin`. A `paid` order becomes `shipped`; its reserved stock leaves \
                   the warehouse (`on_hand` and `reserved` both drop).",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The order."), CommandHeaders),
    responses(
        (status = 200, response = Applied),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 412, response = VersionMismatch),
        (status = 422, response = ShipOrderRefused),
        (status = 503, response = Unavailable),
    )
)]
pub async fn ship(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Json<requests::ShipOrder>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(&[Role::Admin])?;
    let id = path.into_inner();
    let body = body.into_inner();
    let context = CommandContext::new(&request, &caller, id, &body)?;
    let streams = order_streams(&state, &caller, id).await?;
    let outcome = execute(&state.engine, &context, &streams, |states: &States| {
        let (stream, order) = visible_order(states, &caller, id)?;
        context.check_if_match(stream.version)?;
        let products = order_products(states, &order)?;
        let decided = ship_order(
            OrderId::from_uuid(id),
            &order,
            body.carrier.clone(),
            body.tracking_number.clone(),
            &products,
        )
        .map_err(domain_problem)?;
        decision(stream, states, decided)
    })
    .await?;
    Ok(outcome.respond(&context))
}

/// `POST /v1/orders/{id}/cancel`.
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/cancel",
    operation_id = "cancelOrder",
    tag = "orders",
    summary = "Cancel an order",
    description = "The owning `customer` or an `admin` (another customer's order is 404). A \
                   `placed` or `paid` order becomes `cancelled` and its reservation is \
                   released; cancelling a paid order sends a refund of what was paid (and \
                   not yet refunded) to the payment provider, recorded with it \
                   (`RefundRequested`, then `Refunded` when the provider confirms).",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The order."), CommandHeaders),
    responses(
        (status = 200, response = Applied),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 412, response = VersionMismatch),
        (status = 422, response = CancelOrderRefused),
        (status = 503, response = Unavailable),
    )
)]
pub async fn cancel(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Json<requests::CancelOrder>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(&[Role::Admin, Role::Customer])?;
    let id = path.into_inner();
    let body = body.into_inner();
    let context = CommandContext::new(&request, &caller, id, &body)?;
    let streams = order_streams(&state, &caller, id).await?;
    let refund = cancellation_refund(&state, &context, &caller, id).await?;
    let cancelled = execute(&state.engine, &context, &streams, |states: &States| {
        let (stream, order) = visible_order(states, &caller, id)?;
        context.check_if_match(stream.version)?;
        let products = order_products(states, &order)?;
        let decided = cancel_order(
            OrderId::from_uuid(id),
            &order,
            body.reason.clone(),
            refund.clone(),
            &products,
        )
        .map_err(domain_problem)?;
        decision(stream, states, decided)
    })
    .await;
    match (cancelled, &refund) {
        (Ok(outcome), _) => Ok(outcome.respond(&context)),
        // Refused after the provider refunded (the order changed meanwhile): the refund is
        // recorded all the same, by the system (the refused command appends nothing). An
        // outcome that is not known (a 5xx) is not a refusal: the client retries with its
        // key, and the provider answers the same refund.
        (Err(problem), Some(refund)) if problem.status.is_client_error() => {
            let record = CommandContext::internal(SYSTEM_ACTOR, id);
            if let Err(error) =
                super::payments::record_refund(&state.engine, &record, id, refund).await
            {
                tracing::error!(order = %id, detail = %error.detail, "a cancellation's refund could not be recorded: reconcile");
            }
            Err(problem)
        }
        (Err(problem), _) => Err(problem),
    }
}

/// The refund a cancellation of order `id` sends first: everything a paid order's
/// provider still holds (none for an order that is not paid). Keyed by the order: a retried
/// cancellation asks the provider for the same refund.
async fn cancellation_refund(
    state: &AppState,
    context: &CommandContext,
    caller: &Caller,
    id: Uuid,
) -> Result<Option<domain::RefundRequest>, Problem> {
    let stream = state.engine.streams.peek(id).await?;
    let order = stream.order();
    let refundable = order.payments().refundable_cents();
    if !is_visible(&order, caller)
        || order.status() != Some(domain::OrderStatus::Paid)
        || refundable == 0
    {
        return Ok(None);
    }
    // What would refuse the cancellation is checked before money moves.
    if context
        .replay_if_recorded(&state.engine.store)
        .await?
        .is_some()
    {
        return Ok(None);
    }
    context.check_if_match(stream.version)?;
    let reason = domain::Reason::parse("order cancelled").map_err(Problem::internal)?;
    let key = format!("agora-cancel-{id}");
    super::payments::request_refund(&state.payments, id, &order, refundable, reason, &key)
        .await
        .map(Some)
}

/// The actor recorded on commands the system sends by itself (reservation expiry).
pub const SYSTEM_ACTOR: &str = "system";

/// Expires an unpaid order, without HTTP: the same command path as a cancel (the order
/// and its products locked, loaded, decided by [`domain::expire_order`], appended in one
/// transaction), by actor `system` with reason `payment_timeout`. Refused (422
/// `invalid_state`) unless the order is still `placed`, so a payment that won the race
/// stands and an order is never expired twice.
pub async fn run_expiry(engine: &Engine, id: Uuid) -> Result<Outcome, Problem> {
    let context = CommandContext::internal(SYSTEM_ACTOR, id);
    let order = engine.streams.peek(id).await?.order();
    let mut ids = vec![id];
    ids.extend(order.lines().iter().map(|l| l.product_id.as_uuid()));
    let streams = CommandStreams::existing(ids);
    execute(engine, &context, &streams, |states: &States| {
        let stream = state_of(states, id)?;
        let order = stream.order();
        let products = order_products(states, &order)?;
        let decided =
            expire_order(OrderId::from_uuid(id), &order, &products).map_err(domain_problem)?;
        decision(stream, states, decided)
    })
    .await
}

/// The products of `ids`, folded.
fn products_of(states: &States, ids: &[Uuid]) -> Result<HashMap<ProductId, Product>, Problem> {
    ids.iter()
        .map(|id| Ok((ProductId::from_uuid(*id), state_of(states, *id)?.product())))
        .collect()
}

/// The products of `order`'s lines. They were locked and loaded with the order; if the
/// order appeared only after its streams were named (placed meanwhile), they were not,
/// and the command is answered as contended (safe to retry).
fn order_products(states: &States, order: &Order) -> Result<HashMap<ProductId, Product>, Problem> {
    let ids: Vec<Uuid> = order
        .lines()
        .iter()
        .map(|l| l.product_id.as_uuid())
        .collect();
    if ids.iter().any(|id| !states.contains_key(id)) {
        return Err(Problem::unavailable(
            "contention",
            "the order changed while the command started; retry",
            1,
        ));
    }
    products_of(states, &ids)
}

/// The write of `events` onto the order `stream`, with `claims`.
pub(crate) fn order_decision(
    stream: &StreamState,
    events: &[domain::OrderEvent],
    claims: Vec<eventstore::UniqueClaim>,
) -> Decision {
    Decision {
        writes: vec![StreamWrite::onto(stream, ORDER, order_rows(events))],
        claims,
    }
}

/// The writes for an order's events and its products' events.
fn decision(
    order_stream: &StreamState,
    states: &States,
    decided: PlacementEvents,
) -> Result<Decision, Problem> {
    let mut writes = vec![StreamWrite::onto(
        order_stream,
        ORDER,
        order_rows(&decided.order),
    )];
    for (product_id, events) in &decided.products {
        let stream = state_of(states, product_id.as_uuid())?;
        writes.push(StreamWrite::onto(stream, PRODUCT, product_rows(events)));
    }
    Ok(Decision {
        writes,
        claims: vec![],
    })
}
