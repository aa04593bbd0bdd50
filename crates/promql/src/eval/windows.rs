//! Range functions over series read partly from downsampled windows.
//!
//! ```text
//!   step t: raw samples with t' in (t - r, t] ─┐
//!           windows with last_t in (t - r, t] ─┴─► WindowAcc (time order) ─► one AggrWindow
//!                                                   ─► count, sum, min, max, last, resets, rate
//! ```
//!
//! `r` is the function's range, widened to two windows of the series' coarsest
//! resolution when shorter (a `rate(x[5m])` over 1h windows reads 2h), so no step
//! is left without data. What the widening would inflate is scaled back: `increase`
//! is the widened rate times the asked range, `sum_over_time` and
//! `count_over_time` are scaled by `range / widened`. Over whole windows (step
//! times and ranges multiples of the resolution) sum, count, min, max, avg,
//! resets and increase equal the raw answer but for samples exactly on a window
//! edge, which the window starting there holds: the property tests check this.

use strata_model::aggr::{AggrWindow, WindowAcc};

use super::range_fns::F;
use super::{RSeries, RangeVal, Steps};

/// Whether `f` can be answered from windows.
pub(super) fn supported(f: F) -> bool {
    matches!(
        f,
        F::Rate
            | F::Increase
            | F::Irate
            | F::Resets
            | F::SumOverTime
            | F::CountOverTime
            | F::MinOverTime
            | F::MaxOverTime
            | F::AvgOverTime
            | F::LastOverTime
            | F::PresentOverTime
    )
}

/// The range a step of `x` reads: the function's, or two windows when that is shorter.
pub(super) fn effective_range(x: &RSeries, range: i64) -> i64 {
    if x.resolution > 0 { range.max(2 * x.resolution) } else { range }
}

/// Calls `f(step, te, acc, last_two)` for every step with the samples and windows
/// of `(te - range, te]` combined.
pub(super) fn for_each_step(
    x: &RSeries,
    r: &RangeVal,
    s: &Steps,
    mut f: impl FnMut(usize, i64, Option<AggrWindow>, &[Point]),
) {
    let range = effective_range(x, r.range);
    let (smp, win) = (&x.samples, &x.windows);
    let mut last_two: Vec<Point> = Vec::with_capacity(2);
    for i in 0..s.n {
        let te = r.eff_time(s.ts(i));
        let from = te.saturating_sub(range);
        let (sl, sh) = (smp.partition_point(|p| p.t <= from), smp.partition_point(|p| p.t <= te));
        let (wl, wh) = (win.partition_point(|w| w.last_t <= from), win.partition_point(|w| w.last_t <= te));
        if sl >= sh && wl >= wh {
            f(i, te, None, &[]);
            continue;
        }
        let mut acc = WindowAcc::new(from);
        let (mut a, mut b) = (sl, wl);
        last_two.clear();
        while a < sh || b < wh {
            let sample_first = b >= wh || (a < sh && smp[a].t < win[b].first_t);
            let p = if sample_first {
                acc.push(smp[a]);
                a += 1;
                Point::Sample(smp[a - 1].t, smp[a - 1].v)
            } else {
                acc.add(&win[b]);
                b += 1;
                Point::Window(win[b - 1])
            };
            if last_two.len() == 2 {
                last_two.remove(0);
            }
            last_two.push(p);
        }
        let w = acc.finish();
        f(i, te, (w.count > 0).then_some(w), &last_two);
    }
}

/// A raw sample or a window, as `irate` sees the end of a range.
#[derive(Debug, Clone, Copy)]
pub(super) enum Point {
    Sample(i64, f64),
    Window(AggrWindow),
}

impl Point {
    /// The point a window stands for: its last sample.
    fn last(&self) -> (i64, f64) {
        match *self {
            Point::Sample(t, v) => (t, v),
            Point::Window(w) => (w.last_t, w.last),
        }
    }
}

/// `irate` from the end of a range: between the last two samples when the last
/// point is a sample or a one-sample window; a window of several samples gives its
/// own average rate (its resets corrected), the nearest thing to an instant rate
/// it keeps.
fn irate(last_two: &[Point]) -> Option<f64> {
    let last = *last_two.last()?;
    if let Point::Window(w) = last
        && w.count > 1
    {
        let dt = w.last_t - w.first_t;
        return (dt > 0).then(|| (w.last - w.first + w.correction) / (dt as f64 / 1000.0));
    }
    let (t1, v1) = last.last();
    let (t0, v0) = last_two.first().filter(|_| last_two.len() == 2)?.last();
    let d = if v1 < v0 { v1 } else { v1 - v0 };
    let dt = t1 - t0;
    (dt > 0).then(|| d / (dt as f64 / 1000.0))
}

/// The values of `f` (one of [`supported`]) at every step over `x`; `None` when
/// no step has a value.
pub(super) fn eval(f: F, x: &RSeries, r: &RangeVal, s: &Steps) -> Option<Vec<Option<f64>>> {
    let range = r.range;
    let widened = effective_range(x, range);
    let scale = range as f64 / widened as f64;
    let mut vals = vec![None; s.n];
    let mut any = false;
    for_each_step(x, r, s, |i, te, w, last_two| {
        let Some(w) = w else { return };
        let v = match f {
            F::Rate => w.extrapolated_rate(te, widened, true),
            F::Increase if widened == range => w.extrapolated_rate(te, range, false),
            F::Increase => w.extrapolated_rate(te, widened, true).map(|rate| rate * range as f64 / 1000.0),
            F::Irate => irate(last_two),
            F::Resets => Some(f64::from(w.resets)),
            F::SumOverTime => Some(w.sum * scale),
            F::CountOverTime => Some(f64::from(w.count) * scale),
            F::MinOverTime => Some(w.min),
            F::MaxOverTime => Some(w.max),
            F::AvgOverTime => Some(w.sum / f64::from(w.count)),
            F::LastOverTime => Some(w.last),
            F::PresentOverTime => Some(1.0),
            _ => None,
        };
        any |= v.is_some();
        vals[i] = v;
    });
    any.then_some(vals)
}

#[cfg(test)]
#[path = "windows/tests.rs"]
mod tests;
