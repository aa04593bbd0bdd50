//! The PromQL query API: shapes, errors and limits as Prometheus answers them, the
//! request sequence Grafana's Prometheus datasource sends, and tenant isolation.

use serde_json::{Value, json};
use strata_proto::prometheus as pb;
use strata_tests::{Sandbox, series, write_v1};

/// 10 minutes of two counters and a gauge at a 15 s interval, ending at `end_ms`.
async fn load(sb: &Sandbox, end_ms: i64, tenant: Option<&str>) {
    let start = end_ms - 600_000;
    let times: Vec<i64> = (0..=40).map(|i| start + i * 15_000).collect();
    let counter = |k: f64| times.iter().enumerate().map(|(i, &t)| (t, k * i as f64)).collect::<Vec<_>>();
    let req = pb::WriteRequest {
        timeseries: vec![
            series(&[("__name__", "http_requests_total"), ("job", "api"), ("instance", "a")], &counter(3.0)),
            series(&[("__name__", "http_requests_total"), ("job", "api"), ("instance", "b")], &counter(6.0)),
            series(
                &[("__name__", "temperature"), ("job", "sensors")],
                &times.iter().map(|&t| (t, 21.5)).collect::<Vec<_>>(),
            ),
        ],
        metadata: vec![pb::MetricMetadata {
            r#type: 1,
            metric_family_name: "http_requests_total".into(),
            help: "Requests.".into(),
            unit: String::new(),
        }],
    };
    let (s, b) = write_v1(&sb.client, &sb.url(""), &req, tenant).await.unwrap();
    assert_eq!(s, 204, "{b}");
}

async fn get(sb: &Sandbox, path: &str) -> (u16, Value) {
    let r = sb.client.get(sb.url(path)).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn post_form(sb: &Sandbox, path: &str, form: &[(&str, &str)], tenant: Option<&str>) -> (u16, Value) {
    let body: String = form.iter().map(|(k, v)| format!("{}={}", k, url_escape(v))).collect::<Vec<_>>().join("&");
    let mut rb = sb.client.post(sb.url(path)).header("Content-Type", "application/x-www-form-urlencoded").body(body);
    if let Some(t) = tenant {
        rb = rb.header("X-Scope-OrgID", t);
    }
    let r = rb.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const END: i64 = 1_700_000_400_000;

#[tokio::test]
async fn instant_and_range_queries_have_prometheus_shapes() {
    let sb = Sandbox::start().await;
    load(&sb, END, None).await;
    let t = (END / 1000).to_string();

    let (s, v) = get(&sb, &format!("/api/v1/query?query=temperature&time={t}")).await;
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"__name__": "temperature", "job": "sensors"}, "value": [END / 1000, "21.5"]}
        ]}})
    );

    let q = format!("/api/v1/query?query=sum%20by%20(job)%20(rate(http_requests_total%5B2m%5D))&time={t}");
    let (_, v) = get(&sb, &q).await;
    assert_eq!(v["data"]["result"][0]["metric"], json!({"job": "api"}));
    assert_eq!(v["data"]["result"][0]["value"][1], "0.6", "3/15 + 6/15 per second");

    let (_, v) = get(&sb, &format!("/api/v1/query?query=1%2B1&time={t}.5")).await;
    assert_eq!(v["data"], json!({"resultType": "scalar", "result": [END as f64 / 1000.0 + 0.5, "2"]}));
    let (_, v) = get(&sb, &format!("/api/v1/query?query=%22hello%22&time={t}")).await;
    assert_eq!(v["data"], json!({"resultType": "string", "result": [END / 1000, "hello"]}));

    let start = (END / 1000 - 60).to_string();
    let (s, v) = post_form(
        &sb,
        "/api/v1/query_range",
        &[("query", "temperature"), ("start", &start), ("end", &t), ("step", "30s")],
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["data"]["resultType"], "matrix");
    assert_eq!(
        v["data"]["result"][0]["values"],
        json!([[END / 1000 - 60, "21.5"], [END / 1000 - 30, "21.5"], [END / 1000, "21.5"]])
    );

    // RFC 3339 times work too.
    let (s, v) = get(&sb, "/api/v1/query?query=temperature&time=2023-11-14T22:20:00Z").await;
    assert_eq!((s, v["data"]["result"][0]["value"][0].as_i64()), (200, Some(1_700_000_400)));
}

