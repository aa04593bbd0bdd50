//! Function calls: argument evaluation and the instant-vector functions.

use std::collections::HashMap;

use promql_parser::parser::{Call, Expr};
use strata_model::{Label, Labels, METRIC_NAME};

use super::{Evaluator, Steps, VSeries, Val, merge_series};
use crate::error::{Error, Result};

/// Functions that only make sense on native histograms.
const NATIVE_HISTOGRAM_FUNCTIONS: &[&str] = &[
    "histogram_avg",
    "histogram_count",
    "histogram_sum",
    "histogram_stddev",
    "histogram_stdvar",
    "histogram_quantiles",
];

pub(crate) fn strip_parens(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => strip_parens(&p.expr),
        _ => e,
    }
}

impl Evaluator<'_> {
    pub(crate) fn call(&mut self, c: &Call, s: &Steps) -> Result<Val> {
        let name = c.func.name;
        if NATIVE_HISTOGRAM_FUNCTIONS.contains(&name) {
            return Err(Error::BadData(format!("function {name} needs native histograms, which are not supported")));
        }
        if name == "start_timestamp" {
            return Err(Error::BadData(format!("function {name} is not supported")));
        }
        // timestamp() of a plain selector reports the sample's own timestamp.
        if name == "timestamp"
            && let Some(a) = c.args.args.first()
            && let Expr::VectorSelector(vs) = strip_parens(a)
        {
            let mut out = self.vector_selector(vs, s, true)?;
            for x in &mut out {
                x.drop_name = true;
            }
            return Ok(Val::Vector(out));
        }
        if name == "info" {
            return self.info(c, s);
        }
        let mut args = Vec::with_capacity(c.args.args.len());
        for a in &c.args.args {
            args.push(self.eval(a, s)?);
        }
        if c.func.arg_types.first() == Some(&promql_parser::parser::value::ValueType::Matrix)
            || matches!(name, "quantile_over_time")
        {
            return self.range_call(name, args, c, s);
        }
        self.instant_call(name, args, c, s)
    }

    fn instant_call(&mut self, name: &str, mut args: Vec<Val>, c: &Call, s: &Steps) -> Result<Val> {
        let n = s.n;
        let math = |f: fn(f64) -> f64, args: Vec<Val>| -> Result<Val> {
            let mut v = take_vector(args)?;
            for x in &mut v {
                x.drop_name = true;
                for y in x.vals.iter_mut().flatten() {
                    *y = f(*y);
                }
            }
            Ok(Val::Vector(v))
        };
        match name {
            "abs" => math(f64::abs, args),
            "ceil" => math(f64::ceil, args),
            "floor" => math(f64::floor, args),
            "exp" => math(f64::exp, args),
            "sqrt" => math(f64::sqrt, args),
            "ln" => math(f64::ln, args),
            "log2" => math(f64::log2, args),
            "log10" => math(f64::log10, args),
            "sgn" => math(
                |x| {
                    if x > 0.0 {
                        1.0
                    } else if x < 0.0 {
                        -1.0
                    } else {
                        x
                    }
                },
                args,
            ),
            "acos" => math(f64::acos, args),
            "acosh" => math(f64::acosh, args),
            "asin" => math(f64::asin, args),
            "asinh" => math(f64::asinh, args),
            "atan" => math(f64::atan, args),
            "atanh" => math(f64::atanh, args),
            "cos" => math(f64::cos, args),
            "cosh" => math(f64::cosh, args),
            "sin" => math(f64::sin, args),
            "sinh" => math(f64::sinh, args),
            "tan" => math(f64::tan, args),
            "tanh" => math(f64::tanh, args),
            "deg" => math(f64::to_degrees, args),
            "rad" => math(f64::to_radians, args),
            "pi" => Ok(Val::Scalar(vec![std::f64::consts::PI; n])),
            "time" => Ok(Val::Scalar((0..n).map(|i| s.ts(i) as f64 / 1000.0).collect())),
            "start" => Ok(Val::Scalar(vec![self.query_start as f64 / 1000.0; n])),
            "end" => Ok(Val::Scalar(vec![self.query_end as f64 / 1000.0; n])),
            "step" => Ok(Val::Scalar(vec![s.step as f64 / 1000.0; n])),
            "vector" => {
                let v = take_scalar(args.remove(0))?;
                Ok(Val::Vector(vec![VSeries {
                    labels: Labels::empty(),
                    drop_name: false,
                    vals: v.into_iter().map(Some).collect(),
                }]))
            }
            "scalar" => {
                let v = take_vector(args)?;
                let mut out = vec![f64::NAN; n];
                for (i, o) in out.iter_mut().enumerate() {
                    let mut found = None;
                    let mut count = 0;
                    for x in &v {
                        if let Some(y) = x.vals[i] {
                            count += 1;
                            found = Some(y);
                        }
                    }
                    if count == 1 {
                        *o = found.unwrap_or(f64::NAN);
                    }
                }
                Ok(Val::Scalar(out))
            }
            "clamp" | "clamp_min" | "clamp_max" => {
                let mut it = args.into_iter();
                let mut v = take_vector(it.next().into_iter().collect())?;
                let a = it.next().map(take_scalar).transpose()?.unwrap_or_default();
                let b = it.next().map(take_scalar).transpose()?.unwrap_or_default();
                for x in &mut v {
                    x.drop_name = true;
                    for (i, y) in x.vals.iter_mut().enumerate() {
                        let Some(val) = y else { continue };
                        *y = match name {
                            "clamp" => {
                                let (lo, hi) = (a[i], b[i]);
                                if hi < lo { None } else { Some(go_min(go_max(*val, lo), hi)) }
                            }
                            "clamp_min" => Some(go_max(*val, a[i])),
                            _ => Some(go_min(*val, a[i])),
                        };
                    }
                }
                v.retain(|x| x.vals.iter().any(|y| y.is_some()));
                Ok(Val::Vector(v))
            }
            "round" => {
                let mut it = args.into_iter();
                let mut v = take_vector(it.next().into_iter().collect())?;
                let to = it.next().map(take_scalar).transpose()?.unwrap_or_else(|| vec![1.0; n]);
                for x in &mut v {
                    x.drop_name = true;
                    for (i, y) in x.vals.iter_mut().enumerate() {
                        if let Some(val) = y {
                            let inv = 1.0 / to[i];
                            *y = Some((*val * inv + 0.5).floor() / inv);
                        }
                    }
                }
                Ok(Val::Vector(v))
            }
            "timestamp" => {
                let mut v = take_vector(args)?;
                for x in &mut v {
                    x.drop_name = true;
                    for (i, y) in x.vals.iter_mut().enumerate() {
                        if y.is_some() {
                            *y = Some(s.ts(i) as f64 / 1000.0);
                        }
                    }
                }
                Ok(Val::Vector(v))
            }
            "minute" | "hour" | "day_of_week" | "day_of_month" | "day_of_year" | "days_in_month" | "month" | "year" => {
                let mut v = if args.is_empty() {
                    vec![VSeries {
                        labels: Labels::empty(),
                        drop_name: false,
                        vals: (0..n).map(|i| Some(s.ts(i) as f64 / 1000.0)).collect(),
                    }]
                } else {
                    take_vector(args)?
                };
                for x in &mut v {
                    x.drop_name = true;
                    for y in x.vals.iter_mut().flatten() {
                        *y = date_part(name, *y);
                    }
                }
                Ok(Val::Vector(v))
            }
            "sort" | "sort_desc" => {
                let desc = name == "sort_desc";
                let mut v = take_vector(args)?;
                v.sort_by(|a, b| {
                    let (x, y) = (a.vals[0].unwrap_or(f64::NAN), b.vals[0].unwrap_or(f64::NAN));
                    // NaN sorts last either way.
                    match (x.is_nan(), y.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ if desc => y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal),
                        _ => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
                    }
                });
                Ok(Val::Vector(v))
            }
            "sort_by_label" | "sort_by_label_desc" => {
                let mut it = args.into_iter();
                let mut v = take_vector(it.next().into_iter().collect())?;
                let names: Vec<String> = it.filter_map(|a| if let Val::Str(s) = a { Some(s) } else { None }).collect();
                let desc = name == "sort_by_label_desc";
                v.sort_by(|a, b| {
                    for l in &names {
                        let o = natural_cmp(a.labels.get(l).unwrap_or(""), b.labels.get(l).unwrap_or(""));
                        if o != std::cmp::Ordering::Equal {
                            return if desc { o.reverse() } else { o };
                        }
                    }
                    let o = a.labels.cmp(&b.labels);
                    if desc { o.reverse() } else { o }
                });
                Ok(Val::Vector(v))
            }
            "label_replace" => self.label_replace(args),
            "label_join" => self.label_join(args),
            "absent" => {
                let v = take_vector(args)?;
                let mut vals = vec![Some(1.0); n];
                for x in &v {
                    for (o, y) in vals.iter_mut().zip(&x.vals) {
                        if y.is_some() {
                            *o = None;
                        }
                    }
                }
                let labels = absent_labels(&c.args.args[0]);
                Ok(Val::Vector(vec![VSeries { labels, drop_name: false, vals }]))
            }
            "histogram_quantile" => {
                let mut it = args.into_iter();
                let q = it.next().map(take_scalar).transpose()?.unwrap_or_default();
                let v = take_vector(it.collect())?;
                self.histogram_quantile(&q, None, v, n)
            }
            "histogram_fraction" => {
                let mut it = args.into_iter();
                let lo = it.next().map(take_scalar).transpose()?.unwrap_or_default();
                let hi = it.next().map(take_scalar).transpose()?.unwrap_or_default();
                let v = take_vector(it.collect())?;
                self.histogram_quantile(&lo, Some(&hi), v, n)
            }
            "max_of" | "min_of" => {
                let a = take_scalar(args.remove(0))?;
                let b = take_scalar(args.remove(0))?;
                Ok(Val::Scalar(
                    a.iter().zip(&b).map(|(x, y)| if name == "max_of" { x.max(*y) } else { x.min(*y) }).collect(),
                ))
            }
            _ => Err(Error::BadData(format!("function {name} is not supported"))),
        }
    }

    fn label_replace(&mut self, args: Vec<Val>) -> Result<Val> {
        let mut it = args.into_iter();
        let v = take_vector(it.next().into_iter().collect())?;
        let strs: Vec<String> = it.filter_map(|a| if let Val::Str(s) = a { Some(s) } else { None }).collect();
        let [dst, repl, src, re] = &strs[..] else {
            return Err(Error::BadData("label_replace needs four string arguments".into()));
        };
        let regex = regex::Regex::new(&format!("^(?s:{re})$"))
            .map_err(|e| Error::Execution(format!("invalid regular expression in label_replace(): {re}: {e}")))?;
        if !strata_model::is_valid_label_name(dst) {
            return Err(Error::BadData(format!("invalid destination label name in label_replace(): {dst}")));
        }
        let mut out = Vec::with_capacity(v.len());
        for mut x in v {
            let val = x.labels.get(src).unwrap_or("");
            if let Some(caps) = regex.captures(val) {
                let mut res = String::new();
                // The regex crate's `$1`/`${1}`/`$name` syntax is Go's, including `$1x`
                // naming a group `1x`.
                caps.expand(repl, &mut res);
                let mut b = x.labels.builder();
                b.set(dst, &res);
                x.labels = b.build();
                if dst == METRIC_NAME {
                    x.drop_name = false;
                }
            }
            out.push(x);
        }
        Ok(Val::Vector(merge_series(out)?))
    }

    fn label_join(&mut self, args: Vec<Val>) -> Result<Val> {
        let mut it = args.into_iter();
        let v = take_vector(it.next().into_iter().collect())?;
        let strs: Vec<String> = it.filter_map(|a| if let Val::Str(s) = a { Some(s) } else { None }).collect();
        if strs.len() < 2 {
            return Err(Error::BadData("label_join needs a destination and a separator".into()));
        }
        let (dst, sep, srcs) = (&strs[0], &strs[1], &strs[2..]);
        if !strata_model::is_valid_label_name(dst) {
            return Err(Error::BadData(format!("invalid destination label name in label_join(): {dst}")));
        }
        for s in srcs {
            if !strata_model::is_valid_label_name(s) {
                return Err(Error::BadData(format!("invalid source label name in label_join(): {s}")));
            }
        }
        let mut out = Vec::with_capacity(v.len());
        for mut x in v {
            let joined: Vec<&str> = srcs.iter().map(|s| x.labels.get(s).unwrap_or("")).collect();
            let joined = joined.join(sep);
            let mut b = x.labels.builder();
            b.set(dst, &joined);
            x.labels = b.build();
            if dst == METRIC_NAME {
                x.drop_name = false;
            }
            out.push(x);
        }
        Ok(Val::Vector(merge_series(out)?))
    }
}

