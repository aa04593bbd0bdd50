//! The evaluator: every node is evaluated once over all steps of the query.
//!
//! An instant vector is a list of series, each with one optional value per step
//! ([`VSeries`]); a range vector ([`RangeVal`]) keeps raw samples plus the window
//! geometry, and the function that consumes it slides the window over the steps
//! with two indices. Label sets are computed once per series, never per step.

mod aggregate;
mod binary;
mod functions;
mod histogram;
mod info;
mod range_fns;
mod windows;

use std::collections::HashMap;
use std::time::Instant;

use promql_parser::parser::{self, AtModifier, Expr, Offset};
use strata_model::aggr::AggrWindow;
use strata_model::{Labels, METRIC_NAME, Sample, WindowedSeries, is_stale_nan};

use crate::error::{Error, Result};
use crate::value::Annotations;

/// The evaluation timestamps of one node: `start + i * step` for `i < n`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Steps {
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) step: i64,
    pub(crate) n: usize,
}

impl Steps {
    pub(crate) fn ts(&self, i: usize) -> i64 {
        self.start.saturating_add((i as i64).saturating_mul(self.step))
    }
}

/// An instant-vector series: one optional value per step.
#[derive(Debug, Clone)]
pub(crate) struct VSeries {
    pub(crate) labels: Labels,
    /// Prometheus 3 drops `__name__` late: functions and arithmetic only mark it.
    pub(crate) drop_name: bool,
    pub(crate) vals: Vec<Option<f64>>,
}

/// A range-vector series: raw samples (stale markers removed) and, for spans read
/// from downsampled data, windows (see [`strata_model::WindowedSeries`]).
#[derive(Debug, Clone)]
pub(crate) struct RSeries {
    pub(crate) labels: Labels,
    pub(crate) drop_name: bool,
    pub(crate) samples: Vec<Sample>,
    pub(crate) windows: Vec<AggrWindow>,
    /// The coarsest resolution among `windows` (0: none).
    pub(crate) resolution: i64,
}

/// A range vector: series plus the window each step reads.
#[derive(Debug, Clone)]
pub(crate) struct RangeVal {
    pub(crate) series: Vec<RSeries>,
    pub(crate) range: i64,
    pub(crate) offset: i64,
    pub(crate) at: Option<i64>,
}

impl RangeVal {
    /// The right edge of the window for step time `t`.
    pub(crate) fn eff_time(&self, t: i64) -> i64 {
        self.at.unwrap_or(t).saturating_sub(self.offset)
    }

    /// Indices `[lo, hi)` of samples in `(te - range, te]`.
    pub(crate) fn window(&self, s: &[Sample], te: i64) -> (usize, usize) {
        let lo = s.partition_point(|x| x.t <= te.saturating_sub(self.range));
        let hi = s.partition_point(|x| x.t <= te);
        (lo, hi.max(lo))
    }

    /// Calls `f(step, window)` for every step, advancing two indices instead of
    /// searching; with `@` the single window is computed once and repeated.
    pub(crate) fn for_each_window(&self, s: &[Sample], steps: &Steps, mut f: impl FnMut(usize, i64, &[Sample])) {
        self.for_each_window_at(s, steps, |i, te, lo, hi| f(i, te, &s[lo..hi]));
    }

    /// Like [`Self::for_each_window`] but hands out the window's indices.
    pub(crate) fn for_each_window_at(&self, s: &[Sample], steps: &Steps, mut f: impl FnMut(usize, i64, usize, usize)) {
        if let Some(at) = self.at {
            let te = at.saturating_sub(self.offset);
            let (lo, hi) = self.window(s, te);
            for i in 0..steps.n {
                f(i, te, lo, hi);
            }
            return;
        }
        let (mut lo, mut hi) = (0usize, 0usize);
        for i in 0..steps.n {
            let te = steps.ts(i).saturating_sub(self.offset);
            while hi < s.len() && s[hi].t <= te {
                hi += 1;
            }
            while lo < hi && s[lo].t <= te.saturating_sub(self.range) {
                lo += 1;
            }
            f(i, te, lo, hi);
        }
    }
}

