//! HA pairs end to end with two real Prometheus 2.42 servers, which differ only in
//! `external_labels: {cluster: c1, __replica__: a|b}`, scraping the same target and
//! remote-writing to Strata: with the ingest-time tracker (one stored copy, failover
//! when the elected one dies), with query-time dedup (one answer, `dedup=false`
//! shows both), and after compaction with offline dedup (one copy in the bucket,
//! the same answers).

use std::time::{Duration, Instant};

use serde_json::Value;
use strata_tests::*;

const SCRAPE_S: u64 = 1;

fn config(replica: &str, target: &str, strata: &str) -> String {
    format!(
        "global:\n  scrape_interval: {SCRAPE_S}s\n  evaluation_interval: 1s\n  external_labels:\n    cluster: c1\n    __replica__: {replica}\n\
         scrape_configs:\n  - job_name: strata\n    static_configs:\n      - targets: ['{target}']\n\
         remote_write:\n  - url: {strata}/api/v1/write\n    queue_config:\n      batch_send_deadline: 500ms\n      min_backoff: 100ms\n      max_backoff: 1s\n"
    )
}

struct Pair {
    dirs: Vec<tempfile::TempDir>,
    ports: Vec<u16>,
}

impl Pair {
    fn new(target: &str, strata: &str) -> Pair {
        let mut dirs = Vec::new();
        let mut ports = Vec::new();
        for r in ["a", "b"] {
            let d = tempfile::tempdir().unwrap();
            std::fs::write(d.path().join("prometheus.yml"), config(r, target, strata)).unwrap();
            dirs.push(d);
            ports.push(free_port());
        }
        Pair { dirs, ports }
    }

    async fn start(&self, i: usize) -> PrometheusProcess {
        PrometheusProcess::start(self.dirs[i].path(), self.ports[i], &[]).await.unwrap()
    }
}

async fn get(sb: &Sandbox, path: &str, q: &[(&str, String)]) -> Value {
    sb.get_json(path, q).await
}

fn secs(ms: i64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

/// The timestamps (ms) of the stored `up` samples of job strata, per series.
async fn up_series(sb: &Sandbox, extra: &[(&str, String)]) -> Vec<(Value, Vec<i64>)> {
    let now = strata_model::now_ms();
    let mut q = vec![("query", "up{job=\"strata\"}[10m]".to_string()), ("time", secs(now))];
    q.extend(extra.iter().cloned());
    let v = get(sb, "/api/v1/query", &q).await;
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let ts = s["values"].as_array().unwrap().iter().map(|p| (p[0].as_f64().unwrap() * 1000.0).round() as i64);
            (s["metric"].clone(), ts.collect())
        })
        .collect()
}

fn max_gap(ts: &[i64]) -> i64 {
    ts.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0)
}

