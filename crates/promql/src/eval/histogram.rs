//! `histogram_quantile` over classic histograms (`le` bucket series).

use std::collections::HashMap;

use strata_model::Labels;

use super::{Evaluator, VSeries, Val};
use crate::error::Result;

/// Relative float comparison as in Prometheus's `almost.Equal`.
pub(crate) fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < eps * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < eps
}

/// The outcome of one bucket quantile: the value and whether buckets had to be
/// forced monotonic.
pub(crate) fn bucket_quantile(q: f64, buckets: &mut Vec<(f64, f64)>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return (f64::NAN, false);
    }
    // Coalesce buckets with the same bound.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(ub, c) in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == ub => last.1 += c,
            _ => merged.push((ub, c)),
        }
    }
    *buckets = merged;
    let mut forced = false;
    let mut prev = buckets[0].1;
    for b in buckets.iter_mut().skip(1) {
        let curr = b.1;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, 1e-12) {
            b.1 = prev;
            continue;
        }
        if curr < prev {
            forced = true;
            b.1 = prev;
            continue;
        }
        prev = curr;
    }
    if buckets.len() < 2 {
        return (f64::NAN, forced);
    }
    let obs = buckets[buckets.len() - 1].1;
    if obs == 0.0 || obs.is_nan() {
        return (f64::NAN, forced);
    }
    let mut rank = q * obs;
    let last = buckets.len() - 1;
    let b = buckets[..last].partition_point(|x| x.1 < rank);
    if b == last {
        return (buckets[last - 1].0, forced);
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return (buckets[0].0, forced);
    }
    let (mut start, end, mut count) = (0.0, buckets[b].0, buckets[b].1);
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    (start + (end - start) * (rank / count), forced)
}

/// The fraction of observations in `[lower, upper]`, interpolating linearly inside
/// finite buckets; the lowest bucket starts at 0 when its bound is positive.
pub(crate) fn bucket_fraction(lower: f64, upper: f64, buckets: &mut [(f64, f64)]) -> f64 {
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(ub, c) in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == ub => last.1 += c,
            _ => merged.push((ub, c)),
        }
    }
    let total = merged[merged.len() - 1].1;
    if total == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let mut sum = 0.0;
    let mut prev_cum = 0.0;
    for (i, &(ub, cum)) in merged.iter().enumerate() {
        let lb = if i == 0 { if ub > 0.0 { 0.0 } else { f64::NEG_INFINITY } } else { merged[i - 1].0 };
        let c = cum - prev_cum;
        prev_cum = cum;
        let (lo, hi) = (lb.max(lower), ub.min(upper));
        if hi <= lo && !(lb == ub && lower <= lb && ub <= upper) {
            continue;
        }
        // An infinitely wide bucket counts whole only when the asked range is
        // unbounded on the same side; it cannot be interpolated.
        if lb.is_infinite() || ub.is_infinite() {
            if (lb.is_infinite() && lower == f64::NEG_INFINITY) || (ub.is_infinite() && upper == f64::INFINITY) {
                sum += c;
            }
            continue;
        }
        if lb == ub {
            sum += c;
        } else {
            sum += c * (hi - lo) / (ub - lb);
        }
    }
    sum / total
}

fn parse_le(s: &str) -> Option<f64> {
    match s.trim() {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        t => t.parse::<f64>().ok(),
    }
}

impl Evaluator<'_> {
    /// `histogram_quantile(q, buckets)` when `upper` is `None`, otherwise
    /// `histogram_fraction(q, upper, buckets)` (then `q` is the lower bound).
    pub(crate) fn histogram_quantile(
        &mut self,
        q: &[f64],
        upper: Option<&[f64]>,
        input: Vec<VSeries>,
        n: usize,
    ) -> Result<Val> {
        if upper.is_none()
            && let Some(&bad) = q.iter().find(|q| !(0.0..=1.0).contains(*q))
        {
            self.ann
                .warn(format!("quantile value should be between 0 and 1, got {}", super::aggregate::fmt_float(bad)));
        }
        let mut gidx: HashMap<Labels, usize> = HashMap::new();
        let mut groups: Vec<Labels> = Vec::new();
        let mut members: Vec<(usize, f64, usize)> = Vec::new(); // (group, le, series)
        for (i, x) in input.iter().enumerate() {
            let le = x.labels.get("le");
            let Some(ub) = le.and_then(parse_le) else {
                self.ann.warn(format!(
                    "bucket label \"le\" is missing or has a malformed value of {:?} for metric name {:?}",
                    le.unwrap_or(""),
                    x.labels.metric_name().unwrap_or("")
                ));
                continue;
            };
            let key = x.labels.without(&["le"]);
            let g = *gidx.entry(key.clone()).or_insert_with(|| {
                groups.push(key);
                groups.len() - 1
            });
            members.push((g, ub, i));
        }
        let mut out: Vec<VSeries> =
            groups.iter().map(|l| VSeries { labels: l.clone(), drop_name: true, vals: vec![None; n] }).collect();
        let mut buckets: Vec<Vec<(f64, f64)>> = vec![Vec::new(); groups.len()];
        for step in 0..n {
            for b in &mut buckets {
                b.clear();
            }
            for &(g, ub, i) in &members {
                if let Some(v) = input[i].vals[step] {
                    buckets[g].push((ub, v));
                }
            }
            for (g, b) in buckets.iter_mut().enumerate() {
                if b.is_empty() {
                    continue;
                }
                let (v, forced) = match upper {
                    None => bucket_quantile(q[step], b),
                    Some(u) => (bucket_fraction(q[step], u[step], b), false),
                };
                if forced {
                    self.ann.info(format!(
                        "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {:?}",
                        groups[g].metric_name().unwrap_or("")
                    ));
                }
                out[g].vals[step] = Some(v);
            }
        }
        out.retain(|x| x.vals.iter().any(|v| v.is_some()));
        Ok(Val::Vector(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_within_bucket() {
        let mut b = vec![(1.0, 10.0), (2.0, 20.0), (f64::INFINITY, 20.0)];
        let (v, forced) = bucket_quantile(0.5, &mut b);
        assert!((v - 1.0).abs() < 1e-12 && !forced);
        let mut b = vec![(1.0, 10.0), (2.0, 20.0), (f64::INFINITY, 20.0)];
        assert!((bucket_quantile(0.75, &mut b).0 - 1.5).abs() < 1e-12);
    }

    #[test]
    fn needs_inf_bucket_and_flags_non_monotonic() {
        let mut b = vec![(1.0, 10.0)];
        assert!(bucket_quantile(0.5, &mut b).0.is_nan());
        let mut b = vec![(1.0, 10.0), (2.0, 5.0), (f64::INFINITY, 10.0)];
        assert!(bucket_quantile(0.5, &mut b).1);
    }
}
