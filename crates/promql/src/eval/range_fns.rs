//! Functions over range vectors. Each series is walked once: the window slides over
//! the steps with two indices ([`RangeVal::for_each_window`]).

use promql_parser::parser::Call;
use strata_model::Sample;

use super::aggregate::fmt_float;
use super::functions::absent_labels;
use super::{Evaluator, RSeries, RangeVal, Steps, VSeries, Val, kahan_add, quantile, windows};
use crate::error::{Error, Result};

impl Evaluator<'_> {
    pub(crate) fn range_call(&mut self, name: &str, args: Vec<Val>, c: &Call, s: &Steps) -> Result<Val> {
        let mut range: Option<RangeVal> = None;
        let mut scalars: Vec<Vec<f64>> = Vec::new();
        for a in args {
            match a {
                Val::Range(r) => range = Some(r),
                Val::Scalar(v) => scalars.push(v),
                other => {
                    return Err(Error::exec(format!("unexpected {} argument to {name}", other.type_name())));
                }
            }
        }
        let Some(r) = range else {
            return Err(Error::exec(format!("{name} needs a range vector argument")));
        };
        let n = s.n;
        if name == "absent_over_time" {
            let mut vals = vec![Some(1.0); n];
            for x in &r.series {
                if x.windows.is_empty() {
                    r.for_each_window(&x.samples, s, |i, _, w| {
                        if !w.is_empty() {
                            vals[i] = None;
                        }
                    });
                } else {
                    windows::for_each_step(x, &r, s, |i, _, w, _| {
                        if w.is_some() {
                            vals[i] = None;
                        }
                    });
                }
            }
            let labels = absent_labels(&c.args.args[0]);
            return Ok(Val::Vector(vec![VSeries { labels, drop_name: false, vals }]));
        }
        let p0 = scalars.first().cloned().unwrap_or_else(|| vec![f64::NAN; n]);
        let p1 = scalars.get(1).cloned().unwrap_or_else(|| vec![f64::NAN; n]);
        if name == "quantile_over_time"
            && let Some(q) = p0.iter().find(|q| !(0.0..=1.0).contains(*q))
        {
            self.ann.warn(format!("quantile value should be between 0 and 1, got {}", fmt_float(*q)));
        }
        if name == "double_exponential_smoothing" {
            for i in 0..n {
                if !(p0[i] > 0.0 && p0[i] < 1.0) {
                    return Err(Error::exec(format!("invalid smoothing factor. Expected: 0 < sf < 1, got: {}", p0[i])));
                }
                if !(p1[i] > 0.0 && p1[i] < 1.0) {
                    return Err(Error::exec(format!("invalid trend factor. Expected: 0 < tf < 1, got: {}", p1[i])));
                }
            }
        }
        let keep_name = matches!(name, "last_over_time" | "first_over_time");
        let counter_fn = matches!(name, "rate" | "increase");
        let Some(f) = F::from_name(name) else {
            return Err(Error::BadData(format!("function {name} is not supported")));
        };
        // Windows that overlap a lot are updated incrementally instead of re-scanned.
        let overlapping = r.at.is_none() && n > 1 && r.range > 2 * s.step;
        let (p0, p1) = (&p0, &p1);
        let r = &r;
        let eval_raw = |smp: &[Sample], buf: &mut Vec<f64>| -> Option<Vec<Option<f64>>> {
            let mut vals = vec![None; n];
            let mut any = false;
            let mut slide = if overlapping { Sliding::new(f, smp) } else { None };
            r.for_each_window_at(smp, s, |i, te, lo, hi| {
                let v = match slide.as_mut() {
                    Some(sl) if lo < hi => sl.eval(f, smp, te, r.range, lo, hi),
                    _ => window_fn(f, &smp[lo..hi], te, r.range, s.ts(i), p0[i], p1[i], buf),
                };
                any |= v.is_some();
                vals[i] = v;
            });
            any.then_some(vals)
        };
        let eval_one = |x: &RSeries, buf: &mut Vec<f64>| -> Option<Vec<Option<f64>>> {
            if !x.windows.is_empty() {
                if windows::supported(f) {
                    return windows::eval(f, x, r, s);
                }
                // Not planned (the engine reads raw data for these), but answered
                // sanely: each window as its last sample.
                let mut pts: Vec<Sample> = x.windows.iter().map(|w| Sample::new(w.last_t, w.last)).collect();
                pts.extend_from_slice(&x.samples);
                pts.sort_by_key(|p| p.t);
                return eval_raw(&pts, buf);
            }
            eval_raw(&x.samples, buf)
        };
        // Large inputs are split across cores; series are independent.
        let work: usize = r.series.iter().map(|x| x.samples.len() + x.windows.len()).sum::<usize>()
            + r.series.len().saturating_mul(n);
        let threads = if work >= PARALLEL_MIN_WORK {
            std::thread::available_parallelism().map_or(1, |p| p.get()).min(MAX_THREADS).min(r.series.len())
        } else {
            1
        };
        let results: Vec<Option<Vec<Option<f64>>>> = if threads > 1 {
            let chunk = r.series.len().div_ceil(threads);
            let eval_one = &eval_one;
            std::thread::scope(|sc| {
                let handles: Vec<_> = r
                    .series
                    .chunks(chunk)
                    .map(|c| {
                        sc.spawn(move || {
                            let mut buf = Vec::new();
                            c.iter().map(|x| eval_one(x, &mut buf)).collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
            })
        } else {
            let mut buf = Vec::new();
            r.series.iter().map(|x| eval_one(x, &mut buf)).collect()
        };
        let mut out = Vec::with_capacity(r.series.len());
        for (x, vals) in r.series.iter().zip(results) {
            let Some(vals) = vals else { continue };
            if counter_fn
                && let Some(m) = x.labels.metric_name()
                && !(m.ends_with("_total") || m.ends_with("_sum") || m.ends_with("_count") || m.ends_with("_bucket"))
            {
                self.ann.info(format!(
                    "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {m:?}"
                ));
            }
            out.push(VSeries { labels: x.labels.clone(), drop_name: x.drop_name || !keep_name, vals });
        }
        Ok(Val::Vector(out))
    }
}

/// Below this many samples plus output points a range function runs on the
/// calling thread; above it, series are split across up to [`MAX_THREADS`].
const PARALLEL_MIN_WORK: usize = 2_000_000;
const MAX_THREADS: usize = 8;

/// Prometheus's extrapolated rate, increase and delta.
fn extrapolated(w: &[Sample], te: i64, range: i64, counter: bool, rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let mut correction = 0.0;
    if counter {
        let mut prev = 0.0;
        for x in w {
            if x.v < prev {
                correction += prev;
            }
            prev = x.v;
        }
    }
    extrapolate(w, te, range, counter, rate, correction)
}

/// Extrapolates `last - first + correction` to the window edges.
fn extrapolate(w: &[Sample], te: i64, range: i64, counter: bool, rate: bool, correction: f64) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (first, last) = (w[0], w[w.len() - 1]);
    let result = last.v - first.v + correction;
    let range_start = te.saturating_sub(range);
    let mut to_start = first.t.saturating_sub(range_start) as f64 / 1000.0;
    let mut to_end = te.saturating_sub(last.t) as f64 / 1000.0;
    let sampled = (last.t - first.t) as f64 / 1000.0;
    let avg = sampled / (w.len() - 1) as f64;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    if counter && result > 0.0 && first.v >= 0.0 {
        let to_zero = sampled * (first.v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if rate {
        factor /= range as f64 / 1000.0;
    }
    Some(result * factor)
}

/// The range functions, resolved from their name once per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum F {
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    Resets,
    Changes,
    Deriv,
    PredictLinear,
    AvgOverTime,
    SumOverTime,
    CountOverTime,
    MinOverTime,
    MaxOverTime,
    LastOverTime,
    FirstOverTime,
    TsOfLastOverTime,
    TsOfFirstOverTime,
    TsOfMaxOverTime,
    TsOfMinOverTime,
    PresentOverTime,
    StdvarOverTime,
    StddevOverTime,
    QuantileOverTime,
    MadOverTime,
    DoubleExponentialSmoothing,
}

impl F {
    fn from_name(name: &str) -> Option<F> {
        Some(match name {
            "rate" => F::Rate,
            "increase" => F::Increase,
            "delta" => F::Delta,
            "irate" => F::Irate,
            "idelta" => F::Idelta,
            "resets" => F::Resets,
            "changes" => F::Changes,
            "deriv" => F::Deriv,
            "predict_linear" => F::PredictLinear,
            "avg_over_time" => F::AvgOverTime,
            "sum_over_time" => F::SumOverTime,
            "count_over_time" => F::CountOverTime,
            "min_over_time" => F::MinOverTime,
            "max_over_time" => F::MaxOverTime,
            "last_over_time" => F::LastOverTime,
            "first_over_time" => F::FirstOverTime,
            "ts_of_last_over_time" => F::TsOfLastOverTime,
            "ts_of_first_over_time" => F::TsOfFirstOverTime,
            "ts_of_max_over_time" => F::TsOfMaxOverTime,
            "ts_of_min_over_time" => F::TsOfMinOverTime,
            "present_over_time" => F::PresentOverTime,
            "stdvar_over_time" => F::StdvarOverTime,
            "stddev_over_time" => F::StddevOverTime,
            "quantile_over_time" => F::QuantileOverTime,
            "mad_over_time" => F::MadOverTime,
            "double_exponential_smoothing" => F::DoubleExponentialSmoothing,
            _ => return None,
        })
    }
}

/// Incremental state for one series while its window slides over the steps.
///
/// Counter resets and value changes are indexed once, so `rate`, `increase`,
/// `resets` and `changes` cost O(log n) per step; sums keep a compensated running
/// total; min and max keep a monotonic deque. Series with NaN or infinite values
/// fall back to re-scanning, which is exact.
struct Sliding {
    /// Indices `k` where `v[k] < v[k-1]` (resets) or `v[k] != v[k-1]` (changes).
    marks: Vec<usize>,
    /// Prefix sums of the reset corrections at `marks`.
    corr: Vec<f64>,
    lo: usize,
    hi: usize,
    sum: f64,
    c: f64,
    deque: std::collections::VecDeque<usize>,
}

impl Sliding {
    fn new(name: F, s: &[Sample]) -> Option<Sliding> {
        let finite = || s.iter().all(|x| x.v.is_finite());
        let mut st =
            Sliding { marks: Vec::new(), corr: Vec::new(), lo: 0, hi: 0, sum: 0.0, c: 0.0, deque: Default::default() };
        match name {
            F::Rate | F::Increase | F::Resets => {
                let mut acc = 0.0;
                for k in 1..s.len() {
                    if s[k].v < s[k - 1].v {
                        st.marks.push(k);
                        acc += s[k - 1].v;
                        st.corr.push(acc);
                    }
                }
                if !finite() {
                    return None;
                }
            }
            F::Changes => {
                for k in 1..s.len() {
                    if !(s[k].v == s[k - 1].v || (s[k].v.is_nan() && s[k - 1].v.is_nan())) {
                        st.marks.push(k);
                    }
                }
            }
            F::SumOverTime | F::AvgOverTime | F::MinOverTime | F::MaxOverTime => {
                if !finite() {
                    return None;
                }
            }
            _ => return None,
        }
        Some(st)
    }

    /// Marks strictly inside `(lo, hi)`: pairs `(k-1, k)` both in the window.
    fn mark_range(&self, lo: usize, hi: usize) -> (usize, usize) {
        let a = self.marks.partition_point(|&k| k <= lo);
        let b = self.marks.partition_point(|&k| k < hi);
        (a, b.max(a))
    }

    fn advance_sum(&mut self, s: &[Sample], lo: usize, hi: usize) {
        if lo >= self.hi {
            (self.sum, self.c) = (0.0, 0.0);
            for x in &s[lo..hi] {
                (self.sum, self.c) = kahan_add(x.v, self.sum, self.c);
            }
        } else {
            for x in &s[self.hi..hi] {
                (self.sum, self.c) = kahan_add(x.v, self.sum, self.c);
            }
            for x in &s[self.lo..lo] {
                (self.sum, self.c) = kahan_add(-x.v, self.sum, self.c);
            }
        }
        self.lo = lo;
        self.hi = hi;
    }

    fn advance_deque(&mut self, s: &[Sample], lo: usize, hi: usize, max: bool) {
        for k in self.hi.max(lo)..hi {
            while let Some(&b) = self.deque.back() {
                let worse = if max { s[b].v <= s[k].v } else { s[b].v >= s[k].v };
                if !worse {
                    break;
                }
                self.deque.pop_back();
            }
            self.deque.push_back(k);
        }
        while self.deque.front().is_some_and(|&f| f < lo) {
            self.deque.pop_front();
        }
        self.lo = lo;
        self.hi = hi;
    }

    fn eval(&mut self, name: F, s: &[Sample], te: i64, range: i64, lo: usize, hi: usize) -> Option<f64> {
        match name {
            F::Rate | F::Increase => {
                let (a, b) = self.mark_range(lo, hi);
                let corr = if b > a { self.corr[b - 1] - if a > 0 { self.corr[a - 1] } else { 0.0 } } else { 0.0 };
                extrapolate(&s[lo..hi], te, range, true, name == F::Rate, corr)
            }
            F::Resets | F::Changes => {
                let (a, b) = self.mark_range(lo, hi);
                Some((b - a) as f64)
            }
            F::SumOverTime | F::AvgOverTime => {
                self.advance_sum(s, lo, hi);
                let sum = self.sum + self.c;
                if name == F::SumOverTime {
                    Some(sum)
                } else if sum.is_finite() {
                    Some(sum / (hi - lo) as f64)
                } else {
                    Some(mean(&s[lo..hi]))
                }
            }
            F::MinOverTime | F::MaxOverTime => {
                self.advance_deque(s, lo, hi, name == F::MaxOverTime);
                self.deque.front().map(|&k| s[k].v)
            }
            _ => None,
        }
    }
}

fn linear_regression(w: &[Sample], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let init = w[0].v;
    let mut const_y = true;
    for (i, p) in w.iter().enumerate() {
        if const_y && i > 0 && p.v != init {
            const_y = false;
        }
        n += 1.0;
        let x = (p.t - intercept_t) as f64 / 1000.0;
        (sx, cx) = kahan_add(x, sx, cx);
        (sy, cy) = kahan_add(p.v, sy, cy);
        (sxy, cxy) = kahan_add(x * p.v, sxy, cxy);
        (sx2, cx2) = kahan_add(x * x, sx2, cx2);
    }
    if const_y {
        if init.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

/// Mean with Prometheus's overflow-safe switch to an incremental mean.
fn mean(w: &[Sample]) -> f64 {
    let (mut sum, mut c, mut m, mut incremental) = (w[0].v, 0.0, 0.0, false);
    for (i, p) in w.iter().enumerate().skip(1) {
        let cnt = (i + 1) as f64;
        if !incremental {
            let (s2, c2) = kahan_add(p.v, sum, c);
            if !s2.is_infinite() {
                (sum, c) = (s2, c2);
                continue;
            }
            incremental = true;
            m = sum / (cnt - 1.0);
            c /= cnt - 1.0;
        }
        if m.is_infinite() {
            if p.v.is_infinite() && (m > 0.0) == (p.v > 0.0) {
                continue;
            }
            if !p.v.is_infinite() && !p.v.is_nan() {
                continue;
            }
        }
        let q = (cnt - 1.0) / cnt;
        (m, c) = kahan_add(p.v / cnt, q * m, q * c);
    }
    if incremental {
        m + c
    } else {
        let n = w.len() as f64;
        sum / n + c / n
    }
}

fn variance(w: &[Sample]) -> f64 {
    let (mut cnt, mut m, mut c, mut m2) = (0.0, 0.0, 0.0, 0.0);
    for p in w {
        cnt += 1.0;
        let delta = p.v - (m + c);
        (m, c) = kahan_add(delta / cnt, m, c);
        m2 += delta * (p.v - (m + c));
    }
    m2 / cnt
}

#[allow(clippy::too_many_arguments)]
fn window_fn(name: F, w: &[Sample], te: i64, range: i64, t: i64, p0: f64, p1: f64, buf: &mut Vec<f64>) -> Option<f64> {
    if w.is_empty() {
        return None;
    }
    let last = w[w.len() - 1];
    Some(match name {
        F::Rate => extrapolated(w, te, range, true, true)?,
        F::Increase => extrapolated(w, te, range, true, false)?,
        F::Delta => extrapolated(w, te, range, false, false)?,
        F::Irate | F::Idelta => {
            if w.len() < 2 {
                return None;
            }
            let prev = w[w.len() - 2];
            if name == F::Idelta {
                last.v - prev.v
            } else {
                let d = if last.v < prev.v { last.v } else { last.v - prev.v };
                let dt = last.t - prev.t;
                if dt == 0 {
                    return None;
                }
                d / (dt as f64 / 1000.0)
            }
        }
        F::Resets => w.windows(2).filter(|p| p[1].v < p[0].v).count() as f64,
        F::Changes => {
            w.windows(2).filter(|p| !(p[1].v == p[0].v || (p[1].v.is_nan() && p[0].v.is_nan()))).count() as f64
        }
        F::Deriv => {
            if w.len() < 2 {
                return None;
            }
            linear_regression(w, w[0].t).0
        }
        F::PredictLinear => {
            if w.len() < 2 {
                return None;
            }
            let (slope, icpt) = linear_regression(w, t);
            slope * p0 + icpt
        }
        F::AvgOverTime => mean(w),
        F::SumOverTime => {
            let (mut s, mut c) = (0.0, 0.0);
            for p in w {
                (s, c) = kahan_add(p.v, s, c);
            }
            if s.is_infinite() { s } else { s + c }
        }
        F::CountOverTime => w.len() as f64,
        F::MinOverTime => w.iter().skip(1).fold(w[0].v, |m, p| if p.v < m || m.is_nan() { p.v } else { m }),
        F::MaxOverTime => w.iter().skip(1).fold(w[0].v, |m, p| if p.v > m || m.is_nan() { p.v } else { m }),
        F::LastOverTime => last.v,
        F::FirstOverTime => w[0].v,
        F::TsOfLastOverTime => last.t as f64 / 1000.0,
        F::TsOfFirstOverTime => w[0].t as f64 / 1000.0,
        F::TsOfMaxOverTime | F::TsOfMinOverTime => {
            let max = name == F::TsOfMaxOverTime;
            let mut best = w[0];
            for p in &w[1..] {
                let better = if max { p.v >= best.v } else { p.v <= best.v };
                if better || best.v.is_nan() {
                    best = *p;
                }
            }
            best.t as f64 / 1000.0
        }
        F::PresentOverTime => 1.0,
        F::StdvarOverTime => variance(w),
        F::StddevOverTime => variance(w).sqrt(),
        F::QuantileOverTime => {
            buf.clear();
            buf.extend(w.iter().map(|p| p.v));
            quantile(p0, buf)
        }
        F::MadOverTime => {
            buf.clear();
            buf.extend(w.iter().map(|p| p.v));
            let med = quantile(0.5, buf);
            for v in buf.iter_mut() {
                *v = (*v - med).abs();
            }
            quantile(0.5, buf)
        }
        F::DoubleExponentialSmoothing => {
            if w.len() < 2 {
                return None;
            }
            let (mut s0, mut s1) = (0.0, w[0].v);
            let mut b = w[1].v - w[0].v;
            for (i, p) in w.iter().enumerate().skip(1) {
                let x = p0 * p.v;
                if i > 1 {
                    b = p1 * (s1 - s0) + (1.0 - p1) * b;
                }
                let y = (1.0 - p0) * (s1 + b);
                s0 = s1;
                s1 = x + y;
            }
            s1
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(pts: &[(i64, f64)]) -> Vec<Sample> {
        pts.iter().map(|&(t, v)| Sample::new(t, v)).collect()
    }

    #[test]
    fn rate_extrapolates_like_prometheus() {
        // 0..=10 every 60s over a 10m window ending at 600s: exact slope.
        let w = s(&(0..=10).map(|i| (i * 60_000, i as f64 * 10.0)).collect::<Vec<_>>());
        let r = extrapolated(&w[1..], 600_000, 600_000, true, true).unwrap();
        assert!((r - 100.0 / 600.0).abs() < 1e-9, "{r}");
    }

    #[test]
    fn counter_reset_adds_previous_value() {
        let w = s(&[(0, 5.0), (10_000, 10.0), (20_000, 2.0)]);
        let inc = extrapolated(&w, 20_000, 20_000, true, false).unwrap();
        // raw increase 5 + 2 = 7 over a fully covered window.
        assert!((inc - 7.0).abs() < 1e-9, "{inc}");
    }

    #[test]
    fn deriv_of_line() {
        let w = s(&[(0, 1.0), (1000, 3.0), (2000, 5.0)]);
        assert!((linear_regression(&w, 0).0 - 2.0).abs() < 1e-12);
    }

    #[test]
    fn sliding_matches_rescanning() {
        let vals = [5.0, 7.0, 1.0, 3.0, 3.0, 9.0, 2.0, 2.5, 8.0, 0.5, 4.0, 4.0, 6.0];
        let smp: Vec<Sample> = vals.iter().enumerate().map(|(i, &v)| Sample::new(i as i64 * 1000, v)).collect();
        let r = RangeVal { series: Vec::new(), range: 4500, offset: 0, at: None };
        let steps = Steps { start: 0, end: 14_000, step: 1000, n: 15 };
        for name in [
            "rate",
            "increase",
            "resets",
            "changes",
            "sum_over_time",
            "avg_over_time",
            "min_over_time",
            "max_over_time",
        ] {
            let name = F::from_name(name).unwrap();
            let mut sl = Sliding::new(name, &smp).unwrap();
            let mut b = Vec::new();
            r.for_each_window_at(&smp, &steps, |i, te, lo, hi| {
                if lo == hi {
                    return;
                }
                let fast = sl.eval(name, &smp, te, r.range, lo, hi);
                let slow = window_fn(name, &smp[lo..hi], te, r.range, steps.ts(i), 0.0, 0.0, &mut b);
                match (fast, slow) {
                    (Some(f), Some(s)) => {
                        assert!((f - s).abs() < 1e-9, "{name:?} step {i}: {f} vs {s}")
                    }
                    (f, s) => assert_eq!(f, s, "{name:?} step {i}"),
                }
            });
        }
    }

    #[test]
    fn window_functions_basic() {
        let w = s(&[(0, 1.0), (1000, f64::NAN), (2000, 3.0)]);
        let mut b = Vec::new();
        assert_eq!(window_fn(F::CountOverTime, &w, 2000, 5000, 2000, 0.0, 0.0, &mut b), Some(3.0));
        assert_eq!(window_fn(F::MaxOverTime, &w, 2000, 5000, 2000, 0.0, 0.0, &mut b), Some(3.0));
        assert_eq!(window_fn(F::Changes, &w, 2000, 5000, 2000, 0.0, 0.0, &mut b), Some(2.0));
        assert_eq!(window_fn(F::Rate, &w[..1], 2000, 5000, 2000, 0.0, 0.0, &mut b), None);
    }
}
