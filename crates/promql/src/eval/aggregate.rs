//! Aggregation operators (`sum`, `topk`, `quantile`, ...) with `by`/`without`.

use std::collections::HashMap;

use promql_parser::parser::token::*;
use promql_parser::parser::{AggregateExpr, LabelModifier};
use strata_model::{Labels, METRIC_NAME};

use super::{Evaluator, Steps, VSeries, Val, kahan_add, quantile};
use crate::error::{Error, Result};

/// Formats a float the way Go's `strconv.FormatFloat(v, 'f', -1, 64)` does.
pub(crate) fn fmt_float(v: f64) -> String {
    crate::PromFloat(v).to_string()
}

/// Above this many group-steps, aggregation switches to a step-major loop that
/// needs accumulators for one step only (about 48 MB of accumulators at most).
const SERIES_MAJOR_MAX_CELLS: usize = 1 << 20;

#[derive(Clone, Copy, Default)]
struct Acc {
    n: f64,
    sum: f64,
    c: f64,
    mean: f64,
    incremental: bool,
    m2: f64,
}

impl Evaluator<'_> {
    pub(crate) fn aggregate(&mut self, a: &AggregateExpr, s: &Steps) -> Result<Val> {
        let op = a.op.id();
        let param = match &a.param {
            Some(p) => Some(self.eval(p, s)?),
            None => None,
        };
        let input = match self.eval(&a.expr, s)? {
            Val::Vector(v) => v,
            other => {
                return Err(Error::exec(format!("aggregation over {}", other.type_name())));
            }
        };
        let n = s.n;
        let (by, names): (bool, Vec<&str>) = match &a.modifier {
            Some(LabelModifier::Include(ls)) => (true, ls.labels.iter().map(|s| s.as_str()).collect()),
            Some(LabelModifier::Exclude(ls)) => {
                let mut v: Vec<&str> = ls.labels.iter().map(|s| s.as_str()).collect();
                v.push(METRIC_NAME);
                (false, v)
            }
            None => (true, Vec::new()),
        };
        let key = |l: &Labels| {
            if by { l.keep_only(&names) } else { l.without(&names) }
        };
        let mut gidx: HashMap<Labels, usize> = HashMap::new();
        let mut groups: Vec<(Labels, bool)> = Vec::new();
        let mut of: Vec<usize> = Vec::with_capacity(input.len());
        for x in &input {
            let k = key(&x.labels);
            let g = match gidx.get(&k) {
                Some(&g) => g,
                None => {
                    gidx.insert(k.clone(), groups.len());
                    groups.push((k, false));
                    groups.len() - 1
                }
            };
            groups[g].1 |= x.drop_name;
            of.push(g);
        }
        let scalar_param = |p: &Option<Val>| -> Result<Vec<f64>> {
            match p {
                Some(Val::Scalar(v)) => Ok(v.clone()),
                _ => Err(Error::BadData(format!("expected scalar parameter for {}", a.op))),
            }
        };
        match op {
            T_TOPK | T_BOTTOMK | T_LIMITK | T_LIMIT_RATIO => {
                let p = scalar_param(&param)?;
                self.aggregate_k(op, &p, input, &of, groups.len(), n)
            }
            T_COUNT_VALUES => {
                let label = match &param {
                    Some(Val::Str(s)) => s.clone(),
                    _ => {
                        return Err(Error::BadData("expected string parameter for count_values".into()));
                    }
                };
                if !strata_model::is_valid_label_name(&label) {
                    return Err(Error::BadData(format!("invalid label name {label:?}")));
                }
                let mut out: Vec<VSeries> = Vec::new();
                let mut idx: HashMap<(usize, String), usize> = HashMap::new();
                for (x, &g) in input.iter().zip(&of) {
                    for (i, v) in x.vals.iter().enumerate() {
                        let Some(v) = v else { continue };
                        let sv = fmt_float(*v);
                        let k = *idx.entry((g, sv.clone())).or_insert_with(|| {
                            let mut b = groups[g].0.builder();
                            b.set(&label, &sv);
                            out.push(VSeries { labels: b.build(), drop_name: false, vals: vec![None; n] });
                            out.len() - 1
                        });
                        *out[k].vals[i].get_or_insert(0.0) += 1.0;
                    }
                }
                Ok(Val::Vector(out))
            }
            T_QUANTILE => {
                let q = scalar_param(&param)?;
                for &qv in &q {
                    if !(0.0..=1.0).contains(&qv) {
                        self.ann.warn(format!("quantile value should be between 0 and 1, got {}", fmt_float(qv)));
                        break;
                    }
                }
                let mut buf: Vec<Vec<f64>> = vec![Vec::new(); groups.len()];
                let mut out: Vec<VSeries> = groups
                    .iter()
                    .map(|(l, d)| VSeries { labels: l.clone(), drop_name: *d, vals: vec![None; n] })
                    .collect();
                for (i, &qi) in q.iter().enumerate().take(n) {
                    for b in &mut buf {
                        b.clear();
                    }
                    for (x, &g) in input.iter().zip(&of) {
                        if let Some(v) = x.vals[i] {
                            buf[g].push(v);
                        }
                    }
                    for (g, b) in buf.iter_mut().enumerate() {
                        if !b.is_empty() {
                            out[g].vals[i] = Some(quantile(qi, b));
                        }
                    }
                }
                Ok(Val::Vector(out))
            }
            _ => {
                let mut out: Vec<VSeries> = groups
                    .iter()
                    .map(|(l, d)| VSeries { labels: l.clone(), drop_name: *d, vals: vec![None; n] })
                    .collect();
                if groups.len().saturating_mul(n) <= SERIES_MAJOR_MAX_CELLS {
                    // Series-major: each input series is read sequentially.
                    let mut acc = vec![Acc::default(); groups.len() * n];
                    for (x, &g) in input.iter().zip(&of) {
                        let row = &mut acc[g * n..(g + 1) * n];
                        for (a, v) in row.iter_mut().zip(&x.vals) {
                            if let Some(v) = *v {
                                accumulate(op, a, v);
                            }
                        }
                    }
                    for (g, o) in out.iter_mut().enumerate() {
                        for (slot, a) in o.vals.iter_mut().zip(&acc[g * n..(g + 1) * n]) {
                            if a.n > 0.0 {
                                *slot = Some(result(op, a));
                            }
                        }
                    }
                } else {
                    // Step-major for many groups: accumulators for one step at a
                    // time, so memory stays at the size of the output.
                    let mut acc = vec![Acc::default(); groups.len()];
                    for i in 0..n {
                        acc.iter_mut().for_each(|a| *a = Acc::default());
                        for (x, &g) in input.iter().zip(&of) {
                            if let Some(v) = x.vals[i] {
                                accumulate(op, &mut acc[g], v);
                            }
                        }
                        for (o, a) in out.iter_mut().zip(&acc) {
                            if a.n > 0.0 {
                                o.vals[i] = Some(result(op, a));
                            }
                        }
                    }
                }
                Ok(Val::Vector(out))
            }
        }
    }

    fn aggregate_k(
        &mut self,
        op: TokenId,
        p: &[f64],
        input: Vec<VSeries>,
        of: &[usize],
        ngroups: usize,
        n: usize,
    ) -> Result<Val> {
        let mut chosen: Vec<Vec<bool>> = vec![vec![false; n]; input.len()];
        // Rank of each chosen series at the first step, to order instant results.
        let mut rank: Vec<usize> = vec![usize::MAX; input.len()];
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); ngroups];
        for (i, &g) in of.iter().enumerate() {
            members[g].push(i);
        }
        for step in 0..n {
            let param = p[step];
            if param.is_nan() {
                return Err(Error::Execution(if op == T_LIMIT_RATIO {
                    "Ratio value is NaN".into()
                } else {
                    "Parameter value is NaN".into()
                }));
            }
            if op == T_LIMIT_RATIO {
                let mut r = param;
                if !(-1.0..=1.0).contains(&r) {
                    let capped = r.clamp(-1.0, 1.0);
                    self.ann.warn(format!(
                        "ratio value should be between -1 and 1, got {}, capping to {}",
                        fmt_float(r),
                        fmt_float(capped)
                    ));
                    r = capped;
                }
                for (i, x) in input.iter().enumerate() {
                    if x.vals[step].is_none() {
                        continue;
                    }
                    let off = x.labels.stable_hash() as f64 / u64::MAX as f64;
                    let keep = if r >= 0.0 { off < r } else { off >= 1.0 + r };
                    chosen[i][step] = keep;
                }
                continue;
            }
            if param >= 9.223_372_036_854_776e18 {
                return Err(Error::BadData(format!("Scalar value {} overflows int64", fmt_float(param))));
            }
            let k = param as i64;
            if k < 1 {
                continue;
            }
            let k = k as usize;
            for m in &members {
                let mut cands: Vec<(usize, f64)> =
                    m.iter().filter_map(|&i| input[i].vals[step].map(|v| (i, v))).collect();
                match op {
                    T_LIMITK => cands.truncate(k),
                    _ => {
                        let top = op == T_TOPK;
                        cands.sort_by(|a, b| {
                            let (x, y) = (a.1, b.1);
                            match (x.is_nan(), y.is_nan()) {
                                (true, true) => std::cmp::Ordering::Equal,
                                (true, false) => std::cmp::Ordering::Greater,
                                (false, true) => std::cmp::Ordering::Less,
                                _ if top => y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal),
                                _ => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
                            }
                        });
                        cands.truncate(k);
                    }
                }
                for (r, (i, _)) in cands.iter().enumerate() {
                    chosen[*i][step] = true;
                    if step == 0 {
                        rank[*i] = r;
                    }
                }
            }
        }
        let mut out: Vec<(usize, usize, VSeries)> = Vec::new();
        for (i, mut x) in input.into_iter().enumerate() {
            for (v, &c) in x.vals.iter_mut().zip(&chosen[i]) {
                if !c {
                    *v = None;
                }
            }
            if x.vals.iter().any(|v| v.is_some()) {
                out.push((of[i], rank[i], x));
            }
        }
        if op != T_LIMITK && op != T_LIMIT_RATIO {
            out.sort_by_key(|(g, r, _)| (*g, *r));
        }
        Ok(Val::Vector(out.into_iter().map(|(_, _, x)| x).collect()))
    }
}

