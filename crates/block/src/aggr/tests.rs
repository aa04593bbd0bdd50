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
        s(315_000, strata_model::stale_nan()),
        s(330_000, 3.0),
        s(650_000, strata_model::stale_nan()),
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
