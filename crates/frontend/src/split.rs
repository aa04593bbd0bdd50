//! Splitting range queries at interval boundaries (UTC days by default), running
//! the pieces concurrently, and optional step alignment.
//!
//! A piece keeps the original step grid: the first piece starts at `start`, each
//! next one at the first grid point at or after a boundary, and each ends at the
//! last grid point before the next boundary (the last at `end`). Every grid point
//! of the query is in exactly one piece, so concatenating the pieces' series gives
//! the unsplit answer. Queries using `@ start()` or `@ end()` are not split, since
//! those refer to the range they are evaluated over.

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;
use strata_model::TenantId;

use crate::error::Result;
use crate::metrics::Metrics;
use crate::response::{PromResponse, merge_pieces};
use crate::service::{InstantQuery, QueryService, RangeQuery};

/// The pieces of `[start, end]` on the grid `start + k * step`, cut at multiples of
/// `interval` (milliseconds since the epoch, so UTC midnights for 24h). Each piece
/// holds at least one grid point. `interval <= 0` gives the whole range.
pub fn split_ranges(start: i64, end: i64, step: i64, interval: i64) -> Vec<(i64, i64)> {
    if interval <= 0 || step <= 0 || end < start {
        return vec![(start, end)];
    }
    let mut out = Vec::new();
    let mut s = start;
    loop {
        let boundary = s.div_euclid(interval).checked_add(1).and_then(|n| n.checked_mul(interval));
        let Some(boundary) = boundary.filter(|&b| b <= end) else {
            out.push((s, end));
            return out;
        };
        // The last grid point before the boundary (`s` itself is before it).
        let e = s + (boundary - 1 - s) / step * step;
        match e.checked_add(step) {
            Some(next) if next <= end => {
                out.push((s, e));
                s = next;
            }
            // No grid point after `e`: the last piece, ending at `end` like the query.
            _ => {
                out.push((s, end));
                return out;
            }
        }
    }
}

/// Whether `query` may be split: it parses, and it uses neither `@ start()` nor
/// `@ end()`. A query that does not parse goes down whole, so the client gets the
/// downstream's own parse error. (Matching the printed expression can only find
/// too much, inside a string literal, which costs a split, never correctness.)
pub(crate) fn splittable(query: &str) -> bool {
    match promql_parser::parser::parse(query) {
        Ok(expr) => {
            let text = expr.to_string();
            !text.contains("@ start()") && !text.contains("@ end()")
        }
        Err(_) => false,
    }
}

/// The split layer: range queries cut by [`split_ranges`], at most
/// `max_parallelism` pieces in flight per query, merged by [`merge_pieces`].
pub struct Split<S> {
    inner: S,
    interval_ms: i64,
    max_parallelism: usize,
    per_tenant: Option<TenantParallelism>,
    metrics: Arc<Metrics>,
}

/// A tenant's `max_query_parallelism` (0: the frontend's `max_parallelism`), asked
/// per query, so limits changed at run time apply to the next query.
pub type TenantParallelism = Arc<dyn Fn(&TenantId) -> usize + Send + Sync>;

struct Opaque;
impl std::fmt::Debug for Opaque {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fn(&TenantId) -> usize")
    }
}

impl<S: QueryService> Split<S> {
    pub fn new(inner: S, interval_ms: i64, max_parallelism: usize, metrics: Arc<Metrics>) -> Self {
        Split { inner, interval_ms, max_parallelism: max_parallelism.max(1), per_tenant: None, metrics }
    }

    /// Per-tenant parallelism instead of `max_parallelism` where it is not 0.
    pub fn with_tenant_parallelism(mut self, per_tenant: Option<TenantParallelism>) -> Self {
        self.per_tenant = per_tenant;
        self
    }

    fn parallelism(&self, tenant: &TenantId) -> usize {
        match self.per_tenant.as_ref().map(|f| f(tenant)) {
            Some(n) if n > 0 => n,
            _ => self.max_parallelism,
        }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for Split<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Split")
            .field("inner", &self.inner)
            .field("interval_ms", &self.interval_ms)
            .field("max_parallelism", &self.max_parallelism)
            .field("per_tenant", &self.per_tenant.as_ref().map(|_| Opaque))
            .finish()
    }
}

#[async_trait]
impl<S: QueryService> QueryService for Split<S> {
    async fn range(&self, tenant: &TenantId, q: &RangeQuery) -> Result<PromResponse> {
        let pieces = if splittable(&q.query) {
            split_ranges(q.start, q.end, q.step, self.interval_ms)
        } else {
            vec![(q.start, q.end)]
        };
        self.metrics.split_pieces.inc_by(pieces.len() as u64);
        if pieces.len() == 1 {
            return self.inner.range(tenant, q).await;
        }
        // `buffered` keeps the pieces in time order; the first error drops the rest.
        let answers: Vec<PromResponse> = futures::stream::iter(pieces)
            .map(|(s, e)| {
                let piece = q.with_range(s, e);
                async move { self.inner.range(tenant, &piece).await }
            })
            .buffered(self.parallelism(tenant))
            .try_collect()
            .await?;
        merge_pieces(answers)
    }

    async fn instant(&self, tenant: &TenantId, q: &InstantQuery) -> Result<PromResponse> {
        self.inner.instant(tenant, q).await
    }
}

/// Step alignment (Mimir's `align_queries_with_step`): `start` and `end` rounded
/// down to multiples of `step`, so that dashboards refreshing at any moment ask for
/// the same grid. This changes answers (the grid moves), hence off by default.
#[derive(Debug)]
pub struct StepAlign<S> {
    inner: S,
}

