//! `GET /v1/dashboard/sales` and `GET /v1/dashboard/top-products` (`admin`, `viewer`).
//!
//! Sales: `bucket` is `hour` (the default) or `day`, both aligned to UTC. `from` and `to`
//! are RFC 3339 times (a `+` in an offset should be sent as `%2B`; a `+` decoded to a space
//! is accepted too); `to` defaults to now and `from` to 24 hours (hour) or 30 days (day)
//! before `to`. The answer holds every bucket that overlaps `[from, to)`, in ascending
//! `start` order, zero-filled where nothing happened: so the first bucket may start before
//! `from`, and `from == to` gives no buckets. `from` after `to`, or a range of more than
//! 5,000 buckets, is 400.
//!
//! Top products: `limit` 1–100 (default 10) products with paid sales, by revenue, then
//! units sold, then product id.

use actix_web::{web, HttpResponse};
use async_graphql::{Enum, SimpleObject};
use chrono::{DateTime, TimeDelta, Utc};
use platform::openapi::{Forbidden, InvalidRequest, Unauthenticated};
use platform::{Caller, Problem};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{list_response, AppState, DASHBOARD_ROLES};
use crate::db::{self, ReadModel};
use crate::openapi::ReadModelUnavailable;
use crate::pagination;
use crate::timestamp::Timestamp;

/// The most buckets one sales request may span.
pub const MAX_BUCKETS: i64 = 5_000;
/// Top products: the default and largest `limit`.
pub const TOP_DEFAULT_LIMIT: i64 = 10;
pub const TOP_MAX_LIMIT: i64 = 100;

/// The width of a sales bucket, aligned to UTC: `hour` or `day`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema, Enum)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    #[default]
    Hour,
    Day,
}

impl Bucket {
    fn as_str(self) -> &'static str {
        match self {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
        }
    }

    fn seconds(self) -> i64 {
        match self {
            Bucket::Hour => 3_600,
            Bucket::Day => 86_400,
        }
    }

    /// How far back `from` defaults to.
    fn default_span(self) -> TimeDelta {
        match self {
            Bucket::Hour => TimeDelta::hours(24),
            Bucket::Day => TimeDelta::days(30),
        }
    }
}

/// `GET /v1/dashboard/sales` query string.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SalesQuery {
    /// The start of the range, RFC 3339 (send a `+` of an offset as `%2B`). Default: 24
    /// hours (`hour`) or 30 days (`day`) before `to`. After `to`: 400.
    #[param(format = DateTime, example = "2024-05-01T00:00:00Z")]
    pub from: Option<String>,
    /// The end of the range (exclusive), RFC 3339. Default: now.
    #[param(format = DateTime, example = "2024-05-02T00:00:00Z")]
    pub to: Option<String>,
    /// The bucket width (default `hour`). At most 5,000 buckets per request (else 400).
    pub bucket: Option<Bucket>,
}

/// The buckets a sales request covers: `count` buckets from `first`, all starting
/// before `end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalesRange {
    pub bucket: Bucket,
    pub first: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub count: i64,
}

