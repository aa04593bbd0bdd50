//! The global view with real servers: cluster A is a Strata (`external_labels:
//! {cluster: a}` in its own config), cluster B a real Prometheus 2.42 holding its
//! own data, cluster C another Strata (its label given by the global node's peer
//! config), and the global node a `strata query` over the three. Its answers must
//! equal those of one reference Prometheus holding the union of the three clusters'
//! data with `cluster` as a real label.
//!
//! ```text
//!  differential data ─┬─ series ⅓ ─► Strata A (serve, external_labels cluster=a) ──┐
//!   (split by series) ├─ series ⅓ ─► Prometheus B (remote write receiver)       ──┼─ remote read ─► strata query (global)
//!                     ├─ series ⅓ ─► Strata C (serve)                           ──┘        │
//!                     └─ all, +cluster label ─► reference Prometheus ─────── compare ◄─────┘
//! ```
//! Then B is stopped: answers carry a warning naming B and hold A's and C's data;
//! `partial_response=false` gives 503; B restarted: full answers again, with no
//! restart of the global node.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use strata_proto::prometheus as pb;
use strata_tests::{PrometheusProcess, StrataProcess, free_port, missing_tool, strata_bin, write_v1};

use crate::differential::{
    Answer, Eval, QUERY_MS, ask, compare, corpus, enc, excluded, generate, instantiate, secs, start_prometheus,
    write_requests,
};

const CLUSTERS: [&str; 3] = ["a", "b", "c"];
const WORKERS: usize = 4;

/// Which cluster holds a series: a stable function of its labels.
fn cluster_of(ts: &pb::TimeSeries) -> usize {
    let sum: u64 = ts.labels.iter().flat_map(|l| l.name.bytes().chain(l.value.bytes())).map(u64::from).sum();
    (sum % 3) as usize
}

fn with_cluster(ts: &pb::TimeSeries, cluster: &str) -> pb::TimeSeries {
    let mut ts = ts.clone();
    ts.labels.push(pb::Label { name: "cluster".into(), value: cluster.into() });
    ts.labels.sort_by(|a, b| a.name.cmp(&b.name));
    ts
}

/// Differences that only the split over clusters brings out, with the reason.
fn split_difference(template: &str) -> Option<&'static str> {
    template.starts_with("histogram_quantile(1,").then_some(
        "q=1 picks the lowest bucket whose count reaches the +Inf count, so it turns on exact ties: Strata sums \
         with compensated (Kahan) addition as Prometheus 3 does, 2.42 adds plainly, and with the series in \
         another order (the cluster label sorts among them) the two sums differ in the last bit",
    )
}

