//! The Prometheus HTTP query API as the harness uses it: the dashboard query set
//! (timed, several repetitions) and the count queries of the correctness check.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::Value;

use super::Fig;

/// The time range the workload covers after shifting, ms.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TimeRange {
    /// First sample, ms.
    pub start_ms: i64,
    /// Last sample, ms.
    pub end_ms: i64,
    /// Scrape interval, seconds.
    pub interval_s: u64,
}

impl TimeRange {
    fn start(&self) -> String {
        secs(self.start_ms)
    }
    fn end(&self) -> String {
        secs(self.end_ms)
    }
    /// A window covering all samples when evaluated at `end`, seconds.
    fn span_s(&self) -> i64 {
        (self.end_ms - self.start_ms) / 1000 + 60
    }
    /// A Grafana-like step: ~250 points, a multiple of the scrape interval.
    fn step_s(&self) -> u64 {
        let range = ((self.end_ms - self.start_ms) / 1000).max(1) as u64;
        let raw = range.div_ceil(250).max(self.interval_s);
        raw.div_ceil(self.interval_s) * self.interval_s
    }
    fn rate_window(&self) -> String {
        format!("{}s", 4 * self.interval_s)
    }
}

fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// An API call kind.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "api", rename_all = "snake_case")]
pub(crate) enum Call {
    QueryRange { query: String },
    Query { query: String },
    LabelValues { label: String },
    Series { matcher: String },
}

/// One dashboard query.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DashboardQuery {
    pub(crate) name: &'static str,
    pub(crate) call: Call,
    /// Result size every correct database returns, when the workload fixes it.
    pub(crate) expected_results: Option<usize>,
}

/// The dashboard query set over the whole range.
pub(crate) fn dashboard(range: &TimeRange, hosts: usize) -> Vec<DashboardQuery> {
    let w = range.rate_window();
    vec![
        DashboardQuery {
            name: "cpu_rate_by_instance",
            call: Call::QueryRange {
                query: format!("sum by (instance) (rate(node_cpu_seconds_total{{mode!=\"idle\"}}[{w}]))"),
            },
            expected_results: None,
        },
        DashboardQuery {
            name: "memory_used_ratio",
            call: Call::QueryRange { query: "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes".into() },
            expected_results: Some(hosts),
        },
        DashboardQuery {
            name: "topk_network_receive",
            call: Call::QueryRange { query: format!("topk(5, rate(node_network_receive_bytes_total[{w}]))") },
            expected_results: None,
        },
        DashboardQuery {
            name: "max_over_time_load1",
            call: Call::Query { query: format!("max_over_time(node_load1[{}s])", range.span_s()) },
            expected_results: Some(hosts),
        },
        DashboardQuery {
            name: "label_values_instance",
            call: Call::LabelValues { label: "instance".into() },
            expected_results: Some(hosts),
        },
        DashboardQuery {
            name: "series_root_fs_avail",
            call: Call::Series { matcher: "node_filesystem_avail_bytes{mountpoint=\"/\"}".into() },
            expected_results: Some(hosts),
        },
    ]
}

/// A successful answer: how many results (series, values) it held, and its `data`.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) results: usize,
    pub(crate) data: Value,
}

/// An API call's failure: `NotSupported` for 404/405 (endpoint missing).
#[derive(Debug)]
pub(crate) enum CallError {
    NotSupported(u16),
    Failed(anyhow::Error),
}

impl CallError {
    pub(crate) fn to_fig(&self) -> Fig {
        match self {
            CallError::NotSupported(s) => Fig::Na(format!("n/a (not supported: HTTP {s})")),
            CallError::Failed(e) => Fig::Na(format!("error: {e:#}")),
        }
    }
}

/// Extra query-string parameters sent with every call, e.g. `dedup=true`.
pub(crate) type Params = [(String, String)];

/// Runs one API call against `base`, with `params` added to its query string.
pub(crate) fn call(
    agent: &ureq::Agent,
    base: &str,
    call: &Call,
    range: &TimeRange,
    params: &Params,
) -> Result<Answer, CallError> {
    let req = match call {
        Call::QueryRange { query } => agent
            .get(format!("{base}/api/v1/query_range"))
            .query("query", query)
            .query("start", range.start())
            .query("end", range.end())
            .query("step", range.step_s().to_string()),
        Call::Query { query } => {
            agent.get(format!("{base}/api/v1/query")).query("query", query).query("time", range.end())
        }
        Call::LabelValues { label } => agent
            .get(format!("{base}/api/v1/label/{label}/values"))
            .query("start", range.start())
            .query("end", range.end()),
        Call::Series { matcher } => agent
            .get(format!("{base}/api/v1/series"))
            .query("match[]", matcher)
            .query("start", range.start())
            .query("end", range.end()),
    };
    let req = params.iter().fold(req, |req, (k, v)| req.query(k, v));
    let mut resp = req.call().map_err(|e| CallError::Failed(anyhow::anyhow!("request: {e}")))?;
    let status = resp.status().as_u16();
    if status == 404 || status == 405 {
        return Err(CallError::NotSupported(status));
    }
    let text = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .map_err(|e| CallError::Failed(anyhow::anyhow!("read body: {e}")))?;
    parse(status, &text).map_err(CallError::Failed)
}

