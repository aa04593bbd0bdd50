//! Blocks on a real S3-compatible server (SeaweedFS `weed mini`) with the real
//! binary: an outage during ingestion loses nothing and uploads catch up; a kill
//! during an upload loses and doubles nothing; a fresh instance with an empty data
//! directory answers from the bucket alone.

use std::path::Path;
use std::time::Duration;

use strata_proto::prometheus as pb;
use strata_tests::*;

use crate::blocks::workload;

fn split(req: &pb::WriteRequest, from: usize, to: usize) -> pb::WriteRequest {
    let timeseries = req
        .timeseries
        .iter()
        .map(|s| pb::TimeSeries {
            samples: s.samples[from.min(s.samples.len())..to.min(s.samples.len())].to_vec(),
            ..s.clone()
        })
        .collect();
    pb::WriteRequest { timeseries, ..Default::default() }
}

/// The workload moved `i` × 4 hours later.
fn round(req: &pb::WriteRequest, i: usize) -> pb::WriteRequest {
    let mut req = req.clone();
    for s in &mut req.timeseries {
        for x in &mut s.samples {
            x.timestamp += i as i64 * 4 * 3_600_000;
        }
    }
    req
}

fn expected(req: &pb::WriteRequest) -> Vec<(String, i64, u64)> {
    let mut out: Vec<(String, i64, u64)> = req
        .timeseries
        .iter()
        .flat_map(|s| {
            let mut l: Vec<String> = s.labels.iter().map(|l| format!("{}={}", l.name, l.value)).collect();
            l.sort();
            let key = l.join(",");
            s.samples.iter().map(move |x| (key.clone(), x.timestamp, x.value.to_bits()))
        })
        .collect();
    out.sort();
    out
}

async fn read_all(base: &str) -> Vec<(String, i64, u64)> {
    let rr = remote_read(&reqwest::Client::new(), base, all_series(), 0, i64::MAX / 2, None).await.unwrap();
    let req = pb::WriteRequest { timeseries: rr, ..Default::default() };
    expected(&req)
}

