//! Runs Prometheus's PromQL conformance scripts against the engine.
//!
//! The corpus lives outside the repository (`STRATA_PROMQLTEST_DIR`, default
//! `<workspace>/../shared/promqltest`); a missing directory skips the test, except in
//! CI (`CI=true`), where it fails. Each file's pass count must stay at or above its
//! floor in [`FLOORS`].

#[path = "promqltest/script.rs"]
mod script;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use promql_parser::parser::Expr;
use script::{Command, Eval, EvalKind, Matcher as Want, Point, SeriesDesc};
use strata_model::{Labels, MatchOp, Matcher, Sample, stale_nan};
use strata_promql::test_source::MemQuerier;
use strata_promql::{Engine, EngineOptions, QueryResult, QueryValue};

/// Files skipped whole, with the reason printed.
const SKIP_FILES: &[(&str, &str)] = &[
    ("native_histograms.test", "native histograms are out of scope"),
    ("extended_vectors.test", "experimental smoothed/anchored range selectors"),
    ("duration_expression.test", "experimental duration expressions"),
];

/// Minimum passing evals per file; raise as coverage grows.
const FLOORS: &[(&str, usize)] = &[
    ("aggregators.test", 125),
    ("at_modifier.test", 45),
    ("collision.test", 2),
    ("functions.test", 262),
    ("histograms.test", 79),
    ("info.test", 20),
    ("limit.test", 1),
    ("literals.test", 25),
    ("name_label_dropping.test", 21),
    ("operators.test", 133),
    ("range_queries.test", 11),
    ("selectors.test", 31),
    ("staleness.test", 17),
    ("subquery.test", 32),
    ("trig_functions.test", 19),
    ("type_and_unit.test", 58),
];

/// Relative tolerance of float comparisons (promqltest's default epsilon).
const EPSILON: f64 = 1e-6;

fn corpus_dir() -> PathBuf {
    if let Ok(d) = std::env::var("STRATA_PROMQLTEST_DIR") {
        return PathBuf::from(d);
    }
    // crates/promql -> workspace root -> ../shared/promqltest
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/promqltest")
}

#[derive(Default)]
struct Tally {
    passed: usize,
    total: usize,
    skipped: usize,
    failures: Vec<String>,
    skips: Vec<String>,
}

fn almost_equal(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < EPSILON * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < EPSILON
}

/// Why an eval cannot run here, if it cannot.
fn skip_reason(ev: &Eval, hist_series: &[Labels]) -> Option<String> {
    if ev.series.iter().any(|s| s.histogram) {
        return Some("expects native histogram values".into());
    }
    let q = &ev.query;
    for kw in ["fill(", "fill_left", "fill_right", "fill (", "smoothed", "anchored"] {
        if q.contains(kw) {
            return Some(format!("experimental modifier {kw:?}"));
        }
    }
    if !hist_series.is_empty()
        && let Ok(expr) = promql_parser::parser::parse(q)
    {
        let mut sels = Vec::new();
        selectors(&expr, &mut sels);
        for ms in sels {
            if hist_series.iter().any(|l| ms.iter().all(|m| m.matches_labels(l))) {
                return Some("selects native histogram series".into());
            }
        }
    }
    None
}

fn selectors(e: &Expr, out: &mut Vec<Vec<Matcher>>) {
    let mut vs_matchers = |vs: &promql_parser::parser::VectorSelector| {
        let mut ms = Vec::new();
        if let Some(n) = &vs.name {
            ms.push(Matcher::equal("__name__", n.clone()));
        }
        for m in &vs.matchers.matchers {
            use promql_parser::label::MatchOp as P;
            let op = match m.op {
                P::Equal => MatchOp::Equal,
                P::NotEqual => MatchOp::NotEqual,
                P::Re(_) => MatchOp::RegexMatch,
                P::NotRe(_) => MatchOp::RegexNoMatch,
            };
            if let Ok(m) = Matcher::new(op, m.name.clone(), m.value.clone()) {
                ms.push(m);
            }
        }
        out.push(ms);
    };
    match e {
        Expr::VectorSelector(vs) => vs_matchers(vs),
        Expr::MatrixSelector(ms) => vs_matchers(&ms.vs),
        Expr::Aggregate(a) => {
            selectors(&a.expr, out);
            if let Some(p) = &a.param {
                selectors(p, out);
            }
        }
        Expr::Unary(u) => selectors(&u.expr, out),
        Expr::Binary(b) => {
            selectors(&b.lhs, out);
            selectors(&b.rhs, out);
        }
        Expr::Paren(p) => selectors(&p.expr, out),
        Expr::Subquery(s) => selectors(&s.expr, out),
        Expr::Call(c) => c.args.args.iter().for_each(|a| selectors(a, out)),
        _ => {}
    }
}

