use proptest::prelude::*;

use super::*;
use crate::stale_nan;

fn s(t: i64, v: f64) -> Sample {
    Sample::new(t, v)
}

/// A replica scraping every `step` ms from `from` (inclusive) to `to` (exclusive),
/// at phase `phase`, with value `f(t)`.
fn scrape(from: i64, to: i64, step: i64, phase: i64, f: impl Fn(i64) -> f64) -> Vec<Sample> {
    (from / step..to / step).map(|k| k * step + phase).filter(|&t| t >= from && t < to).map(|t| s(t, f(t))).collect()
}

fn times(v: &[Sample]) -> Vec<i64> {
    v.iter().map(|x| x.t).collect()
}

#[test]
fn stays_on_one_replica_while_it_has_no_gap() {
    let a = scrape(0, 150_000, 15_000, 0, |t| t as f64);
    let b = scrape(0, 150_000, 15_000, 7_000, |t| t as f64);
    // a throughout, then b's last sample, newer than any of a's.
    let mut want = a.clone();
    want.push(s(142_000, 142_000.0));
    assert_eq!(dedup_samples(&[&a, &b], false), want);
    // The one that starts first is taken, whatever the input order.
    assert_eq!(dedup_samples(&[&b, &a], false), want);
}

#[test]
fn a_hole_is_filled_from_the_other_replica_and_the_merge_stays_there() {
    let a: Vec<Sample> =
        scrape(0, 300_000, 15_000, 0, |t| t as f64).into_iter().filter(|x| !(60_000..180_000).contains(&x.t)).collect();
    let b = scrape(0, 300_000, 15_000, 7_000, |t| t as f64);
    let got = dedup_samples(&[&a, &b], false);
    // a up to 45 s, then b from 52 s on (a's return at 180 s does not switch back).
    let mut want: Vec<i64> = vec![0, 15_000, 30_000, 45_000];
    want.extend((52_000..300_000).step_by(15_000));
    assert_eq!(times(&got), want);
    // No gap longer than one interval plus the phase difference.
    assert!(got.windows(2).all(|w| w[1].t - w[0].t <= 15_000 + 7_000));
}

#[test]
fn a_staleness_marker_on_the_current_replica_is_a_gap_when_the_other_has_data() {
    let mut a = scrape(0, 60_000, 15_000, 0, |_| 1.0);
    a.push(s(60_000, stale_nan()));
    let b = scrape(0, 120_000, 15_000, 7_000, |_| 2.0);
    let got = dedup_samples(&[&a, &b], false);
    assert!(got.iter().all(|x| !is_stale_nan(x.v)), "{got:?}");
    assert_eq!(got.last().unwrap().t, 112_000);
    // When every replica goes stale, the marker is kept.
    let mut b2 = scrape(0, 60_000, 15_000, 7_000, |_| 2.0);
    b2.push(s(67_000, stale_nan()));
    let got = dedup_samples(&[&a, &b2], false);
    assert!(is_stale_nan(got.last().unwrap().v), "{got:?}");
}

#[test]
fn a_switch_never_makes_a_counter_go_backwards_but_real_resets_stay() {
    // b reads the counter a little lower than a (it scrapes slightly earlier in
    // the counter's life): a switch from a to b would look like a reset.
    let a: Vec<Sample> = scrape(0, 60_000, 15_000, 0, |t| 1000.0 + t as f64 / 1000.0);
    let b: Vec<Sample> = scrape(0, 200_000, 15_000, 7_000, |t| 1000.0 + t as f64 / 1000.0 - 20.0);
    let raw = dedup_samples(&[&a, &b], false);
    assert!(raw.windows(2).any(|w| w[1].v < w[0].v), "the test needs a drop at the switch");
    let got = dedup_samples(&[&a, &b], true);
    assert!(got.windows(2).all(|w| w[1].v >= w[0].v), "{got:?}");
    assert_eq!(times(&got), times(&raw));
    // A real reset on the replica we are on is kept.
    let c: Vec<Sample> = (0..10).map(|k| s(k * 15_000, if k < 5 { 100.0 + k as f64 } else { k as f64 })).collect();
    let got = dedup_samples(&[&c, &b[..0]], true);
    assert_eq!(got, c);
    // A reset seen by the new replica since its own previous sample is kept too.
    let d = vec![s(0, 500.0), s(15_000, 510.0), s(30_000, 520.0)];
    let e = vec![s(7_000, 505.0), s(52_000, 3.0), s(67_000, 18.0)];
    let got = dedup_samples(&[&d, &e], true);
    assert_eq!(got, vec![s(0, 500.0), s(15_000, 510.0), s(30_000, 520.0), s(52_000, 3.0), s(67_000, 18.0)]);
}