async fn flush(base: &str) -> (u16, String) {
    let r = reqwest::Client::new().post(format!("{base}/api/v1/admin/flush")).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn setup(tmp: &Path) -> Option<(std::path::PathBuf, WeedS3, std::path::PathBuf)> {
    let bin = strata_bin()?;
    let weed = WeedS3::start(&tmp.join("weed"), None).expect("start weed mini")?;
    let objstore = tmp.join("objstore.yml");
    std::fs::write(&objstore, weed.objstore_yaml()).unwrap();
    Some((bin, weed, objstore))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_outage_during_ingestion_loses_nothing_and_a_fresh_instance_reads_the_bucket() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((bin, weed, objstore)) = setup(tmp.path()) else { return };
    let obj = objstore.to_str().unwrap();
    let data = tmp.path().join("data");
    let client = reqwest::Client::new();
    let all = workload();
    let strata = StrataProcess::start(&bin, &data, &["--objstore.config-file", obj]).await.unwrap();
    let base = strata.base();
    assert_eq!(write_v1(&client, &base, &split(&all, 0, 300), None).await.unwrap().0, 204);
    let (status, body) = flush(&base).await;
    assert_eq!(status, 200, "{body}");

    // The store goes away: ingestion goes on, a flush reports the outage.
    weed.stop();
    let (status, body) = write_v1(&client, &base, &split(&all, 300, 600), None).await.unwrap();
    assert_eq!(status, 204, "ingestion must not depend on the store: {body}");
    let (status, body) = flush(&base).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"status\":\"error\""), "{body}");
    assert_eq!(write_v1(&client, &base, &split(&all, 600, 10_000), None).await.unwrap().0, 204);

    // It comes back: the flush catches up and nothing is lost.
    let weed = WeedS3::start(&weed.dir, Some(weed.base)).unwrap().unwrap();
    let (status, body) = flush(&base).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(read_all(&base).await, expected(&all));
    strata.terminate().unwrap();

    // A fresh instance with an empty data directory answers from the bucket alone.
    let fresh =
        StrataProcess::start(&bin, &tmp.path().join("data-fresh"), &["--objstore.config-file", obj]).await.unwrap();
    assert_eq!(read_all(&fresh.base()).await, expected(&all));
    drop(weed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_strata_during_an_upload_loses_and_doubles_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((bin, _weed, objstore)) = setup(tmp.path()) else { return };
    let obj = objstore.to_str().unwrap();
    let data = tmp.path().join("data");
    let client = reqwest::Client::new();
    let all = workload();
    let rounds = [5u64, 40, 150];
    for (i, delay_ms) in rounds.into_iter().enumerate() {
        let strata = StrataProcess::start(&bin, &data, &["--objstore.config-file", obj]).await.unwrap();
        let base = strata.base();
        // Each round writes the next hours, so every round has something to upload.
        let req = round(&all, i);
        let (status, body) = write_v1(&client, &base, &req, None).await.unwrap();
        assert_eq!(status, 204, "{body}");
        let b = base.clone();
        let inflight = tokio::spawn(async move {
            // The connection dies with the process; only the durability matters.
            reqwest::Client::new().post(format!("{b}/api/v1/admin/flush")).send().await.map(|r| r.status())
        });
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        strata.kill();
        let _ = inflight.await;
    }
    let strata = StrataProcess::start(&bin, &data, &["--objstore.config-file", obj]).await.unwrap();
    let (status, body) = flush(&strata.base()).await;
    assert_eq!(status, 200, "{body}");
    let got = read_all(&strata.base()).await;
    let mut want = Vec::new();
    for i in 0..rounds.len() {
        want.extend(expected(&round(&all, i)));
    }
    want.sort();
    assert_eq!(got.len(), want.len(), "samples lost or doubled");
    assert_eq!(got, want);
    strata.terminate().unwrap();

    // A separate compactor on the same bucket merges the (possibly duplicated,
    // overlapping) blocks; a fresh instance still reads every sample exactly once,
    // and `verify` finds nothing wrong.
    let cfg = tmp.path().join("compact.yml");
    std::fs::write(&cfg, "compactor:\n  deletion_delay: 0s\n").unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&bin)
            .args(args)
            .args(["--config", cfg.to_str().unwrap(), "--objstore.config-file", obj])
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "strata {args:?} failed:\n{text}");
        text
    };
    let before = run(&["tools", "bucket", "ls"]);
    let report = run(&["compact", "--once"]);
    let after = run(&["tools", "bucket", "ls"]);
    eprintln!("before:\n{before}\ncompact: {report}\nafter:\n{after}");
    run(&["tools", "bucket", "verify"]);
    let fresh =
        StrataProcess::start(&bin, &tmp.path().join("data-fresh"), &["--objstore.config-file", obj]).await.unwrap();
    assert_eq!(read_all(&fresh.base()).await, want, "compaction changed the answers");
}

async fn get_json(base: &str, path: &str, q: &[(&str, String)]) -> (u16, serde_json::Value) {
    let url = reqwest::Url::parse_with_params(&format!("{base}{path}"), q).unwrap();
    let r = reqwest::Client::new().get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}")))
}

fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

fn meta_apis(start: i64, end: i64) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    vec![
        ("/api/v1/series", vec![("match[]", "node_load1".to_string()), ("start", secs(start)), ("end", secs(end))]),
        ("/api/v1/labels", vec![("start", secs(start)), ("end", secs(end))]),
        ("/api/v1/label/instance/values", vec![("start", secs(start)), ("end", secs(end))]),
    ]
}