fn parse(status: u16, text: &str) -> Result<Answer> {
    let v: Value = serde_json::from_str(text)
        .with_context(|| format!("HTTP {status}, not JSON: {}", text.chars().take(300).collect::<String>()))?;
    if !(200..300).contains(&status) || v["status"] != "success" {
        bail!("HTTP {status}: {} {}", v["errorType"].as_str().unwrap_or(""), v["error"].as_str().unwrap_or(text));
    }
    let data = v["data"].clone();
    let results = match &data {
        Value::Array(a) => a.len(),
        Value::Object(o) => o.get("result").and_then(Value::as_array).map_or(0, Vec::len),
        _ => 0,
    };
    Ok(Answer { results, data })
}

/// Latency of one dashboard query over several repetitions.
#[derive(Debug, Clone, Serialize)]
pub struct QueryTiming {
    /// Query name.
    pub name: String,
    /// Median latency, ms (or why there is none).
    pub median_ms: Fig,
    /// Latency of the first (cold) run, ms.
    pub first_ms: Option<f64>,
    /// Results of the last run (series, or values for label/series lookups).
    pub results: Option<usize>,
    /// What a correct answer holds, when fixed by the workload.
    pub expected_results: Option<usize>,
    /// The `data` of the last run's answer, to compare answers across setups.
    #[serde(skip)]
    pub answer: Option<Value>,
}

/// Runs `q` `reps` times; the median ignores nothing (the first run is cold).
pub(crate) fn time_query(
    agent: &ureq::Agent,
    base: &str,
    q: &DashboardQuery,
    range: &TimeRange,
    reps: usize,
    params: &Params,
) -> QueryTiming {
    let mut ms = Vec::new();
    let mut results = None;
    let mut answer = None;
    let mut failure = None;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        match call(agent, base, &q.call, range, params) {
            Ok(a) => {
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
                results = Some(a.results);
                answer = Some(a.data);
            }
            Err(e) => {
                failure = Some(e.to_fig());
                break;
            }
        }
    }
    let first_ms = ms.first().copied();
    let median_ms = match failure {
        Some(f) => f,
        None => Fig::Num(median(&mut ms)),
    };
    QueryTiming { name: q.name.to_string(), median_ms, first_ms, results, expected_results: q.expected_results, answer }
}

pub(crate) fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Distinct series with a sample in the range (`/api/v1/series`, all names).
pub(crate) fn count_series(
    agent: &ureq::Agent,
    base: &str,
    range: &TimeRange,
    params: &Params,
) -> Result<u64, CallError> {
    let a = call(agent, base, &Call::Series { matcher: "{__name__=~\".+\"}".into() }, range, params)?;
    Ok(a.results as u64)
}

/// Samples in the range: `sum(count_over_time({__name__=~".+"}[span]))` at the end.
/// Prometheus 2.x rejects that query (series differing only by name collide once
/// `count_over_time` drops the name), so on an error other than 404 the count is
/// summed over one query per metric name instead. Returns the count and the method.
pub(crate) fn count_samples(
    agent: &ureq::Agent,
    base: &str,
    range: &TimeRange,
    params: &Params,
) -> Result<(u64, &'static str), CallError> {
    let all = format!("sum(count_over_time({{__name__=~\".+\"}}[{}s]))", range.span_s());
    match instant_number(agent, base, &all, range, params) {
        Ok(n) => return Ok((n, "one query")),
        Err(CallError::NotSupported(s)) => return Err(CallError::NotSupported(s)),
        Err(CallError::Failed(_)) => {}
    }
    let names = call(agent, base, &Call::LabelValues { label: "__name__".into() }, range, params)?;
    let mut total = 0;
    for name in names.data.as_array().into_iter().flatten() {
        let name = name.as_str().ok_or_else(|| CallError::Failed(anyhow::anyhow!("bad metric name {name}")))?;
        let q = format!("sum(count_over_time({{__name__=\"{name}\"}}[{}s]))", range.span_s());
        total += instant_number(agent, base, &q, range, params)?;
    }
    Ok((total, "one query per metric name"))
}

/// The single value of an instant query (0 when the result is empty).
fn instant_number(
    agent: &ureq::Agent,
    base: &str,
    query: &str,
    range: &TimeRange,
    params: &Params,
) -> Result<u64, CallError> {
    let a = call(agent, base, &Call::Query { query: query.to_string() }, range, params)?;
    let Some(value) = a.data["result"].get(0).map(|r| &r["value"][1]) else {
        return Ok(0);
    };
    let value = value.as_str().ok_or_else(|| CallError::Failed(anyhow::anyhow!("bad count result: {}", a.data)))?;
    let n: f64 = value.parse().map_err(|e| CallError::Failed(anyhow::anyhow!("count {value:?}: {e}")))?;
    Ok(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_helpers() {
        let r = TimeRange { start_ms: 1_000_500, end_ms: 1_000_500 + 7_200_000, interval_s: 15 };
        assert_eq!(r.step_s(), 30);
        assert_eq!(r.span_s(), 7_260);
        assert_eq!(r.start(), "1000.500");
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn parses_api_answers() {
        let a = parse(
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"42"]}]}}"#,
        )
        .unwrap();
        assert_eq!(a.results, 1);
        let b = parse(200, r#"{"status":"success","data":["a","b"]}"#).unwrap();
        assert_eq!(b.results, 2);
        assert!(parse(400, r#"{"status":"error","errorType":"bad_data","error":"x"}"#).is_err());
    }
}
