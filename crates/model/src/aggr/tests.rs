use super::*;

fn s(t: i64, v: f64) -> Sample {
    Sample::new(t, v)
}

#[test]
fn windows_are_aligned_and_skip_stale_markers() {
    let res = 300_000;
    let raw = [
        s(290_000, 5.0),
        s(300_000, 1.0),
        s(315_000, crate::stale_nan()),
        s(330_000, 3.0),
        s(650_000, crate::stale_nan()),
    ];
    let w = aggregate(&raw, res);
    assert_eq!(w.len(), 3);
    assert_eq!((w[0].t, w[0].count, w[0].sum), (0, 1, 5.0));
    assert_eq!((w[1].t, w[1].count, w[1].sum, w[1].min, w[1].max), (300_000, 2, 4.0, 1.0, 3.0));
    assert_eq!((w[1].first_t, w[1].last_t, w[1].stale_end), (300_000, 330_000, false));
    assert_eq!((w[2].t, w[2].count, w[2].sum, w[2].stale_end), (600_000, 0, 0.0, true));
    assert!(w[2].min.is_nan() && w[2].last.is_nan());
    // The reset from 5 (window 0) to 1 (window 1) is between windows.
    assert_eq!(resets(&w), Some(1.0));
    assert_eq!(counter_increase(&w), Some(3.0 - 5.0 + 5.0));
    assert_eq!(window_start(-1, res), -res);
}

#[test]
fn coarsening_equals_aggregating_at_the_coarse_resolution() {
    let raw: Vec<Sample> = (0..2_000).map(|i| s(i * 15_000 + 7, ((i * 37) % 101) as f64 - (i % 500) as f64)).collect();
    let fine = aggregate(&raw, 300_000);
    let coarse = coarsen(&fine, 3_600_000);
    let direct = aggregate(&raw, 3_600_000);
    assert_eq!(coarse.len(), direct.len());
    for (a, b) in coarse.iter().zip(&direct) {
        assert_eq!((a.t, a.count, a.resets, a.first_t, a.last_t), (b.t, b.count, b.resets, b.first_t, b.last_t));
        assert_eq!((a.min, a.max, a.first, a.last), (b.min, b.max, b.first, b.last));
        assert!((a.sum - b.sum).abs() <= 1e-9 * a.sum.abs().max(1.0));
        assert!((a.correction - b.correction).abs() <= 1e-9 * a.correction.abs().max(1.0));
    }
}

#[test]
fn nan_values_lose_min_and_max_as_in_promql() {
    let w = aggregate(&[s(0, f64::NAN), s(1, 2.0), s(2, f64::NAN), s(3, 1.0)], 300_000);
    assert_eq!((w[0].min, w[0].max, w[0].count), (1.0, 2.0, 4));
    assert!(w[0].sum.is_nan());
}

mod props {
    use super::*;
    use crate::stale_nan;
    use proptest::prelude::*;

    /// Raw reference: Prometheus's extrapolatedRate on the real samples of
    /// `(end - range, end]` (stale markers dropped, as range selectors do).
    fn raw_rate(raw: &[Sample], end: i64, range: i64, per_second: bool) -> Option<f64> {
        let w: Vec<Sample> = raw.iter().copied().filter(|s| !is_stale_nan(s.v)).collect();
        if w.len() < 2 {
            return None;
        }
        let mut correction = 0.0;
        for p in w.windows(2) {
            if p[1].v < p[0].v {
                correction += p[0].v;
            }
        }
        let (first, last) = (w[0], w[w.len() - 1]);
        let result = last.v - first.v + correction;
        let mut to_start = (first.t - (end - range)) as f64 / 1000.0;
        let mut to_end = (end - last.t) as f64 / 1000.0;
        let sampled = (last.t - first.t) as f64 / 1000.0;
        let avg = sampled / (w.len() - 1) as f64;
        if to_start >= avg * 1.1 {
            to_start = avg / 2.0;
        }
        if result > 0.0 && first.v >= 0.0 {
            to_start = to_start.min(sampled * (first.v / result));
        }
        if to_end >= avg * 1.1 {
            to_end = avg / 2.0;
        }
        let mut factor = (sampled + to_start + to_end) / sampled;
        if per_second {
            factor /= range as f64 / 1000.0;
        }
        Some(result * factor)
    }

