//! The PromQL query API: `query`, `query_range`, `query_exemplars`, `format_query`,
//! `status/buildinfo`, in Prometheus's JSON shapes and error types. Fetching runs on
//! the async workers; evaluation runs on a blocking thread.

mod active;

use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use serde::Serialize;
use serde::ser::{SerializeSeq, Serializer};
use serde_json::{Value, json};
use strata_model::{Labels, SourceResolution, TenantId, now_ms};
use strata_promql::{Engine, EngineOptions, PromFloat, QueryResult, QueryValue};

use crate::AppState;
use crate::error::{ApiError, ApiErrorKind, ApiResult};
use crate::limits::{Limit, Limits};
use crate::params::Params;
pub(crate) use active::ActiveQueries;

impl From<strata_promql::Error> for ApiError {
    fn from(e: strata_promql::Error) -> Self {
        use strata_promql::ErrorKind as K;
        let kind = match e.kind() {
            K::BadData => ApiErrorKind::BadData,
            K::Execution => ApiErrorKind::Execution,
            K::Timeout => ApiErrorKind::Timeout,
            K::Storage => ApiErrorKind::Internal,
            K::Unavailable => ApiErrorKind::Unavailable,
        };
        ApiError::new(kind, e.to_string())
    }
}

/// A timestamp in seconds as Prometheus writes it: an integer when whole.
#[derive(Clone, Copy)]
struct Ts(i64);

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 % 1000 == 0 { s.serialize_i64(self.0 / 1000) } else { s.serialize_f64(self.0 as f64 / 1000.0) }
    }
}

/// A sample value as Prometheus writes it: a string such as `"1.5"`, `"NaN"`, `"+Inf"`,
/// written without an intermediate allocation.
#[derive(Clone, Copy)]
struct Val(f64);

impl Serialize for Val {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&PromFloat(self.0))
    }
}

struct Points<'a>(&'a [strata_model::Sample]);

impl Serialize for Points<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for p in self.0 {
            seq.serialize_element(&(Ts(p.t), Val(p.v)))?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct VectorItem<'a> {
    metric: &'a Labels,
    value: (Ts, Val),
}

#[derive(Serialize)]
struct MatrixItem<'a> {
    metric: &'a Labels,
    values: Points<'a>,
}

/// The `result` member, streamed straight from the engine's value.
struct ResultBody<'a>(&'a QueryValue, usize);

impl Serialize for ResultBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            QueryValue::Vector(v) => s.collect_seq(
                v[..self.1.min(v.len())].iter().map(|x| VectorItem { metric: &x.labels, value: (Ts(x.t), Val(x.v)) }),
            ),
            QueryValue::Matrix(m) => s.collect_seq(
                m[..self.1.min(m.len())].iter().map(|x| MatrixItem { metric: &x.labels, values: Points(&x.samples) }),
            ),
            QueryValue::Scalar { t, v } => (Ts(*t), Val(*v)).serialize(s),
            QueryValue::String { t, s: text } => (Ts(*t), text).serialize(s),
        }
    }
}

#[derive(Serialize)]
struct Data<'a> {
    #[serde(rename = "resultType")]
    result_type: &'static str,
    result: ResultBody<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: Option<&'a Value>,
}

#[derive(Serialize)]
struct AnswerBody<'a> {
    status: &'static str,
    data: Data<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    infos: &'a [String],
}

/// `{"status":"success","data":{"resultType":..,"result":..},"warnings":..,"infos":..}`,
/// with at most `limit` series (0: all) and a warning when truncated.
pub(crate) struct Answer {
    res: QueryResult,
    limit: usize,
    /// `data.stats`, when the request asked for `stats`.
    stats: Option<Value>,
}

impl Serialize for Answer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let len = match &self.res.value {
            QueryValue::Vector(v) => v.len(),
            QueryValue::Matrix(m) => m.len(),
            _ => 0,
        };
        let keep = if self.limit > 0 && len > self.limit { self.limit } else { usize::MAX };
        let mut warnings = self.res.warnings.clone();
        if keep < len {
            warnings.push("results truncated due to limit".to_string());
        }
        AnswerBody {
            status: "success",
            data: Data {
                result_type: self.res.value.type_name(),
                result: ResultBody(&self.res.value, keep),
                stats: self.stats.as_ref(),
            },
            warnings,
            infos: &self.res.infos,
        }
        .serialize(s)
    }
}

/// The engine for one request: the server's, with `timeout` and `lookback_delta`
/// parameters applied (a request may shorten the timeout, never extend it).
fn engine_for(st: &AppState, p: &Params, limits: &Limits) -> ApiResult<Engine> {
    let mut opts: EngineOptions = st.engine_options().clone();
    opts.max_samples = if limits.max_samples_per_query == 0 { usize::MAX } else { limits.max_samples_per_query };
    if let Some(d) = p.duration("timeout")? {
        // A zero or negative timeout has already expired, as in Prometheus.
        opts.timeout = opts.timeout.min(Duration::from_millis(d.max(0) as u64));
    }
    if let Some(d) = p.duration("lookback_delta")?
        && d > 0
    {
        opts.lookback_delta = Duration::from_millis(d as u64);
    }
    opts.max_source_resolution = match p.get("max_source_resolution") {
        None | Some("") => st.0.querier.max_source_resolution,
        Some(v) => SourceResolution::parse(v).ok_or_else(|| {
            ApiError::bad_data(format!(
                "invalid parameter \"max_source_resolution\": {v:?} is not raw, auto or a duration such as 5m or 1h"
            ))
        })?,
    };
    Ok(Engine::new(opts))
}