#[test]
fn series_differing_only_in_replica_labels_become_one() {
    let l = |r: &str, i: &str| Labels::from_pairs([("__name__", "up"), ("instance", i), ("replica", r)]);
    let a = scrape(0, 60_000, 15_000, 0, |_| 1.0);
    let b = scrape(0, 60_000, 15_000, 5_000, |_| 1.0);
    let input = vec![
        Series { labels: l("b", "x"), samples: b.clone() },
        Series { labels: l("a", "y"), samples: a.clone() },
        Series { labels: l("a", "x"), samples: a.clone() },
    ];
    let got = dedup_series(input, &["replica"], false);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].labels, Labels::from_pairs([("__name__", "up"), ("instance", "x")]));
    assert_eq!(got[0].samples, dedup_samples(&[&a, &b], false));
    assert_eq!(times(&got[0].samples), [0, 15_000, 30_000, 45_000, 50_000]);
    assert_eq!(got[1].labels, Labels::from_pairs([("__name__", "up"), ("instance", "y")]));
    // No replica labels: untouched.
    let one = vec![Series { labels: l("a", "x"), samples: a.clone() }];
    assert_eq!(dedup_series(one.clone(), &[], false), one);
}

/// Random replica data: counters with resets, gauges, gaps and stale markers.
fn replica() -> impl Strategy<Value = Vec<Sample>> {
    (1i64..60_000, 0i64..15_000, prop::collection::vec((0u8..20, 0u8..3, -1000i32..1000), 0..60), any::<bool>())
        .prop_map(|(step, phase, points, counter)| {
            let mut t = phase;
            let mut v = 0.0;
            let mut out = Vec::new();
            for (skip, kind, dv) in points {
                t += step * (1 + i64::from(skip / 16) * 20); // mostly regular, sometimes a long gap
                if counter {
                    v = if kind == 0 && skip % 7 == 0 { 0.0 } else { v + f64::from(dv.unsigned_abs()) };
                } else {
                    v = f64::from(dv);
                }
                let val = if kind == 1 && skip % 5 == 0 { stale_nan() } else { v };
                out.push(s(t, val));
            }
            out
        })
}

fn same(a: &[Sample], b: &[Sample]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.t == y.t && x.v.to_bits() == y.v.to_bits())
}

/// A counter read by several replicas: the same monotone function of time.
fn counter_replicas() -> impl Strategy<Value = Vec<Vec<Sample>>> {
    prop::collection::vec((1i64..40_000, 0i64..30_000, prop::collection::vec(any::<bool>(), 0..50)), 1..4).prop_map(
        |reps| {
            reps.into_iter()
                .map(|(step, phase, keep)| {
                    keep.iter()
                        .enumerate()
                        .filter(|(_, k)| **k)
                        .map(|(i, _)| {
                            let t = phase + i as i64 * step;
                            s(t, (t as f64 / 1000.0).floor())
                        })
                        .collect()
                })
                .collect()
        },
    )
}

proptest! {
    #[test]
    fn dedup_of_a_set_with_itself_is_that_set(a in replica(), counter in any::<bool>()) {
        let got = dedup_samples(&[&a, &a], counter);
        let alone = dedup_samples(&[&a], counter);
        prop_assert!(same(&got, &alone));
        if !counter {
            prop_assert!(same(&got, &a));
        }
    }

    #[test]
    fn output_is_sorted_unique_and_drawn_from_the_inputs(reps in prop::collection::vec(replica(), 1..4)) {
        let slices: Vec<&[Sample]> = reps.iter().map(|r| r.as_slice()).collect();
        let got = dedup_samples(&slices, false);
        prop_assert!(got.windows(2).all(|w| w[0].t < w[1].t));
        for x in &got {
            prop_assert!(reps.iter().any(|r| r.iter().any(|y| y.t == x.t && y.v.to_bits() == x.v.to_bits())));
        }
        // Every timestamp range covered by some replica is covered: the output
        // starts at the earliest sample of all and ends at a latest one.
        let first = reps.iter().filter_map(|r| r.first()).map(|x| x.t).min();
        prop_assert_eq!(got.first().map(|x| x.t), first);
    }

    #[test]
    fn dedup_is_deterministic(reps in prop::collection::vec(replica(), 1..4), counter in any::<bool>()) {
        let slices: Vec<&[Sample]> = reps.iter().map(|r| r.as_slice()).collect();
        prop_assert!(same(&dedup_samples(&slices, counter), &dedup_samples(&slices, counter)));
    }

    #[test]
    fn a_deduplicated_counter_never_decreases_where_no_input_does(reps in counter_replicas()) {
        let slices: Vec<&[Sample]> = reps.iter().map(|r| r.as_slice()).collect();
        let got = dedup_samples(&slices, true);
        prop_assert!(got.windows(2).all(|w| w[1].v >= w[0].v), "{:?}", got);
    }

    #[test]
    fn series_dedup_keeps_one_series_per_target(a in replica(), b in replica()) {
        let l = |r: &str| Labels::from_pairs([("__name__", "m"), ("replica", r)]);
        let input = vec![Series { labels: l("1"), samples: a.clone() }, Series { labels: l("2"), samples: b.clone() }];
        let got = dedup_series(input, &["replica"], false);
        prop_assert_eq!(got.len(), 1);
        prop_assert_eq!(&got[0].labels, &Labels::from_pairs([("__name__", "m")]));
        prop_assert!(same(&got[0].samples, &dedup_samples(&[&a, &b], false)));
    }
}
