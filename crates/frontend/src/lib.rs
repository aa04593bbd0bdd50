//! Strata's query frontend: range queries split at UTC day boundaries, the pieces
//! run concurrently and cached per tenant, in front of any query service: an HTTP
//! Prometheus-compatible API (`strata query-frontend --downstream URL`) or, in
//! process, an engine that implements [`QueryService`].
//!
//! ```text
//!  GET|POST /api/v1/query_range ─► http: params, tenant (X-Scope-OrgID) ─► RangeQuery
//!     ─► StepAlign (optional: start/end down to multiples of step)
//!     ─► Split: cut at multiples of split_interval on the step grid ─► pieces
//!          ├─ piece ─► ResultsCache: key (tenant, query, step, start, end, params)
//!          │             hit ─► answer │ miss ─► downstream ─► store unless fresh / warnings
//!          ├─ piece ─► ...            (at most max_parallelism in flight)
//!          └─ merge: per series by labels, in time order; warnings unioned
//!     ─► Prometheus JSON
//!  GET|POST /api/v1/query ─► downstream (not split, not cached)
//!  /api/v1/* (labels, series, read, ...) ─► proxied to the downstream unchanged
//!  backends: MemoryCache (LRU, bytes) │ Memcached (async-memcached; down = miss)
//!  downstream: HttpDownstream (POST form, X-Scope-OrgID) │ any impl QueryService
//! ```
//!
//! Every layer is a [`QueryService`] wrapping another, so a server can put its own
//! engine at the bottom: implement [`QueryService`] for it, pass it to
//! [`Frontend::new`] and call [`Frontend::service`] from its handlers.

mod cache;
mod config;
mod downstream;
mod error;
mod http;
mod metrics;
mod params;
mod response;
mod service;
mod split;

use std::sync::Arc;

pub use cache::{
    CacheBackend, CacheError, Memcached, MemcachedOptions, MemoryCache, ResultsCache, cache_key, memcached_options,
};
pub use config::{CacheConfig, FrontendConfig, MemcachedConfig, MemoryCacheConfig};
pub use downstream::{HttpDownstream, MAX_ANSWER_BYTES, TENANT_HEADER};
pub use error::{Error, Result};
pub use http::{HttpState, Proxy, router};
pub use metrics::{ExtraMetrics, Metrics};
pub use params::{parse_duration, parse_time};
pub use response::{HistogramPoint, InstantSample, Metric, Point, PromResponse, QueryData, RangeSeries, merge_pieces};
pub use service::{ExtraParams, InstantQuery, QueryService, RangeQuery};
pub use split::{Split, StepAlign, TenantParallelism, split_ranges};

/// The layers assembled from a [`FrontendConfig`] over a downstream service.
#[derive(Debug, Clone)]
pub struct Frontend {
    service: Arc<dyn QueryService>,
    metrics: Arc<Metrics>,
}

impl Frontend {
    /// `StepAlign` (when configured) ─► `Split` ─► `ResultsCache` (unless `type:
    /// none`) ─► `downstream`.
    pub fn new(cfg: &FrontendConfig, downstream: Arc<dyn QueryService>, metrics: Arc<Metrics>) -> Result<Self> {
        Self::with_tenant_parallelism(cfg, downstream, metrics, None)
    }

    /// [`Frontend::new`] with a per-tenant split parallelism (the tenants'
    /// `max_query_parallelism` limits).
    pub fn with_tenant_parallelism(
        cfg: &FrontendConfig,
        downstream: Arc<dyn QueryService>,
        metrics: Arc<Metrics>,
        per_tenant: Option<TenantParallelism>,
    ) -> Result<Self> {
        let mut service = downstream;
        if let Some(backend) = build_cache(&cfg.cache, metrics.clone())? {
            service = Arc::new(ResultsCache::new(service, backend, cfg.max_cache_freshness, metrics.clone()));
        }
        let interval = i64::try_from(cfg.split_interval.as_millis()).unwrap_or(i64::MAX);
        service = Arc::new(
            Split::new(service, interval, cfg.max_parallelism, metrics.clone()).with_tenant_parallelism(per_tenant),
        );
        if cfg.align_queries_with_step {
            service = Arc::new(StepAlign::new(service));
        }
        Ok(Frontend { service, metrics })
    }

    /// The outermost layer: what handlers call.
    pub fn service(&self) -> Arc<dyn QueryService> {
        self.service.clone()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
}

/// The configured cache backend; `None` for `type: none`.
pub fn build_cache(cfg: &CacheConfig, metrics: Arc<Metrics>) -> Result<Option<Arc<dyn CacheBackend>>> {
    Ok(match cfg {
        CacheConfig::None => None,
        CacheConfig::Memory(m) => Some(Arc::new(MemoryCache::new(m.max_size_bytes, m.ttl, metrics))),
        CacheConfig::Memcached(m) => Some(Arc::new(
            Memcached::new(memcached_options(m)).map_err(|e| Error::BadData(format!("frontend.cache: {e}")))?,
        )),
    })
}

#[cfg(test)]
mod tests;
