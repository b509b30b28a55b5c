//! The webhook reactor.
//!
//! 1. **Fan-out**, a [`eventstore::follower`]: for each event of the log, one pending row
//!    in `webhook_deliveries` per subscription whose `event_types` name it, written in the
//!    same transaction as the follower's checkpoint (so exactly one row per subscription
//!    and event, whatever crashes).
//! 2. **Delivery**, on the active instance only: one worker per subscription, so a slow
//!    or dead receiver holds up only its own deliveries. A worker takes the due heads of
//!    its streams (the oldest pending delivery of each stream: per-stream order), POSTs
//!    them concurrently (each stream one at a time), and records each attempt: 2xx within
//!    10 s is `delivered`; anything else is retried after an exponential backoff with
//!    jitter, until `max_attempts` marks it `failed` (which no longer holds its stream
//!    back; an admin may retry it). At least once: a crash between a receiver's 2xx and
//!    the record repeats that delivery, so receivers dedupe on `Agora-Event-Id`.
//!
//! Unless `AGORA_WEBHOOK_ALLOW_INSECURE=true`, each round first checks the URL again and
//! resolves its host ([`target::pin`]): if any address is special-use the round's
//! deliveries fail without a connection; else they go through a client that connects to
//! exactly that checked address (its resolver answers only the pinned host, no proxy, TLS
//! verified for the host name), so DNS rebinding between the check and the connection
//! reaches nothing. Every failure before an HTTP answer (refused address, DNS, connection,
//! TLS, timeout) is recorded as the one text [`UNREACHABLE`] with no status code, so the
//! delivery log does not tell an admin token which internal hosts answer; the cause goes
//! to the logs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use eventstore::follower::{BatchHandler, FollowerState, FollowerStatus};
use eventstore::{EventStore, RecordedEvent};
use futures::StreamExt;
use tokio::sync::{watch, Notify};
use tokio_postgres::Client;
use uuid::Uuid;

use super::signing::signature_header;
use super::store::{self, Attempt, Due, Target};
use super::target::{self, Pinned};
use super::WebhookSettings;

/// How long a receiver has to answer.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// What the delivery log records for any failure before an HTTP answer: the same text
/// whatever the cause, so the log reveals nothing of the network behind the target.
pub const UNREACHABLE: &str = "the target could not be reached";
/// Deliveries of one subscription in flight at once (each on its own stream).
const IN_FLIGHT: usize = 64;
/// The most deliveries one round takes (at most one per stream).
const ROUND: i64 = 512;

/// The fan-out: the log follower's batch handler.
pub struct FanOut {
    pub wake: Arc<Notify>,
}

impl BatchHandler for FanOut {
    async fn handle<'a>(
        &'a mut self,
        session: &'a Client,
        events: &'a [RecordedEvent],
    ) -> Result<(), String> {
        let rows = session
            .query("SELECT id, event_types FROM webhook_subscriptions", &[])
            .await
            .map_err(|e| e.to_string())?;
        let mut subscriptions = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: Uuid = row.try_get(0).map_err(|e| e.to_string())?;
            let types: Vec<String> = row.try_get(1).map_err(|e| e.to_string())?;
            subscriptions.push((id, types));
        }
        let (mut ids, mut event_ids, mut positions, mut streams) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for event in events {
            for (id, types) in &subscriptions {
                if types.iter().any(|t| t == &event.event_type) {
                    ids.push(*id);
                    event_ids.push(event.event_id);
                    positions.push(event.position);
                    streams.push(event.stream_id);
                }
            }
        }
        if ids.is_empty() {
            return Ok(());
        }
        session
            .execute(
                "INSERT INTO webhook_deliveries (subscription_id, event_id, position, stream_id) \
                 SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int8[], $4::uuid[]) \
                 ON CONFLICT (subscription_id, event_id) DO NOTHING",
                &[&ids, &event_ids, &positions, &streams],
            )
            .await
            .map_err(|e| e.to_string())?;
        metrics::counter!("webhook_deliveries_enqueued_total").increment(ids.len() as u64);
        Ok(())
    }

    fn committed(&mut self) {
        self.wake.notify_waiters();
    }
}