/// A value during evaluation.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    Scalar(Vec<f64>),
    Str(String),
    Vector(Vec<VSeries>),
    Range(RangeVal),
}

impl Val {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Val::Scalar(_) => "scalar",
            Val::Str(_) => "string",
            Val::Vector(_) => "instant vector",
            Val::Range(_) => "range vector",
        }
    }
}

pub(crate) use info::add_default_info_selector;

/// Offset in milliseconds (negative offsets look forward).
pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Some(Offset::Neg(d)) => i64::try_from(d.as_millis()).map_or(i64::MIN + 1, |v| -v),
    }
}

/// The fixed evaluation time of an `@` modifier.
pub(crate) fn at_ms(at: &AtModifier, query_start: i64, query_end: i64) -> i64 {
    match at {
        AtModifier::Start => query_start,
        AtModifier::End => query_end,
        AtModifier::At(t) => match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |v| -v),
        },
    }
}

/// The inner steps of a subquery: aligned to multiples of its step, covering every
/// outer window.
pub(crate) fn subquery_steps(sq: &parser::SubqueryExpr, outer: &Steps, default_step: i64, qs: i64, qe: i64) -> Steps {
    let off = offset_ms(&sq.offset);
    let range = sq.range.as_millis() as i64;
    let step = sq.step.map(|d| d.as_millis() as i64).filter(|s| *s > 0).unwrap_or(default_step);
    let (lo, hi) = match &sq.at {
        Some(at) => {
            let t = at_ms(at, qs, qe);
            (t, t)
        }
        None => (outer.start, outer.end),
    };
    let mint = lo.saturating_sub(off).saturating_sub(range);
    let mut start = step.saturating_mul(mint / step);
    if start < mint {
        start += step;
    }
    let end = hi.saturating_sub(off);
    let n = if end < start { 0 } else { (end.saturating_sub(start) / step).saturating_add(1) as usize };
    Steps { start, end, step, n }
}

/// Evaluation state for one query.
pub(crate) struct Evaluator<'a> {
    /// Fetched series by selector node; each node takes its own once.
    pub(crate) data: HashMap<usize, Vec<WindowedSeries>>,
    pub(crate) lookback: i64,
    pub(crate) sub_step: i64,
    pub(crate) query_start: i64,
    pub(crate) query_end: i64,
    pub(crate) ann: &'a mut Annotations,
    pub(crate) deadline: Instant,
    pub(crate) max_samples: usize,
    /// The largest value any node produced, in samples (for [`crate::QueryStats`]).
    pub(crate) peak: usize,
    /// Keep marked metric names until [`Evaluator::finish`] instead of dropping
    /// them as soon as a node marks them.
    pub(crate) delayed_names: bool,
    /// Treat `__type__` and `__unit__` as part of the metric name.
    pub(crate) type_unit: bool,
}

