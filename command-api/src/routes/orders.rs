//! Order commands: place (`customer` for themself, `admin` for anyone), pay and cancel
//! (the owning customer or an admin), ship (`admin`). A customer acting on someone else's
//! order gets 404, so order ids leak nothing.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use domain::{
    cancel_order, place_order, ship_order, ActorId, CustomerId, Order, OrderCommand, OrderId,
    PlacementEvents, Product, ProductId,
};
use eventstore::{LoadedStream, StreamWrite};
use platform::openapi::{Forbidden, InvalidRequest, NotFound, Unauthenticated};
use platform::{Caller, Problem, Role};
use uuid::Uuid;

use super::AppState;
use crate::errors::{domain_problem, store_problem};
use crate::execution::{execute, CommandContext, Decision};
use crate::openapi::{
    Applied, CancelOrderRefused, CommandHeaders, Created, PayOrderRefused, PlaceOrderRefused,
    ShipOrderRefused, Unavailable, VersionMismatch,
};
use crate::requests;
use crate::streams::{handle, order_from, order_rows, product_from, product_rows};

const ORDER: &str = domain::order::STREAM_TYPE;
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
    // Who places it (recorded in OrderPlaced v2): the caller, customer or admin.
    let placed_by = ActorId::parse(caller.id.clone())
        .map_err(|e| Problem::invalid_request(format!("the token's sub: {e}")))?;
    let id = Uuid::now_v7();
    let context = CommandContext::new(&request, &caller, id, &body)?.creating("/v1/orders");
    let product_ids: Vec<Uuid> = body.lines.iter().map(|l| l.product_id.as_uuid()).collect();
    execute(
        &state.store,
        &state.locks,
        &context,
        &product_ids,
        async || {
            let streams = state
                .store
                .load_streams(&product_ids)
                .await
                .map_err(store_problem)?;
            let products = fold_products(&streams)?;
            let order_stream = LoadedStream::empty(id);
            context.check_if_match(order_stream.version)?;
            let decided = place_order(
                OrderId::from_uuid(id),
                customer_id.clone(),
                placed_by.clone(),
                &body.lines,
                &products,
            )
            .map_err(domain_problem)?;
            Ok(decision(&order_stream, &streams, decided))
        },
    )
    .await
}

/// Loads an order and checks the caller may act on it (404 otherwise).
async fn load_visible_order(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
) -> Result<(LoadedStream, Order), Problem> {
    let stream = state.store.load_stream(id).await.map_err(store_problem)?;
    let order = order_from(&stream)?;
    let visible = order.exists()
        && (caller.has(Role::Admin)
            || order
                .customer_id()
                .is_some_and(|owner| owner.as_str() == caller.id));
    if !visible {
        return Err(Problem::not_found(format!("order {id} not found")));
    }
    Ok((stream, order))
}

/// `POST /v1/orders/{id}/pay`.
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/pay",
    operation_id = "payOrder",
    tag = "orders",
    summary = "Pay an order",
    description = "The owning `customer` or an `admin` (another customer's order is 404). A \
                   `placed` order becomes `paid`; the amount and currency must equal the \
                   order total.",
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
    caller.require_any(&[Role::Admin, Role::Customer])?;
    let id = path.into_inner();
    let body = body.into_inner();
    let context = CommandContext::new(&request, &caller, id, &body)?;
    let command = OrderCommand::Pay {
        amount_cents: body.amount_cents,
        currency: body.currency,
        payment_ref: body.payment_ref,
    };
    execute(&state.store, &state.locks, &context, &[id], async || {
        let (stream, order) = load_visible_order(&state, &caller, id).await?;
        context.check_if_match(stream.version)?;
        let events = handle(&order, command.clone())
            .await
            .map_err(domain_problem)?;
        Ok(Decision {
            writes: vec![StreamWrite::after(&stream, ORDER, order_rows(&events))],
            claims: vec![],
        })
    })
    .await
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
    execute(&state.store, &state.locks, &context, &[id], async || {
        let (stream, order) = load_visible_order(&state, &caller, id).await?;
        context.check_if_match(stream.version)?;
        let (product_streams, products) = load_order_products(&state, &order).await?;
        let decided = ship_order(
            OrderId::from_uuid(id),
            &order,
            body.carrier.clone(),
            body.tracking_number.clone(),
            &products,
        )
        .map_err(domain_problem)?;
        Ok(decision(&stream, &product_streams, decided))
    })
    .await
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
                   released; cancelling a paid order records a refund of the total.",
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
    execute(&state.store, &state.locks, &context, &[id], async || {
        let (stream, order) = load_visible_order(&state, &caller, id).await?;
        context.check_if_match(stream.version)?;
        let (product_streams, products) = load_order_products(&state, &order).await?;
        let decided = cancel_order(
            OrderId::from_uuid(id),
            &order,
            body.reason.clone(),
            &products,
        )
        .map_err(domain_problem)?;
        Ok(decision(&stream, &product_streams, decided))
    })
    .await
}

type LoadedProducts = (HashMap<Uuid, LoadedStream>, HashMap<ProductId, Product>);

async fn load_order_products(state: &AppState, order: &Order) -> Result<LoadedProducts, Problem> {
    let ids: Vec<Uuid> = order
        .lines()
        .iter()
        .map(|l| l.product_id.as_uuid())
        .collect();
    let streams = state
        .store
        .load_streams(&ids)
        .await
        .map_err(store_problem)?;
    let products = fold_products(&streams)?;
    Ok((streams, products))
}

fn fold_products(
    streams: &HashMap<Uuid, LoadedStream>,
) -> Result<HashMap<ProductId, Product>, Problem> {
    streams
        .iter()
        .map(|(id, stream)| Ok((ProductId::from_uuid(*id), product_from(stream)?)))
        .collect()
}

/// The writes for an order's events and its products' events.
fn decision(
    order_stream: &LoadedStream,
    product_streams: &HashMap<Uuid, LoadedStream>,
    decided: PlacementEvents,
) -> Decision {
    let mut writes = vec![StreamWrite::after(
        order_stream,
        ORDER,
        order_rows(&decided.order),
    )];
    for (product_id, events) in &decided.products {
        let id = product_id.as_uuid();
        let stream = product_streams
            .get(&id)
            .cloned()
            .unwrap_or_else(|| LoadedStream::empty(id));
        writes.push(StreamWrite::after(&stream, PRODUCT, product_rows(events)));
    }
    Decision {
        writes,
        claims: vec![],
    }
}