impl SalesRange {
    /// The range for the requested `from` and `to`, with the defaults at `now`.
    pub fn resolve(
        bucket: Bucket,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<SalesRange, Problem> {
        let out_of_range = || Problem::invalid_request("from or to is out of range");
        let end = to.unwrap_or(now);
        let from = match from {
            Some(from) => from,
            None => end
                .checked_sub_signed(bucket.default_span())
                .ok_or_else(out_of_range)?,
        };
        if from > end {
            return Err(Problem::invalid_request(format!(
                "from ({}) must not be after to ({})",
                from.to_rfc3339(),
                end.to_rfc3339()
            )));
        }
        let size = bucket.seconds();
        let first_second = from.timestamp() - from.timestamp().rem_euclid(size);
        let first = DateTime::from_timestamp(first_second, 0).ok_or_else(out_of_range)?;
        let count = if from == end {
            0
        } else {
            let span = end - first;
            let whole = span.num_seconds() / size;
            let partial = span.num_seconds() % size != 0 || span.subsec_nanos() != 0;
            whole + i64::from(partial)
        };
        if count > MAX_BUCKETS {
            return Err(Problem::invalid_request(format!(
                "the range spans {count} {} buckets; at most {MAX_BUCKETS} are allowed",
                bucket.as_str()
            )));
        }
        Ok(SalesRange {
            bucket,
            first,
            end,
            count,
        })
    }

    /// The start of the bucket at `index`.
    fn start(&self, index: i64) -> DateTime<Utc> {
        self.first + TimeDelta::seconds(index * self.bucket.seconds())
    }

    /// The index of the bucket holding `time`, if it is in range.
    fn index_of(&self, time: DateTime<Utc>) -> Option<usize> {
        let offset = (time - self.first).num_seconds();
        let index = offset.checked_div(self.bucket.seconds())?;
        (offset >= 0 && index < self.count)
            .then(|| usize::try_from(index).ok())
            .flatten()
    }
}

/// Parses an RFC 3339 query parameter.
fn parse_time(name: &str, value: &str) -> Result<DateTime<Utc>, Problem> {
    let parse = |text: &str| DateTime::parse_from_rfc3339(text).ok();
    // A `+` not percent-encoded arrives as a space: "…T10:00:00 01:00".
    let repaired = || {
        value
            .rsplit_once(' ')
            .and_then(|(time, offset)| parse(&format!("{time}+{offset}")))
    };
    parse(value)
        .or_else(repaired)
        .map(|time| time.with_timezone(&Utc))
        .ok_or_else(|| {
            Problem::invalid_request(format!(
                "{name} must be an RFC 3339 time such as 2024-05-01T12:00:00Z, got {value:?}"
            ))
        })
}

/// One sales bucket.
#[derive(Debug, Serialize, ToSchema, SimpleObject)]
#[schema(example = json!({
    "start": "2024-05-01T10:00:00Z", "orders_placed": 3, "orders_paid": 2,
    "revenue_cents": 5196, "units_sold": 4
}))]
pub struct SalesBucket {
    /// The bucket's start (RFC 3339 UTC); it ends where the next one starts.
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    /// Orders placed in the bucket (counted at placing time).
    pub orders_placed: i64,
    /// Orders paid in the bucket (counted at paying time).
    pub orders_paid: i64,
    /// Money the provider confirmed minus refunds it confirmed, in minor units: a payment
    /// at paying time, a refund when it was confirmed (one an old-style cancellation
    /// recorded, at its payment's time). Captured money the order could not take
    /// (`needs_review`) is not revenue, nor is its refund.
    pub revenue_cents: i64,
    /// Units of the orders paid in the bucket (taken off again if the order is cancelled).
    pub units_sold: i64,
}

impl SalesBucket {
    fn empty(start: DateTime<Utc>) -> SalesBucket {
        SalesBucket {
            start: Timestamp(start),
            orders_placed: 0,
            orders_paid: 0,
            revenue_cents: 0,
            units_sold: 0,
        }
    }

    fn from_row(row: &Row) -> Result<SalesBucket, tokio_postgres::Error> {
        Ok(SalesBucket {
            start: Timestamp(row.try_get("start")?),
            orders_placed: row.try_get("orders_placed")?,
            orders_paid: row.try_get("orders_paid")?,
            revenue_cents: row.try_get("revenue_cents")?,
            units_sold: row.try_get("units_sold")?,
        })
    }

    fn add(&mut self, other: &SalesBucket) {
        self.orders_placed = self.orders_placed.saturating_add(other.orders_placed);
        self.orders_paid = self.orders_paid.saturating_add(other.orders_paid);
        self.revenue_cents = self.revenue_cents.saturating_add(other.revenue_cents);
        self.units_sold = self.units_sold.saturating_add(other.units_sold);
    }
}

/// The sales answer.
#[derive(Debug, Serialize, ToSchema, SimpleObject)]
pub struct Sales {
    /// Every bucket overlapping `[from, to)`, ascending, zero-filled: the first may start
    /// before `from`; `from == to` gives none.
    pub buckets: Vec<SalesBucket>,
}

