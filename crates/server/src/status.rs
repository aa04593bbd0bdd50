//! The status and rules endpoints Grafana and Prometheus tooling call, in
//! Prometheus's JSON shapes, and the index page at `/`.
//!
//! ```text
//!  /api/v1/rules, /api/v1/alerts ─► empty groups / alerts (Strata evaluates no rules)
//!  /api/v1/status/runtimeinfo    ─► start time, cwd, threads, WAL corruptions, retention
//!  /api/v1/status/flags          ─► RuntimeStatus::flags (the command line as parsed)
//!  /api/v1/status/config         ─► RuntimeStatus::config_yaml (as loaded, secrets redacted)
//!  /api/v1/status/tsdb           ─► Head::cardinality of the request's tenant (off the workers)
//!  /                             ─► HTML: version and the endpoints
//! ```

use std::collections::BTreeMap;
use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{ApiError, ApiErrorKind, ApiResult};
use crate::params::Params;
use crate::version::BUILD_INFO;

/// What the binary tells the status endpoints about the process.
#[derive(Debug, Clone)]
pub struct RuntimeStatus {
    /// The command line as parsed, defaults included, by flag name without dashes
    /// (`data-dir`, `log.level`): `/api/v1/status/flags`.
    pub flags: BTreeMap<String, String>,
    /// The configuration as loaded (file plus command-line overrides), secrets
    /// redacted, as YAML: `/api/v1/status/config`.
    pub config_yaml: String,
    /// When the process started.
    pub start_time: SystemTime,
    /// When the configuration was loaded (Strata does not reload it).
    pub config_time: SystemTime,
    /// How long raw samples are kept (`30d`; empty where not applicable).
    pub storage_retention: String,
}

impl Default for RuntimeStatus {
    fn default() -> Self {
        let now = SystemTime::now();
        RuntimeStatus {
            flags: BTreeMap::new(),
            config_yaml: String::new(),
            start_time: now,
            config_time: now,
            storage_retention: String::new(),
        }
    }
}

fn success(data: Value) -> Json<Value> {
    Json(json!({"status": "success", "data": data}))
}

/// `GET /api/v1/rules`: Strata evaluates no recording or alerting rules, so, as a
/// Prometheus without rule files, no groups. `type` is checked as Prometheus does.
pub(crate) async fn rules(uri: Uri) -> ApiResult<Json<Value>> {
    let p = Params::from_query(&uri);
    match p.get("type").map(str::to_ascii_lowercase).as_deref() {
        None | Some("alert" | "record") => Ok(success(json!({"groups": []}))),
        Some(other) => Err(ApiError::bad_data(format!("invalid parameter \"type\": not supported value {other:?}"))),
    }
}

/// `GET /api/v1/alerts`: no rules, so no alerts.
pub(crate) async fn alerts() -> Json<Value> {
    success(json!({"alerts": []}))
}

/// Prometheus's `runtimeinfo` shape, `GOGC` and `GODEBUG` empty (there is no Go
/// runtime) and `goroutineCount` the process's threads.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeInfo {
    start_time: String,
    #[serde(rename = "CWD")]
    cwd: String,
    reload_config_success: bool,
    last_config_time: String,
    corruption_count: u64,
    goroutine_count: u64,
    #[serde(rename = "GOMAXPROCS")]
    gomaxprocs: usize,
    #[serde(rename = "GOGC")]
    gogc: String,
    #[serde(rename = "GODEBUG")]
    godebug: String,
    storage_retention: String,
}

/// `GET /api/v1/status/runtimeinfo`.
pub(crate) async fn runtimeinfo(State(st): State<AppState>) -> Json<Value> {
    let s = st.runtime_status();
    let corruption_count =
        st.0.tsdb.get().map_or(0, |db| db.wal_stats().torn_tails_truncated.load(std::sync::atomic::Ordering::Relaxed));
    let info = RuntimeInfo {
        start_time: humantime::format_rfc3339_nanos(s.start_time).to_string(),
        cwd: std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default(),
        reload_config_success: true,
        last_config_time: humantime::format_rfc3339_seconds(s.config_time).to_string(),
        corruption_count,
        goroutine_count: crate::metrics::process_threads().unwrap_or(0),
        gomaxprocs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        gogc: String::new(),
        godebug: String::new(),
        storage_retention: s.storage_retention.clone(),
    };
    success(serde_json::to_value(info).unwrap_or_default())
}

/// `GET /api/v1/status/flags`.
pub(crate) async fn flags(State(st): State<AppState>) -> Json<Value> {
    success(serde_json::to_value(&st.runtime_status().flags).unwrap_or_default())
}

