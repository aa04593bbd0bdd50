//! The memcached backend, over Shopify's `async-memcached` client (tokio, text
//! protocol; an operation cancelled part-way closes its connection instead of
//! leaving a reply unread, which is what makes per-operation timeouts safe).
//!
//! Keys are spread over the servers by jump consistent hashing. Memcached keys are
//! at most 250 bytes without spaces, so the stored key is a hash of the cache key,
//! and the value begins with the full cache key, checked on read: a hash collision
//! is a miss, never another query's answer. Each server keeps a few idle
//! connections; after a failed connect a server is skipped for a second, so a
//! memcached that is down costs a failed operation (a miss), not a wait per query.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_memcached::{AsciiProtocol, Client};
use async_trait::async_trait;
use parking_lot::Mutex;

use super::{CacheBackend, CacheError};

/// How long a server whose connect failed is skipped.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Settings of [`Memcached`].
#[derive(Debug, Clone)]
pub struct MemcachedOptions {
    pub addresses: Vec<String>,
    pub timeout: Duration,
    pub max_item_bytes: usize,
    pub max_idle_connections: usize,
    pub ttl: Duration,
}

struct Server {
    addr: String,
    idle: Mutex<Vec<Client>>,
    down_until: Mutex<Option<Instant>>,
    down: AtomicBool,
}

/// A memcached results cache (one or more servers).
#[derive(Debug)]
pub struct Memcached {
    servers: Vec<Arc<Server>>,
    opts: MemcachedOptions,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("idle", &self.idle.lock().len())
            .field("down", &self.down.load(Ordering::Relaxed))
            .finish()
    }
}

/// Jump consistent hash (Lamping and Veach): a bucket in `0..n` for `key`, moving
/// only `1/n` of the keys when a server is added.
fn jump_hash(mut key: u64, n: usize) -> usize {
    let (mut b, mut j) = (-1i64, 0i64);
    while j < n as i64 {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b.max(0) as usize
}

impl Memcached {
    /// A client for `opts.addresses` (`host:port` each; at least one). Connections
    /// are made on first use, so a memcached that is down at start is just a miss.
    pub fn new(opts: MemcachedOptions) -> Result<Self, CacheError> {
        if opts.addresses.is_empty() {
            return Err(CacheError("memcached: no addresses".into()));
        }
        let servers = opts
            .addresses
            .iter()
            .map(|a| {
                Arc::new(Server {
                    addr: a.clone(),
                    idle: Mutex::new(Vec::new()),
                    down_until: Mutex::new(None),
                    down: AtomicBool::new(false),
                })
            })
            .collect();
        Ok(Memcached { servers, opts })
    }

    fn server(&self, hash: u64) -> &Arc<Server> {
        &self.servers[jump_hash(hash, self.servers.len())]
    }

    async fn connection(&self, s: &Server) -> Result<Client, CacheError> {
        if let Some(c) = s.idle.lock().pop() {
            return Ok(c);
        }
        if s.down_until.lock().is_some_and(|t| Instant::now() < t) {
            return Err(CacheError(format!("memcached {} is down; retrying shortly", s.addr)));
        }
        let dsn = format!("tcp://{}", s.addr);
        let r = match tokio::time::timeout(self.opts.timeout, Client::new(&dsn)).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(format!("{e}")),
            Err(_) => Err(format!("connect timed out after {:?}", self.opts.timeout)),
        };
        match r {
            Ok(c) => Ok(c),
            Err(e) => {
                *s.down_until.lock() = Some(Instant::now() + RETRY_AFTER);
                if !s.down.swap(true, Ordering::Relaxed) {
                    tracing::warn!(addr = %s.addr, error = %e, "memcached unreachable; results cache off for it until it answers");
                }
                Err(CacheError(format!("memcached {}: {e}", s.addr)))
            }
        }
    }

    fn give_back(&self, s: &Server, c: Client) {
        if s.down.swap(false, Ordering::Relaxed) {
            tracing::info!(addr = %s.addr, "memcached reachable again");
        }
        let mut idle = s.idle.lock();
        if idle.len() < self.opts.max_idle_connections && !c.is_closed() {
            idle.push(c);
        }
    }

    /// Runs `op` on a connection of the server for `hash`, within the timeout.
    async fn with_connection<T, F>(&self, hash: u64, op: F) -> Result<T, CacheError>
    where
        F: for<'c> FnOnce(&'c mut Client) -> futures::future::BoxFuture<'c, Result<T, async_memcached::Error>>,
    {
        let s = self.server(hash).clone();
        let mut c = self.connection(&s).await?;
        match tokio::time::timeout(self.opts.timeout, op(&mut c)).await {
            Ok(Ok(v)) => {
                self.give_back(&s, c);
                Ok(v)
            }
            // The connection is dropped: after an error its state is unknown.
            Ok(Err(e)) => Err(CacheError(format!("memcached {}: {e}", s.addr))),
            Err(_) => Err(CacheError(format!("memcached {}: timed out after {:?}", s.addr, self.opts.timeout))),
        }
    }
}

