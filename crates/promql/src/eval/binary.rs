//! Binary operators: arithmetic, comparison, and set operators with vector matching.

use std::collections::HashMap;

use promql_parser::label::Labels as NameList;
use promql_parser::parser::token::*;
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};
use strata_model::{Labels, METRIC_NAME};

use super::{Evaluator, Steps, VSeries, Val, merge_series};
use crate::error::{Error, Result};

/// Applies an arithmetic or comparison operator; the flag says whether a
/// comparison holds (always true for arithmetic).
pub(crate) fn apply(op: TokenId, l: f64, r: f64) -> (f64, bool) {
    match op {
        T_ADD => (l + r, true),
        T_SUB => (l - r, true),
        T_MUL => (l * r, true),
        T_DIV => (l / r, true),
        T_MOD => (l % r, true),
        T_POW => (l.powf(r), true),
        T_ATAN2 => (l.atan2(r), true),
        T_EQLC => (l, l == r),
        T_NEQ => (l, l != r),
        T_GTR => (l, l > r),
        T_LSS => (l, l < r),
        T_GTE => (l, l >= r),
        T_LTE => (l, l <= r),
        _ => (f64::NAN, false),
    }
}

fn is_comparison(op: TokenId) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

/// How two vectors are matched: the signature of a series under `on`/`ignoring`.
struct Matching<'a> {
    on: bool,
    names: &'a [String],
    /// Labels always ignored without `on` (the metric name; `__type__` and
    /// `__unit__` still take part in matching).
    name_labels: &'static [&'static str],
}

impl Matching<'_> {
    fn sig(&self, l: &Labels) -> Labels {
        if self.on {
            let names: Vec<&str> = self.names.iter().map(|s| s.as_str()).collect();
            l.keep_only(&names)
        } else {
            let mut names: Vec<&str> = self.names.iter().map(|s| s.as_str()).collect();
            names.extend_from_slice(self.name_labels);
            l.without(&names)
        }
    }
}

impl Evaluator<'_> {
    pub(crate) fn binary(&mut self, b: &BinaryExpr, s: &Steps) -> Result<Val> {
        if let Some(m) = &b.modifier
            && (m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some())
        {
            return Err(Error::BadData("fill modifiers are not supported".into()));
        }
        let op = b.op.id();
        let return_bool = b.return_bool();
        let lhs = self.eval(&b.lhs, s)?;
        let rhs = self.eval(&b.rhs, s)?;
        Ok(match (lhs, rhs) {
            (Val::Scalar(l), Val::Scalar(r)) => Val::Scalar(
                l.iter()
                    .zip(&r)
                    .map(|(&a, &b)| {
                        let (v, keep) = apply(op, a, b);
                        if is_comparison(op) { if keep { 1.0 } else { 0.0 } } else { v }
                    })
                    .collect(),
            ),
            (Val::Vector(v), Val::Scalar(r)) => Val::Vector(vector_scalar(op, return_bool, v, &r, false)),
            (Val::Scalar(l), Val::Vector(v)) => Val::Vector(vector_scalar(op, return_bool, v, &l, true)),
            (Val::Vector(l), Val::Vector(r)) => {
                let empty = NameList { labels: Vec::new() };
                let (on, names) = match b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
                    Some(LabelModifier::Include(ls)) => (true, ls),
                    Some(LabelModifier::Exclude(ls)) => (false, ls),
                    None => (false, &empty),
                };
                let m = Matching { on, names: &names.labels, name_labels: &[METRIC_NAME] };
                let out = match op {
                    T_LAND | T_LOR | T_LUNLESS => set_op(op, &m, l, r, s.n)?,
                    _ => {
                        let card =
                            b.modifier.as_ref().map(|m| m.card.clone()).unwrap_or(VectorMatchCardinality::OneToOne);
                        vector_vector(op, return_bool, &m, &card, l, r, s.n)?
                    }
                };
                Val::Vector(out)
            }
            (l, r) => {
                return Err(Error::exec(format!(
                    "binary expression must contain only scalar and instant vector types, got {} and {}",
                    l.type_name(),
                    r.type_name()
                )));
            }
        })
    }
}

fn vector_scalar(op: TokenId, return_bool: bool, mut v: Vec<VSeries>, sc: &[f64], scalar_left: bool) -> Vec<VSeries> {
    let cmp = is_comparison(op);
    for x in &mut v {
        // Prometheus keeps the metric name for atan2, as in the vector-vector case.
        if (!cmp || return_bool) && op != T_ATAN2 {
            x.drop_name = true;
        }
        for (slot, &c) in x.vals.iter_mut().zip(sc) {
            if let Some(val) = *slot {
                let (l, r) = if scalar_left { (c, val) } else { (val, c) };
                let (res, keep) = apply(op, l, r);
                *slot = if !cmp {
                    Some(res)
                } else if return_bool {
                    Some(if keep { 1.0 } else { 0.0 })
                } else if keep {
                    Some(val)
                } else {
                    None
                };
            }
        }
    }
    v.retain(|x| x.vals.iter().any(|v| v.is_some()));
    v
}

