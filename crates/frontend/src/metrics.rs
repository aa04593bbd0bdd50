//! The frontend's metrics. Names are the constants below; counters get `_total`
//! appended on exposition. [`Metrics::register`] adds them to any registry (the
//! standalone frontend's own, or a server's).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub(crate) const QUERIES: &str = "strata_frontend_queries";
pub(crate) const QUERY_DURATION: &str = "strata_frontend_query_duration_seconds";
pub(crate) const SPLIT_PIECES: &str = "strata_frontend_split_pieces";
pub(crate) const CACHE_HITS: &str = "strata_frontend_cache_hits";
pub(crate) const CACHE_MISSES: &str = "strata_frontend_cache_misses";
pub(crate) const CACHE_ERRORS: &str = "strata_frontend_cache_errors";
pub(crate) const CACHE_SKIPPED: &str = "strata_frontend_cache_skipped";
pub(crate) const CACHE_MEMORY_BYTES: &str = "strata_frontend_cache_memory_bytes";
pub(crate) const DOWNSTREAM_REQUESTS: &str = "strata_frontend_downstream_requests";

pub(crate) type L = Vec<(&'static str, String)>;

/// Metrics shared by the layers of one frontend.
#[derive(Debug)]
pub struct Metrics {
    /// Queries received, by `kind` (`range`, `instant`) and outcome `status`.
    pub(crate) queries: Family<L, Counter>,
    pub(crate) query_duration: Family<L, Histogram, fn() -> Histogram>,
    /// Range query pieces after splitting (one for a query not split).
    pub(crate) split_pieces: Counter,
    pub(crate) cache_hits: Family<L, Counter>,
    pub(crate) cache_misses: Family<L, Counter>,
    /// Failed cache operations, by backend and `op` (`get`, `set`); each is a miss
    /// or a store not done, never an error to the client.
    pub(crate) cache_errors: Family<L, Counter>,
    /// Pieces not looked up or not stored, by `reason` (`fresh`, `warnings`, `too_large`).
    pub(crate) cache_skipped: Family<L, Counter>,
    pub(crate) cache_memory_bytes: Gauge,
    pub(crate) downstream_requests: Family<L, Counter>,
    /// Metrics of other parts of the process (the limits' overrides), rendered too.
    extra: std::sync::OnceLock<ExtraMetrics>,
}

/// Registers further metrics into the frontend's registry at each render.
#[derive(Clone)]
pub struct ExtraMetrics(pub std::sync::Arc<dyn Fn(&mut Registry) + Send + Sync>);

impl std::fmt::Debug for ExtraMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExtraMetrics")
    }
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            queries: Family::default(),
            query_duration: Family::new_with_constructor(duration_histogram),
            split_pieces: Counter::default(),
            cache_hits: Family::default(),
            cache_misses: Family::default(),
            cache_errors: Family::default(),
            cache_skipped: Family::default(),
            cache_memory_bytes: Gauge::default(),
            downstream_requests: Family::default(),
            extra: std::sync::OnceLock::new(),
        }
    }
}

impl Metrics {
    /// Adds every metric to `registry` (the metrics are shared handles).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(QUERIES, "Queries received by the frontend, by kind and status", self.queries.clone());
        registry.register(QUERY_DURATION, "Query latency through the frontend, by kind", self.query_duration.clone());
        registry.register(SPLIT_PIECES, "Range query pieces after splitting", self.split_pieces.clone());
        registry.register(CACHE_HITS, "Range query pieces answered from the results cache", self.cache_hits.clone());
        registry.register(CACHE_MISSES, "Range query pieces looked up and not found", self.cache_misses.clone());
        registry.register(
            CACHE_ERRORS,
            "Failed results cache operations (treated as misses), by backend and op",
            self.cache_errors.clone(),
        );
        registry.register(
            CACHE_SKIPPED,
            "Range query pieces not cached, by reason (fresh, warnings, too_large)",
            self.cache_skipped.clone(),
        );
        registry.register(
            CACHE_MEMORY_BYTES,
            "Bytes held by the in-memory results cache",
            self.cache_memory_bytes.clone(),
        );
        registry.register(
            DOWNSTREAM_REQUESTS,
            "Requests sent to the downstream, by endpoint and HTTP status (0: unreachable)",
            self.downstream_requests.clone(),
        );
    }

    /// Adds metrics of another part of the process to [`Metrics::render`] (once;
    /// later calls are ignored).
    pub fn render_also(&self, extra: ExtraMetrics) {
        let _ = self.extra.set(extra);
    }

    /// A registry holding these metrics (and [`Metrics::render_also`]'s), rendered in
    /// Prometheus text format.
    pub fn render(&self) -> String {
        let mut r = Registry::default();
        self.register(&mut r);
        if let Some(extra) = self.extra.get() {
            (extra.0)(&mut r);
        }
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &r);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_includes_extra_metrics() {
        let m = Metrics::default();
        let g: Gauge = Gauge::default();
        g.set(7);
        let extra = g.clone();
        m.render_also(ExtraMetrics(std::sync::Arc::new(move |r: &mut Registry| {
            r.register("strata_test_extra", "a test gauge", extra.clone())
        })));
        let text = m.render();
        assert!(text.contains("strata_test_extra 7"), "{text}");
        assert!(text.contains("strata_frontend_split_pieces_total"), "{text}");
    }
}