fn load(q: &mut MemQuerier, interval: i64, series: &[SeriesDesc], nhcb: bool, hist: &mut Vec<Labels>) {
    for s in series {
        if s.histogram {
            hist.push(s.labels.clone());
        }
        if nhcb && let Some(name) = s.labels.metric_name() {
            // load_with_nhcb also creates a native histogram series per classic one.
            for suffix in ["_bucket", "_count", "_sum"] {
                if let Some(base) = name.strip_suffix(suffix) {
                    let mut b = s.labels.without(&["le"]).builder();
                    b.set("__name__", base);
                    hist.push(b.build());
                }
            }
        }
        let samples: Vec<Sample> = s
            .points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let t = i as i64 * interval;
                match p {
                    Point::Blank => None,
                    Point::Stale => Some(Sample::new(t, stale_nan())),
                    Point::Value(v) => Some(Sample::new(t, *v)),
                }
            })
            .collect();
        q.add(s.labels.clone(), samples);
    }
}

fn match_msg(w: &Want, msg: &str) -> bool {
    match w {
        Want::Any => true,
        Want::Msg(m) => m == msg,
        Want::Regex(r) => regex::Regex::new(r).map(|re| re.is_match(msg)).unwrap_or(false),
    }
}

fn check_annotations(kind: &str, wants: &[Want], none: bool, got: &[String]) -> Result<(), String> {
    if none && !got.is_empty() {
        return Err(format!("expected no {kind} annotations, got {got:?}"));
    }
    for w in wants {
        if !got.iter().any(|g| match_msg(w, g)) {
            return Err(format!("expected {kind} annotation {w:?}, got {got:?}"));
        }
    }
    if !wants.is_empty() && !wants.contains(&Want::Any) {
        for g in got {
            if !wants.iter().any(|w| match_msg(w, g)) {
                return Err(format!("unexpected {kind} annotation {g:?}"));
            }
        }
    }
    Ok(())
}

fn expected_points(s: &SeriesDesc, start: i64, step: i64) -> Vec<(i64, f64)> {
    s.points
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match p {
            Point::Value(v) => Some((start + i as i64 * step, *v)),
            Point::Stale => Some((start + i as i64 * step, f64::NAN)),
            Point::Blank => None,
        })
        .collect()
}

fn compare_matrix(ev: &Eval, got: &[strata_promql::RangeSeries], start: i64, step: i64) -> Result<(), String> {
    let mut by: HashMap<&Labels, &strata_promql::RangeSeries> = HashMap::new();
    for s in got {
        by.insert(&s.labels, s);
    }
    let want: Vec<&SeriesDesc> = ev.series.iter().collect();
    let mut nonempty = 0;
    for w in &want {
        let pts = expected_points(w, start, step);
        if pts.is_empty() {
            continue;
        }
        nonempty += 1;
        let Some(g) = by.get(&w.labels) else {
            return Err(format!("missing series {}", w.labels));
        };
        if g.samples.len() != pts.len() {
            return Err(format!(
                "series {}: want {} points {:?}, got {} {:?}",
                w.labels,
                pts.len(),
                pts,
                g.samples.len(),
                g.samples.iter().map(|s| (s.t, s.v)).collect::<Vec<_>>()
            ));
        }
        for (p, s) in pts.iter().zip(&g.samples) {
            if p.0 != s.t || !almost_equal(p.1, s.v) {
                return Err(format!("series {}: want {:?} got ({}, {})", w.labels, p, s.t, s.v));
            }
        }
    }
    if got.len() != nonempty {
        return Err(format!(
            "want {nonempty} series, got {}: {:?}",
            got.len(),
            got.iter().map(|s| s.labels.to_string()).collect::<Vec<_>>()
        ));
    }
    Ok(())
}

