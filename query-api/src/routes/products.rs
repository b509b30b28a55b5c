//! `GET /v1/products` and `GET /v1/products/{id}` (any role): the catalog with stock.
//!
//! The list is ordered by `(sku, id)`: SKUs are unique, the id only makes the order total.

use actix_web::{web, HttpRequest, HttpResponse};
use platform::{Caller, Problem};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{entity_response, list_response, AppState, ANY_ROLE};
use crate::consistency::{fetch_consistent, EntityQuery, Versioned};
use crate::db;
use crate::pagination::{self, CursorKey, Page, DEFAULT_LIMIT, MAX_LIMIT};

const COLUMNS: &str =
    "id, sku, name, price_cents, currency, on_hand, reserved, discontinued, version";

/// A product as the query API shows it.
#[derive(Debug, Serialize)]
pub struct Product {
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    pub on_hand: i64,
    pub reserved: i64,
    /// `on_hand - reserved`.
    pub available: i64,
    pub discontinued: bool,
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// `GET /v1/products`.
pub async fn list(
    caller: Caller,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(ANY_ROLE)?;
    let limit = pagination::limit(query.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let after = query
        .cursor
        .as_deref()
        .map(pagination::decode::<ProductCursor>)
        .transpose()?;
    let fetch = limit + 1;
    let rows = match &after {
        None => {
            let sql =
                format!("SELECT {COLUMNS} FROM read_model.products ORDER BY sku, id LIMIT $1");
            db::query(&state.read, &sql, &[&fetch], Product::from_row).await?
        }
        Some(ProductCursor(sku, id)) => {
            let sql = format!(
                "SELECT {COLUMNS} FROM read_model.products \
                 WHERE (sku, id) > ($1, $2) ORDER BY sku, id LIMIT $3"
            );
            db::query(&state.read, &sql, &[sku, id, &fetch], Product::from_row).await?
        }
    };
    let page = Page::from_rows(rows, limit, |p: &Product| {
        ProductCursor(p.sku.clone(), p.id)
    });
    Ok(list_response(&page))
}

/// `GET /v1/products/{id}`.
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
    let sql = format!("SELECT {COLUMNS} FROM read_model.products WHERE id = $1");
    let params: [&(dyn ToSql + Sync); 1] = [&id];
    let product = fetch_consistent("product", min_version, state.consistency_wait, || {
        db::query_opt(&state.read, &sql, &params, Product::from_row)
    })
    .await?;
    Ok(entity_response(&request, product.version, &product))
}
