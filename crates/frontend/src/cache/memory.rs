//! The in-memory backend: a least-recently-used map bounded by bytes, with a TTL.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{CacheBackend, CacheError};
use crate::metrics::Metrics;

/// Bookkeeping per entry beyond key and value bytes (map slots, the order index).
const ENTRY_OVERHEAD: usize = 96;

#[derive(Debug)]
struct Entry {
    value: Arc<[u8]>,
    tick: u64,
    stored: Instant,
}

#[derive(Debug, Default)]
struct Lru {
    map: HashMap<Arc<str>, Entry>,
    /// Last use → key; the first entry is the least recently used.
    order: BTreeMap<u64, Arc<str>>,
    bytes: usize,
    tick: u64,
}

fn cost(key: &str, value: &[u8]) -> usize {
    2 * key.len() + value.len() + ENTRY_OVERHEAD
}

impl Lru {
    fn remove(&mut self, key: &str) {
        if let Some(e) = self.map.remove(key) {
            self.order.remove(&e.tick);
            self.bytes -= cost(key, &e.value);
        }
    }
}

/// Size-bounded LRU results cache in this process.
#[derive(Debug)]
pub struct MemoryCache {
    inner: Mutex<Lru>,
    max_bytes: usize,
    ttl: Duration,
    metrics: Arc<Metrics>,
}

impl MemoryCache {
    pub fn new(max_bytes: usize, ttl: Duration, metrics: Arc<Metrics>) -> Self {
        MemoryCache { inner: Mutex::new(Lru::default()), max_bytes, ttl, metrics }
    }

    /// Bytes held now (keys, values and bookkeeping).
    pub fn bytes(&self) -> usize {
        self.inner.lock().bytes
    }

    fn lookup(&self, key: &str) -> Option<Arc<[u8]>> {
        let mut lru = self.inner.lock();
        let now = Instant::now();
        let expired = now.duration_since(lru.map.get(key)?.stored) > self.ttl;
        if expired {
            lru.remove(key);
            self.metrics.cache_memory_bytes.set(lru.bytes as i64);
            return None;
        }
        lru.tick += 1;
        let tick = lru.tick;
        let e = lru.map.get_mut(key)?;
        let old = std::mem::replace(&mut e.tick, tick);
        let value = e.value.clone();
        if let Some(k) = lru.order.remove(&old) {
            lru.order.insert(tick, k);
        }
        Some(value)
    }

    fn store(&self, key: &str, value: Vec<u8>) -> bool {
        let c = cost(key, &value);
        if c > self.max_bytes {
            return false;
        }
        let mut lru = self.inner.lock();
        lru.remove(key);
        while lru.bytes + c > self.max_bytes {
            let Some((_, oldest)) = lru.order.pop_first() else { break };
            if let Some(e) = lru.map.remove(&oldest) {
                lru.bytes -= cost(&oldest, &e.value);
            }
        }
        lru.tick += 1;
        let tick = lru.tick;
        let key: Arc<str> = Arc::from(key);
        lru.order.insert(tick, key.clone());
        lru.map.insert(key, Entry { value: value.into(), tick, stored: Instant::now() });
        lru.bytes += c;
        self.metrics.cache_memory_bytes.set(lru.bytes as i64);
        true
    }
}

#[async_trait]
impl CacheBackend for MemoryCache {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        Ok(self.lookup(key).map(|v| v.to_vec()))
    }

    async fn set(&self, key: &str, value: Vec<u8>) -> Result<bool, CacheError> {
        Ok(self.store(key, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_within_the_byte_bound() {
        let m = Arc::new(Metrics::default());
        let one = cost("a", &[0; 100]);
        let c = MemoryCache::new(3 * one, Duration::from_secs(60), m.clone());
        for k in ["a", "b", "c"] {
            assert!(c.store(k, vec![0; 100]));
        }
        assert!(c.lookup("a").is_some()); // a is now the most recent
        assert!(c.store("d", vec![0; 100]));
        assert!(c.lookup("b").is_none(), "b was least recently used");
        assert!(c.lookup("a").is_some() && c.lookup("c").is_some() && c.lookup("d").is_some());
        assert_eq!(c.bytes(), 3 * one);
        assert_eq!(m.cache_memory_bytes.get(), (3 * one) as i64);
        // Replacing a key does not count it twice; too large is refused.
        assert!(c.store("d", vec![1; 100]));
        assert_eq!(c.bytes(), 3 * one);
        assert!(!c.store("e", vec![0; 4 * one]));
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let c = MemoryCache::new(1 << 20, Duration::ZERO, Arc::new(Metrics::default()));
        assert!(c.store("a", vec![1]));
        std::thread::sleep(Duration::from_millis(2));
        assert!(c.lookup("a").is_none());
        assert_eq!(c.bytes(), 0);
    }
}