fn set_op(op: TokenId, m: &Matching<'_>, l: Vec<VSeries>, r: Vec<VSeries>, n: usize) -> Result<Vec<VSeries>> {
    match op {
        T_LAND | T_LUNLESS => {
            // Per signature, which steps the right side has a value at.
            let mut present: HashMap<Labels, Vec<bool>> = HashMap::new();
            for x in &r {
                let p = present.entry(m.sig(&x.labels)).or_insert_with(|| vec![false; n]);
                for (d, v) in p.iter_mut().zip(&x.vals) {
                    *d |= v.is_some();
                }
            }
            let keep_if = op == T_LAND;
            let mut out = Vec::with_capacity(l.len());
            for mut x in l {
                match present.get(&m.sig(&x.labels)) {
                    Some(p) => {
                        for (v, &hit) in x.vals.iter_mut().zip(p) {
                            if hit != keep_if {
                                *v = None;
                            }
                        }
                    }
                    None if keep_if => continue,
                    None => {}
                }
                if x.vals.iter().any(|v| v.is_some()) {
                    out.push(x);
                }
            }
            Ok(out)
        }
        _ => {
            let mut present: HashMap<Labels, Vec<bool>> = HashMap::new();
            for x in &l {
                let p = present.entry(m.sig(&x.labels)).or_insert_with(|| vec![false; n]);
                for (d, v) in p.iter_mut().zip(&x.vals) {
                    *d |= v.is_some();
                }
            }
            let mut out = l;
            for mut x in r {
                if let Some(p) = present.get(&m.sig(&x.labels)) {
                    for (v, &hit) in x.vals.iter_mut().zip(p) {
                        if hit {
                            *v = None;
                        }
                    }
                }
                if x.vals.iter().any(|v| v.is_some()) {
                    out.push(x);
                }
            }
            // Same label set on both sides at different steps is one series.
            merge_series(out)
        }
    }
}

fn fmt_sig(l: &Labels) -> String {
    l.to_string()
}

fn vector_vector(
    op: TokenId,
    return_bool: bool,
    m: &Matching<'_>,
    card: &VectorMatchCardinality,
    l: Vec<VSeries>,
    r: Vec<VSeries>,
    n: usize,
) -> Result<Vec<VSeries>> {
    let cmp = is_comparison(op);
    let drop = !cmp || return_bool;
    let (swap, include): (bool, &[String]) = match card {
        VectorMatchCardinality::OneToMany(ls) => (true, &ls.labels),
        VectorMatchCardinality::ManyToOne(ls) => (false, &ls.labels),
        _ => (false, &[]),
    };
    let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
    let (many, one) = if swap { (r, l) } else { (l, r) };
    if many.is_empty() || one.is_empty() {
        return Ok(Vec::new());
    }
    let one_side = if swap { "left" } else { "right" };

    let mut one_groups: HashMap<Labels, Vec<usize>> = HashMap::new();
    for (j, x) in one.iter().enumerate() {
        one_groups.entry(m.sig(&x.labels)).or_default().push(j);
    }
    for (sig, g) in &one_groups {
        if g.len() > 1 {
            for i in 0..n {
                let with: Vec<usize> = g.iter().copied().filter(|&j| one[j].vals[i].is_some()).collect();
                if with.len() > 1 {
                    return Err(Error::exec(format!(
                        "found duplicate series for the match group {} on the {} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                        fmt_sig(sig),
                        one_side,
                        one[with[0]].labels,
                        one[with[1]].labels
                    )));
                }
            }
        }
    }

    // Signature groups by index, so the step loop never touches label sets.
    let gids: HashMap<&Labels, usize> = one_groups.keys().enumerate().map(|(g, k)| (k, g)).collect();
    let members: Vec<&Vec<usize>> = {
        let mut v: Vec<(usize, &Vec<usize>)> = one_groups.iter().map(|(k, g)| (gids[k], g)).collect();
        v.sort_by_key(|(g, _)| *g);
        v.into_iter().map(|(_, g)| g).collect()
    };
    // For one-to-one matching, two left series may not match the same right one.
    let mut claimed: Vec<Vec<bool>> = if one_to_one { vec![Vec::new(); members.len()] } else { Vec::new() };

    let mut out: Vec<VSeries> = Vec::new();
    let mut out_idx: HashMap<(Labels, bool), usize> = HashMap::new();
    let mut pair_idx: HashMap<(usize, usize), usize> = HashMap::new();
    for (i, x) in many.iter().enumerate() {
        let Some(&gid) = gids.get(&m.sig(&x.labels)) else {
            continue;
        };
        let g = members[gid];
        let mut last_pair: Option<(usize, usize)> = None;
        for step in 0..n {
            let Some(mv) = x.vals[step] else { continue };
            let Some(&j) = g.iter().find(|&&j| one[j].vals[step].is_some()) else {
                continue;
            };
            let ov = one[j].vals[step].unwrap_or_default();
            if one_to_one {
                let c = &mut claimed[gid];
                if c.is_empty() {
                    c.resize(n, false);
                }
                if c[step] {
                    return Err(Error::exec(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                    ));
                }
                c[step] = true;
            }
            let (lv, rv) = if swap { (ov, mv) } else { (mv, ov) };
            let (res, keep) = apply(op, lv, rv);
            let val = if !cmp {
                res
            } else if return_bool {
                if keep { 1.0 } else { 0.0 }
            } else if keep {
                lv
            } else {
                continue;
            };
            let k = match last_pair.filter(|p| p.0 == j).map(|p| p.1).or_else(|| pair_idx.get(&(i, j)).copied()) {
                Some(k) => k,
                None => {
                    let labels = result_labels(&x.labels, &one[j].labels, m, one_to_one, include);
                    let key = (labels, drop || x.drop_name);
                    let k = match out_idx.get(&key) {
                        Some(&k) => k,
                        None => {
                            out.push(VSeries { labels: key.0.clone(), drop_name: key.1, vals: vec![None; n] });
                            out_idx.insert(key, out.len() - 1);
                            out.len() - 1
                        }
                    };
                    pair_idx.insert((i, j), k);
                    k
                }
            };
            last_pair = Some((j, k));
            if out[k].vals[step].is_some() {
                return Err(Error::exec("multiple matches for labels: grouping labels must ensure unique matches"));
            }
            out[k].vals[step] = Some(val);
        }
    }
    Ok(out)
}