impl Evaluator<'_> {
    pub(crate) fn eval(&mut self, e: &Expr, s: &Steps) -> Result<Val> {
        if Instant::now() > self.deadline {
            return Err(Error::Timeout);
        }
        let v = match e {
            Expr::NumberLiteral(n) => Val::Scalar(vec![n.val; s.n]),
            Expr::StringLiteral(st) => Val::Str(st.val.clone()),
            Expr::Paren(p) => self.eval(&p.expr, s)?,
            Expr::Unary(u) => match self.eval(&u.expr, s)? {
                Val::Scalar(v) => Val::Scalar(v.into_iter().map(|x| -x).collect()),
                Val::Vector(mut vs) => {
                    for x in &mut vs {
                        x.drop_name = true;
                        for v in x.vals.iter_mut().flatten() {
                            *v = -*v;
                        }
                    }
                    Val::Vector(vs)
                }
                other => return Err(Error::exec(format!("unary minus on {}", other.type_name()))),
            },
            Expr::VectorSelector(vs) => Val::Vector(self.vector_selector(vs, s, false)?),
            Expr::MatrixSelector(ms) => Val::Range(self.matrix_selector(ms)),
            Expr::Subquery(sq) => self.subquery(sq, s)?,
            Expr::Binary(b) => self.binary(b, s)?,
            Expr::Aggregate(a) => self.aggregate(a, s)?,
            Expr::Call(c) => self.call(c, s)?,
            Expr::Extension(_) => {
                return Err(Error::BadData("extension expressions are not supported".into()));
            }
        };
        let v = match v {
            Val::Vector(vs) if !self.delayed_names && vs.iter().any(|x| x.drop_name) => {
                Val::Vector(drop_names_now(vs, self.name_labels())?)
            }
            other => other,
        };
        self.check_size(&v)?;
        Ok(v)
    }

    fn check_size(&mut self, v: &Val) -> Result<()> {
        let n = match v {
            Val::Vector(vs) => vs.len() * vs.first().map_or(0, |s| s.vals.len()),
            Val::Range(r) => r.series.iter().map(|s| s.samples.len() + s.windows.len()).sum(),
            _ => 0,
        };
        if n > self.max_samples {
            return Err(Error::TooManySamples);
        }
        self.peak = self.peak.max(n);
        Ok(())
    }

    /// The series fetched for `vs`. Every node is evaluated exactly once over all
    /// steps, so the data can be moved out rather than copied.
    fn take(&mut self, vs: &parser::VectorSelector) -> Vec<WindowedSeries> {
        self.data.remove(&(vs as *const _ as usize)).unwrap_or_default()
    }

    /// The value (or with `want_ts`, the sample timestamp in seconds) each series
    /// has at each step: the newest sample in `(t - lookback, t]`, unless stale.
    pub(crate) fn vector_selector(
        &mut self,
        vs: &parser::VectorSelector,
        s: &Steps,
        want_ts: bool,
    ) -> Result<Vec<VSeries>> {
        let off = offset_ms(&vs.offset);
        let at = vs.at.as_ref().map(|a| at_ms(a, self.query_start, self.query_end));
        let lookback = self.lookback;
        let pick = move |x: &Sample| if want_ts { x.t as f64 / 1000.0 } else { x.v };
        let fetched = self.take(vs);
        if fetched.len().saturating_mul(s.n) > self.max_samples {
            return Err(Error::TooManySamples);
        }
        let mut out = Vec::with_capacity(fetched.len());
        for series in fetched {
            if !series.windows.is_empty() {
                let vals = windowed_instant(&series, s, off, at, lookback, want_ts);
                if vals.iter().any(Option::is_some) {
                    out.push(VSeries { labels: series.labels, drop_name: false, vals });
                }
                continue;
            }
            let smp = &series.samples;
            let mut vals = vec![None; s.n];
            let mut any = false;
            if let Some(at) = at {
                let te = at.saturating_sub(off);
                let j = smp.partition_point(|x| x.t <= te);
                if j > 0 && smp[j - 1].t > te.saturating_sub(lookback) && !is_stale_nan(smp[j - 1].v) {
                    let v = pick(&smp[j - 1]);
                    vals.iter_mut().for_each(|x| *x = Some(v));
                    any = s.n > 0;
                }
            } else {
                let mut j = 0usize;
                for (i, slot) in vals.iter_mut().enumerate() {
                    let te = s.ts(i).saturating_sub(off);
                    while j < smp.len() && smp[j].t <= te {
                        j += 1;
                    }
                    if j > 0 && smp[j - 1].t > te.saturating_sub(lookback) && !is_stale_nan(smp[j - 1].v) {
                        *slot = Some(pick(&smp[j - 1]));
                        any = true;
                    }
                }
            }
            if any {
                out.push(VSeries { labels: series.labels, drop_name: false, vals });
            }
        }
        Ok(out)
    }

    fn matrix_selector(&mut self, ms: &parser::MatrixSelector) -> RangeVal {
        let series = self
            .take(&ms.vs)
            .into_iter()
            .map(|mut s| {
                s.samples.retain(|x| !is_stale_nan(x.v));
                RSeries {
                    labels: s.labels,
                    drop_name: false,
                    samples: s.samples,
                    windows: s.windows,
                    resolution: s.resolution,
                }
            })
            .collect();
        RangeVal {
            series,
            range: ms.range.as_millis() as i64,
            offset: offset_ms(&ms.vs.offset),
            at: ms.vs.at.as_ref().map(|a| at_ms(a, self.query_start, self.query_end)),
        }
    }

    fn subquery(&mut self, sq: &parser::SubqueryExpr, s: &Steps) -> Result<Val> {
        let inner = subquery_steps(sq, s, self.sub_step, self.query_start, self.query_end);
        if inner.n > self.max_samples {
            return Err(Error::TooManySamples);
        }
        let series = match self.eval(&sq.expr, &inner)? {
            Val::Vector(vs) => vs
                .into_iter()
                .map(|v| RSeries {
                    labels: v.labels,
                    drop_name: v.drop_name,
                    samples: v
                        .vals
                        .iter()
                        .enumerate()
                        .filter_map(|(i, x)| x.map(|x| Sample::new(inner.ts(i), x)))
                        .collect(),
                    windows: Vec::new(),
                    resolution: 0,
                })
                .filter(|r| !r.samples.is_empty())
                .collect(),
            Val::Scalar(v) => vec![RSeries {
                labels: Labels::empty(),
                drop_name: false,
                samples: v.iter().enumerate().map(|(i, x)| Sample::new(inner.ts(i), *x)).collect(),
                windows: Vec::new(),
                resolution: 0,
            }],
            other => return Err(Error::exec(format!("subquery over {}", other.type_name()))),
        };
        Ok(Val::Range(RangeVal {
            series,
            range: sq.range.as_millis() as i64,
            offset: offset_ms(&sq.offset),
            at: sq.at.as_ref().map(|a| at_ms(a, self.query_start, self.query_end)),
        }))
    }

    /// The labels dropped together when a metric name is dropped.
    pub(crate) fn name_labels(&self) -> &'static [&'static str] {
        if self.type_unit { &[METRIC_NAME, "__type__", "__unit__"] } else { &[METRIC_NAME] }
    }

    /// Drops marked metric names and rejects duplicate label sets, as Prometheus
    /// does when a query finishes.
    pub(crate) fn finish(&mut self, v: Val) -> Result<Val> {
        let names = self.name_labels();
        Ok(match v {
            Val::Vector(vs) => Val::Vector(merge_series(vs.into_iter().map(|mut x| {
                if x.drop_name {
                    x.labels = x.labels.without(names);
                    x.drop_name = false;
                }
                x
            }))?),
            Val::Range(mut r) => {
                let mut seen = std::collections::HashSet::new();
                for x in &mut r.series {
                    if x.drop_name {
                        x.labels = x.labels.without(names);
                        x.drop_name = false;
                    }
                    if !seen.insert(x.labels.clone()) {
                        return Err(Error::exec("vector cannot contain metrics with the same labelset"));
                    }
                }
                Val::Range(r)
            }
            other => other,
        })
    }
}