fn accumulate(op: TokenId, a: &mut Acc, v: f64) {
    a.n += 1.0;
    match op {
        T_SUM => (a.sum, a.c) = kahan_add(v, a.sum, a.c),
        T_AVG => {
            if a.n == 1.0 {
                a.sum = v;
                a.mean = v;
                return;
            }
            if !a.incremental {
                let (s, c) = kahan_add(v, a.sum, a.c);
                if !s.is_infinite() {
                    (a.sum, a.c) = (s, c);
                    return;
                }
                a.incremental = true;
                a.mean = a.sum / (a.n - 1.0);
                a.c /= a.n - 1.0;
            }
            if a.mean.is_infinite() {
                if v.is_infinite() && (a.mean > 0.0) == (v > 0.0) {
                    return;
                }
                if !v.is_infinite() && !v.is_nan() {
                    return;
                }
            }
            let q = (a.n - 1.0) / a.n;
            (a.mean, a.c) = kahan_add(v / a.n, q * a.mean, q * a.c);
        }
        T_MIN if a.n == 1.0 || a.sum > v || a.sum.is_nan() => a.sum = v,
        T_MAX if a.n == 1.0 || a.sum < v || a.sum.is_nan() => a.sum = v,
        T_STDDEV | T_STDVAR => {
            if a.n == 1.0 {
                a.mean = v;
                a.m2 = 0.0;
                a.c = 0.0;
                return;
            }
            let delta = v - (a.mean + a.c);
            (a.mean, a.c) = kahan_add(delta / a.n, a.mean, a.c);
            a.m2 += delta * (v - (a.mean + a.c));
        }
        _ => {}
    }
}