impl<S: QueryService> StepAlign<S> {
    pub fn new(inner: S) -> Self {
        StepAlign { inner }
    }
}

#[async_trait]
impl<S: QueryService> QueryService for StepAlign<S> {
    async fn range(&self, tenant: &TenantId, q: &RangeQuery) -> Result<PromResponse> {
        let align = |t: i64| t - t.rem_euclid(q.step);
        let aligned = q.with_range(align(q.start), align(q.end));
        self.inner.range(tenant, &aligned).await
    }

    async fn instant(&self, tenant: &TenantId, q: &InstantQuery) -> Result<PromResponse> {
        self.inner.instant(tenant, q).await
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A downstream that records how many pieces were in flight at most.
    #[derive(Debug, Default)]
    struct Peak {
        now: std::sync::atomic::AtomicUsize,
        peak: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl QueryService for Peak {
        async fn range(&self, _: &TenantId, _: &RangeQuery) -> Result<PromResponse> {
            use std::sync::atomic::Ordering::SeqCst;
            let n = self.now.fetch_add(1, SeqCst) + 1;
            self.peak.fetch_max(n, SeqCst);
            // Pending once, so every piece `buffered` admits starts before any ends.
            tokio::task::yield_now().await;
            self.now.fetch_sub(1, SeqCst);
            Err(crate::Error::BadData("no answer".into()))
        }
        async fn instant(&self, _: &TenantId, _: &InstantQuery) -> Result<PromResponse> {
            unreachable!("not asked")
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn tenant_parallelism_bounds_pieces_in_flight() {
        const DAY: i64 = 86_400_000;
        let q = RangeQuery { query: "up".into(), start: 0, end: 9 * DAY, step: 60_000, params: Default::default() };
        let per_tenant: TenantParallelism = Arc::new(|t: &TenantId| if t.as_str() == "small" { 2 } else { 0 });
        for (tenant, want) in [("small", 2), ("other", 5)] {
            let peak = Arc::new(Peak::default());
            let split = Split::new(peak.clone(), DAY, 5, Arc::new(Metrics::default()))
                .with_tenant_parallelism(Some(per_tenant.clone()));
            let t = TenantId::new(tenant).unwrap();
            // Every piece fails; `buffered` has started `want` of them by then.
            assert!(split.range(&t, &q).await.is_err());
            assert_eq!(peak.peak.load(std::sync::atomic::Ordering::SeqCst), want, "{tenant}");
        }
    }

    const DAY: i64 = 86_400_000;

    #[test]
    fn pieces_start_at_start_then_at_the_first_step_after_each_midnight() {
        let m = 20_000 * DAY; // a UTC midnight
        let step = 7 * 60_000;
        let p = split_ranges(m - 3_600_000 + 17_000, m + DAY + 5_000_000, step, DAY);
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].0, m - 3_600_000 + 17_000);
        assert!(p[0].1 < m && p[0].1 + step >= m);
        assert!(p[1].0 >= m && p[1].0 - step < m && (p[1].0 - p[0].0) % step == 0);
        assert!(p[1].1 < m + DAY && p[1].1 + step >= m + DAY);
        assert_eq!(p[2].1, m + DAY + 5_000_000);
        // A grid point exactly at midnight opens the next piece.
        assert_eq!(split_ranges(m - 60_000, m + 60_000, 60_000, DAY), vec![(m - 60_000, m - 60_000), (m, m + 60_000)]);
        // Within one day, or with splitting off: one piece.
        assert_eq!(split_ranges(m, m + 10, 1, DAY), vec![(m, m + 10)]);
        assert_eq!(split_ranges(m, m + 3 * DAY, 1000, 0), vec![(m, m + 3 * DAY)]);
        // Before the epoch, boundaries are still midnights.
        assert_eq!(
            split_ranges(-DAY - 1000, -DAY + 1000, 1000, DAY),
            vec![(-DAY - 1000, -DAY - 1000), (-DAY, -DAY + 1000)]
        );
        // A step longer than a day: one point per piece.
        assert_eq!(split_ranges(m, m + 3 * DAY, 2 * DAY, DAY), vec![(m, m), (m + 2 * DAY, m + 3 * DAY)]);
    }

    #[test]
    fn at_start_and_end_are_not_split() {
        assert!(splittable("rate(x[5m] @ 1700000000 offset 1h)"));
        assert!(!splittable("x @ start()"));
        assert!(!splittable("max_over_time(x[1h:5m] @ end())"));
        assert!(!splittable("sum(("));
    }

    proptest! {
        #[test]
        fn pieces_cover_the_grid_exactly_once(
            start in -3 * DAY..3 * DAY, len in 0..5 * DAY, step in 1i64..2 * DAY, interval in prop_oneof![Just(DAY), 1i64..DAY],
        ) {
            prop_assume!(len / step < 20_000);
            let end = start + len;
            let pieces = split_ranges(start, end, step, interval);
            let grid: Vec<i64> = (0..).map(|k| start + k * step).take_while(|&t| t <= end).collect();
            let mut got = Vec::new();
            for (i, &(s, e)) in pieces.iter().enumerate() {
                prop_assert!(s <= e);
                prop_assert_eq!((s - start) % step, 0);
                if i + 1 < pieces.len() {
                    prop_assert_eq!((e - start) % step, 0);
                    // Inside one interval.
                    prop_assert_eq!(s.div_euclid(interval), e.div_euclid(interval));
                } else {
                    prop_assert_eq!(e, end);
                }
                got.extend((0..).map(|k| s + k * step).take_while(|&t| t <= e));
            }
            prop_assert_eq!(got, grid);
            prop_assert_eq!(pieces[0].0, start);
        }
    }
}
