//! A real Prometheus scrapes targets and remote-writes to Strata; everything it
//! stored must come back from Strata's remote read and series API exactly as that
//! Prometheus returns it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_proto::prometheus as pb;
use strata_tests::{PrometheusProcess, Sandbox, all_series, free_port, missing_tool, remote_read};

/// A config scraping `scrape` (job per target) and remote-writing to Strata. With
/// `scrape` given but `keep_targets` false, the jobs stay and lose their targets:
/// that stops the scrape loops the way that writes staleness markers.
fn config(scrape: &[String], keep_targets: bool, strata: &str) -> String {
    let mut c = String::from("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n");
    for (i, t) in scrape.iter().enumerate() {
        let targets = if keep_targets { format!("['{t}']") } else { "[]".to_string() };
        c.push_str(&format!("  - job_name: job{i}\n    static_configs:\n      - targets: {targets}\n"));
    }
    c.push_str(&format!(
        "remote_write:\n  - url: {strata}/api/v1/write\n    queue_config:\n      batch_send_deadline: 500ms\n      max_samples_per_send: 500\n    metadata_config:\n      send_interval: 1s\n"
    ));
    c
}

/// Parses `name{...} value` lines of Prometheus's /metrics for one metric name.
fn metric_values(text: &str, name: &str) -> Vec<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect()
}

type Bits = BTreeMap<String, Vec<(i64, u64)>>;

fn by_series(ts: Vec<pb::TimeSeries>) -> Bits {
    ts.into_iter()
        .map(|s| {
            let key = s.labels.iter().map(|l| format!("{}={:?}", l.name, l.value)).collect::<Vec<_>>().join(",");
            (key, s.samples.iter().map(|x| (x.timestamp, x.value.to_bits())).collect())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_remote_write_roundtrip_matches_prometheus() {
    if !PrometheusProcess::installed() {
        missing_tool("prometheus", "not installed (apt-get install prometheus; .ci/run does it)");
        return;
    }
    let sb = Sandbox::start().await;
    let client = reqwest::Client::new();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let targets = vec![format!("127.0.0.1:{port}"), sb.addr.to_string()];
    std::fs::write(dir.path().join("prometheus.yml"), config(&targets, true, &sb.url(""))).unwrap();
    let prom = PrometheusProcess::start(dir.path(), port, &["--web.enable-lifecycle"]).await.unwrap();
    let purl = prom.base();

    // Let it scrape both targets for a while.
    tokio::time::sleep(Duration::from_secs(8)).await;

    // Stop scraping (targets going away write staleness markers), keep remote write.
    std::fs::write(dir.path().join("prometheus.yml"), config(&targets, false, &sb.url(""))).unwrap();
    let r = client.post(format!("{purl}/-/reload")).send().await.unwrap();
    assert!(r.status().is_success(), "reload failed");
    // Stopped scrape loops write their staleness markers up to two intervals later.
    tokio::time::sleep(Duration::from_secs(4)).await;

    // Wait until remote write has sent everything Prometheus appended.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = client.get(format!("{purl}/metrics")).send().await.unwrap().text().await.unwrap();
        let highest = metric_values(&text, "prometheus_remote_storage_highest_timestamp_in_seconds");
        let sent = metric_values(&text, "prometheus_remote_storage_queue_highest_sent_timestamp_seconds");
        let pending = metric_values(&text, "prometheus_remote_storage_samples_pending");
        let failed = metric_values(&text, "prometheus_remote_storage_samples_failed_total");
        assert!(failed.iter().all(|f| *f == 0.0), "Prometheus saw failed sends: {failed:?}");
        if let (Some(h), Some(s)) = (highest.first(), sent.first())
            && s >= h
            && pending.iter().all(|p| *p == 0.0)
        {
            break;
        }
        assert!(Instant::now() < deadline, "remote write did not catch up");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let ours = by_series(remote_read(&client, &sb.url(""), all_series(), 0, i64::MAX, None).await.unwrap());
    let theirs = by_series(remote_read(&client, &purl, all_series(), 0, i64::MAX, None).await.unwrap());
    assert!(theirs.len() > 50, "Prometheus stored only {} series", theirs.len());
    let missing: Vec<&String> = theirs.keys().filter(|k| !ours.contains_key(*k)).collect();
    assert!(missing.is_empty(), "series missing in Strata: {missing:?}");
    let extra: Vec<&String> = ours.keys().filter(|k| !theirs.contains_key(*k)).collect();
    assert!(extra.is_empty(), "series only in Strata: {extra:?}");
    let mut samples = 0;
    let mut stale = 0;
    for (k, v) in &theirs {
        assert_eq!(&ours[k], v, "samples differ for {k}");
        samples += v.len();
        stale += v.iter().filter(|(_, b)| *b == 0x7ff0000000000002).count();
    }
    assert!(stale > 0, "expected staleness markers after the targets went away");

    // The series API agrees too.
    let q = "/api/v1/series?match[]=%7B__name__%3D~%22.%2B%22%7D";
    let a: Value = client.get(sb.url(q)).send().await.unwrap().json().await.unwrap();
    let b: Value = client.get(format!("{purl}{q}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(a["data"], b["data"], "series API differs");

    // Metadata sent by Prometheus is served.
    let m: Value =
        client.get(sb.url("/api/v1/metadata?metric=prometheus_build_info")).send().await.unwrap().json().await.unwrap();
    assert_eq!(m["data"]["prometheus_build_info"][0]["type"], "gauge", "{m}");
    println!("prometheus round trip: {} series, {samples} samples ({stale} staleness markers) identical", theirs.len());
}
