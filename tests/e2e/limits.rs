//! Per-tenant limits through the real `strata` binary: an overrides file set at
//! start, each limit exceeded with its documented status and message, the file
//! changed at run time, the new values in force after a reload; a broken file
//! keeps the last good limits and says so on /metrics.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_proto::prometheus as pb;
use strata_tests::{StrataProcess, query_string, series, strata_bin, write_v1};

const OVERRIDES: &str = "overrides:
  rate: {ingestion_rate: 1, ingestion_burst_size: 4}
  series: {max_global_series_per_user: 2}
  labels: {max_label_names_per_series: 3}
  query: {max_series_per_query: 1, max_query_length: 1h, max_samples_per_query: 5}
";

const RAISED: &str = "overrides:
  rate: {ingestion_rate: 1000, ingestion_burst_size: 1000}
  series: {max_global_series_per_user: 10}
  labels: {max_label_names_per_series: 10}
  query: {max_series_per_query: 10, max_query_length: 3h}
";

/// Atomically replaces the overrides file (a reload never sees half a file).
fn put(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn err(body: &str) -> (String, String) {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert_eq!(v["status"], "error", "{body}");
    (v["errorType"].as_str().unwrap_or("").to_string(), v["error"].as_str().unwrap_or("").to_string())
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn write(&self, tenant: &str, ts: Vec<pb::TimeSeries>) -> (u16, String) {
        let req = pb::WriteRequest { timeseries: ts, ..Default::default() };
        write_v1(&self.http, &self.base, &req, Some(tenant)).await.unwrap()
    }

    async fn get(&self, tenant: &str, path: &str, q: &[(&str, String)]) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}?{}", self.base, query_string(q)))
            .header("X-Scope-OrgID", tenant)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn metrics(&self) -> String {
        self.get("anonymous", "/metrics", &[]).await.1
    }

    /// Polls `f` until it is true; the reload interval is 1s, so 20s is plenty on
    /// any machine (nothing is asserted about how fast).
    async fn eventually(&self, what: &str, mut f: impl AsyncFnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if f().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{what}: not in force after 20s");
    }
}