/// `GET /v1/dashboard/sales`.
#[utoipa::path(
    get,
    path = "/v1/dashboard/sales",
    operation_id = "salesDashboard",
    tag = "dashboard",
    summary = "Sales over time",
    description = "Roles `admin`, `viewer`. Orders placed (at placing time), and orders paid, \
                   revenue (money the provider confirmed minus refunds it confirmed, each at \
                   its time) and units sold (at paying time), per hour or day bucket.",
    security(("bearer" = [])),
    params(SalesQuery),
    responses(
        (status = 200, description = "The buckets.", body = Sales,
         headers(("Cache-Control" = String, description = "`private, no-cache`."))),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 503, response = ReadModelUnavailable),
    )
)]
pub async fn sales(
    caller: Caller,
    query: web::Query<SalesQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(DASHBOARD_ROLES)?;
    let from = query
        .from
        .as_deref()
        .map(|v| parse_time("from", v))
        .transpose()?;
    let to = query
        .to
        .as_deref()
        .map(|v| parse_time("to", v))
        .transpose()?;
    let range = SalesRange::resolve(query.bucket.unwrap_or_default(), from, to, Utc::now())?;
    Ok(list_response(&sales_in(&state.read, &range).await?))
}

/// The sales buckets of `range`: what `GET /v1/dashboard/sales`, GraphQL's `sales` and
/// the live stream answer.
pub async fn sales_in(read: &ReadModel, range: &SalesRange) -> Result<Sales, Problem> {
    let mut buckets: Vec<SalesBucket> = (0..range.count)
        .map(|index| SalesBucket::empty(range.start(index)))
        .collect();
    if range.count > 0 {
        let rows = db::query(
            read,
            "SELECT start, orders_placed, orders_paid, revenue_cents, units_sold \
             FROM read_model.sales WHERE bucket = $1 AND start >= $2 AND start < $3 \
             ORDER BY start",
            &[&range.bucket.as_str(), &range.first, &range.end],
            SalesBucket::from_row,
        )
        .await?;
        for row in &rows {
            // Rows are aligned by the projector; should one not be, it still counts in
            // the bucket that holds it.
            if let Some(bucket) = range.index_of(row.start.0).and_then(|i| buckets.get_mut(i)) {
                bucket.add(row);
            }
        }
    }
    Ok(Sales { buckets })
}

/// `GET /v1/dashboard/top-products` query string.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TopProductsQuery {
    /// How many products.
    #[param(minimum = 1, maximum = 100, default = 10)]
    pub limit: Option<i64>,
}

/// One of the best-selling products.
#[derive(Debug, Serialize, ToSchema, SimpleObject)]
#[schema(example = json!({
    "product_id": "0190f5b2-7c1e-7a3d-9c4f-2b8e6d1a0f37", "sku": "A-1", "name": "Mug",
    "units_sold": 12, "revenue_cents": 15588
}))]
pub struct TopProduct {
    pub product_id: Uuid,
    pub sku: String,
    pub name: String,
    /// Units of paid orders that were not cancelled.
    pub units_sold: i64,
    /// Their lines' revenue, in minor units. A refund without a cancellation (partial, or
    /// of captured money the order could not take) cannot be attributed to products and
    /// changes nothing here.
    pub revenue_cents: i64,
}

impl TopProduct {
    fn from_row(row: &Row) -> Result<TopProduct, tokio_postgres::Error> {
        Ok(TopProduct {
            product_id: row.try_get("product_id")?,
            sku: row.try_get("sku")?,
            name: row.try_get("name")?,
            units_sold: row.try_get("units_sold")?,
            revenue_cents: row.try_get("revenue_cents")?,
        })
    }
}

/// The top-products answer.
#[derive(Debug, Serialize, ToSchema, SimpleObject)]
pub struct TopProducts {
    /// By revenue, then units sold, then product id; paid orders only.
    pub items: Vec<TopProduct>,
}

/// `GET /v1/dashboard/top-products`.
#[utoipa::path(
    get,
    path = "/v1/dashboard/top-products",
    operation_id = "topProducts",
    tag = "dashboard",
    summary = "Best-selling products",
    description = "Roles `admin`, `viewer`. The products with paid sales, by revenue (then \
                   units sold, then product id).",
    security(("bearer" = [])),
    params(TopProductsQuery),
    responses(
        (status = 200, description = "The products.", body = TopProducts,
         headers(("Cache-Control" = String, description = "`private, no-cache`."))),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 503, response = ReadModelUnavailable),
    )
)]
pub async fn top_products(
    caller: Caller,
    query: web::Query<TopProductsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    caller.require_any(DASHBOARD_ROLES)?;
    let limit = pagination::limit(query.limit, TOP_DEFAULT_LIMIT, TOP_MAX_LIMIT)?;
    Ok(list_response(&top_products_of(&state.read, limit).await?))
}