/// An instant vector selector over a series with downsampled windows: at each step
/// the newest raw sample in `(t - lookback, t]` or window whose `last_t` lies in
/// `(t - lookback - resolution, t]` (the lookback widened by the resolution, so
/// windows a resolution apart leave no gaps), whichever is newer; a window gives
/// its last value. A window ending in a stale marker gives nothing once its span
/// is over, a stale raw sample nothing at all.
fn windowed_instant(
    series: &WindowedSeries,
    s: &Steps,
    off: i64,
    at: Option<i64>,
    lookback: i64,
    want_ts: bool,
) -> Vec<Option<f64>> {
    let (smp, win, res) = (&series.samples, &series.windows, series.resolution);
    let value_at = |j: usize, k: usize, te: i64| -> Option<f64> {
        let sample = j.checked_sub(1).map(|j| smp[j]);
        let window = k.checked_sub(1).map(|k| &win[k]);
        match (sample, window) {
            (Some(x), w) if w.is_none_or(|w| x.t >= w.last_t) => (x.t > te.saturating_sub(lookback)
                && !is_stale_nan(x.v))
            .then(|| if want_ts { x.t as f64 / 1000.0 } else { x.v }),
            (_, Some(w)) => {
                let fresh = w.last_t > te.saturating_sub(lookback).saturating_sub(res);
                let ended = w.stale_end && te >= w.t.saturating_add(res);
                (fresh && !ended && w.count > 0).then(|| if want_ts { w.last_t as f64 / 1000.0 } else { w.last })
            }
            _ => None,
        }
    };
    let mut vals = vec![None; s.n];
    if let Some(at) = at {
        let te = at.saturating_sub(off);
        let j = smp.partition_point(|x| x.t <= te);
        let k = win.partition_point(|w| w.last_t <= te);
        let v = value_at(j, k, te);
        vals.iter_mut().for_each(|x| *x = v);
        return vals;
    }
    let (mut j, mut k) = (0usize, 0usize);
    for (i, slot) in vals.iter_mut().enumerate() {
        let te = s.ts(i).saturating_sub(off);
        while j < smp.len() && smp[j].t <= te {
            j += 1;
        }
        while k < win.len() && win[k].last_t <= te {
            k += 1;
        }
        *slot = value_at(j, k, te);
    }
    vals
}

