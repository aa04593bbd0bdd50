//! The results cache: range query pieces stored per tenant, below the split layer,
//! so each day of a dashboard's range is evaluated once and then read back.
//!
//! The key is the tenant, the query text, the step, the piece's start and end, and
//! every other parameter that can change the answer (`dedup`, `replicaLabels[]`,
//! `partial_response`, `max_source_resolution`, `lookback_delta`, `limit`, ...;
//! all but `timeout`). A piece ending within `max_cache_freshness` of now is not
//! cached (its data may still arrive), nor is an answer with warnings (it may be
//! partial). A backend that fails is a miss, counted and logged, never an error.

mod memcached;
mod memory;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use strata_model::TenantId;

pub use memcached::{Memcached, MemcachedOptions};
pub use memory::MemoryCache;

use crate::error::Result;
use crate::metrics::Metrics;
use crate::response::PromResponse;
use crate::service::{InstantQuery, QueryService, RangeQuery};

/// Why a backend operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct CacheError(pub String);

/// Where cached pieces live. Keys are the full cache keys (any length, any bytes of
/// UTF-8); values are opaque.
#[async_trait]
pub trait CacheBackend: Send + Sync + std::fmt::Debug {
    /// The `backend` label of the cache metrics.
    fn name(&self) -> &'static str;

    /// The value stored under `key`; `Ok(None)` when absent or expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError>;

    /// Stores `value` under `key`. `Ok(false)` when the value is too large for this
    /// backend and was not stored.
    async fn set(&self, key: &str, value: Vec<u8>) -> Result<bool, CacheError>;
}

/// Memcached options from the config section.
pub fn memcached_options(c: &crate::config::MemcachedConfig) -> MemcachedOptions {
    MemcachedOptions {
        addresses: c.addresses.clone(),
        timeout: c.timeout,
        max_item_bytes: c.max_item_size_bytes,
        max_idle_connections: c.max_idle_connections,
        ttl: c.ttl,
    }
}

/// The cache key of one piece.
pub fn cache_key(tenant: &TenantId, q: &RangeQuery) -> String {
    // Field separators that cannot occur in a tenant id, and a length prefix on the
    // query, keep distinct requests from ever sharing a key.
    format!(
        "v1|{}|{}:{}|{}|{}|{}|{}",
        tenant.as_str(),
        q.query.len(),
        q.query,
        q.step,
        q.start,
        q.end,
        q.params.cache_key_part()
    )
}

/// The results cache layer.
#[derive(Debug)]
pub struct ResultsCache<S> {
    inner: S,
    backend: Arc<dyn CacheBackend>,
    max_freshness_ms: i64,
    metrics: Arc<Metrics>,
}

impl<S: QueryService> ResultsCache<S> {
    pub fn new(inner: S, backend: Arc<dyn CacheBackend>, max_freshness: Duration, metrics: Arc<Metrics>) -> Self {
        let max_freshness_ms = i64::try_from(max_freshness.as_millis()).unwrap_or(i64::MAX);
        ResultsCache { inner, backend, max_freshness_ms, metrics }
    }

    fn label(&self) -> Vec<(&'static str, String)> {
        vec![("backend", self.backend.name().to_string())]
    }

    fn skipped(&self, reason: &'static str) {
        self.metrics.cache_skipped.get_or_create(&vec![("reason", reason.to_string())]).inc();
    }

    fn error(&self, op: &'static str, e: &CacheError) {
        self.metrics
            .cache_errors
            .get_or_create(&vec![("backend", self.backend.name().into()), ("op", op.into())])
            .inc();
        tracing::debug!(backend = self.backend.name(), op, error = %e, "results cache failed; treated as a miss");
    }
}

#[async_trait]
impl<S: QueryService> QueryService for ResultsCache<S> {
    async fn range(&self, tenant: &TenantId, q: &RangeQuery) -> Result<PromResponse> {
        if q.end > strata_model::now_ms().saturating_sub(self.max_freshness_ms) {
            self.skipped("fresh");
            return self.inner.range(tenant, q).await;
        }
        let key = cache_key(tenant, q);
        match self.backend.get(&key).await {
            Ok(Some(bytes)) => match PromResponse::from_cached(&bytes) {
                Some(r) => {
                    self.metrics.cache_hits.get_or_create(&self.label()).inc();
                    return Ok(r);
                }
                None => self.error("get", &CacheError("cached value does not decode".into())),
            },
            Ok(None) => {
                self.metrics.cache_misses.get_or_create(&self.label()).inc();
            }
            Err(e) => self.error("get", &e),
        }
        let answer = self.inner.range(tenant, q).await?;
        if !answer.warnings.is_empty() {
            self.skipped("warnings");
            return Ok(answer);
        }
        match self.backend.set(&key, answer.to_json()).await {
            Ok(true) => {}
            Ok(false) => self.skipped("too_large"),
            Err(e) => self.error("set", &e),
        }
        Ok(answer)
    }

    async fn instant(&self, tenant: &TenantId, q: &InstantQuery) -> Result<PromResponse> {
        self.inner.instant(tenant, q).await
    }
}

#[cfg(test)]
mod tests;
