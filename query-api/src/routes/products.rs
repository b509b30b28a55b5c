//! `GET /v1/products` and `GET /v1/products/{id}` (any role): the catalog with stock.
//!
//! The list is ordered by `(sku, id)`: SKUs are unique, the id only makes the order total.

use actix_web::{web, HttpRequest, HttpResponse};
use async_graphql::SimpleObject;
use platform::openapi::{Forbidden, InvalidRequest, NotFound, Unauthenticated};
use platform::{Caller, Problem};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{entity_response, list_response, AppState, ANY_ROLE};
use crate::consistency::{EntityQuery, Versioned};
use crate::db::{self, ReadModel};
use crate::openapi::{EntityHeaders, EntityUnavailable, NotModified, ReadModelUnavailable};
use crate::pagination::{self, CursorKey, Page, DEFAULT_LIMIT, MAX_LIMIT};

const COLUMNS: &str =
    "id, sku, name, price_cents, currency, on_hand, reserved, discontinued, version";

/// A product as the query API shows it.
#[derive(Debug, Serialize, ToSchema, SimpleObject)]
#[schema(example = json!({
    "id": "0190f5b2-7c1e-7a3d-9c4f-2b8e6d1a0f37", "sku": "A-1", "name": "Mug",
    "price_cents": 1299, "currency": "EUR", "on_hand": 10, "reserved": 3, "available": 7,
    "discontinued": false, "version": 4
}))]
pub struct Product {
    pub id: Uuid,
    /// Unique among products.
    pub sku: String,
    pub name: String,
    /// The current unit price in minor units of `currency`.
    pub price_cents: i64,
    /// ISO 4217 code.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// Units physically present.
    #[schema(minimum = 0)]
    pub on_hand: i64,
    /// Units held by open orders.
    #[schema(minimum = 0)]
    pub reserved: i64,
    /// `on_hand - reserved`, never negative.
    #[schema(minimum = 0)]
    pub available: i64,
    /// A discontinued product cannot be ordered.
    pub discontinued: bool,
    /// The product stream's version this reflects (also the `ETag`).
    #[schema(minimum = 1)]
    pub version: i64,
}

impl Product {
    fn from_row(row: &Row) -> Result<Product, tokio_postgres::Error> {
        let on_hand: i64 = row.try_get("on_hand")?;
        let reserved: i64 = row.try_get("reserved")?;
        Ok(Product {
            id: row.try_get("id")?,
            sku: row.try_get("sku")?,
            name: row.try_get("name")?,
            price_cents: row.try_get("price_cents")?,
            currency: row.try_get("currency")?,
            on_hand,
            reserved,
            available: on_hand.saturating_sub(reserved),
            discontinued: row.try_get("discontinued")?,
            version: row.try_get("version")?,
        })
    }
}

impl Product {
    fn cursor_key(&self) -> ProductCursor {
        ProductCursor(self.sku.clone(), self.id)
    }

    /// The cursor that resumes a walk after this product (a GraphQL edge's cursor).
    pub fn cursor(&self) -> String {
        pagination::encode(&self.cursor_key())
    }
}

impl Versioned for Product {
    fn version(&self) -> i64 {
        self.version
    }
}

/// Where the next page of products starts: after this `(sku, id)`.
#[derive(Debug, Serialize, Deserialize)]
struct ProductCursor(String, Uuid);

impl CursorKey for ProductCursor {
    const KIND: &'static str = "products";
}

/// `GET /v1/products` query string.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The page size.
    #[param(minimum = 1, maximum = 500, default = 50)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page (absent: the first page).
    #[param(max_length = 1024)]
    pub cursor: Option<String>,
}

/// `GET /v1/products`.
#[utoipa::path(
    get,
    path = "/v1/products",
    operation_id = "listProducts",
    tag = "products",
    summary = "List products",
    description = "Any role (`admin`, `customer`, `viewer`, `auditor`). The catalog with \
                   stock, ordered by SKU, a page at a time: follow `next_cursor` until it is \
                   `null`. A walk sees every product present throughout it exactly once.",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of products.", body = Page<Product>,
         headers(("Cache-Control" = String, description = "`private, no-cache`."))),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 503, response = ReadModelUnavailable),
    )
)]
pub async fn list(
    caller: Caller,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(ANY_ROLE)?;
    let limit = pagination::limit(query.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let page = list_page(&state.read, limit, query.cursor.as_deref()).await?;
    Ok(list_response(&page))
}

/// A page of at most `limit` (already checked) products after `cursor`: what
/// `GET /v1/products` and GraphQL's `products` answer.
pub async fn list_page(
    read: &ReadModel,
    limit: i64,
    cursor: Option<&str>,
) -> Result<Page<Product>, Problem> {
    let after = cursor
        .map(pagination::decode::<ProductCursor>)
        .transpose()?;
    let fetch = limit + 1;
    let rows = match &after {
        None => {
            let sql =
                format!("SELECT {COLUMNS} FROM read_model.products ORDER BY sku, id LIMIT $1");
            db::query(read, &sql, &[&fetch], Product::from_row).await?
        }
        Some(ProductCursor(sku, id)) => {
            let sql = format!(
                "SELECT {COLUMNS} FROM read_model.products \
                 WHERE (sku, id) > ($1, $2) ORDER BY sku, id LIMIT $3"
            );
            db::query(read, &sql, &[sku, id, &fetch], Product::from_row).await?
        }
    };
    Ok(Page::from_rows(rows, limit, Product::cursor_key))
}

/// One product, `None` if there is no such product.
pub async fn find(read: &ReadModel, id: Uuid) -> Result<Option<Product>, Problem> {
    let sql = format!("SELECT {COLUMNS} FROM read_model.products WHERE id = $1");
    db::query_opt(read, &sql, &[&id], Product::from_row).await
}

/// `GET /v1/products/{id}`.
#[utoipa::path(
    get,
    path = "/v1/products/{id}",
    operation_id = "getProduct",
    tag = "products",
    summary = "Get a product",
    description = "Any role (`admin`, `customer`, `viewer`, `auditor`). One product with its \
                   stock, at the version the read model has reached; `?min_version=N` waits \
                   for version N (read-your-writes), `If-None-Match` revalidates a cached copy.",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The product."), EntityQuery, EntityHeaders),
    responses(
        (status = 200, description = "The product.", body = Product,
         headers(
             ("ETag" = String, description = "The product's version, quoted: `\"4\"`."),
             ("Cache-Control" = String, description = "`private, max-age=0, must-revalidate`.")
         )),
        (status = 304, response = NotModified),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = EntityUnavailable),
    )
)]
pub async fn get(
    caller: Caller,
    id: web::Path<Uuid>,
    query: web::Query<EntityQuery>,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(ANY_ROLE)?;
    let min_version = query.min_version()?;
    let id = id.into_inner();
    let product = state
        .consistency
        .fetch("product", &caller.id, min_version, || find(&state.read, id))
        .await?;
    Ok(entity_response(&request, product.version, &product))
}