/// The `limit` (already checked) best-selling products: what
/// `GET /v1/dashboard/top-products`, GraphQL's `topProducts` and the live stream answer.
pub async fn top_products_of(read: &ReadModel, limit: i64) -> Result<TopProducts, Problem> {
    let items = db::query(
        read,
        "SELECT product_id, sku, name, units_sold, revenue_cents FROM read_model.top_products \
         WHERE units_sold > 0 OR revenue_cents > 0 \
         ORDER BY revenue_cents DESC, units_sold DESC, product_id LIMIT $1",
        &[&limit],
        TopProduct::from_row,
    )
    .await?;
    Ok(TopProducts { items })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        parse_time("t", text).unwrap()
    }

    #[test]
    fn ranges_cover_every_overlapping_bucket() {
        let range = SalesRange::resolve(
            Bucket::Hour,
            Some(at("2024-05-01T10:30:00Z")),
            Some(at("2024-05-01T13:00:00Z")),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(range.first, at("2024-05-01T10:00:00Z"));
        assert_eq!(range.count, 3);
        let partial = SalesRange::resolve(
            Bucket::Day,
            Some(at("2024-05-01T00:00:00Z")),
            Some(at("2024-05-03T00:00:00.001Z")),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(partial.count, 3);
        assert_eq!(partial.start(2), at("2024-05-03T00:00:00Z"));
        let empty = SalesRange::resolve(
            Bucket::Hour,
            Some(at("2024-05-01T10:30:00Z")),
            Some(at("2024-05-01T10:30:00Z")),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(empty.count, 0);
    }

    #[test]
    fn defaults_look_back_from_now() {
        let now = at("2024-05-01T10:30:00Z");
        let hours = SalesRange::resolve(Bucket::Hour, None, None, now).unwrap();
        assert_eq!(
            (hours.first, hours.end, hours.count),
            (at("2024-04-30T10:00:00Z"), now, 25)
        );
        let days = SalesRange::resolve(Bucket::Day, None, None, now).unwrap();
        assert_eq!((days.first, days.count), (at("2024-04-01T00:00:00Z"), 31));
    }

    #[test]
    fn backwards_or_huge_ranges_are_refused() {
        let early = Some(at("2000-01-01T00:00:00Z"));
        let late = Some(at("2024-01-01T00:00:00Z"));
        assert!(SalesRange::resolve(Bucket::Hour, late, early, Utc::now()).is_err());
        assert!(SalesRange::resolve(Bucket::Hour, early, late, Utc::now()).is_err());
        assert!(SalesRange::resolve(Bucket::Day, early, late, Utc::now()).is_err());
        let edge = Some(at("2000-01-01T00:00:00Z") + TimeDelta::hours(MAX_BUCKETS));
        assert!(SalesRange::resolve(Bucket::Hour, early, edge, Utc::now()).is_ok());
        let widest = Some(at("0000-01-01T00:00:00Z"));
        let last = Some(at("9999-12-31T23:59:59Z"));
        assert!(SalesRange::resolve(Bucket::Day, widest, last, Utc::now()).is_err());
    }

    #[test]
    fn times_parse_with_offsets_and_decoded_plus_signs() {
        assert_eq!(at("2024-05-01T12:00:00+02:00"), at("2024-05-01T10:00:00Z"));
        assert_eq!(at("2024-05-01T12:00:00 02:00"), at("2024-05-01T10:00:00Z"));
        for bad in [
            "",
            "yesterday",
            "2024-05-01",
            "2024-05-01T10:00:00",
            "2024-13-01T00:00:00Z",
        ] {
            assert!(parse_time("from", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rows_land_in_the_bucket_that_holds_them() {
        let range = SalesRange::resolve(
            Bucket::Hour,
            Some(at("2024-05-01T10:00:00Z")),
            Some(at("2024-05-01T13:00:00Z")),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(range.index_of(at("2024-05-01T10:00:00Z")), Some(0));
        assert_eq!(range.index_of(at("2024-05-01T12:59:59Z")), Some(2));
        assert_eq!(range.index_of(at("2024-05-01T13:00:00Z")), None);
        assert_eq!(range.index_of(at("2024-05-01T09:59:59Z")), None);
    }
}
