//! `GET /v1/orders` and `GET /v1/orders/{id}`: `admin` and `viewer` see every order, a
//! `customer` only their own.
//!
//! The list is ordered newest first, by `(placed_at desc, id desc)`. A customer who
//! filters on someone else's `customer_id` gets an empty list; someone else's order is
//! 404 for them, exactly like an order that does not exist (also under `min_version`,
//! which then waits and answers 503), so ids leak nothing.

use actix_web::{web, HttpRequest, HttpResponse};
use async_graphql::{Enum, SimpleObject};
use chrono::{DateTime, Datelike, Utc};
use platform::openapi::{Forbidden, InvalidRequest, NotFound, Unauthenticated};
use platform::{Caller, Problem, Role};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::Row;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{entity_response, list_response, AppState};
use crate::consistency::{EntityQuery, Versioned};
use crate::db::{self, ReadModel};
use crate::openapi::{EntityHeaders, EntityUnavailable, NotModified, ReadModelUnavailable};
use crate::pagination::{self, CursorKey, Page, DEFAULT_LIMIT, MAX_LIMIT};
use crate::timestamp::Timestamp;

const SUMMARY_COLUMNS: &str =
    "id, customer_id, status, total_cents, currency, placed_at, updated_at, version";
const DETAIL_COLUMNS: &str = "id, customer_id, status, total_cents, currency, placed_at, \
     updated_at, version, lines, payment_ref, carrier, tracking_number, refunded_cents, \
     payments, refunds, shipping_address";

/// Which orders a caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `admin`, `viewer`: every order.
    All,
    /// `customer`: the orders whose `customer_id` is theirs.
    OwnedBy(String),
}

impl Scope {
    /// 403 for callers who may see no order at all.
    pub fn of(caller: &Caller) -> Result<Scope, Problem> {
        if caller.has(Role::Admin) || caller.has(Role::Viewer) {
            Ok(Scope::All)
        } else if caller.has(Role::Customer) {
            Ok(Scope::OwnedBy(caller.id.clone()))
        } else {
            Err(Problem::forbidden(
                "orders need one of the roles: admin, viewer, customer",
            ))
        }
    }
}

/// An order's status: `placed` → `paid` → `shipped`; `placed` or `paid` → `cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema, Enum)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Placed,
    Paid,
    Shipped,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Placed => "placed",
            Status::Paid => "paid",
            Status::Shipped => "shipped",
            Status::Cancelled => "cancelled",
        }
    }
}

/// An order in a list.
#[derive(Debug, Serialize, ToSchema, SimpleObject)]
#[schema(example = json!({
    "id": "0190f5b3-1a2b-7c3d-8e4f-5a6b7c8d9e0f", "customer_id": "alice", "status": "paid",
    "total_cents": 2598, "currency": "EUR", "placed_at": "2024-05-01T10:00:00.123456Z",
    "updated_at": "2024-05-01T10:05:00Z", "version": 2
}))]
pub struct OrderSummary {
    pub id: Uuid,
    /// The customer's token `sub`.
    pub customer_id: String,
    /// Always one of [`Status`] (stored as text by the projector).
    #[schema(value_type = Status)]
    pub status: String,
    /// The sum of the lines, in minor units of `currency`.
    pub total_cents: i64,
    /// ISO 4217 code.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// When the order was placed (RFC 3339 UTC).
    #[schema(value_type = String, format = DateTime)]
    pub placed_at: Timestamp,
    /// When it last changed (RFC 3339 UTC).
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// The order stream's version this reflects (also the `ETag` of the order).
    #[schema(minimum = 1)]
    pub version: i64,
}

impl OrderSummary {
    fn from_row(row: &Row) -> Result<OrderSummary, tokio_postgres::Error> {
        Ok(OrderSummary {
            id: row.try_get("id")?,
            customer_id: row.try_get("customer_id")?,
            status: row.try_get("status")?,
            total_cents: row.try_get("total_cents")?,
            currency: row.try_get("currency")?,
            placed_at: Timestamp(row.try_get("placed_at")?),
            updated_at: Timestamp(row.try_get("updated_at")?),
            version: row.try_get("version")?,
        })
    }
}

/// One line of an order.
#[derive(Debug, Serialize, Deserialize, ToSchema, SimpleObject)]
pub struct OrderLine {
    pub product_id: Uuid,
    #[schema(minimum = 1)]
    pub quantity: i64,
    /// The product's price when the order was placed.
    pub unit_price_cents: i64,
}

