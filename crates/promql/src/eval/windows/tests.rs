//! Function families over downsampled windows against the same functions over the
//! raw samples, on random series (counters with resets, gauges, gaps, stale markers).

use async_trait::async_trait;
use proptest::prelude::*;
use strata_model::aggr::aggregate;
use strata_model::{
    Labels, Matcher, Querier, Result, Sample, SelectHints, Series, SourceResolution, TimeRange, WindowedSeries,
    stale_nan,
};

use crate::test_source::MemQuerier;
use crate::{Engine, EngineOptions, QueryValue};

const RES: i64 = 300_000;
const H: i64 = 3_600_000;

/// The raw data of a [`MemQuerier`] answered as windows of [`RES`] wherever the
/// caller allows that resolution: what a bucket of 5m copies does.
#[derive(Debug)]
struct Downsampled(MemQuerier);

#[async_trait]
impl Querier for Downsampled {
    async fn select(&self, hints: &SelectHints, matchers: &[Matcher]) -> Result<Vec<Series>> {
        self.0.select(hints, matchers).await
    }

    async fn select_windows(&self, hints: &SelectHints, matchers: &[Matcher]) -> Result<Vec<WindowedSeries>> {
        if hints.max_resolution < RES {
            return Ok(self.0.select(hints, matchers).await?.into_iter().map(WindowedSeries::from).collect());
        }
        let wide = SelectHints { range: TimeRange::new(hints.range.start - 2 * RES, hints.range.end), ..hints.clone() };
        Ok(self
            .0
            .select(&wide, matchers)
            .await?
            .into_iter()
            .map(|s| WindowedSeries {
                labels: s.labels,
                samples: Vec::new(),
                windows: aggregate(&s.samples, RES),
                resolution: RES,
            })
            .collect())
    }

    async fn label_names(&self, range: TimeRange, matchers: &[Matcher]) -> Result<Vec<String>> {
        self.0.label_names(range, matchers).await
    }

    async fn label_values(&self, name: &str, range: TimeRange, matchers: &[Matcher]) -> Result<Vec<String>> {
        self.0.label_values(name, range, matchers).await
    }
}

/// One random series: a counter (with resets) or a gauge, scraped every 15 s with
/// a jitter that never lands on a window edge, with gaps and stale markers.
fn series() -> impl Strategy<Value = Vec<Sample>> {
    let step = (any::<bool>(), 1u32..14_999, proptest::collection::vec((0u8..100, -50.0f64..50.0), 200..1300));
    step.prop_map(|(counter, jitter, steps)| {
        let mut out = Vec::new();
        let mut v: f64 = 0.0;
        for (k, (roll, x)) in steps.into_iter().enumerate() {
            let t = k as i64 * 15_000 + i64::from(jitter);
            match roll {
                0..=2 => continue,                          // a missed scrape
                3 => out.push(Sample::new(t, stale_nan())), // the target went away
                4 if counter => v = x.abs(),                // a counter reset
                _ if counter => v += x.abs(),
                _ => v = x,
            }
            if roll != 3 {
                out.push(Sample::new(t, v));
            }
        }
        out
    })
}

fn source(data: &[Vec<Sample>]) -> MemQuerier {
    let mut q = MemQuerier::new();
    for (i, s) in data.iter().enumerate() {
        q.add(Labels::from_pairs([("__name__", "m"), ("i", i.to_string().as_str())]), s.iter().copied());
    }
    q
}

fn engine(r: SourceResolution) -> Engine {
    Engine::new(EngineOptions { max_source_resolution: r, ..Default::default() })
}