async fn wait_for<F: std::future::Future<Output = bool>>(what: &str, timeout: Duration, mut f: impl FnMut() -> F) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hapair_with_the_tracker_stores_one_series_and_fails_over() {
    if !PrometheusProcess::installed() {
        missing_tool("prometheus", "not installed (apt-get install prometheus; .ci/run does it)");
        return;
    }
    let failover = Duration::from_secs(3);
    let ha = strata_server::HaTrackerConfig { enabled: true, failover_timeout: failover, ..Default::default() };
    let sb = Sandbox::start_with_ha(Default::default(), Default::default(), ha, Default::default(), None, None).await;
    let pair = Pair::new(&sb.addr.to_string(), &sb.url(""));
    let mut proms = vec![Some(pair.start(0).await), Some(pair.start(1).await)];
    wait_for("samples from the pair", Duration::from_secs(30), || async {
        up_series(&sb, &[]).await.first().is_some_and(|(_, ts)| ts.len() >= 5)
    })
    .await;
    let series = up_series(&sb, &[]).await;
    assert_eq!(series.len(), 1, "one stored series per target: {series:?}");
    assert!(series[0].0.get("__replica__").is_none(), "{series:?}");
    assert_eq!(series[0].0["cluster"], "c1");

    let status = get(&sb, "/api/v1/status/ha", &[]).await;
    let elected = status["data"][0]["replica"].as_str().unwrap().to_string();
    let i = if elected == "a" { 0 } else { 1 };
    let killed_at = strata_model::now_ms();
    drop(proms[i].take());
    wait_for("the failover", failover + Duration::from_secs(15), || async {
        get(&sb, "/api/v1/status/ha", &[]).await["data"][0]["replica"] != elected.as_str()
    })
    .await;
    let took = strata_model::now_ms() - killed_at;
    // Let the new replica write a few scrapes, then look at the gap.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let series = up_series(&sb, &[]).await;
    assert_eq!(series.len(), 1, "still one series across the failover: {series:?}");
    let gap = max_gap(&series[0].1);
    println!(
        "ha tracker: failover {took} ms after the kill, largest gap in up {gap} ms (failover_timeout {failover:?})"
    );
    let bound = failover.as_millis() as i64 + 1000 * SCRAPE_S as i64 + 1500;
    assert!(gap <= bound, "gap {gap} ms > {bound} ms");
    // rate() over a counter of the target has no hole wider than that either.
    let now = strata_model::now_ms();
    let v = get(
        &sb,
        "/api/v1/query_range",
        &[
            ("query", "rate(strata_remote_write_samples_received_total{job=\"strata\"}[4s])".into()),
            ("start", secs(killed_at - 5_000)),
            ("end", secs(now)),
            ("step", "1".into()),
        ],
    )
    .await;
    let ts: Vec<i64> = v["data"]["result"][0]["values"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|p| (p[0].as_f64().unwrap() * 1000.0) as i64)
        .collect();
    let rate_gap = max_gap(&ts);
    println!("ha tracker: largest gap in rate() {rate_gap} ms");
    assert!(rate_gap <= bound, "rate gap {rate_gap} ms");
    drop(proms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hapair_deduplicated_at_query_time_and_then_in_compaction() {
    if !PrometheusProcess::installed() {
        missing_tool("prometheus", "not installed (apt-get install prometheus; .ci/run does it)");
        return;
    }
    let Some(bin) = strata_bin() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("bucket");
    let objstore = strata_block::ObjStoreConfig::filesystem(&bucket);
    let querier = strata_querier::QuerierConfig { replica_labels: vec!["__replica__".into()], ..Default::default() };
    let sb = Sandbox::start_with_ha(
        Default::default(),
        querier,
        Default::default(),
        Default::default(),
        Some(&tmp.path().join("data")),
        Some(objstore),
    )
    .await;
    let pair = Pair::new(&sb.addr.to_string(), &sb.url(""));
    let a = pair.start(0).await;
    let b = pair.start(1).await;
    wait_for("samples from both replicas", Duration::from_secs(30), || async {
        up_series(&sb, &[("dedup", "false".into())]).await.iter().filter(|(_, ts)| ts.len() >= 4).count() == 2
    })
    .await;
    // Replica a stops for a while: the deduplicated series has no hole.
    drop(a);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let a = pair.start(0).await;
    // Its remote write picks up once its WAL replay is done: wait for samples
    // after the hole.
    wait_for("replica a writing again", Duration::from_secs(60), || async {
        up_series(&sb, &[("dedup", "false".into())])
            .await
            .iter()
            .any(|(m, ts)| m["__replica__"] == "a" && max_gap(ts) >= 5_000 && ts.len() >= 8)
    })
    .await;
    drop((a, b));
    tokio::time::sleep(Duration::from_secs(1)).await;

    let raw = up_series(&sb, &[("dedup", "false".into())]).await;
    assert_eq!(raw.len(), 2, "dedup=false shows both replicas");
    for (m, ts) in &raw {
        println!("replica {}: {} samples, largest gap {} ms", m["__replica__"], ts.len(), max_gap(ts));
    }
    let hole = raw.iter().map(|(_, ts)| max_gap(ts)).max().unwrap();
    assert!(hole >= 5_000, "replica a's stop should leave a hole in it: {hole} ms");
    let deduped = up_series(&sb, &[]).await;
    assert_eq!(deduped.len(), 1);
    assert!(deduped[0].0.get("__replica__").is_none());
    let gap = max_gap(&deduped[0].1);
    println!("query-time dedup: replica hole {hole} ms, largest gap after dedup {gap} ms");
    assert!(gap <= 2_000 * SCRAPE_S as i64, "gap {gap} ms");
    let start = deduped[0].1[0];
    let end = *deduped[0].1.last().unwrap();
    let range = |q: &str, extra: Option<(&'static str, &'static str)>| {
        let mut v = vec![
            ("query", q.to_string()),
            ("start", secs(start + 2_000)),
            ("end", secs(end)),
            ("step", "1".to_string()),
        ];
        if let Some((k, val)) = extra {
            v.push((k, val.to_string()));
        }
        v
    };
    let queries = ["up{job=\"strata\"}", "sum by (cluster) (up)", "count(up)"];
    let mut before = Vec::new();
    for q in queries {
        before.push(get(&sb, "/api/v1/query_range", &range(q, None)).await["data"].clone());
    }

    // Blocks, then a compaction with offline dedup by the real binary.
    let r = sb.client.post(sb.url("/api/v1/admin/flush")).send().await.unwrap();
    assert!(r.status().is_success(), "flush: {}", r.text().await.unwrap());
    let cfg = tmp.path().join("compact.yml");
    std::fs::write(
        &cfg,
        format!(
            "objstore:\n  type: FILESYSTEM\n  config: {{directory: {}}}\ncompactor:\n  deletion_delay: 0s\n  deduplication:\n    replica_labels: [__replica__]\n",
            bucket.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(&bin)
        .args(["compact", "--once", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "compact: {}", String::from_utf8_lossy(&out.stderr));
    sb.stop().await;

    // A fresh instance on the bucket alone, without query-time dedup: one series
    // per target, and the same answers as query-time dedup gave before.
    let fresh =
        Sandbox::start_with_bucket(&tmp.path().join("fresh"), strata_block::ObjStoreConfig::filesystem(&bucket)).await;
    let stored = up_series(&fresh, &[("dedup", "false".into())]).await;
    assert_eq!(stored.len(), 1, "the bucket keeps one series per target: {stored:?}");
    assert!(stored[0].0.get("__replica__").is_none());
    for (q, want) in queries.iter().zip(&before) {
        let got = get(&fresh, "/api/v1/query_range", &range(q, None)).await;
        assert_eq!(&got["data"], want, "{q}: offline dedup answers differently from query-time dedup");
    }
}