/// Issue 10, bug 5: an object-store outage used to fail every query of a tenant
/// that has blocks with 500, even for data that is all in the head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_answer_from_the_head_while_s3_is_down() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((bin, weed, objstore)) = setup(tmp.path()) else { return };
    let obj = objstore.to_str().unwrap();
    let client = reqwest::Client::new();
    let all = workload();
    let strata = StrataProcess::start(&bin, &tmp.path().join("data"), &["--objstore.config-file", obj]).await.unwrap();
    let base = strata.base();
    // The first 75 minutes go to a block, the rest stays in the head.
    assert_eq!(write_v1(&client, &base, &split(&all, 0, 300), None).await.unwrap().0, 204);
    let (status, body) = flush(&base).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(write_v1(&client, &base, &split(&all, 300, 10_000), None).await.unwrap().0, 204);
    let t0 = all.timeseries[0].samples[0].timestamp;
    let head_t = all.timeseries[0].samples[400].timestamp;
    let end = all.timeseries[0].samples.last().unwrap().timestamp;
    let range = |start: i64| {
        vec![
            ("query", "count(node_load1)".to_string()),
            ("start", secs(start)),
            ("end", secs(end)),
            ("step", "60".to_string()),
        ]
    };
    let (status, full) = get_json(&base, "/api/v1/query_range", &range(t0)).await;
    assert_eq!(status, 200, "{full}");
    let full_points = full["data"]["result"][0]["values"].as_array().unwrap().len();
    let mut meta_before = Vec::new();
    for (path, q) in meta_apis(t0, end) {
        meta_before.push(get_json(&base, path, &q).await.1);
    }

    weed.stop();
    // All in the head: answered as usual, no warning.
    let (status, v) =
        get_json(&base, "/api/v1/query", &[("query", "count(node_load1)".into()), ("time", secs(head_t))]).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["result"][0]["value"][1], "12", "{v}");
    assert!(v.get("warnings").is_none(), "{v}");
    let (status, v) = get_json(&base, "/api/v1/query_range", &range(head_t)).await;
    assert_eq!(status, 200, "{v}");
    assert!(v.get("warnings").is_none(), "{v}");
    // Needs blocks: the head's part, with a warning naming the store.
    let (status, v) = get_json(&base, "/api/v1/query_range", &range(t0)).await;
    assert_eq!(status, 200, "{v}");
    let warning = v["warnings"][0].as_str().unwrap_or_else(|| panic!("no warning: {v}"));
    assert!(warning.contains("object store unavailable"), "{warning}");
    let points = v["data"]["result"][0]["values"].as_array().unwrap().len();
    assert!(points < full_points, "{points} of {full_points} points without the block");
    // The label APIs: the blocks' indexes read before the outage are cached, so
    // they may answer in full; if not, from the head with a warning. Never an error.
    for (i, (path, q)) in meta_apis(t0, end).into_iter().enumerate() {
        let (status, v) = get_json(&base, path, &q).await;
        assert_eq!(status, 200, "{path}: {v}");
        match v["warnings"][0].as_str() {
            None => assert_eq!(v, meta_before[i], "{path}: a full answer must be the whole answer"),
            Some(w) => assert!(w.contains("object store"), "{path}: {w}"),
        }
        assert!(!v["data"].as_array().unwrap().is_empty(), "{path}: {v}");
    }
    // No partial responses wanted: 503 with a Prometheus error, never 500.
    let mut q = range(t0);
    q.push(("partial_response", "false".into()));
    let (status, v) = get_json(&base, "/api/v1/query_range", &q).await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["errorType"], "unavailable", "{v}");
    // Remote read has no warnings: 503, which a reading Prometheus turns into one.
    let rr = remote_read(&client, &base, all_series(), 0, i64::MAX / 2, None).await;
    let e = rr.expect_err("remote read without the store must fail").to_string();
    assert!(e.contains("503"), "{e}");

    // The store comes back: full answers, no restart.
    let weed = WeedS3::start(&weed.dir, Some(weed.base)).unwrap().unwrap();
    let (status, v) = get_json(&base, "/api/v1/query_range", &range(t0)).await;
    assert_eq!(status, 200, "{v}");
    assert!(v.get("warnings").is_none(), "{v}");
    assert_eq!(v, full);
    assert_eq!(read_all(&base).await, expected(&all));
    strata.terminate().unwrap();
    drop(weed);
}