/// The memcached key for a cache key, and its hash for picking a server.
fn mc_key(key: &str) -> (String, u64) {
    let h = xxhash_rust::xxh3::xxh3_128(key.as_bytes());
    (format!("strata-fe:{h:032x}"), h as u64)
}

/// `[key length: u32 LE][key][payload]`.
fn encode(key: &str, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + key.len() + payload.len());
    v.extend_from_slice(&(key.len() as u32).to_le_bytes());
    v.extend_from_slice(key.as_bytes());
    v.extend_from_slice(payload);
    v
}

fn decode<'a>(key: &str, v: &'a [u8]) -> Option<&'a [u8]> {
    let len = u32::from_le_bytes(v.get(..4)?.try_into().ok()?) as usize;
    let stored = v.get(4..4usize.checked_add(len)?)?;
    (stored == key.as_bytes()).then(|| &v[4 + len..])
}

#[async_trait]
impl CacheBackend for Memcached {
    fn name(&self) -> &'static str {
        "memcached"
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let (k, hash) = mc_key(key);
        let value = self.with_connection(hash, move |c| Box::pin(async move { c.get(&k).await })).await?;
        Ok(value.and_then(|v| v.data).and_then(|d| decode(key, &d).map(<[u8]>::to_vec)))
    }

    async fn set(&self, key: &str, value: Vec<u8>) -> Result<bool, CacheError> {
        let item = encode(key, &value);
        if item.len() > self.opts.max_item_bytes {
            return Ok(false);
        }
        let (k, hash) = mc_key(key);
        let ttl = i64::try_from(self.opts.ttl.as_secs()).unwrap_or(i64::MAX);
        self.with_connection(hash, move |c| Box::pin(async move { c.set(&k, item.as_slice(), Some(ttl), None).await }))
            .await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_hash_spreads_and_is_stable() {
        let mut counts = [0usize; 3];
        for k in 0..3000u64 {
            let h = xxhash_rust::xxh3::xxh3_64(&k.to_le_bytes());
            let b = jump_hash(h, 3);
            counts[b] += 1;
            assert_eq!(jump_hash(h, 1), 0);
            // Growing to 4 servers moves a key only to the new one.
            let b4 = jump_hash(h, 4);
            assert!(b4 == b || b4 == 3);
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }

    #[test]
    fn values_carry_their_key() {
        let v = encode("k1", b"payload");
        assert_eq!(decode("k1", &v), Some(&b"payload"[..]));
        assert_eq!(decode("k2", &v), None);
        assert_eq!(decode("k1", &v[..3]), None);
        assert_eq!(decode("k1", &[255, 255, 255, 255]), None);
        let (k, _) = mc_key(&"x".repeat(10_000));
        assert!(k.len() <= 250 && !k.contains(' '));
    }
}
