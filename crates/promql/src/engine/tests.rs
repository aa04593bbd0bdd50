use std::time::Duration;

use strata_model::{Labels, Sample, Series, TimeRange, stale_nan};

use super::*;
use crate::ErrorKind;
use crate::test_source::MemQuerier;

fn l(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

/// `http_requests_total{job, instance}` counting up by `step_inc` every 15s for 1h.
fn source() -> MemQuerier {
    let mut q = MemQuerier::new();
    for (job, inst, inc) in [("api", "0", 1.0), ("api", "1", 2.0), ("web", "0", 3.0)] {
        q.add(
            l(&[("__name__", "http_requests_total"), ("job", job), ("instance", inst)]),
            (0..240).map(|i| Sample::new(i * 15_000, i as f64 * inc)),
        );
    }
    q.add(
        l(&[("__name__", "up"), ("job", "api")]),
        [Sample::new(0, 1.0), Sample::new(60_000, 1.0), Sample::new(120_000, stale_nan())],
    );
    q
}

fn vector(v: &QueryValue) -> Vec<(String, f64)> {
    match v {
        QueryValue::Vector(v) => v.iter().map(|s| (s.labels.to_string(), s.v)).collect(),
        other => panic!("not a vector: {other:?}"),
    }
}

#[tokio::test]
async fn instant_selector_lookback_and_staleness() {
    let e = Engine::default();
    let q = source();
    let r = e.instant_query(&q, "up", 90_000).await.unwrap();
    assert_eq!(vector(&r.value), vec![("up{job=\"api\"}".to_string(), 1.0)]);
    // The stale marker at 120s ends the series at once.
    let r = e.instant_query(&q, "up", 130_000).await.unwrap();
    assert!(vector(&r.value).is_empty());
    // Without a marker a series lasts for the lookback delta (left-open).
    let r = e.instant_query(&q, "http_requests_total{instance=\"0\",job=\"api\"}", 3_585_000 + 300_000).await.unwrap();
    assert!(vector(&r.value).is_empty());
    let r = e.instant_query(&q, "http_requests_total{instance=\"0\",job=\"api\"}", 3_585_000 + 299_999).await.unwrap();
    assert_eq!(vector(&r.value).len(), 1);
}

#[tokio::test]
async fn range_query_rate_and_sum() {
    let e = Engine::default();
    let q = source();
    let r =
        e.range_query(&q, "sum by (job) (rate(http_requests_total[5m]))", 600_000, 1_200_000, 60_000).await.unwrap();
    let QueryValue::Matrix(m) = &r.value else { panic!("{:?}", r.value) };
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].labels.to_string(), "{job=\"api\"}");
    assert_eq!(m[0].samples.len(), 11);
    for s in &m[0].samples {
        assert!((s.v - 0.2).abs() < 1e-9, "{s:?}");
    }
    assert!(r.infos.is_empty());
}

#[tokio::test]
async fn binary_matching_and_topk_order() {
    let e = Engine::default();
    let q = source();
    let r = e.instant_query(&q, "http_requests_total * on(job) group_left() up", 60_000).await.unwrap();
    assert_eq!(vector(&r.value).len(), 2);
    let r = e.instant_query(&q, "topk(2, http_requests_total)", 60_000).await.unwrap();
    let v = vector(&r.value);
    assert_eq!(v.len(), 2);
    assert!(v[0].1 >= v[1].1);
    let r = e.instant_query(&q, "http_requests_total{job=\"web\" or instance=\"1\"}", 60_000).await.unwrap();
    assert_eq!(vector(&r.value).len(), 2);
}

#[tokio::test]
async fn offset_and_at_modifiers() {
    let e = Engine::default();
    let q = source();
    let r = e.instant_query(&q, "http_requests_total{job=\"web\"} offset 1m", 120_000).await.unwrap();
    assert_eq!(vector(&r.value)[0].1, 12.0);
    let r = e.instant_query(&q, "http_requests_total{job=\"web\"} @ 60", 600_000).await.unwrap();
    assert_eq!(vector(&r.value)[0].1, 12.0);
}

