//! Aggregates of downsampled blocks: per series and aligned window, what the
//! PromQL functions need to answer from a window instead of its raw samples.
//!
//! ```text
//!   raw samples (label order, time order) ─► Aggregator ─► AggrWindow per [k*res, (k+1)*res)
//!   5m windows ─► coarsen(3_600_000) ─► 1h windows (same math: combine)
//!   windows of a range ─► combine ─► sum/count/min/max/avg, increase, resets, rate
//! ```
//!
//! The counter aggregate is `first`, `last`, `resets` and `correction` (the sum of
//! the values just before each reset inside the window): Prometheus computes
//! `increase` as `last - first + Σ value before each reset`, so over whole windows
//! the same sum is available, and a reset *between* two windows shows as the next
//! window's `first` below this window's `last`. `first_t` and `last_t` keep the
//! extrapolation of `rate`/`increase` exact. Stale markers count nowhere: they only
//! set `stale_end` when a window's last raw sample is one.

use crate::{Labels, Sample, is_stale_nan};

/// One window `[t, t + resolution)` of one series.
///
/// `count == 0` means the window held only stale markers: then `sum` is 0, `min`,
/// `max`, `first` and `last` are NaN, `first_t`/`last_t` are the first and last
/// marker's timestamps and `stale_end` is true.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AggrWindow {
    /// Window start (ms, a multiple of the resolution).
    pub t: i64,
    /// Real samples (stale markers not counted).
    pub count: u32,
    /// Sum of the real samples' values (compensated summation).
    pub sum: f64,
    /// Smallest value; NaN values lose to any number (as `min_over_time`).
    pub min: f64,
    /// Largest value; NaN values lose to any number (as `max_over_time`).
    pub max: f64,
    /// Timestamp of the first real sample.
    pub first_t: i64,
    /// Value of the first real sample.
    pub first: f64,
    /// Timestamp of the last real sample.
    pub last_t: i64,
    /// Value of the last real sample.
    pub last: f64,
    /// Counter resets inside the window (a sample below its predecessor).
    pub resets: u32,
    /// Sum of the values just before each of those resets.
    pub correction: f64,
    /// The window's last raw sample is a stale marker (the series ended there).
    pub stale_end: bool,
}

/// The windows of one series at one resolution, in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct AggrSeries {
    pub labels: Labels,
    pub windows: Vec<AggrWindow>,
}

/// The start of the window of `resolution` holding `t` (aligned in UTC: a multiple
/// of the resolution since the epoch).
pub fn window_start(t: i64, resolution: i64) -> i64 {
    t.div_euclid(resolution).saturating_mul(resolution)
}

/// Neumaier-compensated sum, as Prometheus's `sum_over_time` (kahanSumInc).
#[derive(Debug, Clone, Copy, Default)]
struct KahanSum {
    sum: f64,
    c: f64,
}

impl KahanSum {
    fn add(&mut self, v: f64) {
        let t = self.sum + v;
        if t.is_infinite() {
            self.c = 0.0;
        } else if self.sum.abs() >= v.abs() {
            self.c += (self.sum - t) + v;
        } else {
            self.c += (v - t) + self.sum;
        }
        self.sum = t;
    }

    fn value(self) -> f64 {
        if self.sum.is_infinite() { self.sum } else { self.sum + self.c }
    }
}

/// `min`/`max` the way `min_over_time`/`max_over_time` do it: a NaN is replaced by
/// the next number, a number is never replaced by a NaN.
fn nan_min(a: f64, b: f64) -> f64 {
    if b < a || a.is_nan() { b } else { a }
}

fn nan_max(a: f64, b: f64) -> f64 {
    if b > a || a.is_nan() { b } else { a }
}

/// Builds one window from raw samples and windows of one series, fed in time
/// order: what [`aggregate`] does per window, and what a query does per step when
/// it reads raw samples and downsampled windows of one series together.
#[derive(Debug, Clone)]
pub struct WindowAcc {
    w: AggrWindow,
    sum: KahanSum,
    /// First and last stale marker (for a window of markers only).
    markers: Option<(i64, i64)>,
}