pub(crate) fn take_vector(mut args: Vec<Val>) -> Result<Vec<VSeries>> {
    if args.is_empty() {
        return Err(Error::BadData("missing vector argument".into()));
    }
    match args.swap_remove(0) {
        Val::Vector(v) => Ok(v),
        other => Err(Error::exec(format!("expected instant vector, got {}", other.type_name()))),
    }
}

pub(crate) fn take_scalar(v: Val) -> Result<Vec<f64>> {
    match v {
        Val::Scalar(v) => Ok(v),
        other => Err(Error::exec(format!("expected scalar, got {}", other.type_name()))),
    }
}

/// The labels `absent()` reports: the equality matchers of a plain selector.
pub(crate) fn absent_labels(e: &Expr) -> Labels {
    let vs = match strip_parens(e) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::empty(),
    };
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut out: Vec<Label> = Vec::new();
    for m in &vs.matchers.matchers {
        *seen.entry(m.name.as_str()).or_default() += 1;
    }
    for m in &vs.matchers.matchers {
        if matches!(m.op, promql_parser::label::MatchOp::Equal) && m.name != METRIC_NAME && seen[m.name.as_str()] == 1 {
            out.push(Label::new(m.name.as_str(), m.value.as_str()));
        }
    }
    Labels::new(out)
}

