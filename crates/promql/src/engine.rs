//! The query entry points: parse, plan the selectors, fetch, evaluate.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use promql_parser::parser::{self, Expr};
use strata_model::{Labels, MatchOp, Matcher, Querier, SelectHints, SourceResolution, WindowedSeries};

use crate::error::{Error, Result};
use crate::eval::{Evaluator, Steps, Val, at_ms, offset_ms, subquery_steps};
use crate::value::{Annotations, InstantSample, QueryResult, QueryStats, QueryValue, RangeSeries};

/// Prometheus refuses range queries with more points than this per series.
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// Engine settings, with Prometheus's defaults.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant vector selector looks for a sample (`--query.lookback-delta`).
    pub lookback_delta: Duration,
    /// Most samples a query may hold at once (`--query.max-samples`).
    pub max_samples: usize,
    /// Longest a query may run (`--query.timeout`).
    pub timeout: Duration,
    /// Step of subqueries written without one (`expr[5m:]`); Prometheus uses the
    /// global evaluation interval.
    pub default_subquery_step: Duration,
    /// Prometheus 3's `promql-delayed-name-removal` feature: functions and
    /// arithmetic only mark `__name__` for removal and it is dropped when the query
    /// finishes, so `label_replace` can still read it. Off by default, as in
    /// Prometheus; the conformance scripts run with it on.
    pub delayed_name_removal: bool,
    /// Prometheus's experimental `type-and-unit-labels` feature: `__type__` and
    /// `__unit__` are dropped together with `__name__`.
    pub type_and_unit_labels: bool,
    /// Which resolution selectors read (Thanos's `max_source_resolution`); only
    /// storage with downsampled data ([`Querier::select_windows`]) makes a
    /// difference. Selectors feeding functions that cannot be answered from
    /// windows ([`WINDOW_FUNCTIONS`] lists those that can) always read raw data.
    pub max_source_resolution: SourceResolution,
}

/// Range functions answered from downsampled windows as well as from raw samples
/// (see docs/downsampling.md for how exact each is).
pub const WINDOW_FUNCTIONS: [&str; 12] = [
    "rate",
    "increase",
    "irate",
    "resets",
    "sum_over_time",
    "count_over_time",
    "min_over_time",
    "max_over_time",
    "avg_over_time",
    "last_over_time",
    "present_over_time",
    "absent_over_time",
];

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta: Duration::from_secs(300),
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            default_subquery_step: Duration::from_secs(60),
            delayed_name_removal: false,
            type_and_unit_labels: false,
            max_source_resolution: SourceResolution::Auto,
        }
    }
}

/// A PromQL engine. Cheap to share; holds only its options.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    opts: EngineOptions,
}

/// One selector the evaluation needs, with the time range it reads.
struct Need<'a> {
    key: usize,
    vs: &'a parser::VectorSelector,
    mint: i64,
    maxt: i64,
    /// The function a range selector is the argument of.
    func: Option<&'static str>,
    /// The step of the evaluations reading it (0: one evaluation).
    step: i64,
    /// The range of a range selector; 0 for an instant vector selector.
    window: i64,
    /// [`SelectHints::max_resolution`], set once the tree is planned.
    max_resolution: i64,
}