#[tokio::test]
async fn scalar_string_and_matrix_results() {
    let e = Engine::default();
    let q = MemQuerier::new();
    let r = e.instant_query(&q, "1 + 2", 1000).await.unwrap();
    assert_eq!(r.value, QueryValue::Scalar { t: 1000, v: 3.0 });
    assert_eq!(r.value.type_name(), "scalar");
    let r = e.instant_query(&q, "\"hi\"", 1000).await.unwrap();
    assert_eq!(r.value.type_name(), "string");
    let r = e.range_query(&q, "time()", 0, 2000, 1000).await.unwrap();
    assert_eq!(r.value.type_name(), "matrix");
    let q = source();
    let r = e.instant_query(&q, "up[2m]", 90_000).await.unwrap();
    let QueryValue::Matrix(m) = r.value else { panic!() };
    assert_eq!(m[0].samples.len(), 2);
}

#[tokio::test]
async fn errors_are_classified() {
    let e = Engine::default();
    let q = source();
    let err = e.instant_query(&q, "sum(", 0).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadData);
    let err = e.range_query(&q, "up", 0, 20_000_000, 1000).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadData);
    assert!(err.to_string().starts_with("exceeded maximum resolution of 11,000 points"));
    let err = e.range_query(&q, "\"x\"", 0, 1000, 1000).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadData);
    let err = e.instant_query(&q, "histogram_count(up)", 0).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadData);
    let err = e
        .instant_query(&q, "label_replace(http_requests_total, \"instance\", \"x\", \"\", \"\")", 60_000)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Execution);
    assert_eq!(err.to_string(), "vector cannot contain metrics with the same labelset");
}

#[tokio::test]
async fn sample_limit_and_timeout() {
    let q = source();
    let e = Engine::new(EngineOptions { max_samples: 100, ..Default::default() });
    let err = e.instant_query(&q, "http_requests_total[1h]", 3_600_000).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Execution);
    assert_eq!(err.to_string(), "query processing would load too many samples into memory in query execution");
    let e = Engine::new(EngineOptions { timeout: Duration::ZERO, ..Default::default() });
    let err = e.instant_query(&q, "up", 0).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
}

#[tokio::test]
async fn rate_on_non_counter_name_adds_info() {
    let e = Engine::default();
    let q = source();
    let r = e.instant_query(&q, "rate(up[5m])", 90_000).await.unwrap();
    assert_eq!(r.infos.len(), 1, "{:?}", r.infos);
    assert!(r.infos[0].starts_with("PromQL info: metric might not be a counter"));
}

#[tokio::test]
async fn prepared_query_runs_off_the_async_path() {
    let e = Engine::default();
    let q = source();
    let p = e.prepare_range(&q, "count(up)", 0, 60_000, 30_000).await.unwrap();
    let r = std::thread::spawn(move || p.execute()).join().unwrap().unwrap();
    let QueryValue::Matrix(m) = r.value else { panic!() };
    assert_eq!(m[0].samples.len(), 3);
}

/// Rough speed check: `cargo test -p strata-promql --release -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn perf_smoke() {
    let mut q = MemQuerier::new();
    for i in 0..1000 {
        let inst = i.to_string();
        q.add(
            l(&[("__name__", "req_total"), ("job", if i % 2 == 0 { "a" } else { "b" }), ("instance", &inst)]),
            (0..5760).map(|k| Sample::new(k * 15_000, (k * (i % 7 + 1)) as f64)),
        );
    }
    let e = Engine::default();
    for expr in [
        "count(req_total)",
        "sum by (job) (rate(req_total[5m]))",
        "sum by (job) (rate(req_total[1h]))",
        "avg_over_time(req_total[1h])",
        "max_over_time(req_total[1h])",
        "quantile_over_time(0.9, req_total[10m])",
        "histogram_quantile(0.9, sum by (le) (rate(req_total[5m])))",
        "req_total / on(instance) group_left req_total",
        "topk(5, req_total)",
    ] {
        let t = std::time::Instant::now();
        let r = e.range_query(&q, expr, 0, 86_400_000, 60_000).await.unwrap();
        let n = match &r.value {
            QueryValue::Matrix(m) => m.len(),
            _ => 0,
        };
        println!("{expr}: {n} series in {:?}", t.elapsed());
    }
}

