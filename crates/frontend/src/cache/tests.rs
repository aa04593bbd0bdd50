use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use super::*;
use crate::response::{Metric, Point, QueryData, RangeSeries};
use crate::service::ExtraParams;

/// A downstream that answers one point per piece (at its start) and records calls.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    pub(crate) calls: Mutex<Vec<(i64, i64)>>,
    pub(crate) warn: bool,
}

#[async_trait]
impl QueryService for Recorder {
    async fn range(&self, _: &TenantId, q: &RangeQuery) -> Result<PromResponse> {
        self.calls.lock().push((q.start, q.end));
        let s = RangeSeries {
            metric: Metric(vec![("q".into(), q.query.clone())]),
            values: vec![Point { t: q.start, v: q.end.to_string() }],
            histograms: vec![],
        };
        let mut r = PromResponse::new(QueryData::Matrix(vec![s]));
        if self.warn {
            r.warnings.push("partial".into());
        }
        Ok(r)
    }

    async fn instant(&self, _: &TenantId, _: &InstantQuery) -> Result<PromResponse> {
        Ok(PromResponse::new(QueryData::Vector(vec![])))
    }
}

fn query(start: i64, end: i64, params: &[(&str, &str)]) -> RangeQuery {
    RangeQuery {
        query: "up".into(),
        start,
        end,
        step: 1000,
        params: ExtraParams::new(params.iter().map(|(k, v)| (k.to_string(), v.to_string()))),
    }
}

fn counter(
    f: &prometheus_client::metrics::family::Family<crate::metrics::L, prometheus_client::metrics::counter::Counter>,
    l: &[(&'static str, &str)],
) -> u64 {
    f.get_or_create(&l.iter().map(|(k, v)| (*k, v.to_string())).collect()).get()
}

#[tokio::test]
async fn old_pieces_are_cached_fresh_ones_and_warnings_are_not() {
    let metrics = Arc::new(Metrics::default());
    let rec = Arc::new(Recorder::default());
    let backend = Arc::new(MemoryCache::new(1 << 20, Duration::from_secs(60), metrics.clone()));
    let cache = ResultsCache::new(rec.clone(), backend, Duration::from_secs(600), metrics.clone());
    let t = TenantId::new("t").unwrap();
    let now = strata_model::now_ms();
    let old = query(now - 3_600_000, now - 1_200_000, &[]);
    let fresh = query(now - 3_600_000, now - 60_000, &[]);
    let a = cache.range(&t, &old).await.unwrap();
    assert_eq!(cache.range(&t, &old).await.unwrap(), a);
    cache.range(&t, &fresh).await.unwrap();
    cache.range(&t, &fresh).await.unwrap();
    assert_eq!(rec.calls.lock().len(), 3, "the old piece once, the fresh one twice");
    assert_eq!(counter(&metrics.cache_hits, &[("backend", "memory")]), 1);
    assert_eq!(counter(&metrics.cache_misses, &[("backend", "memory")]), 1);
    assert_eq!(counter(&metrics.cache_skipped, &[("reason", "fresh")]), 2);

    // Another tenant, other read parameters, another end: other keys.
    let u = TenantId::new("u").unwrap();
    cache.range(&u, &old).await.unwrap();
    cache.range(&t, &query(old.start, old.end, &[("dedup", "false")])).await.unwrap();
    cache.range(&t, &query(old.start, old.end, &[("replicaLabels[]", "r")])).await.unwrap();
    cache.range(&t, &query(old.start, old.end, &[("max_source_resolution", "5m")])).await.unwrap();
    cache.range(&t, &query(old.start, old.end - 1000, &[])).await.unwrap();
    assert_eq!(rec.calls.lock().len(), 8);
    // A timeout does not change the answer: same key.
    cache.range(&t, &query(old.start, old.end, &[("timeout", "5s")])).await.unwrap();
    assert_eq!(rec.calls.lock().len(), 8);

    let warn = Arc::new(Recorder { warn: true, ..Recorder::default() });
    let backend = Arc::new(MemoryCache::new(1 << 20, Duration::from_secs(60), metrics.clone()));
    let cache = ResultsCache::new(warn.clone(), backend, Duration::from_secs(600), metrics.clone());
    cache.range(&t, &old).await.unwrap();
    cache.range(&t, &old).await.unwrap();
    assert_eq!(warn.calls.lock().len(), 2);
    assert_eq!(counter(&metrics.cache_skipped, &[("reason", "warnings")]), 2);
}

/// A backend that always fails.
#[derive(Debug, Default)]
struct Broken(AtomicUsize);

#[async_trait]
impl CacheBackend for Broken {
    fn name(&self) -> &'static str {
        "broken"
    }
    async fn get(&self, _: &str) -> Result<Option<Vec<u8>>, CacheError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Err(CacheError("down".into()))
    }
    async fn set(&self, _: &str, _: Vec<u8>) -> Result<bool, CacheError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Err(CacheError("down".into()))
    }
}

#[tokio::test]
async fn a_failing_backend_is_a_miss_not_an_error() {
    let metrics = Arc::new(Metrics::default());
    let rec = Arc::new(Recorder::default());
    let broken = Arc::new(Broken::default());
    let cache = ResultsCache::new(rec.clone(), broken.clone(), Duration::from_secs(600), metrics.clone());
    let now = strata_model::now_ms();
    let q = query(now - 3_600_000, now - 1_200_000, &[]);
    let t = TenantId::new("t").unwrap();
    assert_eq!(cache.range(&t, &q).await.unwrap(), rec.range(&t, &q).await.unwrap());
    assert_eq!(broken.0.load(Ordering::Relaxed), 2);
    assert_eq!(counter(&metrics.cache_errors, &[("backend", "broken"), ("op", "get")]), 1);
    assert_eq!(counter(&metrics.cache_errors, &[("backend", "broken"), ("op", "set")]), 1);
}

#[test]
fn keys_separate_fields() {
    let t = TenantId::new("t").unwrap();
    let mut a = query(1, 2, &[]);
    a.query = "a|1".into();
    let mut b = query(1, 2, &[]);
    b.query = "a".into();
    b.step = 1;
    assert_ne!(cache_key(&t, &a), cache_key(&t, &b));
}