impl WindowAcc {
    /// An empty window whose result carries `t` as its start.
    pub fn new(t: i64) -> Self {
        WindowAcc {
            w: AggrWindow {
                t,
                count: 0,
                sum: 0.0,
                min: f64::NAN,
                max: f64::NAN,
                first_t: 0,
                first: f64::NAN,
                last_t: 0,
                last: f64::NAN,
                resets: 0,
                correction: 0.0,
                stale_end: false,
            },
            sum: KahanSum::default(),
            markers: None,
        }
    }

    fn marker(&mut self, first_t: i64, last_t: i64) {
        let m = self.markers.get_or_insert((first_t, last_t));
        m.1 = last_t;
        self.w.stale_end = true;
    }

    /// Adds the samples a window summarises (a window of stale markers only just
    /// marks the end); a reset between the samples so far and `w` is counted.
    pub fn add(&mut self, w: &AggrWindow) {
        if w.count == 0 {
            self.marker(w.first_t, w.last_t);
        } else {
            self.add_real(w);
        }
    }

    /// Whether no real sample was added.
    pub fn is_empty(&self) -> bool {
        self.w.count == 0
    }

    fn add_real(&mut self, w: &AggrWindow) {
        let a = &mut self.w;
        if a.count == 0 {
            a.first_t = w.first_t;
            a.first = w.first;
            a.min = w.min;
            a.max = w.max;
        } else {
            if w.first < a.last {
                a.resets += 1;
                a.correction += a.last;
            }
            a.min = nan_min(a.min, w.min);
            a.max = nan_max(a.max, w.max);
        }
        a.resets += w.resets;
        a.correction += w.correction;
        a.count += w.count;
        a.last_t = w.last_t;
        a.last = w.last;
        a.stale_end = w.stale_end;
        self.sum.add(w.sum);
    }

    /// Adds one raw sample (a stale marker only marks the end).
    pub fn push(&mut self, s: Sample) {
        if is_stale_nan(s.v) {
            self.marker(s.t, s.t);
            return;
        }
        let one = AggrWindow {
            t: self.w.t,
            count: 1,
            sum: s.v,
            min: s.v,
            max: s.v,
            first_t: s.t,
            first: s.v,
            last_t: s.t,
            last: s.v,
            resets: 0,
            correction: 0.0,
            stale_end: false,
        };
        self.add_real(&one);
    }

    /// The window of everything added.
    pub fn finish(mut self) -> AggrWindow {
        if self.w.count == 0 {
            if let Some((f, l)) = self.markers {
                (self.w.first_t, self.w.last_t) = (f, l);
            }
        } else {
            self.w.sum = self.sum.value();
        }
        self.w
    }
}

/// The windows of `resolution` of one raw series (samples in time order, stale
/// markers included). A window is produced for every window holding at least one
/// raw sample.
pub fn aggregate(samples: &[Sample], resolution: i64) -> Vec<AggrWindow> {
    let mut out = Vec::new();
    let mut acc: Option<WindowAcc> = None;
    for &s in samples {
        let start = window_start(s.t, resolution);
        if acc.as_ref().is_some_and(|a| a.w.t != start) {
            out.extend(acc.take().map(WindowAcc::finish));
        }
        acc.get_or_insert_with(|| WindowAcc::new(start)).push(s);
    }
    out.extend(acc.map(WindowAcc::finish));
    out
}

/// Combines consecutive windows (time order) into one, as if their raw samples had
/// been aggregated together: resets between windows (a window's `first` below the
/// previous window's `last`) are counted and corrected. The result's `t` is the
/// first window's. `None` for no windows.
pub fn combine(windows: &[AggrWindow]) -> Option<AggrWindow> {
    let mut acc = WindowAcc::new(windows.first()?.t);
    for w in windows {
        acc.add(w);
    }
    Some(acc.finish())
}