/// `(labels, t, v)` of a matrix answer.
fn points(v: &QueryValue) -> Vec<(String, i64, f64)> {
    let QueryValue::Matrix(m) = v else { panic!("not a matrix: {v:?}") };
    m.iter().flat_map(|s| s.samples.iter().map(move |p| (s.labels.to_string(), p.t, p.v))).collect()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= rel * a.abs().max(b.abs())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// At step times and ranges that are whole windows, every function family over
    /// 5m windows equals the raw answer.
    #[test]
    fn window_functions_equal_raw_on_the_window_grid(data in proptest::collection::vec(series(), 1..4)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let raw = source(&data);
        let down = Downsampled(raw.clone());
        let exact = [
            "sum_over_time(m[1h])", "count_over_time(m[1h])", "min_over_time(m[1h])", "max_over_time(m[1h])",
            "resets(m[1h])", "increase(m[1h])", "rate(m[1h])", "avg_over_time(m[1h])", "last_over_time(m[1h])",
            "present_over_time(m[1h])", "sum by (__name__) (increase(m[2h]))",
        ];
        for q in exact {
            let want = rt.block_on(engine(SourceResolution::Raw).range_query(&raw, q, H, 5 * H, H)).unwrap();
            let got = rt.block_on(engine(SourceResolution::Auto).range_query(&down, q, H, 5 * H, H)).unwrap();
            prop_assert!(got.infos.iter().any(|i| i.contains("downsampled data at resolution 5m")), "{q}: {:?}", got.infos);
            let (want, got) = (points(&want.value), points(&got.value));
            prop_assert_eq!(want.len(), got.len(), "{}: {:?} vs {:?}", q, want, got);
            for (w, g) in want.iter().zip(&got) {
                prop_assert!(w.0 == g.0 && w.1 == g.1 && close(w.2, g.2, 1e-9), "{}: raw {:?} windows {:?}", q, w, g);
            }
        }
    }

    /// A plain selector over windows gives the raw value wherever raw has one (the
    /// last sample before the step is its window's last), and keeps no stale series.
    #[test]
    fn plain_selectors_show_the_last_value(data in proptest::collection::vec(series(), 1..3)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let raw = source(&data);
        let down = Downsampled(raw.clone());
        let want = rt.block_on(engine(SourceResolution::Raw).range_query(&raw, "m", H, 5 * H, H)).unwrap();
        let got = rt.block_on(engine(SourceResolution::Auto).range_query(&down, "m", 2 * H, 6 * H, 2 * H)).unwrap();
        let got = points(&got.value);
        for w in points(&want.value).into_iter().filter(|w| w.1 % (2 * H) == 0) {
            let g = got.iter().find(|g| g.0 == w.0 && g.1 == w.1);
            prop_assert!(g.is_some_and(|g| g.2 == w.2), "raw {:?}, windows {:?}", w, g);
        }
    }
}

/// A counter reset between two windows (the last sample of one window above the
/// first of the next) is counted and corrected.
#[tokio::test]
async fn a_reset_between_windows_is_never_lost() {
    let mut q = MemQuerier::new();
    let samples: Vec<Sample> = (0..240)
        .map(|k| {
            let t = k * 15_000 + 7;
            // 100 + k until the window at 30m, then from 0 again.
            Sample::new(t, if t < 1_800_000 { 100.0 + k as f64 } else { (k - 120) as f64 })
        })
        .collect();
    q.add(Labels::from_pairs([("__name__", "c_total")]), samples);
    let down = Downsampled(q.clone());
    for expr in ["resets(c_total[1h])", "increase(c_total[1h])"] {
        let want = engine(SourceResolution::Raw).range_query(&q, expr, H, H, H).await.unwrap();
        let got = engine(SourceResolution::Auto).range_query(&down, expr, H, H, H).await.unwrap();
        assert_eq!(points(&want.value).len(), 1);
        let (w, g) = (points(&want.value)[0].2, points(&got.value)[0].2);
        assert!(close(w, g, 1e-9), "{expr}: raw {w}, windows {g}");
    }
    let got = engine(SourceResolution::Auto).range_query(&down, "resets(c_total[1h])", H, H, H).await.unwrap();
    assert_eq!(points(&got.value)[0].2, 1.0);
}

/// A range shorter than two windows is widened so every step has data, with sums
/// and increases scaled back to the asked range instead of inflated.
#[tokio::test]
async fn short_ranges_are_widened_not_inflated() {
    let mut q = MemQuerier::new();
    q.add(Labels::from_pairs([("__name__", "c_total")]), (0..960).map(|k| Sample::new(k * 15_000 + 7, k as f64)));
    let down = Downsampled(q.clone());
    let e = Engine::new(EngineOptions { max_source_resolution: SourceResolution::UpTo(RES), ..Default::default() });
    // An explicit 5m with [5m] ranges: the engine caps the resolution at range / 2,
    // so this reads raw data.
    let got = e.range_query(&down, "increase(c_total[5m])", H, 3 * H, H).await.unwrap();
    assert!(got.infos.is_empty(), "{:?}", got.infos);
    // Windows forced on a short range (a store holding only 5m data): 4 per 5m.
    let r = crate::eval::RangeVal { series: Vec::new(), range: RES, offset: 0, at: None };
    let windows = aggregate(&q.series()[0].samples, RES);
    let x = crate::eval::RSeries {
        labels: Labels::empty(),
        drop_name: false,
        samples: Vec::new(),
        windows,
        resolution: RES,
    };
    let steps = crate::eval::Steps { start: H, end: 3 * H, step: H, n: 3 };
    let inc = super::eval(super::F::Increase, &x, &r, &steps).unwrap();
    let sum = super::eval(super::F::CountOverTime, &x, &r, &steps).unwrap();
    for (i, c) in inc.iter().zip(&sum) {
        // 20 samples per 5m, one per 15 s increasing by 1: an increase of ~20.
        let (i, c) = (i.unwrap(), c.unwrap());
        assert!((i - 20.0).abs() < 1.0, "increase {i}");
        assert!((c - 20.0).abs() < 0.5, "count {c}");
    }
}