fn check(ev: &Eval, res: Result<QueryResult, strata_promql::Error>) -> Result<(), String> {
    let res = match (res, &ev.expect.fail) {
        (Err(e), Some(w)) => {
            return if match_msg(w, &e.to_string()) {
                Ok(())
            } else {
                Err(format!("error {:?} does not match {w:?}", e.to_string()))
            };
        }
        (Err(e), None) => return Err(format!("unexpected error: {e}")),
        (Ok(_), Some(_)) => return Err("expected failure, query succeeded".into()),
        (Ok(r), None) => r,
    };
    check_annotations("warn", &ev.expect.warn, ev.expect.no_warn, &res.warnings)?;
    check_annotations("info", &ev.expect.info, ev.expect.no_info, &res.infos)?;
    match (&res.value, &ev.kind) {
        (QueryValue::String { s, .. }, _) => {
            if ev.expect.string.as_deref() == Some(s.as_str()) {
                Ok(())
            } else {
                Err(format!("want string {:?}, got {s:?}", ev.expect.string))
            }
        }
        (QueryValue::Scalar { v, .. }, _) => match ev.scalar {
            Some(w) if almost_equal(w, *v) => Ok(()),
            w => Err(format!("want scalar {w:?}, got {v}")),
        },
        (QueryValue::Vector(got), _) => {
            if ev.scalar.is_some() {
                return Err(format!("want scalar, got vector of {}", got.len()));
            }
            let want: Vec<(&Labels, f64)> = ev
                .series
                .iter()
                .map(|s| {
                    let v = match s.points.first() {
                        Some(Point::Value(v)) => *v,
                        _ => f64::NAN,
                    };
                    (&s.labels, v)
                })
                .collect();
            if want.len() != got.len() {
                return Err(format!(
                    "want {} samples, got {}: {:?}",
                    want.len(),
                    got.len(),
                    got.iter().map(|s| format!("{} {}", s.labels, s.v)).collect::<Vec<_>>()
                ));
            }
            for (i, (l, v)) in want.iter().enumerate() {
                let found = if ev.expect.ordered {
                    got.get(i).filter(|g| &g.labels == *l)
                } else {
                    got.iter().find(|g| &g.labels == *l)
                };
                let Some(g) = found else {
                    return Err(format!(
                        "missing sample {l} (ordered: {}); got {:?}",
                        ev.expect.ordered,
                        got.iter().map(|s| format!("{} {}", s.labels, s.v)).collect::<Vec<_>>()
                    ));
                };
                if !almost_equal(*v, g.v) {
                    return Err(format!("{l}: want {v}, got {}", g.v));
                }
            }
            Ok(())
        }
        (QueryValue::Matrix(got), EvalKind::Range { start, step, .. }) => compare_matrix(ev, got, *start, *step),
        (QueryValue::Matrix(got), EvalKind::Instant { .. }) => match ev.expect.range_vector {
            Some((start, _, step)) => compare_matrix(ev, got, start, step),
            None => Err("got a range vector without `expect range vector`".into()),
        },
    }
}

fn clone_err(e: &strata_promql::Error) -> strata_promql::Error {
    match e.kind() {
        strata_promql::ErrorKind::Execution => strata_promql::Error::Execution(e.to_string()),
        _ => strata_promql::Error::BadData(e.to_string()),
    }
}

/// Prometheus checks that an instant query equals the last step of a range query
/// ending at the same time; do the same so the range path is exercised too.
async fn range_consistency(
    engine: &Engine,
    q: &MemQuerier,
    query: &str,
    at: i64,
    want: &QueryValue,
) -> Result<(), String> {
    if query.contains("start()") || query.contains("end()") {
        return Ok(());
    }
    let want: Vec<(Labels, f64)> = match want {
        QueryValue::Vector(v) => v.iter().map(|s| (s.labels.clone(), s.v)).collect(),
        QueryValue::Scalar { v, .. } => vec![(Labels::empty(), *v)],
        _ => return Ok(()),
    };
    let step = 20_000;
    let got = match engine.range_query(q, query, at - 6 * step, at, step).await {
        Ok(r) => r,
        Err(e) => return Err(format!("range query at the same time failed: {e}")),
    };
    let QueryValue::Matrix(m) = got.value else {
        return Err("range query did not return a matrix".into());
    };
    let mut last: Vec<(Labels, f64)> =
        m.iter().filter_map(|s| s.samples.last().filter(|x| x.t == at).map(|x| (s.labels.clone(), x.v))).collect();
    let mut want = want;
    last.sort_by(|a, b| a.0.cmp(&b.0));
    want.sort_by(|a, b| a.0.cmp(&b.0));
    let same = last.len() == want.len() && last.iter().zip(&want).all(|(a, b)| a.0 == b.0 && almost_equal(a.1, b.1));
    if same {
        Ok(())
    } else {
        Err(format!("range query's last step differs from the instant query: {last:?} vs {want:?}"))
    }
}