/// Re-aggregates windows (time order) into coarser aligned windows of
/// `resolution` (5m into 1h).
pub fn coarsen(windows: &[AggrWindow], resolution: i64) -> Vec<AggrWindow> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < windows.len() {
        let start = window_start(windows[i].t, resolution);
        let j = i + windows[i..].partition_point(|w| window_start(w.t, resolution) == start);
        if let Some(mut w) = combine(&windows[i..j]) {
            w.t = start;
            out.push(w);
        }
        i = j;
    }
    out
}

/// `sum_over_time` over whole windows; `None` without real samples.
pub fn sum_over_time(windows: &[AggrWindow]) -> Option<f64> {
    combine(windows).filter(|w| w.count > 0).map(|w| w.sum)
}

/// `count_over_time` over whole windows; `None` without real samples.
pub fn count_over_time(windows: &[AggrWindow]) -> Option<f64> {
    combine(windows).filter(|w| w.count > 0).map(|w| f64::from(w.count))
}

/// `min_over_time` over whole windows.
pub fn min_over_time(windows: &[AggrWindow]) -> Option<f64> {
    combine(windows).filter(|w| w.count > 0).map(|w| w.min)
}

/// `max_over_time` over whole windows.
pub fn max_over_time(windows: &[AggrWindow]) -> Option<f64> {
    combine(windows).filter(|w| w.count > 0).map(|w| w.max)
}

/// `avg_over_time` over whole windows (`sum / count`; Prometheus's incremental mean
/// can differ in the last bits).
pub fn avg_over_time(windows: &[AggrWindow]) -> Option<f64> {
    combine(windows).filter(|w| w.count > 0).map(|w| w.sum / f64::from(w.count))
}

/// `resets` over whole windows: exact, including resets between windows.
pub fn resets(windows: &[AggrWindow]) -> Option<f64> {
    combine(windows).filter(|w| w.count > 0).map(|w| f64::from(w.resets))
}

/// The counter increase from the first to the last real sample of the windows
/// with resets corrected (`last - first + Σ value before each reset`), which is
/// what `increase` extrapolates. `None` with fewer than two samples.
pub fn counter_increase(windows: &[AggrWindow]) -> Option<f64> {
    combine(windows).filter(|w| w.count > 1).map(|w| w.last - w.first + w.correction)
}

/// Prometheus's `rate` (`per_second`) or `increase` (`!per_second`) over the range
/// `(range_end - range, range_end]` from the windows inside it: the extrapolation
/// of `counter_increase` to the range's edges, exactly as Prometheus does it on
/// raw samples (same first and last samples, same sample count). Exact when the
/// windows hold the same samples as the range.
pub fn extrapolated_rate(windows: &[AggrWindow], range_end: i64, range: i64, per_second: bool) -> Option<f64> {
    combine(windows)?.extrapolated_rate(range_end, range, per_second)
}

impl AggrWindow {
    /// [`extrapolated_rate`] of the samples this window summarises.
    pub fn extrapolated_rate(&self, range_end: i64, range: i64, per_second: bool) -> Option<f64> {
        let w = self;
        if w.count < 2 {
            return None;
        }
        let result = w.last - w.first + w.correction;
        let range_start = range_end.saturating_sub(range);
        let mut to_start = w.first_t.saturating_sub(range_start) as f64 / 1000.0;
        let mut to_end = range_end.saturating_sub(w.last_t) as f64 / 1000.0;
        let sampled = (w.last_t - w.first_t) as f64 / 1000.0;
        let avg = sampled / f64::from(w.count - 1);
        let threshold = avg * 1.1;
        if to_start >= threshold {
            to_start = avg / 2.0;
        }
        if result > 0.0 && w.first >= 0.0 {
            let to_zero = sampled * (w.first / result);
            if to_zero < to_start {
                to_start = to_zero;
            }
        }
        if to_end >= threshold {
            to_end = avg / 2.0;
        }
        let mut factor = (sampled + to_start + to_end) / sampled;
        if per_second {
            factor /= range as f64 / 1000.0;
        }
        Some(result * factor)
    }
}

#[cfg(test)]
#[path = "aggr/tests.rs"]
mod tests;