fn result(op: TokenId, a: &Acc) -> f64 {
    match op {
        T_SUM => {
            if a.sum.is_infinite() {
                a.sum
            } else {
                a.sum + a.c
            }
        }
        T_AVG => {
            if a.incremental {
                a.mean + a.c
            } else if a.sum.is_infinite() {
                a.sum
            } else {
                a.sum / a.n + a.c / a.n
            }
        }
        T_COUNT => a.n,
        T_GROUP => 1.0,
        T_MIN | T_MAX => a.sum,
        T_STDVAR => {
            if a.n == 1.0 {
                if a.mean.is_finite() { 0.0 } else { f64::NAN }
            } else {
                a.m2 / a.n
            }
        }
        T_STDDEV => {
            if a.n == 1.0 {
                if a.mean.is_finite() { 0.0 } else { f64::NAN }
            } else {
                (a.m2 / a.n).sqrt()
            }
        }
        _ => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_format_like_go() {
        assert_eq!(fmt_float(1.0), "1");
        assert_eq!(fmt_float(0.1), "0.1");
        assert_eq!(fmt_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(fmt_float(f64::NAN), "NaN");
    }

    fn run(op: TokenId, vals: &[f64]) -> f64 {
        let mut a = Acc::default();
        for &v in vals {
            accumulate(op, &mut a, v);
        }
        result(op, &a)
    }

    #[test]
    fn accumulators() {
        assert_eq!(run(T_SUM, &[1.0, 2.0, 3.5]), 6.5);
        assert_eq!(run(T_AVG, &[1.0, 2.0, 3.0]), 2.0);
        // Overflowing sums switch to an incremental mean.
        assert_eq!(run(T_AVG, &[f64::MAX, f64::MAX]), f64::MAX);
        assert_eq!(run(T_MIN, &[f64::NAN, 3.0, 1.0]), 1.0);
        assert!(run(T_MAX, &[f64::NAN]).is_nan());
        assert_eq!(run(T_STDVAR, &[1.0, 3.0]), 1.0);
        assert_eq!(run(T_COUNT, &[5.0, 5.0]), 2.0);
        assert_eq!(run(T_GROUP, &[5.0, 7.0]), 1.0);
        // Compensated summation keeps small terms next to large ones.
        assert_eq!(run(T_SUM, &[1e100, 1.0, -1e100]), 1.0);
    }
}