/// Compares strings with runs of digits compared as numbers.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < ab.len() && j < bb.len() {
        if ab[i].is_ascii_digit() && bb[j].is_ascii_digit() {
            let si = i;
            while i < ab.len() && ab[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < bb.len() && bb[j].is_ascii_digit() {
                j += 1;
            }
            let x = a[si..i].trim_start_matches('0');
            let y = b[sj..j].trim_start_matches('0');
            let o = x.len().cmp(&y.len()).then_with(|| x.cmp(y));
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        } else {
            let o = ab[i].cmp(&bb[j]);
            if o != std::cmp::Ordering::Equal {
                return o;
            }
            i += 1;
            j += 1;
        }
    }
    (ab.len() - i).cmp(&(bb.len() - j))
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// One calendar field of a Unix time in seconds, in UTC.
pub(crate) fn date_part(name: &str, secs: f64) -> f64 {
    if !secs.is_finite() {
        return f64::NAN;
    }
    let t = secs.floor() as i64;
    let days = t.div_euclid(86_400);
    let sod = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    const CUM: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    match name {
        "minute" => (sod / 60 % 60) as f64,
        "hour" => (sod / 3600) as f64,
        "day_of_week" => (days + 4).rem_euclid(7) as f64,
        "day_of_month" => d as f64,
        "day_of_year" => (CUM[(m - 1) as usize] + d + u32::from(m > 2 && is_leap(y))) as f64,
        "days_in_month" => match m {
            2 if is_leap(y) => 29.0,
            2 => 28.0,
            4 | 6 | 9 | 11 => 30.0,
            _ => 31.0,
        },
        "month" => m as f64,
        "year" => y as f64,
        _ => f64::NAN,
    }
}