fn one(name: &str, extra: &[(&str, &str)], t: i64) -> pb::TimeSeries {
    let mut labels = vec![("__name__", name)];
    labels.extend_from_slice(extra);
    series(&labels, &[(t, 1.0)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_from_the_overrides_file_apply_and_change_at_run_time() {
    let Some(bin) = strata_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let overrides = dir.path().join("overrides.yaml");
    put(&overrides, OVERRIDES);
    let config = dir.path().join("strata.yaml");
    std::fs::write(
        &config,
        format!(
            "limits:\n  overrides_file: {}\n  reload_interval: 1s\n  max_series_per_query: 100\n",
            overrides.display()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let p = StrataProcess::start(&bin, &data, &["--config", config.to_str().unwrap()]).await.unwrap();
    let c = Client { http: reqwest::Client::new(), base: p.base() };
    let now = strata_model::now_ms();

    // ingestion_rate / burst: 429, retryable, and nothing of the request stored.
    let five: Vec<_> = (0..5).map(|i| one("r", &[("i", &i.to_string())], now)).collect();
    assert_eq!(c.write("rate", five[..4].to_vec()).await.0, 204);
    let (s, b) = c.write("rate", five[4..].to_vec()).await;
    assert_eq!(s, 429, "{b}");
    let (kind, msg) = err(&b);
    assert_eq!(kind, "unavailable");
    assert!(msg.contains("(limit: ingestion_rate=1, ingestion_burst_size=4)"), "{msg}");

    // max_global_series_per_user: new series past the limit refused (400), the rest stored.
    let (s, b) = c.write("series", (0..3).map(|i| one("s", &[("i", &i.to_string())], now)).collect()).await;
    assert_eq!(s, 400, "{b}");
    assert!(b.contains("per_user_series_limit") && b.contains("(limit: max_global_series_per_user=2)"), "{b}");

    // max_label_names_per_series: 400 naming the limit.
    let (s, b) = c.write("labels", vec![one("l", &[("a", "1"), ("b", "2"), ("c", "3")], now)]).await;
    assert_eq!(s, 400, "{b}");
    assert!(b.contains("(limit: max_label_names_per_series=3)"), "{b}");

    // Query limits.
    assert_eq!(c.write("query", vec![one("q", &[("i", "1")], now), one("q", &[("i", "2")], now)]).await.0, 204);
    let t = (now / 1000 + 1).to_string();
    let instant = |q: &str| [("query", q.to_string()), ("time", t.clone())];
    let (s, b) = c.get("query", "/api/v1/query", &instant("q")).await;
    assert_eq!(s, 422, "{b}");
    assert!(err(&b).1.contains("(limit: max_series_per_query=1)"), "{b}");
    let (s, b) = c.get("query", "/api/v1/query", &instant("q{i=\"1\"}[1h]")).await;
    assert_eq!(s, 200, "one series, one sample: {b}");
    let range = |hours: i64| {
        [
            ("query", "vector(1)".to_string()),
            ("start", (now / 1000 + 1 - hours * 3600).to_string()),
            ("end", t.clone()),
            ("step", "60".to_string()),
        ]
    };
    let (s, b) = c.get("query", "/api/v1/query_range", &range(2)).await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(err(&b).0, "bad_data");
    assert!(err(&b).1.contains("(limit: max_query_length=1h)"), "{b}");
    let (s, b) = c.get("query", "/api/v1/query_range", &range(1)).await;
    assert_eq!(s, 422, "61 points of vector(1) hold more than 5 samples: {b}");
    assert!(err(&b).1.contains("(limit: max_samples_per_query=5)"), "{b}");
    // Another tenant has the config's defaults.
    assert_eq!(c.get("other", "/api/v1/query_range", &range(2)).await.0, 200);

    let m = c.metrics().await;
    for limit in [
        ("rate", "ingestion_rate"),
        ("series", "max_global_series_per_user"),
        ("labels", "max_label_names_per_series"),
        ("query", "max_series_per_query"),
        ("query", "max_query_length"),
        ("query", "max_samples_per_query"),
    ] {
        let line = format!("strata_limits_exceeded_total{{tenant=\"{}\",limit=\"{}\"}} 1", limit.0, limit.1);
        assert!(m.contains(&line), "{line} in\n{m}");
    }
    assert!(m.contains("strata_limits_overrides_last_reload_successful 1"), "{m}");

    // A broken file: the limits in force stay, the metric says so.
    put(&overrides, "overrides: {query: {max_series_per_query: lots}}\n");
    c.eventually("the failed reload", async || {
        c.metrics().await.contains("strata_limits_overrides_last_reload_successful 0")
    })
    .await;
    assert_eq!(c.get("query", "/api/v1/query", &instant("q")).await.0, 422, "last good limits kept");

    // Raised limits take effect without a restart.
    put(&overrides, RAISED);
    c.eventually("max_series_per_query=10", async || c.get("query", "/api/v1/query", &instant("q")).await.0 == 200)
        .await;
    assert!(c.metrics().await.contains("strata_limits_overrides_last_reload_successful 1"));
    let (s, b) = c.get("query", "/api/v1/query_range", &range(2)).await;
    assert_eq!(s, 200, "max_query_length=3h, and max_samples_per_query back to the default: {b}");
    let (s, b) = c.write("rate", five[4..].to_vec()).await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = c.write("series", (0..3).map(|i| one("s", &[("i", &i.to_string())], now + 1000)).collect()).await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = c.write("labels", vec![one("l", &[("a", "1"), ("b", "2"), ("c", "3")], now)]).await;
    assert_eq!(s, 204, "{b}");

    // What was refused was not stored; what was accepted is there.
    let count = async |tenant: &str, q: &str| -> Value {
        let (_, b) =
            c.get(tenant, "/api/v1/query", &[("query", q.to_string()), ("time", (now / 1000 + 2).to_string())]).await;
        serde_json::from_str::<Value>(&b).unwrap()["data"]["result"][0]["value"][1].clone()
    };
    // rate: 4 series first, the fifth only after the raise.
    assert_eq!(count("rate", "count(r)").await, "5");
    // series: the first write stored 2 series at `now`; the third series has only
    // the sample of the second write.
    assert_eq!(count("series", "count(count_over_time(s[1m]))").await, "3");
    assert_eq!(count("series", "sum(count_over_time(s[1m]))").await, "5");

    // Lowered again: the tenant takes no further series (each try is a new series,
    // stored while the old limit is still in force).
    put(&overrides, "overrides:\n  series: {max_global_series_per_user: 3}\n");
    let mut tries = 0;
    c.eventually("max_global_series_per_user=3", async || {
        tries += 1;
        c.write("series", vec![one("s", &[("i", &format!("new{tries}"))], now + 2000)]).await.0 == 400
    })
    .await;
    // Existing series still take samples.
    let (s, b) = c.write("series", vec![one("s", &[("i", "0")], now + 3000)]).await;
    assert_eq!(s, 204, "{b}");
    p.terminate().unwrap();
}

/// `max_concurrent_queries`: a federation peer that accepts connections and never
/// answers holds queries open (deterministically, no timing), so the tenant's
/// running queries can be counted, refused past the limit, and the limit raised at
/// run time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_queries_limit_refuses_past_it_and_follows_the_overrides_file() {
    let Some(bin) = strata_bin() else { return };
    let stuck = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let overrides = dir.path().join("overrides.yaml");
    put(&overrides, "overrides:\n  busy: {max_concurrent_queries: 1}\n");
    let config = dir.path().join("strata.yaml");
    std::fs::write(
        &config,
        format!(
            "limits:\n  overrides_file: {}\n  reload_interval: 1s\nfederation:\n  health_check_interval: 1h\n  peers:\n    - {{name: stuck, url: 'http://{}', timeout: 10m}}\n",
            overrides.display(),
            stuck.local_addr().unwrap()
        ),
    )
    .unwrap();
    let p =
        StrataProcess::start(&bin, &dir.path().join("data"), &["--config", config.to_str().unwrap()]).await.unwrap();
    let c = std::sync::Arc::new(Client { http: reqwest::Client::new(), base: p.base() });
    let running = async |c: &Client| -> usize {
        let (_, b) = c.get("anonymous", "/api/v1/status/active_queries", &[]).await;
        let v: Value = serde_json::from_str(&b).unwrap();
        v["data"].as_array().unwrap().iter().filter(|q| q["tenant"] == "busy").count()
    };
    let hold = |c: std::sync::Arc<Client>, q: &'static str| {
        tokio::spawn(async move { c.get("busy", "/api/v1/query", &[("query", q.to_string())]).await })
    };
    let first = hold(c.clone(), "up");
    c.eventually("the first query running", async || running(&c).await == 1).await;
    let (_, b) = c.get("anonymous", "/api/v1/status/active_queries", &[]).await;
    assert!(b.contains("\"query\":\"up\"") && b.contains("\"kind\":\"instant\""), "{b}");
    let (s, b) = c.get("busy", "/api/v1/query", &[("query", "sum(up)".to_string())]).await;
    assert_eq!(s, 429, "{b}");
    assert!(err(&b).1.contains("(limit: max_concurrent_queries=1)"), "{b}");
    // Other tenants are not counted against it.
    let other = {
        let c = c.clone();
        tokio::spawn(async move { c.get("idle", "/api/v1/query", &[("query", "up".to_string())]).await })
    };

    put(&overrides, "overrides:\n  busy: {max_concurrent_queries: 2}\n");
    let mut held = vec![first, other];
    c.eventually("max_concurrent_queries=2", async || {
        if running(&c).await >= 2 {
            return true;
        }
        // Each try is either refused at once (old limit) or admitted and held.
        let (s, _) = {
            let h = hold(c.clone(), "count(up)");
            tokio::time::sleep(Duration::from_millis(200)).await;
            if h.is_finished() {
                h.await.unwrap()
            } else {
                held.push(h);
                (0, String::new())
            }
        };
        s != 429 && running(&c).await >= 2
    })
    .await;
    assert_eq!(running(&c).await, 2);
    let (s, _) = c.get("busy", "/api/v1/query", &[("query", "max(up)".to_string())]).await;
    assert_eq!(s, 429, "a third is over the new limit");
    drop(stuck);
    p.terminate().unwrap();
    for h in held {
        h.abort();
    }
}