async fn run_file(engine: &Engine, path: &Path) -> Tally {
    let mut t = Tally::default();
    let text = std::fs::read_to_string(path).expect("read test file");
    let cmds = match script::parse_script(&text) {
        Ok(c) => c,
        Err(e) => {
            t.failures.push(format!("script parse error: {e}"));
            return t;
        }
    };
    let mut q = MemQuerier::new();
    let mut hist: Vec<Labels> = Vec::new();
    for c in cmds {
        match c {
            Command::Clear => {
                q.clear();
                hist.clear();
            }
            Command::Load { interval, series, nhcb } => load(&mut q, interval, &series, nhcb, &mut hist),
            Command::Eval(ev) => {
                t.total += 1;
                if let Some(r) = skip_reason(&ev, &hist) {
                    t.skipped += 1;
                    t.skips.push(format!("line {}: {} ({r})", ev.line, ev.query));
                    continue;
                }
                let res = match ev.kind {
                    EvalKind::Instant { at } => engine.instant_query(&q, &ev.query, at).await,
                    EvalKind::Range { start, end, step } => engine.range_query(&q, &ev.query, start, end, step).await,
                };
                let mut outcome = check(&ev, res.as_ref().map(|r| r.clone()).map_err(clone_err));
                if outcome.is_ok()
                    && let (EvalKind::Instant { at }, Ok(r)) = (&ev.kind, &res)
                {
                    outcome = range_consistency(engine, &q, &ev.query, *at, &r.value).await;
                }
                match outcome {
                    Ok(()) => t.passed += 1,
                    Err(e) => t.failures.push(format!("line {}: {}\n      {e}", ev.line, ev.query)),
                }
            }
        }
    }
    t
}

#[tokio::test]
async fn promql_conformance() {
    let dir = corpus_dir();
    if !dir.is_dir() {
        // In CI a missing corpus fails, as a missing tool does in strata-tests
        // (`missing_tool`; this crate cannot depend on that one).
        let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        let why = format!("promqltest corpus not found at {} (set STRATA_PROMQLTEST_DIR)", dir.display());
        assert!(!ci, "{why}: missing in CI");
        println!("SKIPPED: {why}");
        return;
    }
    let verbose = std::env::var("STRATA_PROMQLTEST_VERBOSE").is_ok();
    let only = std::env::var("STRATA_PROMQLTEST_FILE").ok();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read corpus dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    // Prometheus's test engine enables delayed __name__ removal; so do we.
    let engine = Engine::new(EngineOptions {
        // STRATA_PROMQLTEST_IMMEDIATE_NAMES=1 runs Prometheus's default mode instead,
        // for exploration only (name_label_dropping.test expects the delayed mode).
        delayed_name_removal: std::env::var("STRATA_PROMQLTEST_IMMEDIATE_NAMES").is_err(),
        type_and_unit_labels: true,
        ..EngineOptions::default()
    });
    let (mut passed, mut total, mut skipped) = (0, 0, 0);
    let mut regressions = Vec::new();
    for f in &files {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        if let Some((_, why)) = SKIP_FILES.iter().find(|(n, _)| *n == name) {
            println!("{name}: skipped whole file ({why})");
            continue;
        }
        let t = run_file(&engine, f).await;
        println!("{name}: {}/{} (skipped {})", t.passed, t.total, t.skipped);
        for s in &t.skips {
            println!("    skip {s}");
        }
        if verbose {
            for fl in &t.failures {
                println!("    FAIL {fl}");
            }
        }
        passed += t.passed;
        total += t.total;
        skipped += t.skipped;
        if let Some((_, floor)) = FLOORS.iter().find(|(n, _)| *n == name)
            && t.passed < *floor
        {
            regressions.push(format!("{name}: {} passed, floor {floor}", t.passed));
            for fl in &t.failures {
                println!("    FAIL {fl}");
            }
        }
    }
    println!("total: {passed}/{total} (skipped {skipped})");
    assert!(regressions.is_empty(), "pass counts fell below their floors: {regressions:?}");
}
