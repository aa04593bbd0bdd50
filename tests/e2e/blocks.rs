//! Blocks end to end, in process on a local-directory bucket: flush through the
//! admin API, identical answers from head and from blocks, a fresh instance with an
//! empty data directory on the same bucket, and the Parquet files read by DuckDB.

use std::collections::BTreeMap;
use std::path::Path;

use strata_block::ObjStoreConfig;
use strata_proto::prometheus as pb;
use strata_tests::*;

/// A 2h boundary a day ago: recent enough that the default 30-day retention of the
/// compactor running inside `serve` keeps it.
fn base() -> i64 {
    static BASE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        let day_ago = now - 24 * 3_600_000;
        day_ago - day_ago % 7_200_000
    })
}
const STEP: i64 = 15_000;
const N: i64 = 3 * 240; // 3 hours at 15 s

/// 24 series: decimal counters, full-precision gauges, one with a staleness marker.
pub(crate) fn workload() -> pb::WriteRequest {
    let mut timeseries = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..24 {
        let inst = format!("host-{i:02}:9100");
        let (name, kind) = if i % 2 == 0 { ("node_cpu_seconds_total", 0) } else { ("node_load1", 1) };
        let mut samples = Vec::new();
        for k in 0..N {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let jitter = if k % 10 == 3 { (x % 5) as i64 } else { 0 };
            let v = if kind == 0 { (k as f64) * 0.25 + i as f64 } else { (x >> 11) as f64 / (1u64 << 53) as f64 * 4.0 };
            samples.push((base() + k * STEP + jitter, v));
        }
        if i == 5 {
            samples.push((base() + N * STEP, strata_model::stale_nan()));
        }
        timeseries.push(series(&[("__name__", name), ("instance", &inst), ("job", "node")], &samples));
    }
    pb::WriteRequest { timeseries, ..Default::default() }
}

