//! Remote write 1.0 in, then series / labels / label values / metadata / remote read
//! out, in Prometheus's exact JSON shapes; tenants kept apart.

use serde_json::{Value, json};
use strata_proto::prometheus as pb;
use strata_tests::{Sandbox, all_series, remote_read, series, write_v1};

async fn get_json(sb: &Sandbox, path: &str, tenant: Option<&str>) -> (u16, Value) {
    let mut rb = sb.client.get(sb.url(path));
    if let Some(t) = tenant {
        rb = rb.header("X-Scope-OrgID", t);
    }
    let r = rb.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn fixture() -> pb::WriteRequest {
    pb::WriteRequest {
        timeseries: vec![
            series(&[("__name__", "up"), ("job", "api"), ("instance", "a:9100")], &[(1000, 1.0), (2000, 1.0)]),
            series(&[("__name__", "up"), ("job", "web"), ("instance", "b:9100")], &[(1000, 0.0)]),
            series(
                &[("__name__", "http_requests_total"), ("job", "api"), ("code", "200")],
                &[(1500, 10.0), (3000, f64::from_bits(0x7ff0000000000002))],
            ),
        ],
        metadata: vec![pb::MetricMetadata {
            r#type: 1,
            metric_family_name: "http_requests_total".into(),
            help: "Requests served.".into(),
            unit: "".into(),
        }],
    }
}

#[tokio::test]
async fn series_labels_values_metadata_match_prometheus_shapes() {
    let sb = Sandbox::start().await;
    let (status, body) = write_v1(&sb.client, &sb.url(""), &fixture(), None).await.unwrap();
    assert_eq!(status, 204, "{body}");

    let (s, v) = get_json(&sb, "/api/v1/series?match[]=up", None).await;
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"status": "success", "data": [
            {"__name__": "up", "instance": "a:9100", "job": "api"},
            {"__name__": "up", "instance": "b:9100", "job": "web"},
        ]})
    );
    // Time bounds: only the series with a sample at or after t=1.5s.
    let (_, v) = get_json(&sb, "/api/v1/series?match[]=up&start=1.5&end=10", None).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    // limit truncates and warns.
    let (_, v) = get_json(&sb, "/api/v1/series?match[]={job=~\".%2B\"}&limit=1", None).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["warnings"], json!(["results truncated due to limit"]));

    let (_, v) = get_json(&sb, "/api/v1/labels", None).await;
    assert_eq!(v, json!({"status": "success", "data": ["__name__", "code", "instance", "job"]}));
    let (_, v) = get_json(&sb, "/api/v1/labels?match[]=up", None).await;
    assert_eq!(v["data"], json!(["__name__", "instance", "job"]));

    let (_, v) = get_json(&sb, "/api/v1/label/__name__/values", None).await;
    assert_eq!(v, json!({"status": "success", "data": ["http_requests_total", "up"]}));
    let (_, v) = get_json(&sb, "/api/v1/label/job/values?match[]=up{instance=\"b:9100\"}", None).await;
    assert_eq!(v["data"], json!(["web"]));

    let (_, v) = get_json(&sb, "/api/v1/metadata", None).await;
    assert_eq!(
        v,
        json!({"status": "success", "data": {"http_requests_total": [{"type": "counter", "help": "Requests served.", "unit": ""}]}})
    );

    // POST form works like GET.
    let r = sb
        .client
        .post(sb.url("/api/v1/series"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("match%5B%5D=up&end=10")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn read_api_errors_are_prometheus_shaped() {
    let sb = Sandbox::start().await;
    let (s, v) = get_json(&sb, "/api/v1/series", None).await;
    assert_eq!((s, v["errorType"].as_str()), (400, Some("bad_data")));
    assert_eq!(v["error"], "no match[] parameter provided");
    let (s, v) = get_json(&sb, "/api/v1/series?match[]={job=\"\"}", None).await;
    assert_eq!(s, 400);
    assert!(v["error"].as_str().unwrap().contains("at least one non-empty matcher"), "{v}");
    let (s, v) = get_json(&sb, "/api/v1/series?match[]=up{", None).await;
    assert_eq!((s, v["status"].as_str()), (400, Some("error")));
    let (s, _) = get_json(&sb, "/api/v1/series?match[]=up&start=yesterday", None).await;
    assert_eq!(s, 400);
    let (s, _) = get_json(&sb, "/api/v1/label/bad-name/values", None).await;
    assert_eq!(s, 400);
    let (s, v) = get_json(&sb, "/api/v1/nope", None).await;
    assert_eq!((s, v["errorType"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn remote_read_returns_exact_samples_and_tenants_are_apart() {
    let sb = Sandbox::start().await;
    let (status, _) = write_v1(&sb.client, &sb.url(""), &fixture(), Some("team-a")).await.unwrap();
    assert_eq!(status, 204);
    let other = pb::WriteRequest {
        timeseries: vec![series(&[("__name__", "up"), ("job", "other")], &[(1000, 5.0)])],
        metadata: vec![],
    };
    assert_eq!(write_v1(&sb.client, &sb.url(""), &other, Some("team-b")).await.unwrap().0, 204);

    let got = remote_read(&sb.client, &sb.url(""), all_series(), 0, 10_000, Some("team-a")).await.unwrap();
    let want = fixture().timeseries;
    assert_eq!(got.len(), 3);
    for ts in &want {
        let mut sorted = ts.labels.clone();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        let g = got.iter().find(|g| g.labels == sorted).expect("series present");
        let bits = |s: &[pb::Sample]| s.iter().map(|x| (x.timestamp, x.value.to_bits())).collect::<Vec<_>>();
        assert_eq!(bits(&g.samples), bits(&ts.samples));
    }
    let b = remote_read(&sb.client, &sb.url(""), all_series(), 0, 10_000, Some("team-b")).await.unwrap();
    assert_eq!(b.len(), 1);
    let none = remote_read(&sb.client, &sb.url(""), all_series(), 0, 10_000, None).await.unwrap();
    assert!(none.is_empty(), "default tenant sees nothing of team-a or team-b");
    let (_, v) = get_json(&sb, "/api/v1/label/job/values", Some("team-b")).await;
    assert_eq!(v["data"], json!(["other"]));
}

#[tokio::test]
async fn metrics_and_health_endpoints() {
    let sb = Sandbox::start().await;
    write_v1(&sb.client, &sb.url(""), &fixture(), None).await.unwrap();
    let r = sb.client.get(sb.url("/-/healthy")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = sb.client.get(sb.url("/-/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = sb.client.get(sb.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for needle in [
        "strata_remote_write_samples_received_total{protocol=\"1.0\"} 5",
        "strata_head_series{tenant=\"anonymous\"} 3",
        "strata_wal_fsyncs_total",
        "strata_wal_bytes_written_total",
        "strata_http_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}
