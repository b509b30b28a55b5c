//! What the command API keeps of customers between commands: their stream state (placing an
//! order reads the profile's address from it) and, in the [`Vault`], the data keys it seals
//! with. Unlike the aggregate cache, nothing here is guarded by a later append, so it is
//! kept only while every change is heard: a session LISTENs on `agora_customers`, which the
//! event store's triggers notify in the transaction that changes a customer stream or a data
//! key (migration V26), and each notice drops that entry. While the session is down nothing
//! kept is used, and on every reconnect everything kept is dropped.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventstore::connect::Connector;
use eventstore::StreamState;
use futures::{stream, StreamExt};
use lru::LruCache;
use platform::pii::Vault;
use tokio::sync::watch;
use tokio_postgres::AsyncMessage;
use uuid::Uuid;

/// The channel the triggers notify.
pub const CHANNEL: &str = "agora_customers";
/// Customer states kept at most.
const CAPACITY: usize = 100_000;

/// Customer stream states, kept while changes are heard.
pub struct CustomerCache {
    live: AtomicBool,
    /// Bumped by every change heard: a state read before a change is not kept after it.
    epoch: AtomicU64,
    states: Mutex<LruCache<Uuid, Arc<StreamState>>>,
}

impl Default for CustomerCache {
    fn default() -> Self {
        CustomerCache {
            live: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            states: Mutex::new(LruCache::new(
                NonZeroUsize::new(CAPACITY).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }
}

impl CustomerCache {
    fn states(&self) -> std::sync::MutexGuard<'_, LruCache<Uuid, Arc<StreamState>>> {
        self.states.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The kept state of customer stream `id`, while changes are heard.
    pub fn get(&self, id: &Uuid) -> Option<Arc<StreamState>> {
        if !self.live.load(Ordering::SeqCst) {
            return None;
        }
        self.states().get(id).cloned()
    }

    /// Where the changes heard stand (read before loading a state to keep).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Keeps `state`, loaded at `epoch`, unless a change was heard since.
    pub fn keep(&self, state: Arc<StreamState>, epoch: u64) {
        let mut states = self.states();
        if self.live.load(Ordering::SeqCst) && self.epoch.load(Ordering::SeqCst) == epoch {
            states.put(state.stream_id, state);
        }
    }

    /// Drops what is kept of customer stream `id`.
    pub fn forget(&self, id: &Uuid) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.states().pop(id);
    }

    /// Whether changes are heard; either way everything kept is dropped.
    pub fn hearing(&self, live: bool) {
        self.live.store(live, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.states().clear();
    }
}

/// Listens on [`CHANNEL`] until `shutdown`, reconnecting after a second when the session
/// ends; tells `cache` and `vault` what changed and whether they may keep anything.
pub async fn run_listener(
    database_url: String,
    cache: Arc<CustomerCache>,
    vault: Vault,
    mut shutdown: watch::Receiver<bool>,
) {
    let connector = match Connector::new(&database_url) {
        Ok(connector) => connector,
        Err(error) => {
            tracing::error!(%error, "cannot listen for customer changes; nothing of customers is kept");
            return;
        }
    };
    while !*shutdown.borrow() {
        match connector.connect().await {
            Ok((client, mut connection)) => {
                let (heard_tx, mut heard) = tokio::sync::mpsc::unbounded_channel();
                let pump = tokio::spawn(async move {
                    let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(AsyncMessage::Notification(notice)) => {
                                if heard_tx.send(notice.payload().to_owned()).is_err() {
                                    break;
                                }
                            }
                            Ok(_) => {}
                            Err(error) => {
                                tracing::warn!(%error, "the customer-change session failed");
                                break;
                            }
                        }
                    }
                });
                if let Err(error) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                    tracing::warn!(%error, "cannot LISTEN for customer changes");
                } else {
                    cache.hearing(true);
                    vault.hearing(true);
                    loop {
                        tokio::select! {
                            notice = heard.recv() => match notice {
                                Some(payload) => apply(&payload, &cache, &vault),
                                None => break,
                            },
                            _ = shutdown.changed() => break,
                        }
                    }
                }
                cache.hearing(false);
                vault.hearing(false);
                pump.abort();
                drop(client);
            }
            Err(error) => tracing::warn!(%error, "cannot connect to hear customer changes"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// One notice: `stream:<uuid>` or `key:<customer id>`.
fn apply(payload: &str, cache: &CustomerCache, vault: &Vault) {
    match payload.split_once(':') {
        Some(("stream", id)) => match id.parse() {
            Ok(id) => cache.forget(&id),
            Err(_) => cache.hearing(true),
        },
        Some(("key", customer)) => vault.forget(customer),
        _ => {
            // Not understood: trust nothing kept.
            cache.hearing(true);
            vault.hearing(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_kept_or_used_unless_changes_are_heard() {
        let cache = CustomerCache::default();
        let id = Uuid::new_v4();
        let epoch = cache.epoch();
        cache.keep(Arc::new(StreamState::empty(id)), epoch);
        assert!(cache.get(&id).is_none(), "not heard: not kept");
        cache.hearing(true);
        let epoch = cache.epoch();
        cache.keep(Arc::new(StreamState::empty(id)), epoch);
        assert!(cache.get(&id).is_some());
        cache.forget(&id);
        assert!(cache.get(&id).is_none());
        // A state read before a change is not kept after it.
        let before = cache.epoch();
        cache.forget(&Uuid::new_v4());
        cache.keep(Arc::new(StreamState::empty(id)), before);
        assert!(cache.get(&id).is_none());
        let epoch = cache.epoch();
        cache.keep(Arc::new(StreamState::empty(id)), epoch);
        cache.hearing(false);
        assert!(
            cache.get(&id).is_none(),
            "the session ended: nothing is used"
        );
    }
}