/// What became of a payment: asked of the provider (`requested`), captured and paying the
/// order (`succeeded`), refused (`failed`), captured but not taken by the order, for an admin
/// to refund (`needs_review`: a wrong amount, or the order was no longer `placed`), or
/// withdrawn when the order was cancelled (`canceled`). Documents the values the projector
/// stores (`domain::PaymentStatus`; a test keeps the two equal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Requested,
    Succeeded,
    Failed,
    NeedsReview,
    Canceled,
}

/// What became of a refund: sent to the provider (`requested`), paid back (`succeeded`),
/// or refused by the provider (`failed`). Documents `domain::RefundStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    Requested,
    Succeeded,
    Failed,
}

/// One payment of an order.
#[derive(Debug, Serialize, Deserialize, ToSchema, SimpleObject)]
#[schema(example = json!({"payment_id": "pi_3PqR8s2eZvKYlo2C1x9yTz4A", "status": "succeeded",
                          "amount_cents": 2598}))]
pub struct OrderPayment {
    /// The provider's id of the payment (a Stripe PaymentIntent `pi_...`), or an offline
    /// payment's reference.
    pub payment_id: String,
    /// `requested`, `succeeded`, `failed`, `needs_review` or `canceled` ([`PaymentStatus`]).
    #[schema(value_type = PaymentStatus)]
    pub status: String,
    /// What was asked for, or what the provider reports it captured (minor units of the
    /// order's currency).
    pub amount_cents: i64,
}

/// One refund of an order.
#[derive(Debug, Serialize, Deserialize, ToSchema, SimpleObject)]
#[schema(example = json!({"refund_id": "re_3PqR9t2eZvKYlo2C0a1bCd2E", "status": "succeeded",
                          "amount_cents": 2598}))]
pub struct OrderRefund {
    /// The provider's id of the refund (`re_...` at Stripe).
    pub refund_id: String,
    /// `requested`, `succeeded` or `failed` ([`RefundStatus`]).
    #[schema(value_type = RefundStatus)]
    pub status: String,
    /// Minor units of the order's currency.
    pub amount_cents: i64,
}

/// One order with its lines, payments and refunds, and shipment.
#[derive(Debug, Serialize, ToSchema, SimpleObject)]
#[schema(example = json!({
    "id": "0190f5b3-1a2b-7c3d-8e4f-5a6b7c8d9e0f", "customer_id": "alice", "status": "paid",
    "total_cents": 2598, "currency": "EUR", "placed_at": "2024-05-01T10:00:00.123456Z",
    "updated_at": "2024-05-01T10:05:00Z", "version": 4,
    "lines": [{"product_id": "0190f5b2-7c1e-7a3d-9c4f-2b8e6d1a0f37", "quantity": 2,
               "unit_price_cents": 1299}],
    "payment_ref": "pi_3PqR8s2eZvKYlo2C1x9yTz4A", "carrier": null, "tracking_number": null,
    "refunded_cents": 500,
    "payments": [{"payment_id": "pi_3PqR8s2eZvKYlo2C1x9yTz4A", "status": "succeeded",
                  "amount_cents": 2598}],
    "refunds": [{"refund_id": "re_3PqR9t2eZvKYlo2C0a1bCd2E", "status": "succeeded",
                 "amount_cents": 500}],
    "shipping_address": {"line1": "Hauptstraße 1", "line2": null, "postal_code": "10115",
                         "city": "Berlin", "country": "DE"}
}))]
pub struct OrderDetail {
    #[serde(flatten)]
    #[graphql(flatten)]
    pub summary: OrderSummary,
    pub lines: Vec<OrderLine>,
    /// The reference of the payment that paid the order, once paid.
    #[schema(required = true)]
    pub payment_ref: Option<String>,
    /// Once shipped.
    #[schema(required = true)]
    pub carrier: Option<String>,
    /// Once shipped.
    #[schema(required = true)]
    pub tracking_number: Option<String>,
    /// What was refunded: the refunds the provider confirmed (`Refunded`), or, for an
    /// order cancelled before refunds went through the provider, the refund its
    /// cancellation recorded. `null` while there was none and the order is not cancelled.
    #[schema(required = true)]
    pub refunded_cents: Option<i64>,
    /// Every payment asked of the provider or recorded offline, oldest first (empty when
    /// none).
    pub payments: Vec<OrderPayment>,
    /// Every refund, oldest first (empty when none).
    pub refunds: Vec<OrderRefund>,
    /// Where the order ships to: for an admin and the owning customer only (a viewer gets
    /// `null`), and `null` when the order names none or its customer was erased.
    #[schema(required = true, value_type = Option<super::customers::Address>)]
    #[graphql(skip)]
    pub shipping_address: Option<super::customers::Address>,
    /// The address as the read model holds it (sealed with the customer's data key).
    #[serde(skip)]
    #[graphql(skip)]
    #[schema(ignore)]
    pub sealed_shipping_address: Option<String>,
}