/// Drops marked metric names at once (Prometheus's default mode); series that
/// become equal merge, and two values at one step are an error.
fn drop_names_now(vs: Vec<VSeries>, names: &[&str]) -> Result<Vec<VSeries>> {
    let vs: Vec<VSeries> = vs
        .into_iter()
        .map(|mut x| {
            if x.drop_name {
                x.labels = x.labels.without(names);
                x.drop_name = false;
            }
            x
        })
        .collect();
    merge_series(vs)
}

/// Merges series with equal label sets (and drop flags); two values at one step
/// are an error.
pub(crate) fn merge_series(it: impl IntoIterator<Item = VSeries>) -> Result<Vec<VSeries>> {
    // Keyed by the label hash (no label clones); equal hashes are compared in full.
    let mut idx: HashMap<(u64, bool), Vec<usize>> = HashMap::new();
    let mut out: Vec<VSeries> = Vec::new();
    for s in it {
        if s.vals.iter().all(|v| v.is_none()) {
            continue;
        }
        let bucket = idx.entry((s.labels.stable_hash(), s.drop_name)).or_default();
        match bucket.iter().copied().find(|&i| out[i].labels == s.labels) {
            Some(i) => {
                let dst = &mut out[i];
                for (d, v) in dst.vals.iter_mut().zip(s.vals) {
                    if let Some(v) = v {
                        if d.is_some() {
                            return Err(Error::exec("vector cannot contain metrics with the same labelset"));
                        }
                        *d = Some(v);
                    }
                }
            }
            None => {
                bucket.push(out.len());
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// Formats a sample value as the Prometheus API does (Go's
/// `strconv.FormatFloat(v, 'f', -1, 64)`, with `+Inf`, `-Inf` and `NaN`).
pub fn format_float(v: f64) -> String {
    PromFloat(v).to_string()
}

/// A float shown as Prometheus shows sample values (Go's `FormatFloat(v, 'f', -1, 64)`
/// with `NaN`, `+Inf`, `-Inf`); a `Display` so callers can write it without allocating.
#[derive(Debug, Clone, Copy)]
pub struct PromFloat(pub f64);

impl std::fmt::Display for PromFloat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        if v.is_nan() {
            f.write_str("NaN")
        } else if v == f64::INFINITY {
            f.write_str("+Inf")
        } else if v == f64::NEG_INFINITY {
            f.write_str("-Inf")
        } else {
            write!(f, "{v}")
        }
    }
}

/// Prometheus's `quantile`: linear interpolation between ranks; `q` outside
/// `[0, 1]` gives `-Inf`/`+Inf`, NaN gives NaN. Sorts `vals`.
pub(crate) fn quantile(q: f64, vals: &mut [f64]) -> f64 {
    if vals.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // NaN sorts first, as the smallest value.
    vals.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = vals.len() as f64;
    let rank = q * (n - 1.0);
    let lo = rank.floor().max(0.0);
    let hi = (lo + 1.0).min(n - 1.0);
    let w = rank - lo;
    vals[lo as usize] * (1.0 - w) + vals[hi as usize] * w
}

/// Kahan-Babuska-Neumaier compensated addition.
#[inline]
pub(crate) fn kahan_add(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

#[cfg(test)]
mod tests;
