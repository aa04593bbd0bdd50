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

/// `STREAMED_XOR_CHUNKS`: framed `ChunkedReadResponse` messages whose XOR chunks
/// decode to exactly the stored samples.
#[tokio::test]
async fn streamed_remote_read_returns_xor_chunks() {
    use strata_proto::Message;
    let sb = Sandbox::start().await;
    let samples: Vec<(i64, f64)> = (0..300).map(|i| (i * 1000, i as f64 * 1.5)).collect();
    let req = pb::WriteRequest { timeseries: vec![series(&[("__name__", "long")], &samples)], metadata: vec![] };
    assert_eq!(write_v1(&sb.client, &sb.url(""), &req, None).await.unwrap().0, 204);

    let rr = pb::ReadRequest {
        queries: vec![pb::Query {
            start_timestamp_ms: 0,
            end_timestamp_ms: 1_000_000,
            matchers: all_series(),
            hints: None,
        }],
        accepted_response_types: vec![pb::read_request::ResponseType::StreamedXorChunks as i32],
    };
    let r = sb
        .client
        .post(sb.url("/api/v1/read"))
        .header("Content-Encoding", "snappy")
        .body(strata_tests::snappy(&rr.encode_to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse");
    let body = r.bytes().await.unwrap();
    let (mut pos, mut got) = (0usize, Vec::new());
    while pos < body.len() {
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let b = body[pos];
            pos += 1;
            len |= ((b & 0x7f) as usize) << shift;
            shift += 7;
            if b < 0x80 {
                break;
            }
        }
        let crc = u32::from_be_bytes(body[pos..pos + 4].try_into().unwrap());
        let msg = &body[pos + 4..pos + 4 + len];
        assert_eq!(crc, crc32c(msg), "frame checksum");
        pos += 4 + len;
        let frame = pb::ChunkedReadResponse::decode(msg).unwrap();
        for s in frame.chunked_series {
            assert_eq!(s.chunks.len(), 3, "300 samples in chunks of 120");
            for c in s.chunks {
                let decoded = strata_tsdb::chunk::decode_all(&c.data).unwrap();
                assert_eq!(decoded.first().unwrap().t, c.min_time_ms);
                assert_eq!(decoded.last().unwrap().t, c.max_time_ms);
                got.extend(decoded.into_iter().map(|x| (x.t, x.v)));
            }
        }
    }
    assert_eq!(got, samples);
}

/// CRC-32C (Castagnoli), bitwise: independent of the server's implementation.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82f6_3b78 } else { crc >> 1 };
        }
    }
    !crc
}