impl OrderDetail {
    fn from_row(row: &Row) -> Result<OrderDetail, tokio_postgres::Error> {
        let Json(lines) = row.try_get("lines")?;
        let Json(payments) = row.try_get("payments")?;
        let Json(refunds) = row.try_get("refunds")?;
        Ok(OrderDetail {
            summary: OrderSummary::from_row(row)?,
            lines,
            payment_ref: row.try_get("payment_ref")?,
            carrier: row.try_get("carrier")?,
            tracking_number: row.try_get("tracking_number")?,
            refunded_cents: row.try_get("refunded_cents")?,
            payments,
            refunds,
            shipping_address: None,
            sealed_shipping_address: row.try_get("shipping_address")?,
        })
    }
}

impl OrderSummary {
    fn cursor_key(&self) -> OrderCursor {
        OrderCursor(self.placed_at.0.timestamp_micros(), self.id)
    }

    /// The cursor that resumes a walk after this order (a GraphQL edge's cursor).
    pub fn cursor(&self) -> String {
        pagination::encode(&self.cursor_key())
    }
}

impl Versioned for OrderDetail {
    fn version(&self) -> i64 {
        self.summary.version
    }
}

/// Where the next page of orders starts: before this `(placed_at in microseconds since
/// the epoch, id)`. Read-model times have microsecond precision, so this is exact.
#[derive(Debug, Serialize, Deserialize)]
struct OrderCursor(i64, Uuid);

impl CursorKey for OrderCursor {
    const KIND: &'static str = "orders";
}

/// `GET /v1/orders` query string.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only orders in this status.
    pub status: Option<Status>,
    /// Only this customer's orders (a token `sub`). A `customer` naming someone else gets an
    /// empty list.
    pub customer_id: Option<String>,
    /// The page size.
    #[param(minimum = 1, maximum = 500, default = 50)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page (absent: the first page).
    #[param(max_length = 1024)]
    pub cursor: Option<String>,
}

/// Where a page starts: after the order placed at this time with this id.
fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), Problem> {
    let OrderCursor(micros, id) = pagination::decode(cursor)?;
    // Years 1 to 9999 only: PostgreSQL refuses some times chrono can hold.
    DateTime::<Utc>::from_timestamp_micros(micros)
        .filter(|time| (1..=9999).contains(&time.year()))
        .map(|placed_at| (placed_at, id))
        .ok_or_else(|| Problem::invalid_request("cursor is malformed; pass a next_cursor as is"))
}

/// What one page of the order list selects.
struct ListFilter {
    status: Option<&'static str>,
    customer: Option<String>,
    after: Option<(DateTime<Utc>, Uuid)>,
    /// The page size plus one.
    fetch: i64,
}

impl ListFilter {
    /// The statement and its parameters: one statement per combination of filters, so
    /// each can use its index.
    fn statement(&self) -> (String, Vec<&(dyn ToSql + Sync)>) {
        let mut conditions = Vec::new();
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        if let Some(status) = &self.status {
            params.push(status);
            conditions.push(format!("status = ${}", params.len()));
        }
        if let Some(customer) = &self.customer {
            params.push(customer);
            conditions.push(format!("customer_id = ${}", params.len()));
        }
        if let Some((placed_at, id)) = &self.after {
            params.push(placed_at);
            params.push(id);
            let n = params.len();
            conditions.push(format!("(placed_at, id) < (${}, ${n})", n - 1));
        }
        params.push(&self.fetch);
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM read_model.orders {filter} \
             ORDER BY placed_at DESC, id DESC LIMIT ${}",
            params.len()
        );
        (sql, params)
    }
}

/// `GET /v1/orders`.
#[utoipa::path(
    get,
    path = "/v1/orders",
    operation_id = "listOrders",
    tag = "orders",
    summary = "List orders",
    description = "Roles `admin` and `viewer` (every order), `customer` (only their own). \
                   Order summaries, newest first (by `placed_at`, then id), a page at a time: \
                   follow `next_cursor` until it is `null`.",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of order summaries.", body = Page<OrderSummary>,
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
    let scope = Scope::of(&caller)?;
    let query = query.into_inner();
    let limit = pagination::limit(query.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let filter = OrderFilter {
        status: query.status,
        customer_id: query.customer_id,
    };
    let page = list_page(&state.read, &scope, &filter, limit, query.cursor.as_deref()).await?;
    Ok(list_response(&page))
}

/// What an order list may be narrowed to.
#[derive(Debug, Default)]
pub struct OrderFilter {
    pub status: Option<Status>,
    pub customer_id: Option<String>,
}