#[tokio::test]
async fn errors_and_limits_are_prometheus_shaped() {
    let sb = Sandbox::start().await;
    load(&sb, END, None).await;
    let (s, v) = get(&sb, "/api/v1/query?query=sum(").await;
    assert_eq!((s, v["errorType"].as_str()), (400, Some("bad_data")), "{v}");
    let (s, v) = get(&sb, "/api/v1/query").await;
    assert_eq!((s, v["errorType"].as_str()), (400, Some("bad_data")));
    let (s, v) = get(&sb, "/api/v1/query_range?query=up&start=100&end=10&step=1").await;
    assert_eq!(s, 400);
    assert!(v["error"].as_str().unwrap().contains("end timestamp must not be before start time"));
    let (s, v) = get(&sb, "/api/v1/query_range?query=up&start=0&end=100&step=0").await;
    assert_eq!(s, 400);
    assert!(v["error"].as_str().unwrap().contains("zero or negative query resolution step"));
    let (s, v) = get(&sb, "/api/v1/query_range?query=up&start=0&end=100000&step=1").await;
    assert_eq!(s, 400);
    assert!(v["error"].as_str().unwrap().contains("exceeded maximum resolution of 11,000 points"), "{v}");
    // Two series with the same labels after dropping the name: an execution error.
    let t = END / 1000;
    let (s, v) = get(
        &sb,
        &format!(
            "/api/v1/query?query=label_replace(http_requests_total,%22instance%22,%22x%22,%22%22,%22%22)&time={t}"
        ),
    )
    .await;
    assert_eq!((s, v["errorType"].as_str()), (422, Some("execution")), "{v}");
    // limit truncates and warns.
    let (_, v) = get(&sb, &format!("/api/v1/query?query=http_requests_total&time={t}&limit=1")).await;
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 1);
    assert_eq!(v["warnings"], json!(["results truncated due to limit"]));
}

#[tokio::test]
async fn sample_limit_gives_422() {
    let limits = strata_server::Limits { max_samples_per_query: 10, ..Default::default() };
    let sb = Sandbox::start_with_limits(Default::default(), limits).await;
    load(&sb, END, None).await;
    let (s, v) =
        get(&sb, &format!("/api/v1/query?query=max_over_time(temperature%5B10m%5D)&time={}", END / 1000)).await;
    assert_eq!((s, v["errorType"].as_str()), (422, Some("execution")), "{v}");
    assert!(v["error"].as_str().unwrap().contains("too many samples"), "{v}");
    assert!(v["error"].as_str().unwrap().ends_with("(limit: max_samples_per_query=10)"), "{v}");
}

#[tokio::test]
async fn queries_see_only_their_tenant() {
    let sb = Sandbox::start().await;
    load(&sb, END, Some("team-a")).await;
    let t = (END / 1000).to_string();
    let (_, v) =
        post_form(&sb, "/api/v1/query", &[("query", "count(temperature)"), ("time", &t)], Some("team-a")).await;
    assert_eq!(v["data"]["result"][0]["value"][1], "1");
    let (_, v) =
        post_form(&sb, "/api/v1/query", &[("query", "count(temperature)"), ("time", &t)], Some("team-b")).await;
    assert_eq!(v["data"]["result"], json!([]));
}

/// The requests Grafana's Prometheus datasource sends on "Save & test", in the query
/// editor's metric and label browsers, and on a dashboard panel.
#[tokio::test]
async fn grafana_request_sequence() {
    let sb = Sandbox::start().await;
    load(&sb, END, None).await;
    let (start, end) = ((END / 1000 - 3600).to_string(), (END / 1000).to_string());

    // Save & test: buildinfo, then an instant query of 1+1 by POST.
    let (s, v) = get(&sb, "/api/v1/status/buildinfo").await;
    assert_eq!(s, 200);
    assert_eq!(v["data"]["version"], strata_server::BUILD_INFO.version);
    assert_eq!(v["data"]["revision"], strata_server::BUILD_INFO.revision);
    assert_eq!(v["data"]["branch"], strata_server::BUILD_INFO.branch, "the same build facts as strata_build_info");
    let (s, v) = post_form(&sb, "/api/v1/query", &[("query", "1+1"), ("time", &end)], None).await;
    assert_eq!((s, v["data"]["result"][1].as_str()), (200, Some("2")));

    // Metric browser: names, then labels and values narrowed by match[].
    let (_, v) = get(&sb, &format!("/api/v1/label/__name__/values?start={start}&end={end}")).await;
    assert_eq!(v["data"], json!(["http_requests_total", "temperature"]));
    let (_, v) = get(&sb, &format!("/api/v1/labels?start={start}&end={end}&match[]=http_requests_total")).await;
    assert_eq!(v["data"], json!(["__name__", "instance", "job"]));
    let (_, v) = get(
        &sb,
        &format!(
            "/api/v1/label/instance/values?start={start}&end={end}&match[]=%7B__name__%3D%22http_requests_total%22%7D"
        ),
    )
    .await;
    assert_eq!(v["data"], json!(["a", "b"]));
    let (s, v) = post_form(
        &sb,
        "/api/v1/series",
        &[("match[]", "http_requests_total{job=\"api\"}"), ("start", &start), ("end", &end)],
        None,
    )
    .await;
    assert_eq!((s, v["data"].as_array().map(Vec::len)), (200, Some(2)));
    let (_, v) = get(&sb, "/api/v1/metadata").await;
    assert_eq!(v["data"]["http_requests_total"][0]["type"], "counter");
    let (_, v) = get(&sb, "/api/v1/metadata?metric=http_requests_total").await;
    assert_eq!(v["data"]["http_requests_total"][0]["help"], "Requests.");

    // Dashboard panel: query_range by POST with form fields, as Grafana sends them.
    let (s, v) = post_form(
        &sb,
        "/api/v1/query_range",
        &[
            ("query", "sum by (instance) (rate(http_requests_total[1m]))"),
            ("start", &start),
            ("end", &end),
            ("step", "15"),
        ],
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 2);
    // Exemplars panel toggle and query formatting.
    let (s, v) = post_form(
        &sb,
        "/api/v1/query_exemplars",
        &[("query", "http_requests_total"), ("start", &start), ("end", &end)],
        None,
    )
    .await;
    assert_eq!((s, v["data"].clone()), (200, json!([])));
    let (s, v) = get(&sb, "/api/v1/format_query?query=sum(rate(x%5B5m%5D))%20by%20(job)").await;
    assert_eq!((s, v["data"].as_str()), (200, Some("sum by (job) (rate(x[5m]))")));
}

