//! The status and rules endpoints Grafana and Prometheus tooling call, compared by
//! JSON shape (keys and value types, not values) with what a real Prometheus 2.42
//! answers to the same request. Strata runs as the real binary, so flags and config
//! are its own.

use serde_json::{Map, Value, json};
use strata_proto::prometheus as pb;
use strata_tests::{PrometheusProcess, StrataProcess, free_port, missing_tool, series, strata_bin, write_v1};

/// The shape of a JSON value: objects keep their keys, arrays the shape of their
/// first element (`[]` when empty), scalars become their type name.
fn shape(v: &Value) -> Value {
    match v {
        Value::Null => json!("null"),
        Value::Bool(_) => json!("bool"),
        Value::Number(_) => json!("number"),
        Value::String(_) => json!("string"),
        Value::Array(a) => Value::Array(a.first().map(shape).into_iter().collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), shape(v))).collect::<Map<_, _>>()),
    }
}

/// Arrays compared only where both sides have an element (Prometheus 2.42 serves
/// its cardinality lists from a cache filled at start-up, empty for five minutes).
fn same_shape(ours: &Value, theirs: &Value, path: &str) {
    match (ours, theirs) {
        (Value::Array(a), Value::Array(b)) => {
            if let (Some(x), Some(y)) = (a.first(), b.first()) {
                same_shape(x, y, &format!("{path}[0]"));
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            let (ka, kb): (Vec<&String>, Vec<&String>) = (a.keys().collect(), b.keys().collect());
            assert_eq!(ka, kb, "{path}: keys differ");
            for (k, v) in a {
                same_shape(v, &b[k], &format!("{path}.{k}"));
            }
        }
        (a, b) => assert_eq!(shape(a), shape(b), "{path}: {a} vs {b}"),
    }
}

async fn get(client: &reqwest::Client, base: &str, path: &str) -> (u16, Value) {
    let r = client.get(format!("{base}{path}")).send().await.expect("request");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_endpoints_have_prometheus_shapes() {
    if !PrometheusProcess::installed() {
        missing_tool("prometheus", "not installed (apt-get install prometheus; .ci/run does it)");
        return;
    }
    let Some(bin) = strata_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"),
    )
    .unwrap();
    let prom = PrometheusProcess::start(dir.path(), port, &[]).await.unwrap();
    let data = dir.path().join("strata");
    let strata = StrataProcess::start(&bin, &data, &["--log.format", "logfmt"]).await.unwrap();
    let client = reqwest::Client::new();
    let now = strata_model::now_ms();
    let req = pb::WriteRequest {
        timeseries: vec![
            series(&[("__name__", "up"), ("job", "a")], &[(now, 1.0)]),
            series(&[("__name__", "up"), ("job", "b")], &[(now, 1.0)]),
            series(&[("__name__", "other"), ("job", "a")], &[(now, 2.0)]),
        ],
        ..Default::default()
    };
    let (code, body) = write_v1(&client, &strata.base(), &req, Some("team-a")).await.unwrap();
    assert_eq!(code, 204, "{body}");
    // Let Prometheus scrape itself once, so its head is not empty either.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;

    for path in [
        "/api/v1/rules",
        "/api/v1/rules?type=alert",
        "/api/v1/alerts",
        "/api/v1/status/runtimeinfo",
        "/api/v1/status/config",
        "/api/v1/status/tsdb",
        "/api/v1/status/tsdb?limit=1",
        "/api/v1/status/buildinfo",
        "/api/v1/rules?type=bogus",
    ] {
        let (sc, ours) = get(&client, &strata.base(), path).await;
        let (pc, theirs) = get(&client, &prom.base(), path).await;
        assert_eq!(sc, pc, "{path}: status {sc} vs Prometheus {pc}: {ours} / {theirs}");
        if path == "/api/v1/status/buildinfo" {
            // Prometheus has no `application`; the rest is the same shape.
            let mut o = ours.clone();
            o["data"].as_object_mut().unwrap().remove("application");
            same_shape(&o, &theirs, path);
            continue;
        }
        same_shape(&ours, &theirs, path);
    }
    // Rules and alerts are the exact empty answers.
    assert_eq!(
        get(&client, &strata.base(), "/api/v1/rules").await.1,
        json!({"status": "success", "data": {"groups": []}})
    );
    assert_eq!(
        get(&client, &strata.base(), "/api/v1/alerts").await.1,
        json!({"status": "success", "data": {"alerts": []}})
    );

    // Flags: an object of strings on both sides, ours the real command line.
    let (_, ours) = get(&client, &strata.base(), "/api/v1/status/flags").await;
    let (_, theirs) = get(&client, &prom.base(), "/api/v1/status/flags").await;
    assert_eq!(ours["status"], theirs["status"]);
    for v in [&ours["data"], &theirs["data"]] {
        assert!(v.as_object().is_some_and(|o| !o.is_empty() && o.values().all(Value::is_string)), "{v}");
    }
    let f = &ours["data"];
    assert_eq!(f["listen"], format!("127.0.0.1:{}", strata.port), "{f}");
    assert_eq!(f["data-dir"], data.display().to_string(), "{f}");
    assert_eq!(f["log.format"], "logfmt", "{f}");

    // Config: the loaded configuration as YAML text.
    let (_, c) = get(&client, &strata.base(), "/api/v1/status/config").await;
    let yaml = c["data"]["yaml"].as_str().unwrap();
    assert!(yaml.contains(&format!("listen: 127.0.0.1:{}", strata.port)), "{yaml}");

    // The tenant's head: the three series written as team-a; the default tenant has none.
    let (_, t) = get(&client, &strata.base(), "/api/v1/status/tsdb").await;
    assert_eq!(t["data"]["headStats"]["numSeries"], 0, "{t}");
    let r = client
        .get(format!("{}/api/v1/status/tsdb", strata.base()))
        .header("X-Scope-OrgID", "team-a")
        .send()
        .await
        .unwrap();
    let t: Value = r.json().await.unwrap();
    let d = &t["data"];
    assert_eq!(d["headStats"]["numSeries"], 3, "{t}");
    assert_eq!(d["seriesCountByMetricName"][0], json!({"name": "up", "value": 2}), "{t}");
    // Our non-empty lists have Prometheus's `index.Stat` element shape.
    for list in [
        "seriesCountByMetricName",
        "labelValueCountByLabelName",
        "memoryInBytesByLabelName",
        "seriesCountByLabelValuePair",
    ] {
        assert_eq!(shape(&d[list]), json!([{"name": "string", "value": "number"}]), "{list}: {t}");
    }
    let (code, _) = get(&client, &strata.base(), "/api/v1/status/tsdb?limit=0").await;
    assert_eq!(code, 400);

    // `/` is a page, not a JSON 404.
    let r = client.get(format!("{}/", strata.base())).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("<html") && page.contains("/api/v1/status/tsdb"), "{page}");
    strata.terminate().unwrap();
}
