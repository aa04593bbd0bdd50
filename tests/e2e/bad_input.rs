//! Every kind of bad remote-write input gets the right status and a message naming
//! the problem; valid series in the same request are stored; the server keeps serving.

use serde_json::Value;
use strata_proto::Message;
use strata_proto::prometheus as pb;
use strata_server::ServerConfig;
use strata_tests::{Sandbox, all_series, post_write, remote_read, series, snappy, write_v1};
use strata_tsdb::TsdbOptions;

fn error_of(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert_eq!(v["status"], "error", "{body}");
    assert!(v["errorType"].is_string(), "{body}");
    v["error"].as_str().unwrap().to_string()
}

fn good() -> pb::WriteRequest {
    pb::WriteRequest { timeseries: vec![series(&[("__name__", "ok"), ("i", "1")], &[(1000, 1.0)])], metadata: vec![] }
}

async fn assert_still_serving(sb: &Sandbox) {
    let req =
        pb::WriteRequest { timeseries: vec![series(&[("__name__", "alive")], &[(now_ms(), 1.0)])], metadata: vec![] };
    assert_eq!(write_v1(&sb.client, &sb.url(""), &req, None).await.unwrap().0, 204);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

#[tokio::test]
async fn malformed_bodies() {
    let sb = Sandbox::start().await;
    let base = sb.url("");
    let raw = good().encode_to_vec();

    // Truncated protobuf inside valid snappy.
    let (s, b, _) =
        post_write(&sb.client, &base, snappy(&raw[..raw.len() - 3]), "application/x-protobuf", None).await.unwrap();
    assert_eq!(s, 400);
    assert!(error_of(&b).contains("malformed remote write 1.0 request"), "{b}");

    // Garbage that is not snappy.
    let (s, b, _) =
        post_write(&sb.client, &base, b"\x10definitely not snappy".to_vec(), "application/x-protobuf", None)
            .await
            .unwrap();
    assert_eq!(s, 400);
    assert!(error_of(&b).contains("invalid snappy body"), "{b}");

    // A snappy header declaring 4 GiB: refused before allocating.
    let (s, b, _) =
        post_write(&sb.client, &base, vec![0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0], "application/x-protobuf", None)
            .await
            .unwrap();
    assert_eq!(s, 413);
    assert!(error_of(&b).contains("declares 4294967295 decompressed bytes"), "{b}");

    // Unknown content type and encoding.
    let (s, b, _) = post_write(&sb.client, &base, snappy(&raw), "application/json", None).await.unwrap();
    assert_eq!(s, 415);
    assert!(error_of(&b).contains("unsupported content type"), "{b}");
    let r = sb
        .client
        .post(sb.url("/api/v1/write"))
        .header("Content-Encoding", "gzip")
        .header("Content-Type", "application/x-protobuf")
        .body(snappy(&raw))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    // Invalid tenant id.
    let (s, b, _) = post_write(&sb.client, &base, snappy(&raw), "application/x-protobuf", Some("a/b")).await.unwrap();
    assert_eq!(s, 400);
    assert!(error_of(&b).contains("invalid tenant id"), "{b}");

    assert!(
        remote_read(&sb.client, &base, all_series(), 0, i64::MAX, None).await.unwrap().is_empty(),
        "nothing stored from bad requests"
    );
    assert_still_serving(&sb).await;
}

#[tokio::test]
async fn oversized_body_is_413() {
    let cfg = ServerConfig { max_request_body_bytes: 1024, ..Default::default() };
    let sb = Sandbox::start_with(cfg, TsdbOptions::default(), None).await;
    let big = pb::WriteRequest {
        timeseries: (0..200)
            .map(|i| series(&[("__name__", "m"), ("i", &format!("{i:05}-{}", "x".repeat(40)))], &[(1, 1.0)]))
            .collect(),
        metadata: vec![],
    };
    let (s, b) = write_v1(&sb.client, &sb.url(""), &big, None).await.unwrap();
    assert_eq!(s, 413);
    assert!(error_of(&b).contains("larger than the 1024-byte limit"), "{b}");
    assert_still_serving(&sb).await;
}

#[tokio::test]
async fn invalid_series_are_rejected_and_the_rest_is_stored() {
    let sb = Sandbox::start().await;
    let req = pb::WriteRequest {
        timeseries: vec![
            series(&[("__name__", "good"), ("a", "1")], &[(1000, 1.0), (2000, 2.0)]),
            series(&[("__name__", "0bad")], &[(1000, 1.0)]),
            series(&[("__name__", "m"), ("bad-label", "x")], &[(1000, 1.0)]),
            series(&[("__name__", "m"), ("dup", "x"), ("dup", "y")], &[(1000, 1.0)]),
            series(&[("job", "no-name")], &[(1000, 1.0)]),
            series(&[("__name__", "good"), ("a", "2"), ("empty", "")], &[(1000, 3.0)]),
        ],
        metadata: vec![],
    };
    let (s, b) = write_v1(&sb.client, &sb.url(""), &req, None).await.unwrap();
    assert_eq!(s, 400);
    let e = error_of(&b);
    assert!(e.starts_with("4 of 7 samples rejected"), "{e}");
    for reason in ["invalid_metric_name", "invalid_label_name", "duplicate_label_name", "missing_metric_name"] {
        assert!(e.contains(reason), "{reason} missing from {e}");
    }
    let got = remote_read(&sb.client, &sb.url(""), all_series(), 0, 10_000, None).await.unwrap();
    assert_eq!(got.len(), 2, "both valid series stored");
    // The empty-valued label was dropped, not stored.
    assert!(got.iter().all(|s| s.labels.iter().all(|l| l.name != "empty")));
    assert_still_serving(&sb).await;
}

#[tokio::test]
async fn out_of_order_and_duplicate_samples() {
    let sb = Sandbox::start().await;
    let base = sb.url("");
    let first = pb::WriteRequest {
        timeseries: vec![series(&[("__name__", "c")], &[(1000, 1.0), (2000, 2.0)])],
        metadata: vec![],
    };
    assert_eq!(write_v1(&sb.client, &base, &first, None).await.unwrap().0, 204);
    // An exact re-send is not an error (Prometheus retries resend batches).
    assert_eq!(write_v1(&sb.client, &base, &first, None).await.unwrap().0, 204);

    let req = pb::WriteRequest {
        timeseries: vec![
            series(&[("__name__", "c")], &[(1500, 9.0), (2000, 7.0), (3000, 3.0)]),
            series(&[("__name__", "other")], &[(10, 1.0)]),
        ],
        metadata: vec![],
    };
    let (s, b) = write_v1(&sb.client, &base, &req, None).await.unwrap();
    assert_eq!(s, 400, "{b}");
    let e = error_of(&b);
    assert!(e.starts_with("2 of 4 samples rejected"), "{e}");
    assert!(e.contains("out_of_order: 1 (first: series c timestamp 1500)"), "{e}");
    assert!(e.contains("duplicate_timestamp: 1 (first: series c timestamp 2000)"), "{e}");
    let got = remote_read(&sb.client, &base, all_series(), 0, 10_000, None).await.unwrap();
    let c = got.iter().find(|s| s.labels[0].value == "c").unwrap();
    assert_eq!(
        c.samples.iter().map(|s| (s.timestamp, s.value)).collect::<Vec<_>>(),
        vec![(1000, 1.0), (2000, 2.0), (3000, 3.0)]
    );
    assert!(got.iter().any(|s| s.labels[0].value == "other"));

    let text = sb.client.get(sb.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("strata_remote_write_samples_rejected_total{reason=\"out_of_order\"} 1"), "{text}");
}

#[tokio::test]
async fn rate_limit_is_429_per_tenant() {
    let cfg =
        ServerConfig { ingestion_rate_samples_per_second: 1.0, ingestion_burst_samples: 3.0, ..Default::default() };
    let sb = Sandbox::start_with(cfg, TsdbOptions::default(), None).await;
    let base = sb.url("");
    let req = |t0: i64| pb::WriteRequest {
        timeseries: vec![series(&[("__name__", "r")], &[(t0, 1.0), (t0 + 1, 1.0)])],
        metadata: vec![],
    };
    assert_eq!(write_v1(&sb.client, &base, &req(0), Some("a")).await.unwrap().0, 204);
    let (s, b) = write_v1(&sb.client, &base, &req(10), Some("a")).await.unwrap();
    assert_eq!(s, 429);
    assert!(error_of(&b).contains("ingestion rate limit"), "{b}");
    // Another tenant has its own budget.
    assert_eq!(write_v1(&sb.client, &base, &req(0), Some("b")).await.unwrap().0, 204);
}
