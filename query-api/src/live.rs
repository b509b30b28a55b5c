//! Live dashboards: one task per process re-reads `sales` (the default window: the last
//! 24 hours by hour) and `top_products` (the default 10) when [`Progress`] says the
//! projector changed them, and fans each new answer out to every subscriber (the SSE
//! stream and GraphQL subscriptions). Subscribers cost no query of their own.
//!
//! A subscriber first gets the latest answers, then every change. Each subscriber has a
//! bounded queue ([`QUEUE`] updates): one that falls that far behind is dropped (its
//! stream ends, `live_subscribers_dropped_total` counts it), never buffered without
//! bound. At most `max_subscribers` subscribe at once per process; more are refused.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use futures::{stream, Stream, StreamExt};
use platform::Problem;
use tokio::sync::{broadcast, watch, OwnedSemaphorePermit, Semaphore};

use crate::db::ReadModel;
use crate::progress::{Changes, Progress};
use crate::routes::dashboard::{
    sales_in, top_products_of, Bucket, Sales, SalesRange, TopProducts, TOP_DEFAULT_LIMIT,
};

/// How many updates a subscriber may fall behind before it is dropped.
pub const QUEUE: usize = 16;
/// The sales window moves with the clock: re-read it this often even without a change.
const CLOCK_REFRESH: Duration = Duration::from_secs(60);
/// `Retry-After` of a `too_many_subscribers` answer, in seconds.
const RETRY_AFTER_SECONDS: u64 = 5;
/// After a failed read, try again this soon.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// A new answer of one live read model.
#[derive(Debug, Clone)]
pub enum Snapshot {
    Sales(Arc<Sales>),
    TopProducts(Arc<TopProducts>),
}

/// A snapshot with its JSON (the REST answer's body), serialized once for everyone.
#[derive(Debug, Clone)]
pub struct Update {
    pub snapshot: Snapshot,
    pub json: Arc<str>,
}

impl Update {
    fn new(snapshot: Snapshot) -> Update {
        let json = match &snapshot {
            Snapshot::Sales(sales) => serde_json::to_string(&**sales),
            Snapshot::TopProducts(top) => serde_json::to_string(&**top),
        };
        // Plain structs of strings, numbers and times always serialize.
        Update {
            snapshot,
            json: json.unwrap_or_default().into(),
        }
    }

    /// The SSE event name: `sales` or `top_products`.
    pub fn event(&self) -> &'static str {
        match self.snapshot {
            Snapshot::Sales(_) => "sales",
            Snapshot::TopProducts(_) => "top_products",
        }
    }
}

/// The latest answers, `None` until first read.
#[derive(Default)]
struct Latest {
    sales: Option<Update>,
    top_products: Option<Update>,
}

/// The fan-out (cheap to clone; shared by every HTTP worker).
#[derive(Clone)]
pub struct Live {
    updates: broadcast::Sender<Update>,
    latest: Arc<Mutex<Latest>>,
    permits: Arc<Semaphore>,
}

/// One subscriber: the latest answers, then every change, while it keeps up.
pub struct Subscription {
    initial: Vec<Update>,
    receiver: broadcast::Receiver<Update>,
    permit: OwnedSemaphorePermit,
}

impl Live {
    /// A fan-out for at most `max_subscribers` at once, fed by nobody yet.
    pub fn new(max_subscribers: usize) -> Live {
        let (updates, _) = broadcast::channel(QUEUE);
        Live {
            updates,
            latest: Arc::default(),
            permits: Arc::new(Semaphore::new(max_subscribers)),
        }
    }

    /// A fan-out fed by a task that re-reads `read` on every change `progress` reports.
    pub fn start(read: ReadModel, progress: &Progress, max_subscribers: usize) -> Live {
        let live = Live::new(max_subscribers);
        tokio::spawn(refresh(live.clone(), read, progress.subscribe()));
        live
    }

    /// A new subscriber; 503 `too_many_subscribers` when `max_subscribers` are
    /// subscribed already.
    pub fn subscribe(&self) -> Result<Subscription, Problem> {
        let permit = self.permits.clone().try_acquire_owned().map_err(|_| {
            Problem::unavailable(
                "too_many_subscribers",
                "this server has as many live subscribers as it takes; retry later",
                RETRY_AFTER_SECONDS,
            )
        })?;
        // Under the lock no update is published: none is missed, none comes twice.
        let latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        let receiver = self.updates.subscribe();
        let initial = [&latest.sales, &latest.top_products]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        Ok(Subscription {
            initial,
            receiver,
            permit,
        })
    }

