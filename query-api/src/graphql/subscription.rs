//! The GraphQL subscription root: `sales` and `topProducts`, now and on every change,
//! from the process's live fan-out ([`crate::live`]); `admin` and `viewer` only.

use std::sync::Arc;

use async_graphql::{Context, Result, Subscription as SubscriptionRoot};
use futures::{Stream, StreamExt};

use super::{caller, OrGraphqlError};
use crate::live::{Live, Snapshot};
use crate::routes::dashboard::{Sales, TopProducts};
use crate::routes::DASHBOARD_ROLES;

/// The root of every subscription.
pub struct Subscription;

/// The live snapshots, for a dashboard caller, while there is room.
fn snapshots(ctx: &Context<'_>) -> Result<impl Stream<Item = Snapshot>> {
    let caller = caller(ctx)?;
    caller.require_any(DASHBOARD_ROLES).or_graphql_error()?;
    let subscription = ctx.data::<Live>()?.subscribe(caller).or_graphql_error()?;
    Ok(subscription.into_stream().map(|update| update.snapshot))
}

#[SubscriptionRoot]
impl Subscription {
    /// Sales of the last 24 hours by hour (`GET /v1/dashboard/sales` with no parameters):
    /// now, then whenever the read model changes.
    async fn sales(&self, ctx: &Context<'_>) -> Result<impl Stream<Item = Arc<Sales>>> {
        Ok(snapshots(ctx)?.filter_map(|snapshot| async move {
            match snapshot {
                Snapshot::Sales(sales) => Some(sales),
                Snapshot::TopProducts(_) => None,
            }
        }))
    }

    /// The 10 best-selling products: now, then whenever the read model changes.
    async fn top_products(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = Arc<TopProducts>>> {
        Ok(snapshots(ctx)?.filter_map(|snapshot| async move {
            match snapshot {
                Snapshot::TopProducts(top) => Some(top),
                Snapshot::Sales(_) => None,
            }
        }))
    }
}