impl Engine {
    pub fn new(opts: EngineOptions) -> Self {
        Engine { opts }
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Evaluates `expr` at one instant (`/api/v1/query`).
    pub async fn instant_query(&self, q: &dyn Querier, expr: &str, time_ms: i64) -> Result<QueryResult> {
        self.prepare_instant(q, expr, time_ms).await?.execute()
    }

    /// Evaluates `expr` at every step in `[start, end]` (`/api/v1/query_range`). The
    /// value is always a matrix.
    pub async fn range_query(
        &self,
        q: &dyn Querier,
        expr: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult> {
        self.prepare_range(q, expr, start_ms, end_ms, step_ms).await?.execute()
    }

    /// Parses `expr` and fetches everything it reads for an instant query, without
    /// evaluating. [`PreparedQuery::execute`] then does the CPU-bound part, which a
    /// server should run off its async workers (e.g. in `spawn_blocking`).
    pub async fn prepare_instant(&self, q: &dyn Querier, expr: &str, time_ms: i64) -> Result<PreparedQuery> {
        let steps = Steps { start: time_ms, end: time_ms, step: 1, n: 1 };
        self.prepare(q, expr, steps, true, time_ms).await
    }

    /// Like [`Engine::prepare_instant`] for a range query, with the same checks as
    /// [`Engine::range_query`].
    pub async fn prepare_range(
        &self,
        q: &dyn Querier,
        expr: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<PreparedQuery> {
        let steps = range_steps(start_ms, end_ms, step_ms)?;
        self.prepare(q, expr, steps, false, end_ms).await
    }

    /// `query_end` is the request's `end` (what `@ end()` means), which can lie after
    /// the last step when the range is not a multiple of the step.
    async fn prepare(
        &self,
        q: &dyn Querier,
        text: &str,
        steps: Steps,
        instant: bool,
        query_end: i64,
    ) -> Result<PreparedQuery> {
        let started = Instant::now();
        let deadline = started + self.opts.timeout;
        // Boxed so that node addresses, which key the fetched data, stay put.
        let mut expr = Box::new(parse(text)?);
        crate::eval::add_default_info_selector(&mut expr);
        if !instant {
            match expr.value_type() {
                parser::value::ValueType::Vector | parser::value::ValueType::Scalar => {}
                t => {
                    return Err(Error::BadData(format!(
                        "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                        match t {
                            parser::value::ValueType::Matrix => "range vector",
                            _ => "string",
                        }
                    )));
                }
            }
        }
        let lookback = self.opts.lookback_delta.as_millis() as i64;
        let sub_step = self.opts.default_subquery_step.as_millis() as i64;
        let mut data: HashMap<usize, Vec<WindowedSeries>> = HashMap::new();
        let mut resolutions: Vec<i64> = Vec::new();
        let loaded;
        {
            let mut needs = Vec::new();
            let pctx = PlanCtx { lookback, sub_step, query_start: steps.start, query_end };
            plan(&expr, steps, &pctx, &mut needs);
            for n in &mut needs {
                let windowable = n.window == 0 || n.func.is_some_and(|f| WINDOW_FUNCTIONS.contains(&f));
                if windowable {
                    n.max_resolution = self.opts.max_source_resolution.max_resolution(n.step, n.window);
                }
            }
            // Identical selections (same matchers and window) are fetched once, and
            // all selects run concurrently.
            let mut unique: Vec<&Need<'_>> = Vec::new();
            let mut which: Vec<usize> = Vec::with_capacity(needs.len());
            // The function is part of the key: storage may answer a counter's
            // selection differently (HA dedup's counter adjustment).
            let mut seen: HashMap<(String, i64, i64, Option<&str>, i64), usize> = HashMap::new();
            for need in &needs {
                let id = (
                    format!("{:?}{}", need.vs.name, need.vs.matchers),
                    need.mint,
                    need.maxt,
                    need.func,
                    need.max_resolution,
                );
                let u = *seen.entry(id).or_insert_with(|| {
                    unique.push(need);
                    unique.len() - 1
                });
                which.push(u);
            }
            let mut fetched = futures::future::try_join_all(unique.iter().map(|n| select(q, n))).await?;
            if Instant::now() > deadline {
                return Err(Error::Timeout);
            }
            loaded = which
                .iter()
                .map(|&u| fetched[u].iter().map(|s| s.samples.len() + s.windows.len()).sum::<usize>())
                .sum();
            for series in &fetched {
                for s in series.iter().filter(|s| s.resolution > 0) {
                    if !resolutions.contains(&s.resolution) {
                        resolutions.push(s.resolution);
                    }
                }
            }
            let loaded: usize = loaded;
            if loaded > self.opts.max_samples {
                return Err(Error::TooManySamples);
            }
            let mut users = vec![0usize; unique.len()];
            for &u in &which {
                users[u] += 1;
            }
            for (need, &u) in needs.iter().zip(&which) {
                users[u] -= 1;
                let series = if users[u] == 0 { std::mem::take(&mut fetched[u]) } else { fetched[u].clone() };
                data.insert(need.key, series);
            }
        }
        Ok(PreparedQuery {
            expr,
            data,
            steps,
            query_end,
            instant,
            lookback,
            sub_step,
            deadline,
            max_samples: self.opts.max_samples,
            loaded,
            delayed_names: self.opts.delayed_name_removal,
            type_unit: self.opts.type_and_unit_labels,
            resolutions,
            source_resolution: self.opts.max_source_resolution,
        })
    }
}

/// A parsed query with its data fetched, ready to evaluate without I/O.
#[derive(Debug)]
pub struct PreparedQuery {
    expr: Box<Expr>,
    data: HashMap<usize, Vec<WindowedSeries>>,
    steps: Steps,
    /// The request's end time, what `@ end()` refers to.
    query_end: i64,
    instant: bool,
    lookback: i64,
    sub_step: i64,
    deadline: Instant,
    max_samples: usize,
    /// Samples fetched, for [`QueryStats`].
    loaded: usize,
    delayed_names: bool,
    type_unit: bool,
    /// Downsampled resolutions some selector was answered from (ms).
    resolutions: Vec<i64>,
    source_resolution: SourceResolution,
}

impl PreparedQuery {
    /// Evaluates the query. CPU-bound and synchronous.
    pub fn execute(self) -> Result<QueryResult> {
        let mut ann = Annotations::default();
        if !self.resolutions.is_empty() {
            let mut r = self.resolutions.clone();
            r.sort_unstable();
            let names: Vec<String> = r.into_iter().map(strata_model::format_resolution).collect();
            ann.info(format!(
                "parts of the time range were read from downsampled data at resolution {} \
                 (max_source_resolution={}); max_source_resolution=raw reads raw samples only",
                names.join(", "),
                self.source_resolution
            ));
        }
        let steps = self.steps;
        let peak;
        let value = {
            let mut ev = Evaluator {
                data: self.data,
                lookback: self.lookback,
                sub_step: self.sub_step,
                query_start: steps.start,
                query_end: self.query_end,
                ann: &mut ann,
                deadline: self.deadline,
                max_samples: self.max_samples,
                peak: 0,
                delayed_names: self.delayed_names,
                type_unit: self.type_unit,
            };
            let val = ev.eval(&self.expr, &steps)?;
            let val = ev.finish(val)?;
            peak = ev.peak;
            to_query_value(val, &steps, &self.expr, self.instant)?
        };
        let stats =
            QueryStats { total_queryable_samples: self.loaded as u64, peak_samples: peak.max(self.loaded) as u64 };
        Ok(QueryResult { value, warnings: ann.warnings, infos: ann.infos, stats })
    }
}

/// Validates range-query parameters like Prometheus's API does.
fn range_steps(start_ms: i64, end_ms: i64, step_ms: i64) -> Result<Steps> {
    if step_ms <= 0 {
        return Err(Error::BadData(
            "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
        ));
    }
    if end_ms < start_ms {
        return Err(Error::BadData("end timestamp must not be before start time".into()));
    }
    let span = end_ms.checked_sub(start_ms).ok_or_else(|| Error::BadData("query time range is too large".into()))?;
    if span / step_ms > MAX_POINTS_PER_SERIES {
        return Err(Error::TooManyPoints);
    }
    let n = (span / step_ms + 1) as usize;
    Ok(Steps { start: start_ms, end: start_ms + (n as i64 - 1) * step_ms, step: step_ms, n })
}

/// Parses a series selector such as the `match[]` parameter of the series and
/// label APIs into matcher sets, one per `or` branch, each including the metric
/// name. Anything but a plain vector selector is [`Error::BadData`].
pub fn parse_selector(text: &str) -> Result<Vec<Vec<Matcher>>> {
    let expr = parse(text)?;
    let Expr::VectorSelector(vs) = &expr else {
        return Err(Error::BadData(format!("invalid selector {text:?}: expected a vector selector")));
    };
    matcher_sets(vs)
}

/// The matcher sets of a selector: one per `or` branch, each with the metric name.
fn matcher_sets(vs: &parser::VectorSelector) -> Result<Vec<Vec<Matcher>>> {
    let mut groups: Vec<Vec<&promql_parser::label::Matcher>> = Vec::new();
    if vs.matchers.or_matchers.is_empty() {
        groups.push(vs.matchers.matchers.iter().collect());
    } else {
        for g in &vs.matchers.or_matchers {
            groups.push(g.iter().chain(vs.matchers.matchers.iter()).collect());
        }
    }
    groups
        .into_iter()
        .map(|g| {
            let mut ms = Vec::with_capacity(g.len() + 1);
            if let Some(name) = &vs.name {
                ms.push(Matcher::equal(strata_model::METRIC_NAME, name.clone()));
            }
            for m in g {
                ms.push(to_matcher(m)?);
            }
            Ok(ms)
        })
        .collect()
}

/// Parses a query as Prometheus 3 does (backtick strings raw), an error being
/// [`Error::Parse`] with Prometheus's `line:col: parse error: ` prefix.
pub fn parse(text: &str) -> Result<Expr> {
    crate::syntax::parse(text)
}

struct PlanCtx {
    lookback: i64,
    sub_step: i64,
    query_start: i64,
    query_end: i64,
}

/// Walks the tree as evaluation will, recording what each selector reads.
fn plan<'a>(e: &'a Expr, s: Steps, c: &PlanCtx, out: &mut Vec<Need<'a>>) {
    let window = |vs: &parser::VectorSelector, range: i64| {
        let off = offset_ms(&vs.offset);
        let (lo, hi) = match &vs.at {
            Some(at) => {
                let t = at_ms(at, c.query_start, c.query_end);
                (t, t)
            }
            None => (s.start, s.end),
        };
        (lo.saturating_sub(off).saturating_sub(range).saturating_add(1), hi.saturating_sub(off))
    };
    // An instant query (one evaluation) reads each selection once: no step.
    let step = if s.n > 1 { s.step } else { 0 };
    match e {
        Expr::VectorSelector(vs) => {
            let (mint, maxt) = window(vs, c.lookback);
            let key = vs as *const _ as usize;
            out.push(Need { key, vs, mint, maxt, func: None, step, window: 0, max_resolution: 0 });
        }
        Expr::MatrixSelector(ms) => {
            let range = ms.range.as_millis() as i64;
            let (mint, maxt) = window(&ms.vs, range);
            let key = &ms.vs as *const _ as usize;
            out.push(Need { key, vs: &ms.vs, mint, maxt, func: None, step, window: range, max_resolution: 0 });
        }
        Expr::Subquery(sq) => {
            let inner = subquery_steps(sq, &s, c.sub_step, c.query_start, c.query_end);
            plan(&sq.expr, inner, c, out);
        }
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                plan(p, s, c, out);
            }
            plan(&a.expr, s, c, out);
        }
        Expr::Unary(u) => plan(&u.expr, s, c, out),
        Expr::Binary(b) => {
            plan(&b.lhs, s, c, out);
            plan(&b.rhs, s, c, out);
        }
        Expr::Paren(p) => plan(&p.expr, s, c, out),
        Expr::Call(call) => {
            for a in &call.args.args {
                let first = out.len();
                plan(a, s, c, out);
                if let Expr::MatrixSelector(_) = a.as_ref() {
                    for n in &mut out[first..] {
                        n.func = Some(call.func.name);
                    }
                }
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Converts a parser matcher to the model's.
pub(crate) fn to_matcher(m: &promql_parser::label::Matcher) -> Result<Matcher> {
    use promql_parser::label::MatchOp as P;
    let op = match m.op {
        P::Equal => MatchOp::Equal,
        P::NotEqual => MatchOp::NotEqual,
        P::Re(_) => MatchOp::RegexMatch,
        P::NotRe(_) => MatchOp::RegexNoMatch,
    };
    Ok(Matcher::new(op, m.name.clone(), m.value.clone())?)
}

/// Fetches one selector's series; `{a="1" or b="2"}` becomes one select per branch,
/// merged by label set. A selection that may read downsampled data goes through
/// [`Querier::select_windows`].
async fn select(q: &dyn Querier, need: &Need<'_>) -> Result<Vec<WindowedSeries>> {
    let hints = SelectHints {
        func: need.func,
        step: need.step,
        window: need.window,
        max_resolution: need.max_resolution,
        ..SelectHints::range(need.mint, need.maxt)
    };
    let groups = matcher_sets(need.vs)?;
    let mut out: Vec<WindowedSeries> = Vec::new();
    for ms in &groups {
        let got = if need.max_resolution > 0 {
            q.select_windows(&hints, ms).await?
        } else {
            q.select(&hints, ms).await?.into_iter().map(WindowedSeries::from).collect()
        };
        if groups.len() == 1 {
            out = got;
        } else {
            out.extend(got);
        }
    }
    if groups.len() > 1 {
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out.dedup_by(|a, b| a.labels == b.labels);
    }
    for s in &mut out {
        s.samples.retain(|x| x.t >= need.mint && x.t <= need.maxt);
        if !s.windows.is_empty() {
            // Windows reaching back two of their own length stay: a range function
            // or lookback widened to the resolution reads them.
            let from = need.mint.saturating_sub(2 * s.resolution);
            s.windows.retain(|w| w.last_t >= from && w.last_t <= need.maxt);
        }
    }
    Ok(out)
}

/// Whether the top of the tree fixes the output order (sort, topk, ...).
fn ordered_result(e: &Expr) -> bool {
    match e {
        Expr::Paren(p) => ordered_result(&p.expr),
        Expr::Call(c) => matches!(c.func.name, "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc"),
        Expr::Aggregate(a) => {
            use promql_parser::parser::token::{T_BOTTOMK, T_TOPK};
            matches!(a.op.id(), T_TOPK | T_BOTTOMK)
        }
        _ => false,
    }
}

fn to_query_value(val: Val, steps: &Steps, expr: &Expr, instant: bool) -> Result<QueryValue> {
    let t = steps.start;
    Ok(match val {
        Val::Str(s) => QueryValue::String { t, s },
        Val::Scalar(v) if instant => QueryValue::Scalar { t, v: v[0] },
        Val::Scalar(v) => QueryValue::Matrix(vec![RangeSeries {
            labels: Labels::empty(),
            samples: v.iter().enumerate().map(|(i, &x)| strata_model::Sample::new(steps.ts(i), x)).collect(),
        }]),
        Val::Vector(vs) if instant => {
            let mut out: Vec<InstantSample> =
                vs.into_iter().filter_map(|s| s.vals[0].map(|v| InstantSample { labels: s.labels, t, v })).collect();
            if !ordered_result(expr) {
                out.sort_by(|a, b| a.labels.cmp(&b.labels));
            }
            QueryValue::Vector(out)
        }
        Val::Vector(vs) => {
            let mut out: Vec<RangeSeries> = vs
                .into_iter()
                .map(|s| RangeSeries {
                    labels: s.labels,
                    samples: s
                        .vals
                        .iter()
                        .enumerate()
                        .filter_map(|(i, v)| v.map(|v| strata_model::Sample::new(steps.ts(i), v)))
                        .collect(),
                })
                .filter(|s| !s.samples.is_empty())
                .collect();
            out.sort_by(|a, b| a.labels.cmp(&b.labels));
            QueryValue::Matrix(out)
        }
        Val::Range(r) => {
            let mut out: Vec<RangeSeries> = r
                .series
                .iter()
                .map(|s| {
                    let (lo, hi) = r.window(&s.samples, r.eff_time(t));
                    RangeSeries { labels: s.labels.clone(), samples: s.samples[lo..hi].to_vec() }
                })
                .filter(|s| !s.samples.is_empty())
                .collect();
            out.sort_by(|a, b| a.labels.cmp(&b.labels));
            QueryValue::Matrix(out)
        }
    })
}

#[cfg(test)]
mod tests;
