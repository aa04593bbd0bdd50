//! The metadata read APIs: `series`, `labels`, `label/<name>/values`, `metadata`,
//! in Prometheus's exact JSON shapes, GET or POST form.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use serde::Serialize;
use serde_json::{Value, json};
use strata_model::{Labels, SelectHints, TimeRange};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::params::{MAX_TIME, MIN_TIME, Params};

/// A successful API answer: `{"status":"success","data":..,"warnings":[..]}`.
#[derive(Debug, Serialize)]
pub(crate) struct Success<T: Serialize> {
    status: &'static str,
    data: T,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

pub(crate) fn success<T: Serialize>(data: T, warnings: Vec<String>) -> Json<Success<T>> {
    Json(Success { status: "success", data, warnings })
}

const TRUNCATED: &str = "results truncated due to limit";

fn range(p: &Params) -> ApiResult<TimeRange> {
    let start = p.time_or("start", MIN_TIME)?;
    let end = p.time_or("end", MAX_TIME)?;
    if end < start {
        return Err(ApiError::bad_data("invalid parameter \"end\": end timestamp must not be before start time"));
    }
    Ok(TimeRange::new(start, end))
}

pub(crate) async fn series(
    State(st): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Success<Vec<Labels>>>> {
    let p = Params::read(&method, &uri, &headers, body).await?;
    let tenant = st.tenant(&headers)?;
    let sets = p.matcher_sets()?;
    if sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let range = range(&p)?;
    let limit = p.limit()?;
    let q = st.querier(&tenant, st.read_options(&p)?)?;
    let hints = SelectHints {
        labels_only: true,
        limit: if limit > 0 { limit + 1 } else { 0 },
        ..SelectHints::range(range.start, range.end)
    };
    let mut all = BTreeSet::new();
    for set in &sets {
        for s in q.select(&hints, set).await? {
            all.insert(s.labels);
        }
    }
    let mut out: Vec<Labels> = all.into_iter().collect();
    let mut warnings = q.warnings();
    if limit > 0 && out.len() > limit {
        out.truncate(limit);
        warnings.push(TRUNCATED.to_string());
    }
    Ok(success(out, warnings))
}

pub(crate) async fn labels(
    State(st): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Success<Vec<String>>>> {
    let p = Params::read(&method, &uri, &headers, body).await?;
    let tenant = st.tenant(&headers)?;
    let sets = p.matcher_sets()?;
    let range = range(&p)?;
    let limit = p.limit()?;
    let q = st.querier(&tenant, st.read_options(&p)?)?;
    let mut names = BTreeSet::new();
    if sets.is_empty() {
        names.extend(q.label_names(range, &[]).await?);
    }
    for set in &sets {
        names.extend(q.label_names(range, set).await?);
    }
    Ok(limited(names.into_iter().collect(), limit, q.warnings()))
}

pub(crate) async fn label_values(
    State(st): State<AppState>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Success<Vec<String>>>> {
    let p = Params::read(&method, &uri, &headers, body).await?;
    let tenant = st.tenant(&headers)?;
    if name != strata_model::METRIC_NAME && !strata_model::is_valid_label_name(&name) {
        return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
    }
    let sets = p.matcher_sets()?;
    let range = range(&p)?;
    let limit = p.limit()?;
    let q = st.querier(&tenant, st.read_options(&p)?)?;
    let mut values = BTreeSet::new();
    if sets.is_empty() {
        values.extend(q.label_values(&name, range, &[]).await?);
    }
    for set in &sets {
        values.extend(q.label_values(&name, range, set).await?);
    }
    Ok(limited(values.into_iter().collect(), limit, q.warnings()))
}

fn limited(mut v: Vec<String>, limit: usize, mut warnings: Vec<String>) -> Json<Success<Vec<String>>> {
    if limit > 0 && v.len() > limit {
        v.truncate(limit);
        warnings.push(TRUNCATED.to_string());
    }
    success(v, warnings)
}

/// `/api/v1/metadata`: `{"metric": [{"type","help","unit"}]}`, with `metric`,
/// `limit` and `limit_per_metric`.
pub(crate) async fn metadata(
    State(st): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Success<BTreeMap<String, Vec<Value>>>>> {
    let p = Params::read(&method, &uri, &headers, body).await?;
    let tenant = st.tenant(&headers)?;
    let parse = |k: &str| -> ApiResult<Option<usize>> {
        match p.get(k) {
            None => Ok(None),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n < 0 => Ok(None),
                Ok(n) => Ok(Some(n as usize)),
                Err(_) => Err(ApiError::bad_data(format!("invalid parameter {k:?}: {v:?} is not a number"))),
            },
        }
    };
    let limit = parse("limit")?;
    let per_metric = parse("limit_per_metric")?;
    let metric = p.get("metric");
    let mut out = BTreeMap::new();
    // A query node holds no head, so no metadata (scrapes carry it, blocks do not).
    let head = if st.0.query_only { None } else { st.tsdb()?.head(&tenant) };
    if let Some(head) = head {
        for (family, m) in head.metadata() {
            if metric.is_some_and(|want| want != family) {
                continue;
            }
            if limit.is_some_and(|l| out.len() >= l) {
                break;
            }
            let entries = vec![json!({"type": m.kind, "help": m.help, "unit": m.unit})];
            let n = per_metric.unwrap_or(usize::MAX);
            out.insert(family, entries.into_iter().take(n).collect());
        }
    }
    Ok(success(out, Vec::new()))
}