fn query_param(p: &Params) -> ApiResult<&str> {
    p.get("query").ok_or_else(|| ApiError::bad_data("invalid parameter \"query\": query must not be empty"))
}

/// A query that does not parse is a bad `query` parameter, in Prometheus's words:
/// `invalid parameter "query": 1:3: parse error: …`.
fn query_error(e: strata_promql::Error) -> ApiError {
    match e {
        strata_promql::Error::Parse(_) => ApiError::bad_data(format!("invalid parameter \"query\": {e}")),
        e => e.into(),
    }
}

/// Evaluates on a blocking thread; records how long the query waited for one and
/// how long it ran.
async fn execute(prepared: strata_promql::PreparedQuery, t: &mut Timings) -> Result<QueryResult, strata_promql::Error> {
    let queued = Instant::now();
    let (res, waited, ran) = tokio::task::spawn_blocking(move || {
        let waited = queued.elapsed();
        let started = Instant::now();
        let res = prepared.execute();
        (res, waited, started.elapsed())
    })
    .await
    .unwrap_or_else(|e| {
        (
            Err(strata_promql::Error::Execution(format!("query evaluation panicked: {e}"))),
            Duration::ZERO,
            Duration::ZERO,
        )
    });
    t.queue = waited;
    t.eval = ran;
    res
}

/// Where a query's time went, for `stats` and the slow query log.
#[derive(Debug, Clone, Copy)]
struct Timings {
    /// From the handler's start.
    started: Instant,
    /// Parsing, planning and fetching the data.
    prepare: Duration,
    /// Waiting for a blocking thread.
    queue: Duration,
    /// Evaluating (sorting included: the engine sorts as it evaluates).
    eval: Duration,
}

impl Timings {
    fn new() -> Self {
        Timings { started: Instant::now(), prepare: Duration::ZERO, queue: Duration::ZERO, eval: Duration::ZERO }
    }

    /// Prometheus's `data.stats` object (`stats=<anything>`), in its JSON shape.
    fn stats(&self, s: &strata_promql::QueryStats) -> Value {
        json!({
            "timings": {
                "evalTotalTime": (self.prepare + self.eval).as_secs_f64(),
                "resultSortTime": 0.0,
                "queryPreparationTime": self.prepare.as_secs_f64(),
                "innerEvalTime": self.eval.as_secs_f64(),
                "execQueueTime": self.queue.as_secs_f64(),
                "execTotalTime": self.started.elapsed().as_secs_f64(),
            },
            "samples": {
                "totalQueryableSamples": s.total_queryable_samples,
                "peakSamples": s.peak_samples,
            },
        })
    }
}

/// Logs a query that ran at least the configured threshold (0: never).
fn log_if_slow(st: &AppState, tenant: &TenantId, query: &str, range: (i64, i64, i64), t: &Timings, samples: u64) {
    let threshold = st.0.querier.slow_query_threshold;
    let took = t.started.elapsed();
    if threshold.is_zero() || took < threshold {
        return;
    }
    let (start, end, step) = range;
    tracing::warn!(
        tenant = tenant.as_str(),
        query,
        start,
        end,
        step,
        duration_seconds = took.as_secs_f64(),
        prepare_seconds = t.prepare.as_secs_f64(),
        eval_seconds = t.eval.as_secs_f64(),
        samples,
        "slow query"
    );
}

/// The start of every query: the tenant's concurrency slot (429 when all are
/// taken), registered in the active queries until the guard drops.
fn admit(
    st: &AppState,
    tenant: &TenantId,
    kind: &'static str,
    query: &str,
    limits: &Limits,
) -> ApiResult<active::ActiveQuery> {
    let max = limits.max_concurrent_queries;
    st.active_queries().start(tenant, kind, query, max).ok_or_else(|| {
        st.limits().refuse(
            tenant,
            ApiErrorKind::RateLimited,
            Limit::MaxConcurrentQueries,
            max,
            format!("tenant {tenant} runs {max} queries already; retry later"),
        )
    })
}

/// A query's failure as the API answers it; the sample limit names the tenant's limit.
fn query_failed(st: &AppState, tenant: &TenantId, limits: &Limits, e: strata_promql::Error) -> ApiError {
    match e {
        strata_promql::Error::TooManySamples => st.limits().refuse(
            tenant,
            ApiErrorKind::Execution,
            Limit::MaxSamplesPerQuery,
            limits.max_samples_per_query,
            strata_promql::Error::TooManySamples,
        ),
        e => query_error(e),
    }
}