/// The delivery client's settings: a timeout, no redirects.
fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(DELIVERY_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("Agora-Webhooks/1")
}

/// A resolver that knows one name, the pinned host, and answers only its checked
/// address: the delivery client never looks a name up itself.
struct PinnedResolver {
    host: Option<String>,
    addr: std::net::SocketAddr,
}

impl reqwest::dns::Resolve for PinnedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let answer = match &self.host {
            Some(host) if name.as_str().eq_ignore_ascii_case(host) => Ok(self.addr),
            _ => Err(format!("{} is not the pinned host", name.as_str())),
        };
        Box::pin(async move {
            let addr = answer?;
            Ok(Box::new(std::iter::once(addr)) as reqwest::dns::Addrs)
        })
    }
}

/// The client for one round of deliveries to `url`: the shared one when insecure targets
/// are allowed; else one pinned to the address `url`'s host resolves to now, after
/// [`target::pin`] checked every address. The reason when refused (for the logs).
async fn round_client(
    http: &reqwest::Client,
    url: &str,
    settings: &WebhookSettings,
) -> Result<reqwest::Client, String> {
    if settings.allow_insecure {
        return Ok(http.clone());
    }
    let Pinned { host, addr, .. } = target::pin(url).await?;
    client_builder()
        .no_proxy()
        .https_only(true)
        .dns_resolver(Arc::new(PinnedResolver { host, addr }))
        .build()
        .map_err(|e| format!("cannot build the pinned client: {e}"))
}