/// `GET /api/v1/status/config`.
pub(crate) async fn config(State(st): State<AppState>) -> Json<Value> {
    success(json!({"yaml": st.runtime_status().config_yaml}))
}

/// Prometheus's `index.Stat`.
#[derive(Debug, Serialize)]
struct Stat {
    name: String,
    value: u64,
}

fn stats(v: Vec<strata_tsdb::CardinalityStat>) -> Vec<Stat> {
    v.into_iter().map(|s| Stat { name: s.name, value: s.count }).collect()
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct HeadStats {
    num_series: u64,
    num_label_pairs: u64,
    chunk_count: u64,
    min_time: i64,
    max_time: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TsdbStatus {
    head_stats: HeadStats,
    series_count_by_metric_name: Vec<Stat>,
    label_value_count_by_label_name: Vec<Stat>,
    memory_in_bytes_by_label_name: Vec<Stat>,
    series_count_by_label_value_pair: Vec<Stat>,
}

/// Entries per list when `limit` is absent, as in Prometheus.
const DEFAULT_TSDB_LIMIT: usize = 10;

/// `GET /api/v1/status/tsdb`: the head cardinality of the request's tenant
/// (`X-Scope-OrgID`), `limit` entries per list.
pub(crate) async fn tsdb(State(st): State<AppState>, headers: HeaderMap, uri: Uri) -> ApiResult<Json<Value>> {
    let tenant = st.tenant(&headers)?;
    let limit = match Params::from_query(&uri).get("limit") {
        None => DEFAULT_TSDB_LIMIT,
        Some(v) => v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
            ApiError::bad_data(format!("invalid parameter \"limit\": limit must be a positive number, got {v:?}"))
        })?,
    };
    let db = st.tsdb()?.clone();
    let c = match db.head(&tenant) {
        // Counting holds the head's read lock for a pass over its postings.
        Some(head) => tokio::task::spawn_blocking(move || head.cardinality(limit))
            .await
            .map_err(|e| ApiError::new(ApiErrorKind::Internal, format!("cardinality: {e}")))?,
        None => strata_tsdb::Cardinality { min_time: i64::MAX, max_time: i64::MIN, ..Default::default() },
    };
    let out = TsdbStatus {
        head_stats: HeadStats {
            num_series: c.num_series,
            num_label_pairs: c.num_label_pairs,
            chunk_count: c.chunk_count,
            min_time: c.min_time,
            max_time: c.max_time,
        },
        series_count_by_metric_name: stats(c.series_count_by_metric_name),
        label_value_count_by_label_name: stats(c.label_value_count_by_label_name),
        memory_in_bytes_by_label_name: stats(c.memory_in_bytes_by_label_name),
        series_count_by_label_value_pair: stats(c.series_count_by_label_value_pair),
    };
    Ok(success(serde_json::to_value(out).unwrap_or_default()))
}