/// A page of at most `limit` (already checked) orders after `cursor` that `scope` may
/// see: what `GET /v1/orders` and GraphQL's `orders` answer.
pub async fn list_page(
    read: &ReadModel,
    scope: &Scope,
    filter: &OrderFilter,
    limit: i64,
    cursor: Option<&str>,
) -> Result<Page<OrderSummary>, Problem> {
    let after = cursor.map(decode_cursor).transpose()?;
    let customer = match (scope, &filter.customer_id) {
        (Scope::All, wanted) => wanted.clone(),
        (Scope::OwnedBy(me), Some(wanted)) if wanted != me => return Ok(Page::empty()),
        (Scope::OwnedBy(me), _) => Some(me.clone()),
    };
    let filter = ListFilter {
        status: filter.status.map(Status::as_str),
        customer,
        after,
        fetch: limit + 1,
    };
    let (sql, params) = filter.statement();
    let rows = db::query(read, &sql, &params, OrderSummary::from_row).await?;
    Ok(Page::from_rows(rows, limit, OrderSummary::cursor_key))
}

/// One order, `None` if there is no such order or `scope` may not see it.
pub async fn find(
    read: &ReadModel,
    scope: &Scope,
    id: Uuid,
) -> Result<Option<OrderDetail>, Problem> {
    match scope {
        Scope::All => {
            let sql = format!("SELECT {DETAIL_COLUMNS} FROM read_model.orders WHERE id = $1");
            db::query_opt(read, &sql, &[&id], OrderDetail::from_row).await
        }
        Scope::OwnedBy(customer) => {
            let sql = format!(
                "SELECT {DETAIL_COLUMNS} FROM read_model.orders WHERE id = $1 AND customer_id = $2"
            );
            db::query_opt(read, &sql, &[&id, customer], OrderDetail::from_row).await
        }
    }
}

/// `GET /v1/orders/{id}`.
#[utoipa::path(
    get,
    path = "/v1/orders/{id}",
    operation_id = "getOrder",
    tag = "orders",
    summary = "Get an order",
    description = "Roles `admin`, `viewer`, and the owner `customer` (someone else's order is \
                   404 for a customer, exactly like a missing one). The summary plus lines, \
                   payment, shipment and refund (`null` where not set), and the order's \
                   payments and refunds with their status (oldest first, empty when none). \
                   `?min_version=N` waits for version N (read-your-writes), `If-None-Match` \
                   revalidates a cached copy.",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The order."), EntityQuery, EntityHeaders),
    responses(
        (status = 200, description = "The order.", body = OrderDetail,
         headers(
             ("ETag" = String, description = "The order's version, quoted: `\"2\"`."),
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
    let scope = Scope::of(&caller)?;
    let min_version = query.min_version()?;
    let id = id.into_inner();
    let mut order = state
        .consistency
        .fetch("order", &caller.id, min_version, || {
            find(&state.read, &scope, id)
        })
        .await?;
    // Personal data: the owner and admins only, never a viewer.
    if caller.has(Role::Admin) || caller.has(Role::Customer) {
        order.shipping_address = super::customers::shipping_address(
            &state,
            &order.summary.customer_id,
            order.sealed_shipping_address.as_deref(),
        )
        .await?;
    }
    Ok(entity_response(&request, order.summary.version, &order))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON name a documented status serializes to.
    fn name(status: impl Serialize) -> String {
        serde_json::to_value(status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// The documented status of each of the domain's (a new one fails to compile here).
    fn documented_payment(status: domain::PaymentStatus) -> PaymentStatus {
        use domain::PaymentStatus as P;
        match status {
            P::Requested => PaymentStatus::Requested,
            P::Succeeded => PaymentStatus::Succeeded,
            P::Failed => PaymentStatus::Failed,
            P::NeedsReview => PaymentStatus::NeedsReview,
            P::Canceled => PaymentStatus::Canceled,
        }
    }

    fn documented_refund(status: domain::RefundStatus) -> RefundStatus {
        use domain::RefundStatus as R;
        match status {
            R::Requested => RefundStatus::Requested,
            R::Succeeded => RefundStatus::Succeeded,
            R::Failed => RefundStatus::Failed,
        }
    }

    #[test]
    fn documented_statuses_are_the_domains() {
        use domain::{PaymentStatus as P, RefundStatus as R};
        for status in [
            P::Requested,
            P::Succeeded,
            P::Failed,
            P::NeedsReview,
            P::Canceled,
        ] {
            assert_eq!(name(documented_payment(status)), status.as_str());
            assert_eq!(name(status), status.as_str());
        }
        for status in [R::Requested, R::Succeeded, R::Failed] {
            assert_eq!(name(documented_refund(status)), status.as_str());
            assert_eq!(name(status), status.as_str());
        }
    }
}
