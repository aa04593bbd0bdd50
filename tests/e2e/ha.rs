//! HA replica dedup at query time (Thanos Query's semantics): series of an HA pair
//! that differ only in the replica label answer as one series, on every read API;
//! `dedup=false` shows both; `replicaLabels[]` names the labels per request.

use serde_json::Value;
use strata_proto::prometheus as pb;
use strata_tests::*;

const STEP: i64 = 15_000;

fn base_t() -> i64 {
    (strata_model::now_ms() - 3 * 3_600_000) / 60_000 * 60_000
}

/// Two replicas scraping one counter and one gauge for an hour, out of phase by
/// 5 s; replica `a` is down for ten minutes in the middle.
fn pair(t0: i64) -> pb::WriteRequest {
    let mut timeseries = Vec::new();
    for (replica, phase) in [("a", 0), ("b", 5_000)] {
        let times: Vec<i64> = (0..240)
            .map(|k| t0 + k * STEP + phase)
            .filter(|&t| replica == "b" || !(t0 + 20 * 60_000..t0 + 30 * 60_000).contains(&t))
            .collect();
        // b reads the counter a little lower (its scrape lands earlier in the
        // counter's life): a naive switch would look like a reset.
        let skew = if replica == "b" { -3.0 } else { 0.0 };
        let counter: Vec<(i64, f64)> = times.iter().map(|&t| (t, ((t - t0) / 1000) as f64 + skew)).collect();
        let gauge: Vec<(i64, f64)> = times.iter().map(|&t| (t, 1.0)).collect();
        let l = |name: &'static str| {
            [("__name__", name), ("cluster", "c1"), ("instance", "host:9100"), ("__replica__", replica)]
        };
        timeseries.push(series(&l("requests_total"), &counter));
        timeseries.push(series(&l("up"), &gauge));
    }
    pb::WriteRequest { timeseries, metadata: vec![] }
}

async fn get(sb: &Sandbox, path: &str, q: &[(&str, String)]) -> Value {
    sb.get_json(path, q).await
}

fn secs(ms: i64) -> String {
    format!("{}", ms as f64 / 1000.0)
}

fn range_q(query: &str, t0: i64, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut q = vec![
        ("query", query.to_string()),
        ("start", secs(t0 + 60_000)),
        ("end", secs(t0 + 59 * 60_000)),
        ("step", "15".to_string()),
    ];
    q.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    q
}

async fn start(replica_labels: &[&str]) -> Sandbox {
    let querier = strata_querier::QuerierConfig {
        replica_labels: replica_labels.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    Sandbox::start_with_querier(Default::default(), querier, Default::default(), None, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_answer_as_one_series_on_every_read_api() {
    let sb = start(&["__replica__"]).await;
    let t0 = base_t();
    let (status, body) = write_v1(&sb.client, &sb.url(""), &pair(t0), None).await.unwrap();
    assert_eq!(status, 204, "{body}");

    // One series per target, without the replica label; dedup=false shows both.
    let v = get(&sb, "/api/v1/query_range", &range_q("up", t0, &[])).await;
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{v}");
    assert_eq!(result[0]["metric"], serde_json::json!({"__name__": "up", "cluster": "c1", "instance": "host:9100"}));
    // Replica a's ten-minute hole leaves no gap: every step has a value.
    assert_eq!(result[0]["values"].as_array().unwrap().len(), 233, "{v}");
    let v = get(&sb, "/api/v1/query_range", &range_q("up", t0, &[("dedup", "false")])).await;
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 2, "{v}");

    // A switch of replicas never makes the counter go backwards: the rate stays
    // at 1/s throughout, with no spike where b takes over from a.
    let v = get(&sb, "/api/v1/query_range", &range_q("rate(requests_total[1m])", t0, &[])).await;
    let values = v["data"]["result"][0]["values"].as_array().unwrap();
    assert!(values.len() > 200, "{v}");
    for p in values {
        let r: f64 = p[1].as_str().unwrap().parse().unwrap();
        assert!((0.9..1.2).contains(&r), "rate {r} at {}: {v}", p[0]);
    }
    // Without dedup, summing both replicas doubles it: the reason dedup exists.
    let v = get(&sb, "/api/v1/query", &[("query", "sum(up)".into()), ("time", secs(t0 + 10 * 60_000))]).await;
    assert_eq!(v["data"]["result"][0]["value"][1], "1", "{v}");
    let v = get(
        &sb,
        "/api/v1/query",
        &[("query", "sum(up)".into()), ("time", secs(t0 + 10 * 60_000)), ("dedup", "false".into())],
    )
    .await;
    assert_eq!(v["data"]["result"][0]["value"][1], "2", "{v}");

    // Series, labels and label values: no replica label anywhere.
    let v = get(&sb, "/api/v1/series", &[("match[]", "up".into())]).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1, "{v}");
    let v = get(&sb, "/api/v1/labels", &[]).await;
    assert!(!v["data"].as_array().unwrap().iter().any(|l| l == "__replica__"), "{v}");
    let v = get(&sb, "/api/v1/label/__replica__/values", &[]).await;
    assert_eq!(v["data"], serde_json::json!([]), "{v}");
    let v = get(&sb, "/api/v1/label/__replica__/values", &[("dedup", "false".into())]).await;
    assert_eq!(v["data"], serde_json::json!(["a", "b"]), "{v}");

    // Remote read: deduplicated too, dedup=false in the URL gives both.
    let up = vec![matcher(pb::label_matcher::Type::Eq, "__name__", "up")];
    let got = remote_read(&sb.client, &sb.url(""), up.clone(), 0, i64::MAX / 2, None).await.unwrap();
    assert_eq!(got.len(), 1);
    assert!(got[0].labels.iter().all(|l| l.name != "__replica__"));
    let got =
        remote_read_url(&sb.client, &sb.url("/api/v1/read?dedup=false"), up, 0, i64::MAX / 2, None).await.unwrap();
    assert_eq!(got.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_labels_per_request_and_bad_values() {
    let sb = start(&[]).await;
    let t0 = base_t();
    assert_eq!(write_v1(&sb.client, &sb.url(""), &pair(t0), None).await.unwrap().0, 204);
    // Nothing configured: no dedup unless the request names the labels.
    let v = get(&sb, "/api/v1/query_range", &range_q("up", t0, &[])).await;
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 2, "{v}");
    let v = get(&sb, "/api/v1/query_range", &range_q("up", t0, &[("replicaLabels[]", "__replica__")])).await;
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 1, "{v}");
    // Bad values are a 400 with a Prometheus error.
    for (k, val) in [("dedup", "maybe"), ("replicaLabels[]", "not a label")] {
        let url =
            reqwest::Url::parse_with_params(&sb.url("/api/v1/query_range"), range_q("up", t0, &[(k, val)])).unwrap();
        let r = sb.client.get(url).send().await.unwrap();
        assert_eq!(r.status(), 400);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["errorType"], "bad_data", "{body}");
    }
}