#[tokio::test]
async fn stats_report_timings_and_samples_in_prometheus_shape() {
    let sb = Sandbox::start().await;
    load(&sb, END, None).await;
    let t = END / 1000;
    let (s, v) =
        get(&sb, &format!("/api/v1/query?query=count_over_time(temperature%5B10m%5D)&time={t}&stats=all")).await;
    assert_eq!(s, 200, "{v}");
    let stats = &v["data"]["stats"];
    for k in
        ["evalTotalTime", "resultSortTime", "queryPreparationTime", "innerEvalTime", "execQueueTime", "execTotalTime"]
    {
        assert!(stats["timings"][k].as_f64().is_some_and(|x| x >= 0.0), "{k}: {v}");
    }
    let exec = stats["timings"]["execTotalTime"].as_f64().unwrap();
    assert!(exec >= stats["timings"]["evalTotalTime"].as_f64().unwrap(), "{v}");
    // The selector fetched exactly the samples the window counts.
    let counted: u64 = v["data"]["result"][0]["value"][1].as_str().unwrap().parse().unwrap();
    assert_eq!(stats["samples"]["totalQueryableSamples"], counted, "{v}");
    assert!(stats["samples"]["peakSamples"].as_u64().unwrap() >= counted, "{v}");

    // A range query: the peak holds at least every point of the answer.
    let (s, v) =
        get(&sb, &format!("/api/v1/query_range?query=http_requests_total&start={}&end={t}&step=60&stats=1", t - 600))
            .await;
    assert_eq!(s, 200, "{v}");
    let points: u64 =
        v["data"]["result"].as_array().unwrap().iter().map(|s| s["values"].as_array().unwrap().len() as u64).sum();
    assert_eq!(points, 22, "{v}");
    assert!(v["data"]["stats"]["samples"]["peakSamples"].as_u64().unwrap() >= points, "{v}");
    assert!(v["data"]["stats"]["samples"]["totalQueryableSamples"].as_u64().unwrap() >= 80, "{v}");

    // Without the parameter there is no stats member.
    let (_, v) = get(&sb, &format!("/api/v1/query?query=temperature&time={t}")).await;
    assert!(v["data"].get("stats").is_none(), "{v}");
}

/// The slow query log of the real binary: with a threshold every query passes, the
/// line names tenant, query and range; `0s` logs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_queries_are_logged_with_tenant_query_and_range() {
    let Some(bin) = strata_tests::strata_bin() else { return };
    for (threshold, logged) in [("1ns", true), ("0s", false)] {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("strata.yaml");
        std::fs::write(&config, format!("querier:\n  slow_query_threshold: {threshold}\nlog: {{format: json}}\n"))
            .unwrap();
        let port = strata_tests::free_port();
        let child = std::process::Command::new(&bin)
            .args(["serve", "--config", config.to_str().unwrap(), "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let mut ready = false;
        for _ in 0..600 {
            if client.get(format!("{base}/-/ready")).send().await.is_ok_and(|r| r.status().is_success()) {
                ready = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(ready, "strata did not get ready");
        let r = client
            .get(format!("{base}/api/v1/query_range?query=vector(7)&start=1000&end=2000&step=1"))
            .header("X-Scope-OrgID", "team-slow")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        let out = child.wait_with_output().unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        let line = log.lines().find(|l| l.contains("slow query"));
        assert_eq!(line.is_some(), logged, "threshold {threshold}: {log}");
        if let Some(line) = line {
            let v: Value = serde_json::from_str(line).unwrap();
            let f = &v["fields"];
            assert_eq!(f["tenant"], "team-slow", "{line}");
            assert_eq!(f["query"], "vector(7)", "{line}");
            assert_eq!(
                (f["start"].as_i64(), f["end"].as_i64(), f["step"].as_i64()),
                (Some(1_000_000), Some(2_000_000), Some(1000)),
                "{line}"
            );
            assert!(f["duration_seconds"].as_f64().is_some(), "{line}");
        }
    }
}
