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
use platform::{Caller, Problem};
use tokio::sync::{broadcast, watch, OwnedSemaphorePermit, Semaphore};

use crate::db::ReadModel;
use crate::progress::{Changes, Progress};
use crate::routes::dashboard::{
    sales_in, top_products_of, Bucket, Sales, SalesRange, TopProducts, TOP_DEFAULT_LIMIT,
};
use crate::shares::{Share, SubjectShares};

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
    /// One subject's share of the subscribers.
    shares: SubjectShares,
}

/// The most live subscriptions one token subject holds at once (a dashboard in a few tabs).
pub const SUBSCRIBERS_PER_SUBJECT: usize = 16;

/// One subscriber: the latest answers, then every change, while it keeps up.
pub struct Subscription {
    initial: Vec<Update>,
    receiver: broadcast::Receiver<Update>,
    permit: OwnedSemaphorePermit,
    share: Share,
    /// When the subscriber's token expires: the stream ends then.
    until: tokio::time::Instant,
}

impl Live {
    /// A fan-out for at most `max_subscribers` at once, fed by nobody yet.
    pub fn new(max_subscribers: usize) -> Live {
        let (updates, _) = broadcast::channel(QUEUE);
        Live {
            updates,
            latest: Arc::default(),
            permits: Arc::new(Semaphore::new(max_subscribers)),
            shares: SubjectShares::new(SUBSCRIBERS_PER_SUBJECT),
        }
    }

    /// A fan-out fed by a task that re-reads `read` on every change `progress` reports.
    pub fn start(read: ReadModel, progress: &Progress, max_subscribers: usize) -> Live {
        let live = Live::new(max_subscribers);
        tokio::spawn(refresh(live.clone(), read, progress.subscribe()));
        live
    }

    /// A new subscriber for `caller`, until their token expires; 429 `rate_limited` when
    /// they hold [`SUBSCRIBERS_PER_SUBJECT`] already, 503 `too_many_subscribers` when
    /// `max_subscribers` are subscribed already.
    pub fn subscribe(&self, caller: &Caller) -> Result<Subscription, Problem> {
        let share = self.shares.take(&caller.id).ok_or_else(|| {
            Problem::rate_limited(
                format!("this caller already holds {SUBSCRIBERS_PER_SUBJECT} live subscriptions"),
                RETRY_AFTER_SECONDS,
            )
        })?;
        let until = tokio::time::Instant::now()
            + caller.remaining().min(Duration::from_secs(366 * 24 * 3600));
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
            share,
            until,
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
            share,
            until,
        } = self;
        let held = (permit, share);
        let changes = stream::unfold((receiver, held), |(mut receiver, held)| async move {
            match receiver.recv().await {
                Ok(update) => Some((update, (receiver, held))),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::info!(missed, "a live subscriber fell behind and was dropped");
                    metrics::counter!("live_subscribers_dropped_total").increment(1);
                    None
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        // The token's expiry ends the stream (the client reconnects with a fresh token).
        stream::iter(initial)
            .chain(changes)
            .take_until(tokio::time::sleep_until(until))
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

    fn viewer(id: &str) -> Caller {
        Caller {
            id: id.to_owned(),
            roles: vec![platform::Role::Viewer],
            expires_at: i64::MAX / 2,
        }
    }

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
        let subscription = live.subscribe(&viewer("dash")).expect("room");
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
        let subscription = live.subscribe(&viewer("dash")).expect("room");
        for units in 0..(QUEUE as i64 + 5) {
            live.publish(top(units));
        }
        let received: Vec<Update> = subscription.into_stream().collect().await;
        assert!(received.is_empty(), "a lagging subscriber's stream ends");
    }

    #[tokio::test]
    async fn one_subject_holds_its_share_and_others_are_served() {
        let live = Live::new(1000);
        let held: Vec<Subscription> = (0..SUBSCRIBERS_PER_SUBJECT)
            .map(|_| live.subscribe(&viewer("flood")).expect("within the share"))
            .collect();
        let refused = live
            .subscribe(&viewer("flood"))
            .err()
            .expect("over the share");
        assert_eq!(refused.code, "rate_limited");
        assert!(live.subscribe(&viewer("someone else")).is_ok());
        drop(held);
        assert!(live.subscribe(&viewer("flood")).is_ok(), "given back");
    }

    #[tokio::test]
    async fn a_subscription_ends_when_the_token_expires() {
        let live = Live::new(10);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let expiring = Caller {
            expires_at: now + 1,
            ..viewer("short")
        };
        let subscription = live.subscribe(&expiring).expect("room");
        let started = std::time::Instant::now();
        // No update ever comes; the stream still ends, at the token's expiry.
        let received: Vec<Update> = tokio::time::timeout(
            Duration::from_secs(10),
            subscription.into_stream().collect(),
        )
        .await
        .expect("the stream ended");
        assert!(received.is_empty());
        assert!(started.elapsed() <= Duration::from_secs(3));
        drop(live);
    }

    #[tokio::test]
    async fn the_cap_holds_and_frees_a_place_when_a_subscriber_leaves() {
        let live = Live::new(2);
        let first = live.subscribe(&viewer("dash")).expect("room");
        let _second = live.subscribe(&viewer("dash")).expect("room");
        assert_eq!(
            live.subscribe(&viewer("dash")).err().map(|p| p.code),
            Some("too_many_subscribers")
        );
        drop(first);
        assert!(live.subscribe(&viewer("dash")).is_ok());
    }
}