/// The endpoints the index page lists: path, whether a plain GET shows it, what it is.
const ENDPOINTS: &[(&str, bool, &str, bool)] = &[
    // (path, GET link, description, needs a head: not on a query node)
    ("/api/v1/write", false, "remote write 1.0 and 2.0 (POST)", true),
    ("/api/v1/read", false, "remote read (POST)", false),
    ("/api/v1/query", false, "PromQL instant query", false),
    ("/api/v1/query_range", false, "PromQL range query", false),
    ("/api/v1/series", false, "series by match[]", false),
    ("/api/v1/labels", true, "label names", false),
    ("/api/v1/label/__name__/values", true, "metric names", false),
    ("/api/v1/metadata", true, "metric metadata", false),
    ("/api/v1/rules", true, "rules (none: Strata evaluates no rules)", false),
    ("/api/v1/alerts", true, "alerts (none)", false),
    ("/api/v1/status/buildinfo", true, "version and revision", false),
    ("/api/v1/status/runtimeinfo", true, "start time, threads, retention", false),
    ("/api/v1/status/flags", true, "command-line flags", false),
    ("/api/v1/status/config", true, "configuration as loaded, secrets redacted", false),
    ("/api/v1/status/tsdb", true, "head cardinality of the tenant (X-Scope-OrgID)", true),
    ("/api/v1/status/ha", true, "HA tracker elections", true),
    ("/api/v1/status/peers", true, "federation peers", false),
    ("/api/v1/admin/flush", false, "cut the head into blocks now (POST)", true),
    ("/metrics", true, "Strata's own metrics", false),
    ("/-/healthy", true, "liveness", false),
    ("/-/ready", true, "readiness (after WAL replay)", false),
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `GET /`: a page naming the version and listing the endpoints, until there is a UI.
pub(crate) async fn index(State(st): State<AppState>) -> Response {
    let query_only = st.0.query_only;
    let mut rows = String::new();
    for (path, link, what, needs_head) in ENDPOINTS {
        if *needs_head && query_only {
            continue;
        }
        let p = escape(path);
        let cell = if *link { format!("<a href=\"{p}\">{p}</a>") } else { format!("<code>{p}</code>") };
        rows.push_str(&format!("<tr><td>{cell}</td><td>{}</td></tr>\n", escape(what)));
    }
    let role = if query_only { "query node" } else { "server" };
    let b = BUILD_INFO;
    let page = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Strata</title></head><body>\n\
         <h1>Strata</h1>\n<p>Long-term storage for Prometheus metrics ({role}). Version {} (revision {}, branch {}).</p>\n\
         <p>Point Grafana at this address as a Prometheus datasource; tenants go in the <code>X-Scope-OrgID</code> header.</p>\n\
         <table>\n{rows}</table>\n\
         <p>Operating Strata: <code>docs/operations.md</code> in its source.</p>\n\
         </body></html>\n",
        escape(b.version),
        escape(b.revision),
        escape(b.branch),
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], Html(page)).into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use strata_model::{Sample, TenantId};
    use strata_tsdb::{SeriesInput, Tsdb};
    use tower::ServiceExt;

    use super::*;
    use crate::{ServerConfig, StateOptions, router};

    async fn get(app: &axum::Router, path: &str, tenant: Option<&str>) -> (StatusCode, String) {
        let mut r = Request::get(path);
        if let Some(t) = tenant {
            r = r.header("X-Scope-OrgID", t);
        }
        let resp = app.clone().oneshot(r.body(Body::empty()).unwrap()).await.unwrap();
        let status = resp.status();
        // A test reading the server's own small answer.
        #[allow(clippy::disallowed_methods)]
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    fn state(query_only: bool) -> (AppState, tempfile::TempDir) {
        let mut flags = BTreeMap::new();
        flags.insert("data-dir".to_string(), "/tmp/x".to_string());
        let status = RuntimeStatus {
            flags,
            config_yaml: "listen: 127.0.0.1:9201\n".into(),
            storage_retention: "30d".into(),
            ..Default::default()
        };
        let st =
            AppState::build(StateOptions { server: ServerConfig::default(), query_only, status, ..Default::default() })
                .unwrap();
        let dir = tempfile::tempdir().unwrap();
        if !query_only {
            st.set_ready(Arc::new(Tsdb::open(dir.path(), Default::default()).unwrap()));
        }
        (st, dir)
    }

    fn put(st: &AppState, tenant: &str, series: &[&[(&str, &str)]]) {
        let db = st.tsdb().unwrap();
        let samples = [Sample { t: 1000, v: 1.0 }];
        let inputs: Vec<SeriesInput<'_>> =
            series.iter().map(|l| SeriesInput { labels: l, samples: &samples }).collect();
        db.append(&TenantId::new(tenant).unwrap(), &inputs, &[]).unwrap();
    }

    #[tokio::test]
    async fn rules_and_alerts_are_prometheus_empty_answers() {
        let (st, _d) = state(false);
        let app = router(st);
        assert_eq!(get(&app, "/api/v1/rules", None).await.1, r#"{"data":{"groups":[]},"status":"success"}"#);
        assert_eq!(get(&app, "/api/v1/rules?type=alert", None).await.0, StatusCode::OK);
        let (code, body) = get(&app, "/api/v1/rules?type=bogus", None).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.contains("bad_data"), "{body}");
        assert_eq!(get(&app, "/api/v1/alerts", None).await.1, r#"{"data":{"alerts":[]},"status":"success"}"#);
    }

    #[tokio::test]
    async fn flags_config_and_runtimeinfo_come_from_the_runtime_status() {
        let (st, _d) = state(false);
        let app = router(st);
        let v: Value = serde_json::from_str(&get(&app, "/api/v1/status/flags", None).await.1).unwrap();
        assert_eq!(v["data"], json!({"data-dir": "/tmp/x"}));
        let v: Value = serde_json::from_str(&get(&app, "/api/v1/status/config", None).await.1).unwrap();
        assert_eq!(v["data"]["yaml"], "listen: 127.0.0.1:9201\n");
        let v: Value = serde_json::from_str(&get(&app, "/api/v1/status/runtimeinfo", None).await.1).unwrap();
        let d = &v["data"];
        assert_eq!(d["storageRetention"], "30d");
        assert_eq!(d["reloadConfigSuccess"], true);
        assert!(humantime::parse_rfc3339(d["startTime"].as_str().unwrap()).is_ok(), "{d}");
        assert!(humantime::parse_rfc3339(d["lastConfigTime"].as_str().unwrap()).is_ok(), "{d}");
        assert!(d["GOMAXPROCS"].as_u64().unwrap() >= 1);
        #[cfg(target_os = "linux")]
        assert!(d["goroutineCount"].as_u64().unwrap() >= 1, "{d}");
    }

    #[tokio::test]
    async fn tsdb_status_is_the_tenants_head_with_limit() {
        let (st, _d) = state(false);
        put(
            &st,
            "a",
            &[&[("__name__", "up"), ("job", "x")], &[("__name__", "up"), ("job", "y")], &[("__name__", "z")]],
        );
        put(&st, "b", &[&[("__name__", "only_b")]]);
        let app = router(st);
        let v: Value = serde_json::from_str(&get(&app, "/api/v1/status/tsdb", Some("a")).await.1).unwrap();
        let d = &v["data"];
        assert_eq!(
            d["headStats"],
            json!({"numSeries": 3, "numLabelPairs": 4, "chunkCount": 3, "minTime": 1000, "maxTime": 1000})
        );
        assert_eq!(d["seriesCountByMetricName"], json!([{"name": "up", "value": 2}, {"name": "z", "value": 1}]));
        assert_eq!(d["labelValueCountByLabelName"][0], json!({"name": "__name__", "value": 2}));
        assert_eq!(d["seriesCountByLabelValuePair"][0], json!({"name": "__name__=up", "value": 2}));
        let v: Value = serde_json::from_str(&get(&app, "/api/v1/status/tsdb?limit=1", Some("a")).await.1).unwrap();
        assert_eq!(v["data"]["seriesCountByMetricName"], json!([{"name": "up", "value": 2}]));
        // Another tenant sees its own head; one without data an empty one.
        let v: Value = serde_json::from_str(&get(&app, "/api/v1/status/tsdb", Some("b")).await.1).unwrap();
        assert_eq!(v["data"]["headStats"]["numSeries"], 1);
        let v: Value = serde_json::from_str(&get(&app, "/api/v1/status/tsdb", Some("nobody")).await.1).unwrap();
        assert_eq!(v["data"]["headStats"]["minTime"], i64::MAX);
        assert_eq!(v["data"]["seriesCountByMetricName"], json!([]));
        for bad in ["0", "-1", "x", "99999999999999999999999"] {
            let (code, body) = get(&app, &format!("/api/v1/status/tsdb?limit={bad}"), Some("a")).await;
            assert_eq!(code, StatusCode::BAD_REQUEST, "limit={bad}: {body}");
        }
        let (code, _) = get(&app, "/api/v1/status/tsdb", Some("bad tenant!")).await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn a_query_node_has_status_but_no_tsdb_endpoint() {
        let (st, _d) = state(true);
        let app = router(st);
        assert_eq!(get(&app, "/api/v1/status/flags", None).await.0, StatusCode::OK);
        assert_eq!(get(&app, "/api/v1/rules", None).await.0, StatusCode::OK);
        assert_eq!(get(&app, "/api/v1/status/tsdb", None).await.0, StatusCode::NOT_FOUND);
        let (_, page) = get(&app, "/", None).await;
        assert!(!page.contains("/api/v1/write") && page.contains("query node"), "{page}");
    }

    #[tokio::test]
    async fn the_index_page_is_html_with_version_and_links() {
        let (st, _d) = state(false);
        let app = router(st);
        let resp = app.clone().oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
        let (_, page) = get(&app, "/", None).await;
        assert!(page.contains(BUILD_INFO.version) && page.contains(BUILD_INFO.revision), "{page}");
        for p in ["/metrics", "/api/v1/status/tsdb", "/api/v1/write", "/api/v1/status/buildinfo"] {
            assert!(page.contains(p), "{p} missing: {page}");
        }
        // Every linked endpoint exists.
        for (path, link, _, _) in ENDPOINTS.iter().filter(|e| e.1) {
            assert!(*link);
            let (code, body) = get(&app, path, None).await;
            assert_eq!(code, StatusCode::OK, "{path}: {body}");
        }
        // Other paths are still a JSON 404.
        let (code, body) = get(&app, "/nope", None).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert!(body.contains("\"status\":\"error\""), "{body}");
    }
}