    fn close(a: f64, b: f64, scale: f64) -> bool {
        (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * scale.max(1.0)
    }

    /// Counters with resets, gauges, gaps and stale markers, 15 s apart with jitter.
    fn series() -> impl Strategy<Value = Vec<Sample>> {
        let step = prop_oneof![
            8 => (0.0f64..50.0).prop_map(Some),       // counter increments
            1 => Just(None),                           // reset to a small value
        ];
        (proptest::collection::vec((step, 0i64..3_000, 0u8..20, -1e3f64..1e3), 1..400), any::<bool>()).prop_map(
            |(steps, counter)| {
                let (mut t, mut v) = (0i64, 0.0f64);
                let mut out = Vec::new();
                for (inc, jitter, kind, g) in steps {
                    t += 15_000 + jitter + if kind == 0 { 1_800_000 } else { 0 }; // gaps
                    v = if counter {
                        match inc {
                            Some(d) => v + d,
                            None => g.abs() % 7.0,
                        }
                    } else {
                        g
                    };
                    out.push(Sample::new(t, if kind == 1 { stale_nan() } else { v }));
                }
                out
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn functions_over_whole_windows_equal_raw(raw in series(), a in 0usize..40, n in 1usize..40, res_1h in any::<bool>()) {
            let res = if res_1h { 3_600_000 } else { 300_000 };
            let fine = aggregate(&raw, 300_000);
            let windows = if res_1h { coarsen(&fine, res) } else { fine };
            prop_assume!(!windows.is_empty());
            let a = a % windows.len();
            let b = (a + n).min(windows.len());
            let ws = &windows[a..b];
            let (start, end) = (ws[0].t, ws[ws.len() - 1].t + res); // [start, end)
            let inside: Vec<Sample> = raw.iter().copied().filter(|s| s.t >= start && s.t < end).collect();
            let real: Vec<f64> = inside.iter().map(|s| s.v).filter(|v| !is_stale_nan(*v)).collect();
            let scale: f64 = real.iter().map(|v| v.abs()).sum();
            if real.is_empty() {
                prop_assert_eq!(count_over_time(ws), None);
            } else {
                prop_assert_eq!(count_over_time(ws), Some(real.len() as f64));
                prop_assert!(close(sum_over_time(ws).unwrap(), real.iter().sum(), scale));
                prop_assert_eq!(min_over_time(ws), real.iter().copied().reduce(nan_min));
                prop_assert_eq!(max_over_time(ws), real.iter().copied().reduce(nan_max));
                let resets_raw = real.windows(2).filter(|p| p[1] < p[0]).count() as f64;
                prop_assert_eq!(resets(ws), Some(resets_raw), "a reset between windows is never lost");
                let inc_raw: f64 = real.windows(2).map(|p| if p[1] < p[0] { p[1] } else { p[1] - p[0] }).sum();
                if real.len() > 1 {
                    prop_assert!(close(counter_increase(ws).unwrap(), inc_raw, scale));
                }
                // rate/increase over the range (end - range, end] holding exactly these windows'
                // samples (windows are [t, t+res): end - 1 is the last instant inside).
                let (te, range) = (end - 1, end - start);
                for per_second in [false, true] {
                    let want = raw_rate(&inside, te, range, per_second);
                    let got = extrapolated_rate(ws, te, range, per_second);
                    prop_assert_eq!(want.is_some(), got.is_some());
                    if let (Some(w), Some(g)) = (want, got) {
                        prop_assert!(close(g, w, scale), "rate {} vs raw {}", g, w);
                    }
                }
            }
        }
    }
}