/// Runs delivery workers while the fan-out `status` is active, until `shutdown`.
pub async fn run_dispatcher(
    store: EventStore,
    settings: WebhookSettings,
    status: FollowerStatus,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let http = match client_builder().build() {
        Ok(http) => http,
        Err(error) => {
            tracing::error!(%error, "cannot build the webhook HTTP client; no deliveries");
            return;
        }
    };
    let mut workers: HashMap<Uuid, tokio::task::JoinHandle<()>> = HashMap::new();
    while !*shutdown.borrow() {
        workers.retain(|_, worker| !worker.is_finished());
        if status.get() == FollowerState::Active {
            match store::list(store.pool()).await {
                Ok(subscriptions) => {
                    for subscription in subscriptions {
                        workers.entry(subscription.id).or_insert_with(|| {
                            tokio::spawn(deliver_for(
                                subscription.id,
                                store.clone(),
                                http.clone(),
                                settings.clone(),
                                status.clone(),
                                wake.clone(),
                                shutdown.clone(),
                            ))
                        });
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot list webhook subscriptions"),
            }
            match store::pending_count(store.pool()).await {
                Ok(pending) => metrics::gauge!("webhook_deliveries_pending").set(pending as f64),
                Err(error) => tracing::debug!(%error, "cannot count pending deliveries"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.changed() => {}
        }
    }
    for (_, worker) in workers {
        let _ = worker.await;
    }
}

/// Delivers one subscription's events while it exists and this instance is active.
async fn deliver_for(
    id: Uuid,
    store: EventStore,
    http: reqwest::Client,
    settings: WebhookSettings,
    status: FollowerStatus,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() && status.get() == FollowerState::Active {
        let woken = wake.notified();
        let delivered = match deliver_due(id, &store, &http, &settings).await {
            Ok(Some(count)) => count,
            Ok(None) => return, // the subscription is gone
            Err(error) => {
                tracing::warn!(%error, subscription = %id, "webhook delivery round failed");
                0
            }
        };
        if delivered == 0 {
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

/// One round: the due heads of the subscription's streams, delivered concurrently. The
/// number attempted, or `None` when the subscription no longer exists.
async fn deliver_due(
    id: Uuid,
    store: &EventStore,
    http: &reqwest::Client,
    settings: &WebhookSettings,
) -> Result<Option<usize>, String> {
    let Some(target) = store::target(store.pool(), id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let secret = settings.secrets.open(id, &target.sealed)?;
    let due = store::due(store.pool(), id, ROUND)
        .await
        .map_err(|e| e.to_string())?;
    if due.is_empty() {
        return Ok(Some(0));
    }
    let positions: Vec<i64> = due.iter().map(|d| d.position).collect();
    let events: HashMap<i64, RecordedEvent> = store
        .events_at(&positions)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|e| (e.position, e))
        .collect();
    let count = due.len();
    let client = match round_client(http, &target.subscription.url, settings).await {
        Ok(client) => Some(client),
        Err(cause) => {
            tracing::warn!(subscription = %id, %cause, "webhook target refused or unresolved");
            None
        }
    };
    let attempts = futures::stream::iter(due)
        .map(|delivery| {
            let event = events.get(&delivery.position);
            attempt(client.as_ref(), &target, &secret, settings, delivery, event)
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    let mut outcomes = Vec::with_capacity(attempts.len());
    for (delivery, outcome) in attempts {
        let label = match &outcome {
            Attempt::Delivered { .. } => "delivered",
            Attempt::Failed {
                retry_at: Some(_), ..
            } => "retried",
            Attempt::Failed { retry_at: None, .. } => "failed",
        };
        metrics::counter!("webhook_deliveries_total", "outcome" => label).increment(1);
        outcomes.push((delivery.id, outcome));
    }
    store::record(store.pool(), &outcomes)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Some(count))
}

/// POSTs one event to the subscription's URL (through `http`; `None`: the target was
/// refused this round).
async fn attempt(
    http: Option<&reqwest::Client>,
    target: &Target,
    secret: &[u8],
    settings: &WebhookSettings,
    delivery: Due,
    event: Option<&RecordedEvent>,
) -> (Due, Attempt) {
    let failed = |delivery: &Due, status_code: Option<i32>, error: String| {
        let attempts = delivery.attempts + 1;
        let retry_at = (attempts < settings.max_attempts as i32)
            .then(|| Utc::now() + crate::reactors::backoff::backoff(settings.retry_base, attempts));
        Attempt::Failed {
            status_code,
            error,
            retry_at,
        }
    };
    let Some(event) = event else {
        let outcome = failed(&delivery, None, "the event is not in the log".into());
        return (delivery, outcome);
    };
    let body = match eventstore::envelope::to_json_line(event) {
        Ok(body) => body,
        Err(error) => {
            let outcome = failed(&delivery, None, format!("cannot encode the event: {error}"));
            return (delivery, outcome);
        }
    };
    let Some(http) = http else {
        let outcome = failed(&delivery, None, UNREACHABLE.into());
        return (delivery, outcome);
    };
    let timestamp = Utc::now().timestamp();
    let sent = http
        .post(target.subscription.url.as_str())
        .header("Content-Type", "application/json")
        .header("Agora-Event-Id", event.event_id.to_string())
        .header("Agora-Event-Type", event.event_type.as_str())
        .header(
            "Agora-Signature",
            signature_header(secret, timestamp, body.as_bytes()),
        )
        .body(body)
        .send()
        .await;
    let outcome = match sent {
        Ok(response) if response.status().is_success() => Attempt::Delivered {
            status_code: i32::from(response.status().as_u16()),
        },
        Ok(response) => {
            let code = response.status().as_u16();
            failed(
                &delivery,
                Some(i32::from(code)),
                format!("the receiver answered {code}"),
            )
        }
        Err(error) => {
            tracing::warn!(
                subscription = %target.subscription.id,
                event = %event.event_id,
                timeout = error.is_timeout(),
                error = %ErrorChain(&error),
                "webhook delivery got no answer"
            );
            failed(&delivery, None, UNREACHABLE.into())
        }
    };
    (delivery, outcome)
}

/// An error with its sources, for the logs.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