/// Queries about the clusters themselves, on top of the differential corpus.
fn cluster_queries() -> Vec<String> {
    [
        "count by (cluster) (up)",
        "sum by (cluster) (rate(http_requests_total[5m]))",
        "sum by (cluster, job) (rate(http_requests_total[5m]))",
        r#"up{cluster="b"}"#,
        r#"up{cluster!="b"}"#,
        r#"up{cluster=~"a|c"}"#,
        r#"rate(http_requests_total{cluster="c"}[5m])"#,
        r#"{cluster="a", __name__=~"temperature_.*"}"#,
        "max by (cluster) (temperature_celsius)",
        "topk(3, sum by (cluster, instance) (rate(http_requests_total[5m])))",
        "count(count by (cluster) (memory_bytes))",
        "sum(up) by (cluster) / on (cluster) count(up) by (cluster)",
        r#"sum by (cluster) (rate(http_requests_total[5m])) / on (cluster) group_left sum by (cluster) (up)"#,
        "histogram_quantile(0.9, sum by (cluster, le) (rate(request_duration_seconds_bucket[5m])))",
        "max_over_time(sum by (cluster) (queue_depth)[10m:1m])",
        r#"label_replace(up, "where", "$1", "cluster", "(.*)")"#,
        r#"absent(up{cluster="nowhere"})"#,
        r#"count by (cluster) ({__name__=~".+"})"#,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = client.get(url).send().await.expect("request");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// The `data` of a label API answer as a sorted list of strings (series as text).
fn sorted_data(v: &Value) -> Vec<String> {
    let mut out: Vec<String> =
        v["data"].as_array().map(|a| a.iter().map(|x| x.to_string()).collect()).unwrap_or_default();
    out.sort();
    out
}

/// `count by (cluster) (up)` at `t` on `base` as (cluster, value) pairs, and the warnings.
async fn up_by_cluster(
    client: &reqwest::Client,
    base: &str,
    t: i64,
    extra: &str,
) -> (u16, Vec<(String, String)>, Vec<String>) {
    let url = format!("{base}/api/v1/query?query={}&time={}{extra}", enc("count by (cluster) (up)"), secs(t));
    let (status, v) = get_json(client, &url).await;
    let mut rows: Vec<(String, String)> = v["data"]["result"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| (r["metric"]["cluster"].as_str().unwrap_or("").to_string(), r["value"][1].to_string()))
                .collect()
        })
        .unwrap_or_default();
    rows.sort();
    let warnings = v["warnings"]
        .as_array()
        .map(|a| a.iter().map(|w| w.as_str().unwrap_or("").to_string()).collect())
        .unwrap_or_default();
    (status, rows, warnings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_query_node_answers_like_one_prometheus_holding_every_cluster() {
    if !PrometheusProcess::installed() {
        missing_tool("prometheus", "`prometheus --version` failed (apt-get install prometheus; .ci/run does it)");
        return;
    }
    let Some(bin) = strata_bin() else { return };
    let started = Instant::now();
    let client = reqwest::Client::new();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let sub = |name: &str| {
        let p = dir.join(name);
        std::fs::create_dir_all(&p).expect("mkdir");
        p
    };
    let reference = start_prometheus(&sub("reference")).await;
    let b_dir = sub("b");
    let mut prom_b = Some(start_prometheus(&b_dir).await);
    let b_port = prom_b.as_ref().expect("b").port;
    let a_cfg = dir.join("a.yaml");
    std::fs::write(&a_cfg, "external_labels:\n  cluster: a\n").expect("a config");
    let a = StrataProcess::start(&bin, &sub("a-data"), &["--config", a_cfg.to_str().expect("path")]).await.expect("A");
    let c = StrataProcess::start(&bin, &sub("c-data"), &[]).await.expect("C");
    let global_cfg = dir.join("global.yaml");
    std::fs::write(
        &global_cfg,
        format!(
            "federation:\n  health_check_interval: 1s\n  peers:\n\
             \x20   - name: a\n      url: {}\n\
             \x20   - name: b\n      url: http://127.0.0.1:{b_port}\n      external_labels: {{cluster: b}}\n      timeout: 5s\n\
             \x20   - name: c\n      url: {}/api/v1/read\n      external_labels: {{cluster: c}}\n",
            a.base(),
            c.base()
        ),
    )
    .expect("global config");
    let global = StrataProcess::query(&bin, &global_cfg, free_port()).await.expect("global node");
    let gurl = global.base();
    let rurl = reference.base();

    // An hour of data ending 5 to 15 minutes ago, split by series over the clusters.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64;
    let t0 = (now - 65 * 60_000) / 600_000 * 600_000;
    let data = generate(t0);
    let cluster_bases = [a.base(), format!("http://127.0.0.1:{b_port}"), c.base()];
    let mut per_cluster = [0usize; 3];
    for req in write_requests(&data, t0) {
        let mut parts: [Vec<pb::TimeSeries>; 3] = Default::default();
        let mut all = Vec::with_capacity(req.timeseries.len());
        for ts in &req.timeseries {
            let k = cluster_of(ts);
            all.push(with_cluster(ts, CLUSTERS[k]));
            parts[k].push(ts.clone());
        }
        let (status, body) =
            write_v1(&client, &rurl, &pb::WriteRequest { timeseries: all, ..Default::default() }, None)
                .await
                .expect("write");
        assert!((200..300).contains(&status), "reference: {status} {body}");
        for (k, part) in parts.into_iter().enumerate() {
            if part.is_empty() {
                continue;
            }
            per_cluster[k] += part.len();
            let req = pb::WriteRequest { timeseries: part, ..Default::default() };
            let (status, body) = write_v1(&client, &cluster_bases[k], &req, None).await.expect("write");
            assert!((200..300).contains(&status), "cluster {}: {status} {body}", CLUSTERS[k]);
        }
    }
    assert!(per_cluster.iter().all(|&n| n > 0), "every cluster holds data: {per_cluster:?}");
    println!("wrote {} series over clusters a/b/c ({per_cluster:?} series-slices)", data.len());

    // The corpus: the differential test's, plus queries about the clusters.
    let mut templates: Vec<String> = corpus().into_iter().map(|q| q.template).collect();
    templates.extend(cluster_queries());
    assert!(templates.len() >= 100, "corpus of {} queries", templates.len());
    let m = 60_000;
    let evals = [
        Eval::Instant(t0 + 26 * m + QUERY_MS),
        Eval::Instant(t0 + 62 * m + QUERY_MS),
        Eval::Range(t0 - 3 * m + QUERY_MS, t0 + 64 * m + QUERY_MS, 60_000),
    ];
    let texts: Arc<Vec<String>> = Arc::new(templates.iter().map(|t| instantiate(t, t0)).collect());
    let jobs: Arc<Vec<(usize, Eval)>> =
        Arc::new((0..templates.len()).flat_map(|qi| evals.iter().map(move |e| (qi, *e))).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (jobs, next, texts, client, gurl, rurl) =
            (jobs.clone(), next.clone(), texts.clone(), client.clone(), gurl.clone(), rurl.clone());
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let j = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(qi, eval)) = jobs.get(j) else { break };
                let path = eval.path(&texts[qi]);
                let want: Answer = ask(&client, &rurl, &path).await;
                let got: Answer = ask(&client, &gurl, &path).await;
                let ordered = matches!(eval, Eval::Instant(_))
                    && (texts[qi].starts_with("sort(") || texts[qi].starts_with("sort_desc("));
                // PromQL's own warnings (a quantile out of range) are fine; none may say a source was left out.
                let warned = got.body["warnings"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|w| w.as_str().is_some_and(|w| w.contains("unavailable"))));
                let r = compare(&want, &got, ordered).and_then(|()| {
                    if warned { Err(format!("a source was left out: {}", got.body["warnings"])) } else { Ok(()) }
                });
                out.push((qi, eval, r));
            }
            out
        }));
    }
    let mut mismatches = Vec::new();
    let (mut checked, mut skipped) = (0, 0);
    for w in workers {
        for (qi, eval, r) in w.await.expect("worker") {
            if excluded(&templates[qi]).is_some() || split_difference(&templates[qi]).is_some() {
                skipped += 1;
                continue;
            }
            checked += 1;
            if let Err(e) = r {
                mismatches.push(format!("  {}\n    {}: {e}", texts[qi], eval.describe(t0)));
            }
        }
    }

    // Label APIs over the same range.
    let range = format!("start={}&end={}", secs(t0 - 5 * m), secs(t0 + 65 * m));
    for path in [
        format!("/api/v1/labels?{range}"),
        format!("/api/v1/label/cluster/values?{range}"),
        format!("/api/v1/label/job/values?{range}"),
        format!("/api/v1/label/instance/values?{range}&match[]={}", enc(r#"up{cluster="b"}"#)),
        format!("/api/v1/series?{range}&match[]=up"),
        format!("/api/v1/series?{range}&match[]={}", enc(r#"{cluster=~"a|c",__name__=~"http_.*"}"#)),
    ] {
        checked += 1;
        let (ws, want) = get_json(&client, &format!("{rurl}{path}")).await;
        let (gs, got) = get_json(&client, &format!("{gurl}{path}")).await;
        if ws != gs || sorted_data(&want) != sorted_data(&got) {
            mismatches.push(format!("  {path}\n    Prometheus {ws} {want}\n    global {gs} {got}"));
        }
    }
    println!(
        "{checked} evaluations compared ({} queries × {} evaluations + 6 label API calls), {skipped} excluded as 2.42-vs-3 differences, {:.1}s",
        templates.len(),
        evals.len(),
        started.elapsed().as_secs_f64()
    );
    for mm in mismatches.iter().take(12) {
        println!("{mm}");
    }
    assert!(mismatches.is_empty(), "{} answers of the global node differ from the reference", mismatches.len());

    // The peers' status.
    let (_, st) = get_json(&client, &format!("{gurl}/api/v1/status/peers")).await;
    let names: Vec<&str> = st["data"].as_array().expect("peers").iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["a", "b", "c"], "{st}");

    // Stop B: partial answers with a warning naming B, or 503 when asked for all.
    let t = t0 + 62 * m + QUERY_MS;
    let (_, full, _) = up_by_cluster(&client, &rurl, t, "").await;
    assert_eq!(full.len(), 3, "reference: {full:?}");
    drop(prom_b.take());
    let (status, rows, warnings) = up_by_cluster(&client, &gurl, t, "").await;
    assert_eq!(status, 200);
    let want: Vec<_> = full.iter().filter(|(c, _)| c != "b").cloned().collect();
    assert_eq!(rows, want, "A's and C's data while B is down");
    assert!(warnings.iter().any(|w| w.contains("peer b")), "a warning names B: {warnings:?}");
    let (status, _, _) = up_by_cluster(&client, &gurl, t, "&partial_response=false").await;
    assert_eq!(status, 503, "partial_response=false fails while B is down");
    let down = async {
        loop {
            let (_, st) = get_json(&client, &format!("{gurl}/api/v1/status/peers")).await;
            if st["data"][1]["health"] == "down" {
                return st;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let st = tokio::time::timeout(Duration::from_secs(10), down).await.expect("B shown down");
    assert!(st["data"][1]["lastError"].as_str().is_some_and(|e| !e.is_empty()), "{st}");

    // Restart B on the same port and data: full answers again, same global node.
    let _prom_b =
        PrometheusProcess::start(&b_dir, b_port, &["--web.enable-remote-write-receiver"]).await.expect("restart B");
    let (status, rows, warnings) = up_by_cluster(&client, &gurl, t, "").await;
    assert_eq!((status, &rows, warnings.len()), (200, &full, 0), "after B's restart: {warnings:?}");
    drop(global);
    drop(a);
    drop(c);
}