/// One request of replica `replica` of cluster `c1`: `up` and a counter at `t`.
fn from_replica(replica: &str, t: i64) -> pb::WriteRequest {
    let l = |name: &'static str| {
        [("__name__", name), ("cluster", "c1"), ("instance", "host:9100"), ("__replica__", replica)]
    };
    pb::WriteRequest {
        timeseries: vec![series(&l("up"), &[(t, 1.0)]), series(&l("requests_total"), &[(t, (t / 1000) as f64)])],
        metadata: vec![],
    }
}

async fn start_tracker(dir: &std::path::Path, failover: std::time::Duration) -> Sandbox {
    let ha = strata_server::HaTrackerConfig { enabled: true, failover_timeout: failover, ..Default::default() };
    Sandbox::start_with_ha(Default::default(), Default::default(), ha, Default::default(), Some(dir), None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ha_tracker_stores_one_replica_and_fails_over_when_it_goes_silent() {
    let tmp = tempfile::tempdir().unwrap();
    let failover = std::time::Duration::from_secs(2);
    let sb = start_tracker(tmp.path(), failover).await;
    let t = strata_model::now_ms();
    let (status, body) = write_v1(&sb.client, &sb.url(""), &from_replica("a", t), None).await.unwrap();
    assert_eq!(status, 204, "{body}");
    // The other replica: 202, a short body, nothing stored.
    let (status, body) = write_v1(&sb.client, &sb.url(""), &from_replica("b", t + 5_000), None).await.unwrap();
    assert_eq!(status, 202, "{body}");
    assert!(body.contains("deduplicated") && body.contains("\"a\""), "{body}");
    // Requests without the labels pass through untouched.
    let plain = pb::WriteRequest { timeseries: vec![series(&[("__name__", "plain")], &[(t, 1.0)])], metadata: vec![] };
    assert_eq!(write_v1(&sb.client, &sb.url(""), &plain, None).await.unwrap().0, 204);

    let all = remote_read(&sb.client, &sb.url(""), all_series(), 0, i64::MAX / 2, None).await.unwrap();
    assert_eq!(all.len(), 3, "{all:?}");
    for s in &all {
        assert!(s.labels.iter().all(|l| l.name != "__replica__"), "replica label stored: {s:?}");
        assert_eq!(s.samples.len(), 1, "{s:?}");
        assert_eq!(s.samples[0].timestamp, t);
    }
    let up = all.iter().find(|s| s.labels.iter().any(|l| l.value == "up")).unwrap();
    assert!(up.labels.iter().any(|l| l.name == "cluster" && l.value == "c1"), "cluster label kept");

    let v = get(&sb, "/api/v1/status/ha", &[]).await;
    assert_eq!(v["data"][0]["cluster"], "c1", "{v}");
    assert_eq!(v["data"][0]["replica"], "a", "{v}");
    let metrics = sb.client.get(sb.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"strata_ha_tracker_deduplicated_samples_total{tenant="anonymous",cluster="c1"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"strata_ha_tracker_elected_replica{tenant="anonymous",cluster="c1",replica="a"} 1"#),
        "{metrics}"
    );

    // A restart keeps the election: b is still refused.
    sb.stop().await;
    let sb = start_tracker(tmp.path(), failover).await;
    let (status, _) = write_v1(&sb.client, &sb.url(""), &from_replica("b", t + 10_000), None).await.unwrap();
    assert_eq!(status, 202, "a restart must not fail over");

    // a goes silent for longer than the failover timeout: b takes over.
    tokio::time::sleep(failover + std::time::Duration::from_millis(500)).await;
    let (status, body) = write_v1(&sb.client, &sb.url(""), &from_replica("b", t + 15_000), None).await.unwrap();
    assert_eq!(status, 204, "{body}");
    let (status, _) = write_v1(&sb.client, &sb.url(""), &from_replica("a", t + 20_000), None).await.unwrap();
    assert_eq!(status, 202);
    let v = get(&sb, "/api/v1/status/ha", &[]).await;
    assert_eq!(v["data"][0]["replica"], "b", "{v}");
    assert_eq!(v["data"][0]["failovers"], 1, "{v}");
    let up = vec![matcher(pb::label_matcher::Type::Eq, "__name__", "up")];
    let got = remote_read(&sb.client, &sb.url(""), up, 0, i64::MAX / 2, None).await.unwrap();
    assert_eq!(got.len(), 1, "one series across the failover: {got:?}");
    assert_eq!(got[0].samples.iter().map(|s| s.timestamp).collect::<Vec<_>>(), [t, t + 15_000]);
}
