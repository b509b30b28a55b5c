//! The GraphQL query root: products, product, orders, order, sales, topProducts, each
//! through the REST routes' read functions and role rules.

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Object, OutputType, Result};
use chrono::Utc;
use uuid::Uuid;

use super::{caller, OrGraphqlError};
use crate::db::ReadModel;
use crate::pagination::{self, Page, DEFAULT_LIMIT, MAX_LIMIT};
use crate::routes::dashboard::{
    self, Bucket, Sales, SalesRange, TopProducts, TOP_DEFAULT_LIMIT, TOP_MAX_LIMIT,
};
use crate::routes::orders::{self, OrderDetail, OrderFilter, OrderSummary, Scope, Status};
use crate::routes::products::{self, Product};
use crate::routes::{AppState, ANY_ROLE, DASHBOARD_ROLES};
use crate::timestamp::Timestamp;

/// The root of every query.
pub struct Query;

/// What a page of a list costs: `first` (default 50, at most 500) times an item.
fn page_cost(first: Option<i32>, child_complexity: usize) -> usize {
    let first = first.map_or(DEFAULT_LIMIT, i64::from).clamp(1, MAX_LIMIT);
    usize::try_from(first)
        .unwrap_or(1)
        .saturating_mul(child_complexity)
}

/// What sales cost: the buckets the range spans (as the resolver will resolve it) times a
/// bucket.
fn sales_cost(
    from: &Option<Timestamp>,
    to: &Option<Timestamp>,
    bucket: Option<Bucket>,
    child_complexity: usize,
) -> usize {
    let buckets = SalesRange::resolve(
        bucket.unwrap_or_default(),
        from.map(|t| t.0),
        to.map(|t| t.0),
        Utc::now(),
    )
    .map_or(1, |range| range.count.max(1));
    usize::try_from(buckets)
        .unwrap_or(usize::MAX)
        .saturating_mul(child_complexity)
}

/// What top products cost: `limit` (default 10, at most 100) times an item.
fn top_cost(limit: Option<i32>, child_complexity: usize) -> usize {
    let limit = limit
        .map_or(TOP_DEFAULT_LIMIT, i64::from)
        .clamp(1, TOP_MAX_LIMIT);
    usize::try_from(limit)
        .unwrap_or(1)
        .saturating_mul(child_complexity)
}

/// The read model of the request's HTTP worker, counted against the request's
/// [`super::ReadBudget`] (subscriptions have none).
fn read<'a>(ctx: &Context<'a>) -> Result<&'a ReadModel> {
    if let Some(budget) = ctx.data_opt::<super::ReadBudget>() {
        budget.spend()?;
    }
    Ok(&ctx.data::<Arc<AppState>>()?.read)
}

/// `first` checked like REST's `limit`.
fn page_size(first: Option<i32>) -> Result<i64> {
    pagination::limit(first.map(i64::from), DEFAULT_LIMIT, MAX_LIMIT).or_graphql_error()
}

/// A REST page as a cursor connection: each edge's cursor resumes after its node.
fn connection<T: OutputType>(
    page: Page<T>,
    after: Option<&str>,
    cursor: fn(&T) -> String,
) -> Connection<String, T> {
    let mut connection = Connection::new(after.is_some(), page.next_cursor.is_some());
    connection.edges.extend(
        page.items
            .into_iter()
            .map(|item| Edge::new(cursor(&item), item)),
    );
    connection
}

#[Object]
impl Query {
    /// The catalog with stock, by SKU (any role). `first`: 1 to 500 (default 50); `after`:
    /// an edge's cursor or `pageInfo.endCursor`.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn products(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Product>> {
        caller(ctx)?.require_any(ANY_ROLE).or_graphql_error()?;
        let limit = page_size(first)?;
        let page = products::list_page(read(ctx)?, limit, after.as_deref())
            .await
            .or_graphql_error()?;
        Ok(connection(page, after.as_deref(), Product::cursor))
    }

    /// One product, `null` if there is none (any role).
    async fn product(&self, ctx: &Context<'_>, id: Uuid) -> Result<Option<Product>> {
        caller(ctx)?.require_any(ANY_ROLE).or_graphql_error()?;
        products::find(read(ctx)?, id).await.or_graphql_error()
    }

    /// Order summaries, newest first (`admin`, `viewer`; a `customer` gets only their
    /// own, and nothing when naming someone else's `customerId`).
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn orders(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        status: Option<Status>,
        customer_id: Option<String>,
    ) -> Result<Connection<String, OrderSummary>> {
        let scope = Scope::of(caller(ctx)?).or_graphql_error()?;
        let limit = page_size(first)?;
        let filter = OrderFilter {
            status,
            customer_id,
        };
        let page = orders::list_page(read(ctx)?, &scope, &filter, limit, after.as_deref())
            .await
            .or_graphql_error()?;
        Ok(connection(page, after.as_deref(), OrderSummary::cursor))
    }

    /// One order with its lines, `null` if there is none or it is someone else's (for a
    /// `customer`).
    async fn order(&self, ctx: &Context<'_>, id: Uuid) -> Result<Option<OrderDetail>> {
        let scope = Scope::of(caller(ctx)?).or_graphql_error()?;
        orders::find(read(ctx)?, &scope, id)
            .await
            .or_graphql_error()
    }

    /// Sales per bucket over `[from, to)` (`admin`, `viewer`): the same defaults and
    /// limits as `GET /v1/dashboard/sales`. Costs its buckets times a bucket's fields.
    #[graphql(complexity = "sales_cost(&from, &to, bucket, child_complexity)")]
    async fn sales(
        &self,
        ctx: &Context<'_>,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        bucket: Option<Bucket>,
    ) -> Result<Sales> {
        caller(ctx)?
            .require_any(DASHBOARD_ROLES)
            .or_graphql_error()?;
        let range = SalesRange::resolve(
            bucket.unwrap_or_default(),
            from.map(|t| t.0),
            to.map(|t| t.0),
            Utc::now(),
        )
        .or_graphql_error()?;
        dashboard::sales_in(read(ctx)?, &range)
            .await
            .or_graphql_error()
    }

    /// The best-selling products, `limit` 1 to 100 (default 10) (`admin`, `viewer`).
    #[graphql(complexity = "top_cost(limit, child_complexity)")]
    async fn top_products(&self, ctx: &Context<'_>, limit: Option<i32>) -> Result<TopProducts> {
        caller(ctx)?
            .require_any(DASHBOARD_ROLES)
            .or_graphql_error()?;
        let limit = pagination::limit(limit.map(i64::from), TOP_DEFAULT_LIMIT, TOP_MAX_LIMIT)
            .or_graphql_error()?;
        dashboard::top_products_of(read(ctx)?, limit)
            .await
            .or_graphql_error()
    }
}