pub(crate) async fn instant(
    State(st): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Answer>> {
    let p = Params::read(&method, &uri, &headers, body).await?;
    let tenant = st.tenant(&headers)?;
    let query = query_param(&p)?;
    let time = p.time_or("time", now_ms())?;
    let limit = p.limit()?;
    let limits = st.limits().for_tenant(&tenant);
    let engine = engine_for(&st, &p, &limits)?;
    let q = st.querier(&tenant, st.read_options(&p)?)?;
    let _running = admit(&st, &tenant, "instant", query, &limits)?;
    let failed = |e| query_failed(&st, &tenant, &limits, e);
    let mut t = Timings::new();
    let prepared = engine.prepare_instant(q.as_ref(), query, time).await.map_err(failed)?;
    t.prepare = t.started.elapsed();
    let mut res = execute(prepared, &mut t).await.map_err(failed)?;
    res.warnings.extend(q.warnings());
    log_if_slow(&st, &tenant, query, (time, time, 0), &t, res.stats.total_queryable_samples);
    let stats = p.get("stats").map(|_| t.stats(&res.stats));
    Ok(Json(Answer { res, limit, stats }))
}

pub(crate) async fn range(
    State(st): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Answer>> {
    let p = Params::read(&method, &uri, &headers, body).await?;
    let tenant = st.tenant(&headers)?;
    let query = query_param(&p)?;
    let (start, end, step) = p.range_steps()?;
    let limit = p.limit()?;
    let limits = st.limits().for_tenant(&tenant);
    let max_len = limits.max_query_length;
    if !max_len.is_zero() && Duration::from_millis((end - start) as u64) > max_len {
        return Err(st.limits().refuse(
            &tenant,
            ApiErrorKind::BadData,
            Limit::MaxQueryLength,
            humantime::format_duration(max_len),
            format!(
                "the query time range exceeds the limit (query length: {})",
                humantime::format_duration(Duration::from_millis((end - start) as u64))
            ),
        ));
    }
    let engine = engine_for(&st, &p, &limits)?;
    let q = st.querier(&tenant, st.read_options(&p)?)?;
    let _running = admit(&st, &tenant, "range", query, &limits)?;
    let failed = |e| query_failed(&st, &tenant, &limits, e);
    let mut t = Timings::new();
    let prepared = engine.prepare_range(q.as_ref(), query, start, end, step).await.map_err(failed)?;
    t.prepare = t.started.elapsed();
    let mut res = execute(prepared, &mut t).await.map_err(failed)?;
    res.warnings.extend(q.warnings());
    log_if_slow(&st, &tenant, query, (start, end, step), &t, res.stats.total_queryable_samples);
    let stats = p.get("stats").map(|_| t.stats(&res.stats));
    Ok(Json(Answer { res, limit, stats }))
}

/// Exemplars are counted and dropped at ingest, so the answer is always empty; the
/// query is still validated so a bad one gets the same error as from Prometheus.
pub(crate) async fn exemplars(method: Method, uri: Uri, headers: HeaderMap, body: Body) -> ApiResult<Json<Value>> {
    let p = Params::read(&method, &uri, &headers, body).await?;
    strata_promql::parse(query_param(&p)?).map_err(query_error)?;
    p.time_or("start", 0)?;
    p.time_or("end", 0)?;
    Ok(Json(json!({"status": "success", "data": []})))
}

pub(crate) async fn format_query(method: Method, uri: Uri, headers: HeaderMap, body: Body) -> ApiResult<Json<Value>> {
    let p = Params::read(&method, &uri, &headers, body).await?;
    let expr = strata_promql::parse(query_param(&p)?).map_err(query_error)?;
    Ok(Json(json!({"status": "success", "data": expr.prettify()})))
}

/// `GET /api/v1/status/active_queries`: every query running on this node.
pub(crate) async fn active_queries(State(st): State<AppState>) -> Json<Value> {
    Json(json!({"status": "success", "data": st.active_queries().list()}))
}

pub(crate) async fn buildinfo() -> Json<Value> {
    Json(json!({"status": "success", "data": {
        "application": "Strata",
        "version": crate::BUILD_INFO.version,
        "revision": crate::BUILD_INFO.revision,
        "branch": crate::BUILD_INFO.branch,
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_values_print_like_prometheus() {
        let j = |x: &dyn erased::Ser| x.json();
        assert_eq!(j(&Ts(1_700_000_000_000)), "1700000000");
        assert_eq!(j(&Ts(1_700_000_000_123)), "1700000000.123");
        assert_eq!(j(&Ts(1_500)), "1.5");
        assert_eq!(j(&Val(f64::NAN)), "\"NaN\"");
        assert_eq!(j(&Val(f64::NEG_INFINITY)), "\"-Inf\"");
        assert_eq!(j(&Val(1e-7)), "\"0.0000001\"");
        assert_eq!(j(&Val(-0.0)), "\"-0\"");
    }

    mod erased {
        pub(super) trait Ser {
            fn json(&self) -> String;
        }
        impl<T: serde::Serialize> Ser for T {
            fn json(&self) -> String {
                serde_json::to_string(self).unwrap()
            }
        }
    }
}