#[tokio::test]
async fn limit_aggregations() {
    let e = Engine::default();
    let q = source();
    let count = |r: QueryResult| vector(&r.value).first().map(|x| x.1).unwrap_or(0.0);
    let r = e.instant_query(&q, "count(limitk by (job) (1, http_requests_total))", 60_000).await.unwrap();
    assert_eq!(count(r), 2.0);
    let r = e.instant_query(&q, "count(limitk(0, http_requests_total))", 60_000).await.unwrap();
    assert_eq!(count(r), 0.0);
    // A ratio and its negative complement split the input exactly.
    let r = e
        .instant_query(
            &q,
            "count(limit_ratio(0.3, http_requests_total) or limit_ratio(-0.7, http_requests_total))",
            60_000,
        )
        .await
        .unwrap();
    assert_eq!(count(r), 3.0);
    let r = e
        .instant_query(
            &q,
            "count(limit_ratio(0.3, http_requests_total) and limit_ratio(-0.7, http_requests_total))",
            60_000,
        )
        .await
        .unwrap();
    assert_eq!(count(r), 0.0);
    let r = e.instant_query(&q, "limit_ratio(1.5, http_requests_total)", 60_000).await.unwrap();
    assert_eq!(r.warnings.len(), 1);
}

#[tokio::test]
async fn value_aggregations() {
    let e = Engine::default();
    let q = source();
    // Values at 60s: 4, 8, 12.
    let r = e.instant_query(&q, "count_values(\"v\", http_requests_total)", 60_000).await.unwrap();
    assert_eq!(vector(&r.value).len(), 3);
    let r = e.instant_query(&q, "quantile(0.5, http_requests_total)", 60_000).await.unwrap();
    assert_eq!(vector(&r.value)[0].1, 8.0);
    let r = e.instant_query(&q, "stdvar(http_requests_total)", 60_000).await.unwrap();
    assert!((vector(&r.value)[0].1 - 32.0 / 3.0).abs() < 1e-9);
    let r = e.instant_query(&q, "avg without (instance) (http_requests_total)", 60_000).await.unwrap();
    assert_eq!(vector(&r.value), vec![("{job=\"api\"}".to_string(), 6.0), ("{job=\"web\"}".to_string(), 12.0)]);
}

#[tokio::test]
async fn label_functions_and_absent() {
    let e = Engine::default();
    let q = source();
    let r = e.instant_query(&q, "label_replace(up, \"svc\", \"$1-x\", \"job\", \"(.*)\")", 60_000).await.unwrap();
    assert_eq!(vector(&r.value)[0].0, "up{job=\"api\", svc=\"api-x\"}");
    let r = e.instant_query(&q, "label_join(up, \"j2\", \",\", \"job\", \"job\")", 60_000).await.unwrap();
    assert_eq!(vector(&r.value)[0].0, "up{j2=\"api,api\", job=\"api\"}");
    let r = e.instant_query(&q, "absent(nothing{job=\"x\", a=~\"b\"})", 60_000).await.unwrap();
    assert_eq!(vector(&r.value), vec![("{job=\"x\"}".to_string(), 1.0)]);
    let r = e.instant_query(&q, "absent(up)", 60_000).await.unwrap();
    assert!(vector(&r.value).is_empty());
}

#[test]
fn api_types_are_send_and_floats_format_like_go() {
    fn send<T: Send + 'static>(_: &T) {}
    let e = Engine::default();
    let q = MemQuerier::new();
    let fut = async move { e.instant_query(&q, "1", 0).await };
    fn send_fut<F: std::future::Future + Send>(_: &F) {}
    send_fut(&fut);
    send(&Engine::default());
    assert_eq!(crate::format_float(1e21), "1000000000000000000000");
    assert_eq!(crate::format_float(1e-7), "0.0000001");
    assert_eq!(crate::format_float(f64::INFINITY), "+Inf");
    assert_eq!(crate::format_float(-2.5), "-2.5");
}

