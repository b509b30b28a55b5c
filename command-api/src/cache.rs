//! The in-process aggregate cache: stream id → its folded state (version and last hash
//! included), least recently used out first, bounded in bytes (`AGORA_STATE_CACHE_MB`).
//!
//! A command on a cached stream reads nothing before appending. Entries are only written
//! under the stream's lock (see [`crate::execution`]), from a load or from the events a
//! command just appended. An entry made stale by another process is caught by the store's
//! `(stream_id, version)` guard; the command then evicts it and retries from a fresh load,
//! and a refusal decided on cached state is decided again on a fresh load before it is
//! answered, so a stale entry never decides anything.

use std::sync::{Arc, Mutex, MutexGuard};

use eventstore::{AggregateState, StreamState};
use lru::LruCache;
use uuid::Uuid;

/// What one entry costs beyond its state: the LRU node (key, value pointer, links), its
/// slot in the hash table and the `Arc` header, rounded up.
const ENTRY_OVERHEAD: usize = 128;

/// Bounded LRU of stream states.
pub struct StateCache {
    inner: Mutex<Inner>,
    capacity_bytes: usize,
}

struct Inner {
    entries: LruCache<Uuid, Arc<StreamState>>,
    bytes: usize,
}

impl StateCache {
    /// A cache holding at most `capacity_bytes` of states (0 turns it off).
    pub fn new(capacity_bytes: usize) -> Self {
        StateCache {
            inner: Mutex::new(Inner {
                entries: LruCache::unbounded(),
                bytes: 0,
            }),
            capacity_bytes,
        }
    }

    /// A cache of `megabytes` MiB.
    pub fn with_megabytes(megabytes: usize) -> Self {
        Self::new(megabytes.saturating_mul(1024 * 1024))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the map consistent (every operation below
        // is a single map call plus counters), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached state of `stream_id`, marked most recently used.
    pub fn get(&self, stream_id: &Uuid) -> Option<Arc<StreamState>> {
        if self.capacity_bytes == 0 {
            return None;
        }
        let found = self.lock().entries.get(stream_id).cloned();
        match found {
            Some(_) => metrics::counter!("state_cache_hits_total").increment(1),
            None => metrics::counter!("state_cache_misses_total").increment(1),
        }
        found
    }

    /// Caches `state`, evicting the least recently used entries beyond the bound.
    pub fn put(&self, state: Arc<StreamState>) {
        if self.capacity_bytes == 0 {
            return;
        }
        let added = weight(&state);
        if added > self.capacity_bytes {
            self.evict(&state.stream_id);
            return;
        }
        let mut inner = self.lock();
        if let Some(old) = inner.entries.put(state.stream_id, state) {
            inner.bytes -= weight(&old);
        }
        inner.bytes += added;
        let mut evicted = 0u64;
        while inner.bytes > self.capacity_bytes {
            match inner.entries.pop_lru() {
                Some((_, old)) => {
                    inner.bytes -= weight(&old);
                    evicted += 1;
                }
                None => break,
            }
        }
        let (bytes, entries) = (inner.bytes, inner.entries.len());
        drop(inner);
        if evicted > 0 {
            metrics::counter!("state_cache_evictions_total").increment(evicted);
        }
        metrics::gauge!("state_cache_bytes").set(bytes as f64);
        metrics::gauge!("state_cache_entries").set(entries as f64);
    }

    /// Forgets `stream_id`.
    pub fn evict(&self, stream_id: &Uuid) {
        let mut inner = self.lock();
        if let Some(old) = inner.entries.pop(stream_id) {
            inner.bytes -= weight(&old);
        }
    }

    /// Bytes accounted to the cached states.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Cached streams.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An estimate of the memory one cached state holds: the entry, the state and what its
/// strings and lines allocate.
fn weight(state: &StreamState) -> usize {
    let heap = match &state.aggregate {
        None => 0,
        Some(AggregateState::Product(product)) => {
            product.sku().map_or(0, |s| s.as_str().len())
                + product.name().map_or(0, |n| n.as_str().len())
                + 16
        }
        Some(AggregateState::Order(order)) => {
            std::mem::size_of_val(order.lines())
                + order.customer_id().map_or(0, |c| c.as_str().len())
                + order.placed_by().map_or(0, |p| p.as_str().len())
                + order.payment_ref().map_or(0, |p| p.as_str().len())
                + order.carrier().map_or(0, |c| c.as_str().len())
                + order.tracking_number().map_or(0, |t| t.as_str().len())
                + order.cancel_reason().map_or(0, |r| r.as_str().len())
                + 64
        }
        Some(AggregateState::Customer(customer)) => customer.profile().map_or(16, |profile| {
            profile.email.as_str().len()
                + profile.name.as_str().len()
                + profile.address.as_ref().map_or(0, |a| a.as_str().len())
                + 64
        }),
        Some(AggregateState::Webhook(subscription)) => {
            subscription.url.as_ref().map_or(0, String::len)
                + subscription
                    .event_types
                    .iter()
                    .map(String::len)
                    .sum::<usize>()
                + 64
        }
    };
    ENTRY_OVERHEAD + std::mem::size_of::<StreamState>() + heap
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(version: i64) -> Arc<StreamState> {
        let mut state = StreamState::empty(Uuid::now_v7());
        state.version = version;
        Arc::new(state)
    }

    #[test]
    fn the_least_recently_used_entry_goes_first_and_the_bound_holds() {
        let one = weight(&state(1));
        let cache = StateCache::new(one * 3);
        let (a, b, c, d) = (state(1), state(1), state(1), state(1));
        for s in [&a, &b, &c] {
            cache.put(s.clone());
        }
        assert!(cache.get(&a.stream_id).is_some()); // a is now the most recent
        cache.put(d.clone());
        assert!(
            cache.get(&b.stream_id).is_none(),
            "b was least recently used"
        );
        for s in [&a, &c, &d] {
            assert!(cache.get(&s.stream_id).is_some());
        }
        assert!(cache.bytes() <= one * 3);
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn replacing_and_evicting_keep_the_byte_count_exact() {
        let cache = StateCache::new(1 << 20);
        let a = state(1);
        cache.put(a.clone());
        let mut newer = (*a).clone();
        newer.version = 2;
        cache.put(Arc::new(newer));
        assert_eq!(cache.bytes(), weight(&a));
        assert_eq!(cache.get(&a.stream_id).map(|s| s.version), Some(2));
        cache.evict(&a.stream_id);
        assert_eq!((cache.bytes(), cache.len()), (0, 0));
    }

    #[test]
    fn a_zero_bound_caches_nothing() {
        let cache = StateCache::new(0);
        let a = state(1);
        cache.put(a.clone());
        assert!(cache.get(&a.stream_id).is_none());
        assert!(cache.is_empty());
    }
}