/// Go's `math.Max`: NaN if either argument is NaN (Rust's `f64::max` ignores NaN).
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }
}

/// Go's `math.Min`: NaN if either argument is NaN.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_fields() {
        // 2024-02-29T13:45:00Z
        let t = 1_709_214_300.0;
        assert_eq!(date_part("year", t), 2024.0);
        assert_eq!(date_part("month", t), 2.0);
        assert_eq!(date_part("day_of_month", t), 29.0);
        assert_eq!(date_part("days_in_month", t), 29.0);
        assert_eq!(date_part("day_of_year", t), 60.0);
        assert_eq!(date_part("hour", t), 13.0);
        assert_eq!(date_part("minute", t), 45.0);
        assert_eq!(date_part("day_of_week", t), 4.0);
        assert_eq!(date_part("year", 0.0), 1970.0);
        assert!(date_part("year", f64::NAN).is_nan());
    }

    async fn eval(q: &crate::test_source::MemQuerier, expr: &str) -> Vec<(String, f64)> {
        let r = crate::Engine::default().instant_query(q, expr, 0).await.unwrap();
        match r.value {
            crate::QueryValue::Vector(v) => v.into_iter().map(|s| (s.labels.to_string(), s.v)).collect(),
            crate::QueryValue::Scalar { v, .. } => vec![(String::new(), v)],
            other => panic!("{other:?}"),
        }
    }

    fn src() -> crate::test_source::MemQuerier {
        let mut q = crate::test_source::MemQuerier::new();
        for (i, v) in [2.25, -2.5, f64::NAN, 7.0].into_iter().enumerate() {
            let id = i.to_string();
            q.add(Labels::from_pairs([("__name__", "m"), ("i", id.as_str())]), [strata_model::Sample::new(0, v)]);
        }
        q
    }

    #[tokio::test]
    async fn documented_edge_cases() {
        let q = src();
        // clamp with min > max returns nothing; NaN bounds give NaN.
        assert!(eval(&q, "clamp(m, 5, 1)").await.is_empty());
        assert!(eval(&q, "clamp(m, NaN, 1)").await.iter().all(|x| x.1.is_nan()));
        // round: ties go up; to_nearest picks the grid.
        let r = eval(&q, "round(m, 0.5)").await;
        assert_eq!(r[0].1, 2.5);
        assert_eq!(eval(&q, "round(m)").await[1].1, -2.0);
        let s: Vec<f64> = eval(&q, "sgn(m)").await.iter().map(|x| x.1).collect();
        assert_eq!((s[0], s[1], s[3]), (1.0, -1.0, 1.0));
        // sort and sort_desc put NaN last.
        assert!(eval(&q, "sort_desc(m)").await[3].1.is_nan());
        assert!(eval(&q, "sort(m)").await[3].1.is_nan());
        // scalar() of more than one element is NaN.
        assert!(eval(&q, "scalar(m)").await[0].1.is_nan());
        assert_eq!(eval(&q, "scalar(m{i=\"3\"})").await[0].1, 7.0);
        // absent() keeps only unambiguous equality matchers.
        let a = eval(&q, "absent(nope{a=\"1\", a=\"2\", b=\"x\"})").await;
        assert_eq!(a, vec![("{b=\"x\"}".to_string(), 1.0)]);
        // Time functions default to the evaluation time (here the epoch).
        assert_eq!(eval(&q, "day_of_week()").await[0].1, 4.0);
        assert_eq!(eval(&q, "year(vector(-1))").await[0].1, 1969.0);
    }

    #[test]
    fn natural_order() {
        assert_eq!(natural_cmp("a2", "a10"), std::cmp::Ordering::Less);
        assert_eq!(natural_cmp("b", "a10"), std::cmp::Ordering::Greater);
    }
}