/// Counts `select` calls on the wrapped querier.
#[derive(Debug)]
struct Counting {
    inner: MemQuerier,
    selects: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Querier for Counting {
    async fn select(&self, hints: &SelectHints, matchers: &[Matcher]) -> strata_model::Result<Vec<Series>> {
        self.selects.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.select(hints, matchers).await
    }
    async fn label_names(&self, range: TimeRange, matchers: &[Matcher]) -> strata_model::Result<Vec<String>> {
        self.inner.label_names(range, matchers).await
    }
    async fn label_values(
        &self,
        name: &str,
        range: TimeRange,
        matchers: &[Matcher],
    ) -> strata_model::Result<Vec<String>> {
        self.inner.label_values(name, range, matchers).await
    }
}

#[tokio::test]
async fn identical_selectors_are_fetched_once() {
    let q = Counting { inner: source(), selects: Default::default() };
    let e = Engine::default();
    let r = e.instant_query(&q, "up / up + on() group_left sum(up offset 1m)", 120_000).await.unwrap();
    assert_eq!(q.selects.load(std::sync::atomic::Ordering::Relaxed), 2);
    assert!(matches!(r.value, QueryValue::Vector(_)));
    fn send<T: Send + 'static>() {}
    send::<PreparedQuery>();
}

#[tokio::test]
async fn extreme_times_do_not_panic() {
    let e = Engine::default();
    let q = source();
    for expr in [
        "up @ 9223372036854775",
        "rate(up[5m] offset -100000000w)",
        "max_over_time(up[1w:1m] @ -9223372036854775)",
        "up offset 100000000w",
    ] {
        let _ = e.instant_query(&q, expr, 0).await;
        let _ = e.range_query(&q, expr, 0, 600_000, 60_000).await;
    }
    assert!(e.range_query(&q, "up", i64::MIN, i64::MAX, 1).await.is_err());
}

#[tokio::test]
async fn huge_subquery_is_refused_not_allocated() {
    let e = Engine::default();
    let q = source();
    let err = e.instant_query(&q, "max_over_time(up[1000y:1ms])", 0).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Execution);
}

#[tokio::test]
async fn metric_names_drop_at_once_unless_delayed() {
    let mut q = MemQuerier::new();
    for name in ["a_total", "b_total"] {
        q.add(l(&[("__name__", name), ("job", "x")]), (0..20).map(|i| Sample::new(i * 15_000, i as f64)));
    }
    let query = "label_replace(rate({job=\"x\"}[1m]), \"n\", \"$1\", \"__name__\", \"(.*)\")";
    // Default: the name is gone before label_replace, so both series collide.
    let err = Engine::default().instant_query(&q, query, 240_000).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Execution);
    let delayed = Engine::new(EngineOptions { delayed_name_removal: true, ..Default::default() });
    let r = delayed.instant_query(&q, query, 240_000).await.unwrap();
    let got: Vec<String> = vector(&r.value).into_iter().map(|x| x.0).collect();
    assert_eq!(got, vec!["{job=\"x\", n=\"a_total\"}", "{job=\"x\", n=\"b_total\"}"]);
    // Aggregating by the name works either way for unmarked series.
    let r = Engine::default().instant_query(&q, "sum by (__name__) (a_total)", 240_000).await.unwrap();
    assert_eq!(vector(&r.value)[0].0, "a_total");
}

#[test]
fn selectors_parse_into_matcher_sets() {
    let sets = parse_selector("up{job=\"a\" or job=~\"b.*\"}").unwrap();
    assert_eq!(sets.len(), 2);
    assert_eq!(sets[0][0].to_string(), "__name__=\"up\"");
    assert!(sets[1][1].matches("bx"));
    assert_eq!(parse_selector("rate(up[5m])").unwrap_err().kind(), ErrorKind::BadData);
    assert_eq!(parse_selector("up{").unwrap_err().kind(), ErrorKind::BadData);
}

/// Big enough to take the multi-threaded path of range functions; the result must
/// match instant queries at the same steps.
#[tokio::test]
async fn parallel_range_functions_match_instant_queries() {
    let mut q = MemQuerier::new();
    for i in 0..600 {
        let inst = i.to_string();
        q.add(
            l(&[("__name__", "c_total"), ("instance", &inst)]),
            (0..2000).map(|k| Sample::new(k * 15_000, ((k * (i % 5 + 1)) % 997) as f64)),
        );
    }
    let e = Engine::default();
    let r = e.range_query(&q, "rate(c_total[2m])", 0, 1999 * 15_000, 15_000).await.unwrap();
    let QueryValue::Matrix(m) = r.value else { panic!() };
    assert_eq!(m.len(), 600);
    for t in [120_000, 1_500_000, 29_985_000] {
        let inst = e.instant_query(&q, "rate(c_total[2m])", t).await.unwrap();
        let QueryValue::Vector(v) = inst.value else { panic!() };
        for s in &v {
            let series = m.iter().find(|x| x.labels == s.labels).unwrap();
            let p = series.samples.iter().find(|p| p.t == t).unwrap();
            assert!((p.v - s.v).abs() <= 1e-9 * s.v.abs().max(1.0), "{} at {t}: {} vs {}", s.labels, p.v, s.v);
        }
    }
}
