//! Product commands (role `admin`): create, change price, restock, discontinue.

use actix_web::{web, HttpRequest, HttpResponse};
use domain::{Product, ProductCommand};
use eventstore::{StreamWrite, UniqueClaim};
use platform::openapi::{Forbidden, InvalidRequest, NotFound, Unauthenticated};
use platform::{Caller, Problem, Role};
use uuid::Uuid;

use super::AppState;
use crate::errors::domain_problem;
use crate::execution::{execute, CommandContext, CommandStreams, Decision, Engine, Outcome};
use crate::openapi::{
    Applied, ChangePriceRefused, CommandHeaders, CreateProductRefused, Created, DiscontinueRefused,
    RestockRefused, SkuTaken, Unavailable, VersionMismatch,
};
use crate::requests;
use crate::streams::{product_rows, state_of, States};

const STREAM_TYPE: &str = domain::product::STREAM_TYPE;

/// `POST /v1/products`.
#[utoipa::path(
    post,
    path = "/v1/products",
    operation_id = "createProduct",
    tag = "products",
    summary = "Create a product",
    description = "Role `admin`. Creates a product with a unique SKU, a price and its initial \
                   stock (default 0).",
    security(("bearer" = [])),
    params(CommandHeaders),
    responses(
        (status = 201, response = Created),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 409, response = SkuTaken),
        (status = 412, response = VersionMismatch),
        (status = 422, response = CreateProductRefused),
        (status = 503, response = Unavailable),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    body: web::Json<requests::CreateProduct>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(&[Role::Admin])?;
    let id = Uuid::now_v7();
    let body = body.into_inner();
    let context = CommandContext::new(&request, &caller, id, &body)?.creating("/v1/products");
    let sku = body.sku.as_str().to_owned();
    let command = ProductCommand::Create {
        sku: body.sku,
        name: body.name,
        price: body.price_cents,
        currency: body.currency,
        initial_stock: body.initial_stock,
    };
    let streams = CommandStreams {
        existing: vec![],
        created: vec![id],
    };
    let outcome = execute(&state.engine, &context, &streams, |states: &States| {
        let stream = state_of(states, id)?;
        context.check_if_match(stream.version)?;
        let events = Product::default()
            .decide(command.clone())
            .map_err(domain_problem)?;
        Ok(Decision {
            writes: vec![StreamWrite::onto(
                stream,
                STREAM_TYPE,
                product_rows(&events),
            )],
            claims: vec![UniqueClaim {
                scope: "sku".into(),
                value: sku.clone(),
                stream_id: id,
            }],
        })
    })
    .await?;
    Ok(outcome.respond(&context))
}

/// Runs one command on an existing product (role `admin`).
async fn on_product(
    state: &AppState,
    caller: &Caller,
    request: &HttpRequest,
    id: Uuid,
    body: &impl serde::Serialize,
    command: ProductCommand,
) -> Result<HttpResponse, Problem> {
    caller.require_any(&[Role::Admin])?;
    let context = CommandContext::new(request, caller, id, body)?;
    let outcome = run_on_product(&state.engine, &context, id, command).await?;
    Ok(outcome.respond(&context))
}

/// The command path of a command on one existing product, without HTTP (the caller is
/// authorized already).
pub async fn run_on_product(
    engine: &Engine,
    context: &CommandContext,
    id: Uuid,
    command: ProductCommand,
) -> Result<Outcome, Problem> {
    let streams = CommandStreams::existing(vec![id]);
    execute(engine, context, &streams, |states: &States| {
        let stream = state_of(states, id)?;
        let product = stream.product();
        if !product.exists() {
            return Err(Problem::not_found(format!("product {id} not found")));
        }
        context.check_if_match(stream.version)?;
        let events = product.decide(command.clone()).map_err(domain_problem)?;
        Ok(Decision {
            writes: vec![StreamWrite::onto(
                stream,
                STREAM_TYPE,
                product_rows(&events),
            )],
            claims: vec![],
        })
    })
    .await
}

/// `POST /v1/products/{id}/price`.
#[utoipa::path(
    post,
    path = "/v1/products/{id}/price",
    operation_id = "changeProductPrice",
    tag = "products",
    summary = "Change a product's price",
    description = "Role `admin`. Orders placed before keep the price they were placed at.",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The product."), CommandHeaders),
    responses(
        (status = 200, response = Applied),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 412, response = VersionMismatch),
        (status = 422, response = ChangePriceRefused),
        (status = 503, response = Unavailable),
    )
)]
pub async fn change_price(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Json<requests::ChangePrice>,
) -> Result<HttpResponse, Problem> {
    let command = ProductCommand::ChangePrice {
        price: body.price_cents,
    };
    on_product(&state, &caller, &request, *path, &*body, command).await
}

/// `POST /v1/products/{id}/restock`.
#[utoipa::path(
    post,
    path = "/v1/products/{id}/restock",
    operation_id = "restockProduct",
    tag = "products",
    summary = "Restock a product",
    description = "Role `admin`. Adds units on hand.",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The product."), CommandHeaders),
    responses(
        (status = 200, response = Applied),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 412, response = VersionMismatch),
        (status = 422, response = RestockRefused),
        (status = 503, response = Unavailable),
    )
)]
pub async fn restock(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Json<requests::Restock>,
) -> Result<HttpResponse, Problem> {
    let command = ProductCommand::Restock {
        quantity: body.quantity,
    };
    on_product(&state, &caller, &request, *path, &*body, command).await
}

/// `POST /v1/products/{id}/discontinue`.
#[utoipa::path(
    post,
    path = "/v1/products/{id}/discontinue",
    operation_id = "discontinueProduct",
    tag = "products",
    summary = "Discontinue a product",
    description = "Role `admin`. A discontinued product cannot be ordered, repriced or \
                   restocked; open orders of it can still ship or be cancelled.",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The product."), CommandHeaders),
    responses(
        (status = 200, response = Applied),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 412, response = VersionMismatch),
        (status = 422, response = DiscontinueRefused),
        (status = 503, response = Unavailable),
    )
)]
pub async fn discontinue(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Json<requests::Discontinue>,
) -> Result<HttpResponse, Problem> {
    on_product(
        &state,
        &caller,
        &request,
        *path,
        &*body,
        ProductCommand::Discontinue,
    )
    .await
}