async fn get(sb: &Sandbox, path: &str, q: &[(&str, String)]) -> String {
    let url = reqwest::Url::parse_with_params(&sb.url(path), q).unwrap();
    let r = sb.client.get(url).send().await.unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

/// The answers a user would see, as raw response bodies.
async fn answers(sb: &Sandbox) -> BTreeMap<String, String> {
    let end = base() + N * STEP;
    let (s, e) = ((base() / 1000).to_string(), (end / 1000).to_string());
    let mut out = BTreeMap::new();
    for (name, q) in [
        ("rate", "sum by (instance) (rate(node_cpu_seconds_total[5m]))"),
        ("gauge", "node_load1"),
        ("max_over_time", "max_over_time(node_load1[1h])"),
        ("count", "count(up or node_load1 or node_cpu_seconds_total)"),
    ] {
        let q = vec![("query", q.to_string()), ("start", s.clone()), ("end", e.clone()), ("step", "60".into())];
        out.insert(format!("range {name}"), get(sb, "/api/v1/query_range", &q).await);
    }
    let at = vec![
        ("query", "node_load1{instance=\"host-05:9100\"}[10m]".into()),
        ("time", ((end - 60_000) / 1000).to_string()),
    ];
    out.insert("instant matrix".into(), get(sb, "/api/v1/query", &at).await);
    let range = vec![("start", s.clone()), ("end", e.clone())];
    let mut q = range.clone();
    q.push(("match[]", "{job=\"node\"}".into()));
    out.insert("series".into(), get(sb, "/api/v1/series", &q).await);
    out.insert("labels".into(), get(sb, "/api/v1/labels", &range).await);
    out.insert("values".into(), get(sb, "/api/v1/label/instance/values", &range).await);
    let url = format!("http://{}", sb.addr);
    let rr = remote_read(&sb.client, &url, all_series(), base(), end + 1, None).await.unwrap();
    out.insert("remote read".into(), format!("{}", rr.iter().map(|s| s.samples.len()).sum::<usize>()));
    out.insert("remote read bits".into(), bits(&rr));
    out
}

fn bits(rr: &[pb::TimeSeries]) -> String {
    let mut lines: Vec<String> = rr
        .iter()
        .flat_map(|s| {
            let mut l: Vec<(String, String)> = s.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect();
            l.sort();
            let key = serde_json::to_string(&l.into_iter().collect::<BTreeMap<_, _>>()).unwrap();
            s.samples.iter().map(move |x| format!("{key}\t{}\t{:016x}", x.timestamp, x.value.to_bits()))
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

async fn flush(sb: &Sandbox) -> serde_json::Value {
    let r = sb.client.post(sb.url("/api/v1/admin/flush")).send().await.unwrap();
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

fn block_dirs(bucket: &Path, tenant: &str) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> =
        std::fs::read_dir(bucket.join(tenant)).map(|rd| rd.map(|e| e.unwrap().path()).collect()).unwrap_or_default();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushed_blocks_answer_like_the_head_and_survive_losing_the_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("bucket");
    let objstore = ObjStoreConfig::filesystem(&bucket);
    let sb = Sandbox::start_with_bucket(&tmp.path().join("data1"), objstore.clone()).await;
    let (status, body) = write_v1(&sb.client, &format!("http://{}", sb.addr), &workload(), None).await.unwrap();
    assert_eq!(status, 204, "{body}");
    let from_head = answers(&sb).await;
    assert!(from_head["remote read"].parse::<usize>().unwrap() > 17_000);

    let flushed = flush(&sb).await;
    let blocks = flushed["data"]["blocks"].as_array().unwrap();
    // 3h starting at a 2h boundary: two aligned blocks, every sample in one of them.
    assert_eq!(blocks.len(), 2, "{flushed}");
    let samples: u64 = blocks.iter().map(|b| b["samples"].as_u64().unwrap()).sum();
    assert_eq!(samples.to_string(), from_head["remote read"]);
    assert_eq!(block_dirs(&bucket, "anonymous").len(), 2);
    for dir in block_dirs(&bucket, "anonymous") {
        for f in ["meta.json", "series.parquet", "samples.parquet"] {
            assert!(dir.join(f).exists(), "{} missing", dir.join(f).display());
        }
    }
    let from_blocks = answers(&sb).await;
    for (k, v) in &from_head {
        assert_eq!(&from_blocks[k], v, "{k} differs after flush");
    }
    // A second flush has nothing to do.
    assert!(flush(&sb).await["data"]["blocks"].as_array().unwrap().is_empty());
    sb.stop().await;

    // A new instance with an empty data directory on the same bucket.
    let sb = Sandbox::start_with_bucket(&tmp.path().join("data2"), objstore).await;
    let fresh = answers(&sb).await;
    for (k, v) in &from_head {
        assert_eq!(&fresh[k], v, "{k} differs on a fresh instance");
    }

    // Any Parquet reader: DuckDB with the SQL from docs/format/block.md returns the
    // same samples, bit for bit, stale-marker payload included.
    let mut duck = Vec::new();
    for dir in block_dirs(&bucket, "anonymous") {
        match check_block_sql(&dir) {
            Some(lines) => duck.extend(lines),
            None => return,
        }
    }
    duck.sort();
    assert_eq!(duck.join("\n"), from_head["remote read bits"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spilled_head_chunks_answer_like_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let objstore = ObjStoreConfig::filesystem(tmp.path().join("bucket"));
    // A zero window: every closed chunk leaves memory.
    let opts = strata_tsdb::TsdbOptions { memory_window_ms: Some(0), ..Default::default() };
    let sb = Sandbox::start_full(Default::default(), opts, Some(&tmp.path().join("data")), Some(objstore)).await;
    let (status, body) = write_v1(&sb.client, &format!("http://{}", sb.addr), &workload(), None).await.unwrap();
    assert_eq!(status, 204, "{body}");
    let in_memory = answers(&sb).await;
    let moved = sb.tsdb.spill().await.unwrap();
    // 24 series of 720 samples: five closed chunks each, one open.
    let head = sb.tsdb.head(&strata_model::TenantId::new("anonymous").unwrap()).unwrap().stats();
    assert_eq!(head.spilled_chunk_bytes, moved);
    assert!(moved > 0 && head.chunk_bytes < moved / 4, "{head:?}");
    let metrics = get(&sb, "/metrics", &[]).await;
    assert!(metrics.contains(&format!("strata_head_spilled_chunk_bytes{{tenant=\"anonymous\"}} {moved}")), "{metrics}");
    let spilled = answers(&sb).await;
    for (k, v) in &in_memory {
        assert_eq!(&spilled[k], v, "{k} differs once chunks are in files");
    }
    // Blocks cut from spilled chunks hold the same samples.
    flush(&sb).await;
    let from_blocks = answers(&sb).await;
    for (k, v) in &in_memory {
        assert_eq!(&from_blocks[k], v, "{k} differs after a flush of spilled chunks");
    }
}

/// Runs `scripts/check_block_sql.py` on a block; `None` (with the reason printed)
/// when DuckDB is not installed.
fn check_block_sql(dir: &Path) -> Option<Vec<String>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/check_block_sql.py");
    let out = std::process::Command::new("python3").arg(&script).arg(dir).output().expect("run python3");
    if out.status.code() == Some(77) {
        missing_tool("DuckDB/pyarrow (the block SQL check)", String::from_utf8_lossy(&out.stderr).trim());
        return None;
    }
    assert!(out.status.success(), "check_block_sql failed: {}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect())
}
