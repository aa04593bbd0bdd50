//! The frontend's settings (the `frontend:` section of a config file).

use std::time::Duration;

use serde::Deserialize;

/// How queries are split, run and cached.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FrontendConfig {
    /// Range queries are cut at multiples of this since the epoch (24h: UTC
    /// midnights), each piece evaluated and cached on its own. `0s` turns splitting off.
    #[serde(deserialize_with = "duration")]
    pub split_interval: Duration,
    /// Most pieces of one query evaluated at the same time.
    pub max_parallelism: usize,
    /// Round `start` and `end` of range queries down to multiples of `step`, so that
    /// refreshes at any moment ask for the same grid (and hit the cache). Changes
    /// answers (the points move), hence off by default.
    pub align_queries_with_step: bool,
    /// Pieces ending less than this before now are not cached: their data may still
    /// be arriving.
    #[serde(deserialize_with = "duration")]
    pub max_cache_freshness: Duration,
    /// Where cached pieces live.
    pub cache: CacheConfig,
}

impl Default for FrontendConfig {
    fn default() -> Self {
        FrontendConfig {
            split_interval: Duration::from_secs(24 * 3600),
            max_parallelism: 14,
            align_queries_with_step: false,
            max_cache_freshness: Duration::from_secs(600),
            cache: CacheConfig::default(),
        }
    }
}

/// The results cache backend: `{type: memory, ...}`, `{type: memcached, addresses:
/// [...], ...}` or `{type: none}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CacheConfig {
    /// No results cache.
    None,
    /// A size-bounded LRU in this process.
    Memory(MemoryCacheConfig),
    /// One or more memcached servers.
    Memcached(MemcachedConfig),
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig::Memory(MemoryCacheConfig::default())
    }
}

/// The in-memory cache.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryCacheConfig {
    /// Most bytes the cache holds; least recently used pieces go first.
    pub max_size_bytes: usize,
    /// How long a cached piece is used (late samples, compaction dedup and retention
    /// can still change old answers; this bounds how long a stale one is served).
    #[serde(deserialize_with = "duration")]
    pub ttl: Duration,
}

impl Default for MemoryCacheConfig {
    fn default() -> Self {
        MemoryCacheConfig { max_size_bytes: 256 << 20, ttl: Duration::from_secs(7 * 86400) }
    }
}

/// The memcached cache.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemcachedConfig {
    /// `host:port` of each server; keys are spread over them by consistent hashing.
    pub addresses: Vec<String>,
    /// Longest a get, set or connect may take; past it the operation counts as a
    /// miss (or a store not done).
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// Largest item stored (memcached's `-I`, 1 MiB by default); larger answers are not cached.
    pub max_item_size_bytes: usize,
    /// Idle connections kept per server.
    pub max_idle_connections: usize,
    /// Expiry of stored pieces.
    #[serde(deserialize_with = "duration")]
    pub ttl: Duration,
}

impl Default for MemcachedConfig {
    fn default() -> Self {
        MemcachedConfig {
            addresses: Vec::new(),
            timeout: Duration::from_millis(200),
            max_item_size_bytes: 1 << 20,
            max_idle_connections: 16,
            ttl: Duration::from_secs(7 * 86400),
        }
    }
}

/// The workspace's one config duration helper (`15s`, `1h30m`).
pub(crate) use strata_model::config_duration::required as duration;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<FrontendConfig, serde_norway::Error> {
        serde_norway::from_str(s)
    }

    #[test]
    fn defaults_and_backends() {
        assert_eq!(parse("{}").unwrap(), FrontendConfig::default());
        let c = parse("cache:\n  type: memcached\n  addresses: [127.0.0.1:11211]\n  timeout: 1s\n").unwrap();
        let CacheConfig::Memcached(m) = c.cache else { panic!("memcached") };
        assert_eq!(m.addresses, ["127.0.0.1:11211"]);
        assert_eq!(m.timeout, Duration::from_secs(1));
        assert_eq!(m.ttl, MemcachedConfig::default().ttl);
        assert_eq!(parse("cache: {type: none}").unwrap().cache, CacheConfig::None);
        assert_eq!(parse("cache: {type: memory}").unwrap().cache, CacheConfig::default());
    }

    #[test]
    fn unknown_fields_are_errors() {
        assert!(parse("split: 1h").is_err());
        assert!(parse("cache: {type: memory, addresses: [a]}").is_err());
        assert!(parse("cache: {type: redis}").is_err());
        assert!(parse("max_cache_freshness: soon").is_err());
    }
}
