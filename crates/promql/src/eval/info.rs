//! The experimental `info()` function: enriches series with the data labels of
//! info metrics (`target_info` by default) that share their `instance` and `job`.

use std::collections::HashMap;

use promql_parser::label::Matchers;
use promql_parser::parser::{Call, Expr, VectorSelector};
use strata_model::{Labels, METRIC_NAME, Matcher};

use super::functions::strip_parens;
use super::{Evaluator, Steps, VSeries, Val, merge_series};
use crate::error::{Error, Result};

/// Labels that tie a series to its info series.
const IDENTIFYING: [&str; 2] = ["instance", "job"];

/// Gives `info(v)` its implicit second argument, `target_info`, so the planner
/// fetches it like any other selector.
pub(crate) fn add_default_info_selector(e: &mut Expr) {
    match e {
        Expr::Call(c) => {
            if c.func.name == "info" && c.args.args.len() == 1 {
                let mut vs = VectorSelector::new(Some("target_info".to_string()), Matchers::empty());
                vs.at = None;
                c.args.args.push(Box::new(Expr::VectorSelector(vs)));
            }
            // Without a name matcher the info metric is `target_info`.
            if c.func.name == "info"
                && let Some(a) = c.args.args.get_mut(1)
                && let Expr::VectorSelector(vs) = a.as_mut()
                && vs.name.is_none()
                && !vs.matchers.matchers.iter().any(|m| m.name == METRIC_NAME)
            {
                vs.name = Some("target_info".to_string());
            }
            for a in &mut c.args.args {
                add_default_info_selector(a);
            }
        }
        Expr::Aggregate(a) => {
            add_default_info_selector(&mut a.expr);
            if let Some(p) = &mut a.param {
                add_default_info_selector(p);
            }
        }
        Expr::Unary(u) => add_default_info_selector(&mut u.expr),
        Expr::Binary(b) => {
            add_default_info_selector(&mut b.lhs);
            add_default_info_selector(&mut b.rhs);
        }
        Expr::Paren(p) => add_default_info_selector(&mut p.expr),
        Expr::Subquery(s) => add_default_info_selector(&mut s.expr),
        _ => {}
    }
}

impl Evaluator<'_> {
    pub(crate) fn info(&mut self, c: &Call, s: &Steps) -> Result<Val> {
        let base = match self.eval(&c.args.args[0], s)? {
            Val::Vector(v) => v,
            other => return Err(Error::exec(format!("info() over {}", other.type_name()))),
        };
        let Some(Expr::VectorSelector(vs)) = c.args.args.get(1).map(|a| strip_parens(a)) else {
            return Err(Error::BadData("info() needs a vector selector as its second argument".into()));
        };
        let mut name_matchers: Vec<Matcher> = Vec::new();
        if let Some(n) = &vs.name {
            name_matchers.push(Matcher::equal(METRIC_NAME, n.clone()));
        }
        let mut data_matchers: Vec<Matcher> = Vec::new();
        for m in &vs.matchers.matchers {
            let m = crate::engine::to_matcher(m)?;
            if m.name == METRIC_NAME {
                name_matchers.push(m);
            } else {
                data_matchers.push(m);
            }
        }
        // Sample timestamps of every info series at every step.
        let infos = self.vector_selector(vs, s, true)?;
        let ident = |l: &Labels| -> (String, String) {
            (l.get(IDENTIFYING[0]).unwrap_or("").to_string(), l.get(IDENTIFYING[1]).unwrap_or("").to_string())
        };
        let mut by_ident: HashMap<(String, String), Vec<usize>> = HashMap::new();
        for (k, x) in infos.iter().enumerate() {
            by_ident.entry(ident(&x.labels)).or_default().push(k);
        }
        let wanted: Vec<&str> = data_matchers.iter().map(|m| m.name.as_str()).collect();
        let data_labels = |l: &Labels| -> Vec<(String, String)> {
            l.iter()
                .filter(|x| &*x.name != METRIC_NAME && !IDENTIFYING.contains(&&*x.name))
                .filter(|x| wanted.is_empty() || wanted.contains(&&*x.name))
                .map(|x| (x.name.to_string(), x.value.to_string()))
                .collect()
        };
        let n = s.n;
        let mut out: Vec<VSeries> = Vec::new();
        let mut idx: HashMap<Labels, usize> = HashMap::new();
        for b in base {
            let is_info = !name_matchers.is_empty() && name_matchers.iter().all(|m| m.matches_labels(&b.labels));
            let cands = by_ident.get(&ident(&b.labels));
            for i in 0..n {
                let Some(v) = b.vals[i] else { continue };
                let mut labels = b.labels.clone();
                if !is_info {
                    // Per info metric name, the series with the newest sample wins.
                    let mut best: HashMap<&str, (f64, usize)> = HashMap::new();
                    for &k in cands.into_iter().flatten() {
                        let Some(ts) = infos[k].vals[i] else { continue };
                        let name = infos[k].labels.metric_name().unwrap_or("");
                        let e = best.entry(name).or_insert((ts, k));
                        if ts > e.0 {
                            *e = (ts, k);
                        }
                    }
                    let mut bld = labels.builder();
                    for (_, k) in best.values() {
                        for (ln, lv) in data_labels(&infos[*k].labels) {
                            if b.labels.get(&ln).is_none() {
                                bld.set(&ln, &lv);
                            }
                        }
                    }
                    labels = bld.build();
                    // A data matcher that rejects the empty value requires a match.
                    if !data_matchers.iter().all(|m| m.matches_labels(&labels)) {
                        continue;
                    }
                }
                let o = *idx.entry(labels.clone()).or_insert_with(|| {
                    out.push(VSeries { labels, drop_name: b.drop_name, vals: vec![None; n] });
                    out.len() - 1
                });
                out[o].vals[i] = Some(v);
            }
        }
        Ok(Val::Vector(merge_series(out)?))
    }
}