    /// Publishes `snapshot` unless it equals the latest of its kind.
    pub fn publish(&self, snapshot: Snapshot) {
        let update = Update::new(snapshot);
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        let slot = match update.snapshot {
            Snapshot::Sales(_) => &mut latest.sales,
            Snapshot::TopProducts(_) => &mut latest.top_products,
        };
        if slot.as_ref().is_some_and(|old| old.json == update.json) {
            return;
        }
        *slot = Some(update.clone());
        // No subscriber at the moment is fine.
        let _ = self.updates.send(update);
    }
}

impl Subscription {
    /// The updates; ends when the subscriber falls [`QUEUE`] updates behind.
    pub fn into_stream(self) -> impl Stream<Item = Update> + Send + 'static {
        let Subscription {
            initial,
            receiver,
            permit,
        } = self;
        let changes = stream::unfold((receiver, permit), |(mut receiver, permit)| async move {
            match receiver.recv().await {
                Ok(update) => Some((update, (receiver, permit))),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::info!(missed, "a live subscriber fell behind and was dropped");
                    metrics::counter!("live_subscribers_dropped_total").increment(1);
                    None
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        stream::iter(initial).chain(changes)
    }
}

/// The refresh task: reads what changed, publishes it, waits for the next change.
async fn refresh(live: Live, read: ReadModel, mut changes: watch::Receiver<Changes>) {
    let mut seen: Option<Changes> = None;
    loop {
        let now = *changes.borrow_and_update();
        let mut failed = false;
        if seen.is_none_or(|seen| seen.sales != now.sales) {
            let range = SalesRange::resolve(Bucket::Hour, None, None, Utc::now());
            match range {
                Ok(range) => match sales_in(&read, &range).await {
                    Ok(sales) => live.publish(Snapshot::Sales(Arc::new(sales))),
                    Err(problem) => failed |= log_failure("sales", &problem.detail),
                },
                Err(problem) => failed |= log_failure("sales", &problem.detail),
            }
        }
        if seen.is_none_or(|seen| seen.top_products != now.top_products) {
            match top_products_of(&read, TOP_DEFAULT_LIMIT).await {
                Ok(top) => live.publish(Snapshot::TopProducts(Arc::new(top))),
                Err(problem) => failed |= log_failure("top_products", &problem.detail),
            }
        }
        // A failed read is retried soon: forget what was seen.
        seen = (!failed).then_some(now);
        let pause = if failed { RETRY_DELAY } else { CLOCK_REFRESH };
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(pause) => {
                // The sales window moved with the clock.
                if let Some(seen) = &mut seen {
                    seen.sales = seen.sales.wrapping_sub(1);
                }
            }
        }
    }
}

fn log_failure(what: &str, detail: &str) -> bool {
    tracing::warn!(what, detail, "reading a live dashboard failed; retrying");
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top(units: i64) -> Snapshot {
        Snapshot::TopProducts(Arc::new(TopProducts {
            items: vec![crate::routes::dashboard::TopProduct {
                product_id: uuid::Uuid::nil(),
                sku: "A-1".into(),
                name: "Mug".into(),
                units_sold: units,
                revenue_cents: units * 100,
            }],
        }))
    }

    #[tokio::test]
    async fn a_subscriber_gets_the_latest_then_each_change_once() {
        let live = Live::new(10);
        live.publish(top(1));
        let subscription = live.subscribe().expect("room");
        live.publish(top(1));
        live.publish(top(2));
        drop(live);
        let received: Vec<String> = subscription
            .into_stream()
            .map(|u| u.json.to_string())
            .collect()
            .await;
        assert_eq!(received.len(), 2, "{received:?}");
        assert!(received[0].contains("\"units_sold\":1"));
        assert!(received[1].contains("\"units_sold\":2"));
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_dropped_not_buffered() {
        let live = Live::new(10);
        let subscription = live.subscribe().expect("room");
        for units in 0..(QUEUE as i64 + 5) {
            live.publish(top(units));
        }
        let received: Vec<Update> = subscription.into_stream().collect().await;
        assert!(received.is_empty(), "a lagging subscriber's stream ends");
    }

    #[tokio::test]
    async fn the_cap_holds_and_frees_a_place_when_a_subscriber_leaves() {
        let live = Live::new(2);
        let first = live.subscribe().expect("room");
        let _second = live.subscribe().expect("room");
        assert_eq!(
            live.subscribe().err().map(|p| p.code),
            Some("too_many_subscribers")
        );
        drop(first);
        assert!(live.subscribe().is_ok());
    }
}