/// The labels of a vector-matching result: the "many" side's, reduced to the
/// `on` labels (or without the `ignoring` ones) for one-to-one matching, plus the
/// `group_left`/`group_right` labels copied from the "one" side.
fn result_labels(many: &Labels, one: &Labels, m: &Matching<'_>, one_to_one: bool, include: &[String]) -> Labels {
    let mut b = many.builder();
    if one_to_one {
        if m.on {
            let names: Vec<&str> = m.names.iter().map(|s| s.as_str()).collect();
            b = many.keep_only(&names).builder();
        } else {
            for n in m.names {
                b.del(n);
            }
        }
    }
    for n in include {
        match one.get(n) {
            Some(v) => b.set(n, v),
            None => b.del(n),
        };
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_follows_ieee_and_go() {
        assert_eq!(apply(T_MOD, -7.0, 3.0).0, -1.0);
        assert!(apply(T_MOD, 1.0, 0.0).0.is_nan());
        assert_eq!(apply(T_POW, 2.0, 10.0).0, 1024.0);
        assert_eq!(apply(T_DIV, 1.0, 0.0).0, f64::INFINITY);
        assert_eq!(apply(T_ATAN2, 0.0, -1.0).0, std::f64::consts::PI);
    }

    #[test]
    fn comparisons_keep_the_left_value() {
        assert_eq!(apply(T_GTR, 5.0, 3.0), (5.0, true));
        assert_eq!(apply(T_LTE, 5.0, 3.0), (5.0, false));
        assert!(!apply(T_EQLC, f64::NAN, f64::NAN).1);
        assert!(apply(T_NEQ, f64::NAN, f64::NAN).1);
    }

    fn series(pairs: &[(&str, &str)], vals: &[Option<f64>]) -> VSeries {
        VSeries { labels: Labels::from_pairs(pairs.iter().copied()), drop_name: false, vals: vals.to_vec() }
    }

    #[test]
    fn set_operators_work_per_step() {
        let m = Matching { on: false, names: &[], name_labels: &[METRIC_NAME] };
        let l = vec![series(&[("a", "1")], &[Some(1.0), Some(2.0)])];
        let r = vec![series(&[("a", "1")], &[None, Some(9.0)])];
        let and = set_op(T_LAND, &m, l.clone(), r.clone(), 2).unwrap();
        assert_eq!(and[0].vals, vec![None, Some(2.0)]);
        let unless = set_op(T_LUNLESS, &m, l.clone(), r.clone(), 2).unwrap();
        assert_eq!(unless[0].vals, vec![Some(1.0), None]);
        let or = set_op(T_LOR, &m, vec![series(&[("a", "1")], &[None, Some(2.0)])], r, 2).unwrap();
        assert_eq!(or.len(), 1);
        assert_eq!(or[0].vals, vec![None, Some(2.0)]);
    }

    #[test]
    fn one_to_one_rejects_duplicates_on_the_one_side() {
        let m = Matching { on: true, names: &["a".to_string()], name_labels: &[METRIC_NAME] };
        let l = vec![series(&[("a", "1"), ("b", "x")], &[Some(1.0)])];
        let r = vec![series(&[("a", "1"), ("b", "y")], &[Some(1.0)]), series(&[("a", "1"), ("b", "z")], &[Some(1.0)])];
        let err = vector_vector(T_ADD, false, &m, &VectorMatchCardinality::OneToOne, l, r, 1).unwrap_err();
        assert!(err.to_string().contains("many-to-many matching not allowed"));
    }
}
