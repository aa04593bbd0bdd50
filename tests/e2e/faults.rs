//! Faults Strata must ride out by itself, with the real binary: a disk that fills up
//! under the WAL, an object store that errors or stalls (through [`FaultProxy`]), and
//! SIGKILL during compaction. Principle: no acknowledged sample is lost or doubled,
//! bad faults answer 503 (retryable) and never 500, and once the fault goes Strata
//! recovers without a restart. Each test prints its row of the fault matrix.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use strata_model::now_ms;
use strata_proto::prometheus as pb;
use strata_tests::*;
use tokio::sync::Mutex;

const WRITERS: usize = 2;
const SERIES_PER_WRITER: usize = 20;
const SAMPLES_PER_REQUEST: i64 = 10;

fn value(series: usize, t: i64) -> f64 {
    (series as f64) * 1e6 + (t as f64) * 0.25
}

const PHASES: [&str; 4] = ["before", "disk full", "freed, until first 204", "after"];

#[derive(Default)]
struct Record {
    /// series → acknowledged timestamps.
    acked: BTreeMap<usize, Vec<i64>>,
    /// (phase, HTTP status) → answers.
    statuses: BTreeMap<(u8, u16), u64>,
    /// Requests acknowledged only after one or more 503s (their retry found duplicates).
    acked_after_retry: u64,
    first_204_after_free: Option<Instant>,
}

/// Checks every acknowledged sample is there exactly once, with its value; returns
/// how many were checked.
fn check_read_back(got: &[pb::TimeSeries], acked: &BTreeMap<usize, Vec<i64>>) -> usize {
    let mut found = 0;
    for ts in got {
        let s: usize = ts.labels.iter().find(|l| l.name == "s").unwrap().value.parse().unwrap();
        let times: Vec<i64> = ts.samples.iter().map(|x| x.timestamp).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "series {s}: duplicated or unordered timestamps");
        for x in &ts.samples {
            assert_eq!(x.value.to_bits(), value(s, x.timestamp).to_bits(), "series {s} t={}: invented", x.timestamp);
        }
        for t in acked.get(&s).into_iter().flatten() {
            assert!(times.binary_search(t).is_ok(), "series {s}: acknowledged sample t={t} lost");
            found += 1;
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_disk_full_under_the_wal_gives_503_and_recovers_by_itself() {
    let Some(bin) = strata_bin() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let Some(disk) = TmpfsMount::mount(&tmp.path().join("disk"), 24).unwrap() else { return };
    let cfg = tmp.path().join("strata.yml");
    std::fs::write(&cfg, "wal:\n  segment_size_bytes: 1048576\n  spill_head_chunks: false\n").unwrap();
    let args = ["--config", cfg.to_str().unwrap()];
    let data = disk.dir.join("data");
    let proc = StrataProcess::start(&bin, &data, &args).await.unwrap();
    let base = proc.base();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let rec = Arc::new(Mutex::new(Record::default()));
    let phase = Arc::new(AtomicU8::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = now_ms() - 600_000;

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (client, base, rec, phase, stop) = (client.clone(), base.clone(), rec.clone(), phase.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut next_t = t0;
            while !stop.load(Ordering::Relaxed) {
                let times: Vec<i64> = (next_t..next_t + SAMPLES_PER_REQUEST).collect();
                next_t += SAMPLES_PER_REQUEST;
                let timeseries = (0..SERIES_PER_WRITER)
                    .map(|k| {
                        let s = w * SERIES_PER_WRITER + k;
                        let samples: Vec<(i64, f64)> = times.iter().map(|&t| (t, value(s, t))).collect();
                        series(&[("__name__", "disk_full"), ("s", &s.to_string())], &samples)
                    })
                    .collect();
                let req = pb::WriteRequest { timeseries, metadata: vec![] };
                // As Prometheus does: the same request again until it is acknowledged.
                let mut refused = false;
                loop {
                    let (status, body) = write_v1(&client, &base, &req, None).await.unwrap();
                    let ph = phase.load(Ordering::Relaxed);
                    let mut r = rec.lock().await;
                    *r.statuses.entry((ph, status)).or_default() += 1;
                    match status {
                        204 => {
                            if ph == 2 && r.first_204_after_free.is_none() {
                                r.first_204_after_free = Some(Instant::now());
                            }
                            r.acked_after_retry += u64::from(refused);
                            for k in 0..SERIES_PER_WRITER {
                                r.acked.entry(w * SERIES_PER_WRITER + k).or_default().extend(&times);
                            }
                            break;
                        }
                        503 => {
                            drop(r);
                            refused = true;
                            if stop.load(Ordering::Relaxed) {
                                return; // never acknowledged: not counted
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        other => panic!("phase {}: unexpected answer {other}: {body}", PHASES[ph as usize]),
                    }
                }
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    phase.store(1, Ordering::Relaxed);
    let filler = disk.dir.join("filler");
    let filled = fill_disk(&filler).unwrap();
    let saw_503 = |r: &Record| r.statuses.get(&(1, 503)).copied().unwrap_or(0) > 0;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !saw_503(&*rec.lock().await) {
        assert!(Instant::now() < deadline, "no 503 within 15 s of the disk filling up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(metric(&client, &base, "strata_wal_failed").await.unwrap(), 1.0);
    let ready = client.get(format!("{base}/-/ready")).send().await.unwrap().status().as_u16();
    assert_eq!(ready, 503, "/-/ready while the WAL cannot write");

    phase.store(2, Ordering::Relaxed);
    let freed = Instant::now();
    std::fs::remove_file(&filler).unwrap();
    let deadline = freed + Duration::from_secs(15);
    let recovery = loop {
        if let Some(at) = rec.lock().await.first_204_after_free {
            break at - freed;
        }
        assert!(Instant::now() < deadline, "no 204 within 15 s of the disk freeing up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    phase.store(3, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(metric(&client, &base, "strata_wal_failed").await.unwrap(), 0.0);
    let recoveries = metric(&client, &base, "strata_wal_recoveries_total").await.unwrap();
    let failures = metric(&client, &base, "strata_wal_write_failures_total").await.unwrap();
    assert!(recoveries >= 1.0, "recoveries {recoveries}");

    // Everything acknowledged survives a SIGKILL, exactly once.
    proc.kill();
    let proc = StrataProcess::start(&bin, &data, &args).await.unwrap();
    let got = remote_read(&client, &proc.base(), all_series(), 0, i64::MAX, None).await.unwrap();
    let r = rec.lock().await;
    let total: usize = r.acked.values().map(Vec::len).sum();
    assert_eq!(check_read_back(&got, &r.acked), total, "acknowledged series missing entirely");
    let read_back: usize = got.iter().map(|s| s.samples.len()).sum();
    for ((ph, status), n) in &r.statuses {
        assert!(matches!(status, 204 | 503), "phase {}: {n} × {status}", PHASES[*ph as usize]);
    }
    println!("fault matrix | disk full under the WAL | filler {} MiB", filled >> 20);
    for ((ph, status), n) in &r.statuses {
        println!("fault matrix |   phase {:<24} | HTTP {status}: {n}", PHASES[*ph as usize]);
    }
    println!(
        "fault matrix |   acknowledged {total} samples, lost 0, duplicated 0 (read back {read_back}); \
         {} requests acknowledged on a retry after 503; recovery {} ms after the space returned; \
         wal write failures {failures}, recoveries {recoveries}",
        r.acked_after_retry,
        recovery.as_millis()
    );
    assert!(recovery < Duration::from_secs(10), "recovery took {recovery:?}");
    drop(proc);
    drop(disk);
}

/// 10 series, 6 hours at 60 s, starting at a 2 h boundary 8 hours ago: the first two
/// block ranges are due for the background flusher. The third part, one more hour, is
/// written later so a flush always has something to upload.
fn upload_workload() -> (pb::WriteRequest, pb::WriteRequest, pb::WriteRequest) {
    const H: i64 = 3_600_000;
    let base = (now_ms() - 8 * H) / (2 * H) * (2 * H);
    let half = |from: i64, to: i64| {
        let timeseries = (0..10)
            .map(|s: usize| {
                let samples: Vec<(i64, f64)> =
                    (from..to).map(|k| base + k * 60_000).map(|t| (t, value(s, t))).collect();
                series(&[("__name__", "upload"), ("s", &s.to_string())], &samples)
            })
            .collect();
        pb::WriteRequest { timeseries, metadata: vec![] }
    };
    (half(0, 180), half(180, 360), half(360, 420))
}

async fn admin_flush(client: &reqwest::Client, base: &str) -> (u16, String, Duration) {
    let start = Instant::now();
    let r = client.post(format!("{base}/api/v1/admin/flush")).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap(), start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_object_store_errors_during_upload_give_503_and_the_flusher_catches_up() {
    use strata_tests::faultproxy::{Fault, FaultProxy};
    let Some(bin) = strata_bin() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let Some(weed) = WeedS3::start(&tmp.path().join("weed"), None).unwrap() else { return };
    let proxy = FaultProxy::start(weed.port).await.unwrap();
    let objstore = tmp.path().join("objstore.yml");
    let yaml = weed
        .objstore_yaml()
        .replace(&format!("127.0.0.1:{}", weed.port), &format!("127.0.0.1:{}", proxy.port))
        .replace("request_timeout: 5s", "request_timeout: 1s");
    std::fs::write(&objstore, yaml).unwrap();
    let cfg = tmp.path().join("strata.yml");
    std::fs::write(&cfg, "compactor:\n  enabled: false\n").unwrap();
    let args = ["--config", cfg.to_str().unwrap(), "--objstore.config-file", objstore.to_str().unwrap()];
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let (first, second, third) = upload_workload();
    let proc = StrataProcess::start(&bin, &tmp.path().join("data"), &args).await.unwrap();
    let base = proc.base();
    assert_eq!(write_v1(&client, &base, &first, None).await.unwrap().0, 204);

    let mut rows = Vec::new();
    let faults =
        [("errors 503", Fault::Status(503)), ("errors 500", Fault::Status(500)), ("connection reset", Fault::Reset)];
    for (name, fault) in faults {
        proxy.set(fault);
        let (w, body) = write_v1(&client, &base, &second, None).await.unwrap();
        assert_eq!(w, 204, "{name}: ingestion must not depend on the store: {body}");
        let (status, body, took) = admin_flush(&client, &base).await;
        assert_eq!(status, 503, "{name}: flush must be a retryable 503: {body}");
        rows.push(format!("upload | {name:<24} | write 204, flush {status} after {} ms", took.as_millis()));
    }

    proxy.set(Fault::Pass);
    let cleared = Instant::now();
    let deadline = cleared + Duration::from_secs(90);
    while metric(&client, &base, "strata_blocks_uploaded_total").await.unwrap() < 1.0 {
        assert!(Instant::now() < deadline, "the background flusher did not upload within 90 s of the fault clearing");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let caught_up = cleared.elapsed();

    // A store slower than request_timeout: each request gives up after it (and the
    // retry budget is the same 1 s), so the flush fails fast with a retryable 503
    // instead of waiting the stall out. Never a 500.
    let name = "delay 3 s > timeout 1 s";
    proxy.set(Fault::Delay(Duration::from_secs(3)));
    let (w, body) = write_v1(&client, &base, &third, None).await.unwrap();
    assert_eq!(w, 204, "{name}: ingestion must not depend on the store: {body}");
    let (status, body, took) = admin_flush(&client, &base).await;
    assert_eq!(status, 503, "{name}: flush must be a retryable 503: {body}");
    assert!(took < Duration::from_secs(8), "{name}: flush took {took:?}, request_timeout is 1 s");
    rows.push(format!("upload | {name:<24} | flush {status} after {} ms", took.as_millis()));
    proxy.set(Fault::Pass);

    let (status, body, _) = admin_flush(&client, &base).await;
    assert_eq!(status, 200, "{body}");
    proc.terminate().unwrap();

    // A fresh instance with an empty data dir reads everything from the bucket, once.
    let fresh_args = ["--objstore.config-file", objstore.to_str().unwrap()];
    let fresh = StrataProcess::start(&bin, &tmp.path().join("fresh"), &fresh_args).await.unwrap();
    let got = remote_read(&client, &fresh.base(), all_series(), 0, i64::MAX, None).await.unwrap();
    let mut acked: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
    for req in [&first, &second, &third] {
        for (s, ts) in req.timeseries.iter().enumerate() {
            acked.entry(s).or_default().extend(ts.samples.iter().map(|x| x.timestamp));
        }
    }
    let total: usize = acked.values().map(Vec::len).sum();
    assert_eq!(check_read_back(&got, &acked), total);
    let read_back: usize = got.iter().map(|s| s.samples.len()).sum();
    assert_eq!(read_back, total, "duplicated or invented samples");
    for r in rows {
        println!("fault matrix | {r}");
    }
    let (fwd, faulted) = proxy.counts();
    println!(
        "fault matrix | upload | cleared: background flusher uploaded after {} ms; {total} samples, lost 0, \
         duplicated 0 (fresh instance, empty data dir); proxy forwarded {fwd}, faulted {faulted}",
        caught_up.as_millis()
    );
    drop(fresh);
    drop(weed);
}

// ---- compaction and queries under store faults, SIGKILL during compaction ----

const HOUR: i64 = 3_600_000;
/// Sample interval of the compaction workloads.
const STEP: i64 = 30_000;

/// `[from, to)` of series `ss` (label `s`) every [`STEP`], values from [`value`].
fn range_request(name: &str, ss: std::ops::Range<usize>, from: i64, to: i64) -> pb::WriteRequest {
    let timeseries = ss
        .map(|s| {
            let samples: Vec<(i64, f64)> = (from..to).step_by(STEP as usize).map(|t| (t, value(s, t))).collect();
            series(&[("__name__", name), ("s", &s.to_string())], &samples)
        })
        .collect();
    pb::WriteRequest { timeseries, metadata: vec![] }
}

/// A weed mini S3 server, a fault proxy in front of it, and two objstore files: one
/// straight to the server (5 s timeout), one through the proxy (`timeout`).
struct FaultyBucket {
    _weed: WeedS3,
    proxy: strata_tests::faultproxy::FaultProxy,
    direct: std::path::PathBuf,
    proxied: std::path::PathBuf,
    /// A config with the compactor off (serve) and `deletion_delay: 0s` (compact).
    config: std::path::PathBuf,
}

impl FaultyBucket {
    async fn start(dir: &std::path::Path, timeout: &str) -> Option<FaultyBucket> {
        let weed = WeedS3::start(&dir.join("weed"), None).unwrap()?;
        let proxy = strata_tests::faultproxy::FaultProxy::start(weed.port).await.unwrap();
        let direct = dir.join("direct.yml");
        std::fs::write(&direct, weed.objstore_yaml()).unwrap();
        let proxied = dir.join("proxied.yml");
        let yaml = weed
            .objstore_yaml()
            .replace(&format!("127.0.0.1:{}", weed.port), &format!("127.0.0.1:{}", proxy.port))
            .replace("request_timeout: 5s", &format!("request_timeout: {timeout}"));
        std::fs::write(&proxied, yaml).unwrap();
        let config = dir.join("strata.yml");
        // The offline commands' data dir (the compactor's spool) inside the test's dir;
        // `serve` gets its own with --data-dir.
        let data = dir.join("compact-data");
        std::fs::write(
            &config,
            format!("data_dir: {}\ncompactor:\n  enabled: false\n  deletion_delay: 0s\n", data.display()),
        )
        .unwrap();
        Some(FaultyBucket { _weed: weed, proxy, direct, proxied, config })
    }

    /// `--config` and `--objstore.config-file` for the direct or the proxied store.
    fn args(&self, proxied: bool) -> [&str; 4] {
        let obj = if proxied { &self.proxied } else { &self.direct };
        ["--config", self.config.to_str().unwrap(), "--objstore.config-file", obj.to_str().unwrap()]
    }

    /// `strata <cmd> --config .. --objstore.config-file ..` to its end (at most `limit`).
    fn run(&self, bin: &std::path::Path, cmd: &[&str], proxied: bool, limit: Duration) -> CommandRun {
        let mut args = cmd.to_vec();
        args.extend(self.args(proxied));
        run_strata(bin, &args, limit).unwrap()
    }

    /// `tools bucket verify` straight to the store: the problems it names, by kind
    /// (its PROBLEM column), and the whole output. Notes ("upload in progress") are
    /// counted too, under their name.
    fn verify(&self, bin: &std::path::Path) -> (BTreeMap<String, usize>, String, Option<i32>) {
        let r = self.run(bin, &["tools", "bucket", "verify"], false, Duration::from_secs(60));
        let mut kinds = BTreeMap::new();
        for line in r.output.lines() {
            for kind in [
                "upload in progress",
                "incomplete upload",
                "bad meta.json",
                "missing file",
                "size mismatch",
                "overlap",
                "unreadable",
                "implausible time",
            ] {
                if line.split("  ").any(|col| col.trim() == kind) {
                    *kinds.entry(kind.to_string()).or_default() += 1;
                }
            }
        }
        (kinds, r.output, r.code)
    }

    /// Live and marked blocks (`tools bucket ls --json`, straight to the store), and
    /// how many carry a no-compact mark.
    fn ls(&self, bin: &std::path::Path) -> (usize, usize, usize) {
        let r = self.run(bin, &["tools", "bucket", "ls", "--json"], false, Duration::from_secs(60));
        assert_eq!(r.code, Some(0), "ls: {}", r.output);
        let start = r.output.find('[').unwrap_or_else(|| panic!("ls --json: {}", r.output));
        let end = r.output.rfind(']').unwrap();
        let v: serde_json::Value = serde_json::from_str(&r.output[start..=end]).unwrap();
        let blocks = v.as_array().unwrap();
        let marked = blocks.iter().filter(|b| !b["deletion_mark"].is_null()).count();
        let no_compact = blocks.iter().filter(|b| !b["no_compact_mark"].is_null()).count();
        (blocks.len() - marked, marked, no_compact)
    }
}

/// Problems a store fault or a kill must never leave: everything but overlaps (the
/// next pass merges them) and young incomplete uploads (the gc removes them after an
/// hour; verify counts them as notes).
fn damage(kinds: &BTreeMap<String, usize>) -> Vec<String> {
    kinds
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "overlap" | "upload in progress"))
        .map(|(k, n)| format!("{n} × {k}"))
        .collect()
}

/// Writes `parts` (each then flushed: 200) with a fresh `strata serve` on the direct
/// store; adds what was written to `expected` (series → timestamps).
async fn produce_blocks(
    bin: &std::path::Path,
    fb: &FaultyBucket,
    data: &std::path::Path,
    parts: &[pb::WriteRequest],
    expected: &mut BTreeMap<usize, Vec<i64>>,
) -> usize {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let proc = StrataProcess::start(bin, data, &fb.args(false)).await.unwrap();
    let mut blocks = 0;
    for req in parts {
        let (status, body) = write_v1(&client, &proc.base(), req, None).await.unwrap();
        assert_eq!(status, 204, "{body}");
        let (status, body, _) = admin_flush(&client, &proc.base()).await;
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        blocks += v["data"]["blocks"].as_array().unwrap().len();
        for ts in &req.timeseries {
            let s: usize = ts.labels.iter().find(|l| l.name == "s").unwrap().value.parse().unwrap();
            expected.entry(s).or_default().extend(ts.samples.iter().map(|x| x.timestamp));
        }
    }
    proc.terminate().unwrap();
    for v in expected.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
    blocks
}

/// A fresh `strata serve` with an empty data dir on the bucket reads every expected
/// sample exactly once; returns how many.
async fn read_back_once(
    bin: &std::path::Path,
    fb: &FaultyBucket,
    data: &std::path::Path,
    expected: &BTreeMap<usize, Vec<i64>>,
) -> usize {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let fresh = StrataProcess::start(bin, data, &fb.args(false)).await.unwrap();
    let got = remote_read(&client, &fresh.base(), all_series(), 0, i64::MAX, None).await.unwrap();
    let total: usize = expected.values().map(Vec::len).sum();
    assert_eq!(check_read_back(&got, expected), total, "expected series missing entirely");
    let read_back: usize = got.iter().map(|s| s.samples.len()).sum();
    assert_eq!(read_back, total, "duplicated or invented samples");
    fresh.terminate().unwrap();
    total
}

/// A 12 h window `[w, w + 12h)` well in the past: 40 h ago, aligned.
fn old_window() -> i64 {
    (now_ms() - 40 * HOUR) / (12 * HOUR) * (12 * HOUR)
}

/// Instance A: series 0..16 in three rounds of 4 h (six adjacent 2 h blocks filling
/// the window); instance B: series 8..24 over [w+3h, w+9h) (overlapping blocks, half
/// of them identical copies of A's samples).
async fn compaction_bucket(
    bin: &std::path::Path,
    fb: &FaultyBucket,
    tmp: &std::path::Path,
    expected: &mut BTreeMap<usize, Vec<i64>>,
) -> usize {
    let w = old_window();
    let a: Vec<_> = (0..3).map(|i| range_request("compact", 0..16, w + i * 4 * HOUR, w + (i + 1) * 4 * HOUR)).collect();
    let b = [range_request("compact", 8..24, w + 3 * HOUR, w + 9 * HOUR)];
    produce_blocks(bin, fb, &tmp.join("a"), &a, expected).await
        + produce_blocks(bin, fb, &tmp.join("b"), &b, expected).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_object_store_errors_during_compaction_never_damage_the_bucket() {
    use strata_tests::faultproxy::{Fault, Scope};
    let Some(bin) = strata_bin() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let Some(fb) = FaultyBucket::start(tmp.path(), "1s").await else { return };
    let mut expected = BTreeMap::new();
    let produced = compaction_bucket(&bin, &fb, tmp.path(), &mut expected).await;
    let (live0, _, _) = fb.ls(&bin);
    let put = |after| Scope { method: Some("PUT"), after };
    let get = |after| Scope { method: Some("GET"), after };
    // From failing at once to failing part-way: a block's data files uploaded and its
    // meta.json not, a block uploaded and its inputs' deletion marks not.
    let faults: [(&str, Fault, Scope); 7] = [
        ("all requests 503", Fault::Status(503), Scope::default()),
        ("GET 500 after 4", Fault::Status(500), get(4)),
        ("PUT 503 at once", Fault::Status(503), put(0)),
        ("PUT 503 after 1", Fault::Status(503), put(1)),
        ("PUT 500 after 3", Fault::Status(500), put(3)),
        ("reset after 12 connections", Fault::Reset, Scope { method: None, after: 12 }),
        ("delay 3 s > timeout 1 s", Fault::Delay(Duration::from_secs(3)), Scope::default()),
    ];
    let mut rows = Vec::new();
    for (name, fault, scope) in faults {
        fb.proxy.set_scoped(fault, scope);
        let r = fb.run(&bin, &["compact", "--once"], true, Duration::from_secs(60));
        fb.proxy.set(Fault::Pass);
        assert!(!r.timed_out, "{name}: compact --once still running after 60 s:\n{}", r.output);
        let logged = r.output.to_lowercase().contains("fail") || r.output.to_lowercase().contains("error");
        assert!(r.code != Some(0) || logged, "{name}: exit 0 and no failure logged:\n{}", r.output);
        let (kinds, report, _) = fb.verify(&bin);
        assert!(damage(&kinds).is_empty(), "{name}: the bucket is damaged: {:?}\n{report}", damage(&kinds));
        let (live, marked, no_compact) = fb.ls(&bin);
        assert_eq!(no_compact, 0, "{name}: a store fault must not mark a sound block no-compact");
        rows.push(format!(
            "compaction | {name:<27} | compact --once exit {:?} after {} ms, failure logged {logged} | verify: {kinds:?} | \
             blocks live {live}, marked {marked}, no-compact 0",
            r.code,
            r.took.as_millis()
        ));
    }
    let clean = fb.run(&bin, &["compact", "--once"], true, Duration::from_secs(60));
    assert_eq!(clean.code, Some(0), "clean pass:\n{}", clean.output);
    let (kinds, report, code) = fb.verify(&bin);
    assert!(damage(&kinds).is_empty() && !kinds.contains_key("overlap"), "after the clean pass:\n{report}");
    assert_eq!(code, Some(0), "verify after the clean pass:\n{report}");
    let (live, marked, _) = fb.ls(&bin);
    let total = read_back_once(&bin, &fb, &tmp.path().join("fresh"), &expected).await;
    println!(
        "fault matrix | compaction | bucket: {produced} blocks flushed by 2 instances ({live0} live), {total} distinct samples"
    );
    for r in rows {
        println!("fault matrix | {r}");
    }
    let (fwd, faulted) = fb.proxy.counts();
    println!(
        "fault matrix | compaction | cleared: clean compact --once exit 0 after {} ms; verify {kinds:?}, exit 0; \
         blocks live {live}, marked {marked}; fresh instance read {total} samples, lost 0, duplicated 0; \
         proxy forwarded {fwd}, faulted {faulted}",
        clean.took.as_millis()
    );
    drop(fb);
}

async fn get_json(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    q: &[(&str, String)],
) -> (u16, serde_json::Value, Duration) {
    let url = reqwest::Url::parse_with_params(&format!("{base}{path}"), q).unwrap();
    let start = Instant::now();
    let r = client.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let took = start.elapsed();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}")), took)
}

fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_queries_under_object_store_errors_answer_from_the_head_or_503_never_500() {
    use strata_tests::faultproxy::Fault;
    let Some(bin) = strata_bin() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let Some(fb) = FaultyBucket::start(tmp.path(), "1s").await else { return };
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let proc = StrataProcess::start(&bin, &tmp.path().join("data"), &fb.args(true)).await.unwrap();
    let base = proc.base();
    // [t0, t0+4h) in blocks, [t0+5h, t0+6h) in the head.
    let t0 = (now_ms() - 8 * HOUR) / (2 * HOUR) * (2 * HOUR);
    let old = range_request("faultq", 0..10, t0, t0 + 4 * HOUR);
    assert_eq!(write_v1(&client, &base, &old, None).await.unwrap().0, 204);
    let (status, body, _) = admin_flush(&client, &base).await;
    assert_eq!(status, 200, "{body}");
    let new = range_request("faultq", 0..10, t0 + 5 * HOUR, t0 + 6 * HOUR);
    assert_eq!(write_v1(&client, &base, &new, None).await.unwrap().0, 204);
    let end = t0 + 6 * HOUR - STEP;
    let range = |start: i64, partial: Option<bool>| {
        let mut q = vec![
            ("query", "sum(faultq)".to_string()),
            ("start", secs(start)),
            ("end", secs(end)),
            ("step", "60".to_string()),
        ];
        if let Some(p) = partial {
            q.push(("partial_response", p.to_string()));
        }
        q
    };
    let head_start = t0 + 5 * HOUR + 10 * 60_000;
    let qr = "/api/v1/query_range";
    let (status, full, _) = get_json(&client, &base, qr, &range(t0, None)).await;
    assert_eq!(status, 200, "{full}");
    assert!(full.get("warnings").is_none(), "{full}");
    let full_points = full["data"]["result"][0]["values"].as_array().unwrap().len();
    let (status, full_head, _) = get_json(&client, &base, qr, &range(head_start, None)).await;
    assert_eq!(status, 200, "{full_head}");

    let faults = [
        ("errors 503", Fault::Status(503)),
        ("errors 500", Fault::Status(500)),
        ("connection reset", Fault::Reset),
        ("delay 3 s > timeout 1 s", Fault::Delay(Duration::from_secs(3))),
    ];
    let mut rows = Vec::new();
    for (name, fault) in faults {
        fb.proxy.set(fault);
        // All in the head: answered in full, no warning, the store not asked.
        let (status, v, head_took) = get_json(&client, &base, qr, &range(head_start, None)).await;
        assert_eq!(status, 200, "{name}: head-only query: {v}");
        assert!(v.get("warnings").is_none(), "{name}: head-only query warned: {v}");
        assert_eq!(v, full_head, "{name}: head-only answer changed");
        // Reaching into blocks: the head's part with a warning naming the store, or 503.
        let (status, v, partial_took) = get_json(&client, &base, qr, &range(t0, None)).await;
        let partial = match status {
            200 => {
                let w = v["warnings"][0].as_str().unwrap_or_else(|| panic!("{name}: 200 without warning: {v}"));
                assert!(w.contains("object store"), "{name}: {w}");
                let points = v["data"]["result"][0]["values"].as_array().map_or(0, Vec::len);
                assert!(points < full_points, "{name}: {points} of {full_points} points without the blocks");
                format!("200 + warning ({points}/{full_points} points)")
            }
            503 => {
                assert_eq!(v["errorType"], "unavailable", "{name}: {v}");
                "503 unavailable".to_string()
            }
            other => panic!("{name}: query_range into blocks answered {other}: {v}"),
        };
        // No partial responses wanted: 503, errorType unavailable.
        let (status, v, strict_took) = get_json(&client, &base, qr, &range(t0, Some(false))).await;
        assert_eq!(status, 503, "{name}: partial_response=false: {v}");
        assert_eq!(v["errorType"], "unavailable", "{name}: {v}");
        // Cleared: the full answer again, same process.
        fb.proxy.set(Fault::Pass);
        let (status, v, clear_took) = get_json(&client, &base, qr, &range(t0, None)).await;
        assert_eq!(status, 200, "{name}: after clearing: {v}");
        assert!(v.get("warnings").is_none(), "{name}: after clearing: {v}");
        assert_eq!(v, full, "{name}: after clearing the answer must be whole again");
        rows.push(format!(
            "queries | {name:<24} | head-only 200 no warning in {} ms | into blocks {partial} in {} ms | \
             partial_response=false 503 unavailable in {} ms | cleared: full 200 in {} ms, no restart",
            head_took.as_millis(),
            partial_took.as_millis(),
            strict_took.as_millis(),
            clear_took.as_millis()
        ));
    }
    for r in rows {
        println!("fault matrix | {r}");
    }
    let (fwd, faulted) = fb.proxy.counts();
    println!("fault matrix | queries | proxy forwarded {fwd}, faulted {faulted}");
    proc.terminate().unwrap();
    drop(fb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_sigkill_during_compaction_then_a_clean_pass_reads_every_sample_once() {
    use strata_tests::faultproxy::Fault;
    let Some(bin) = strata_bin() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let Some(fb) = FaultyBucket::start(tmp.path(), "5s").await else { return };
    let mut expected = BTreeMap::new();
    let mut produced = compaction_bucket(&bin, &fb, tmp.path(), &mut expected).await;
    let w = old_window();
    // C: a third copy across A's and B's blocks, and a block past the window so the
    // 12 h window is complete and merges horizontally too.
    let c = [
        range_request("compact", 0..24, w + HOUR, w + 5 * HOUR),
        range_request("compact", 0..4, w + 12 * HOUR, w + 13 * HOUR),
    ];
    produced += produce_blocks(&bin, &fb, &tmp.path().join("c"), &c, &mut expected).await;
    let (live0, _, _) = fb.ls(&bin);
    // Every request 40 ms slower: the pass spreads over seconds and the kills land
    // in listing, reading, uploading, marking and deleting.
    fb.proxy.set(Fault::Delay(Duration::from_millis(40)));
    let mut rows = Vec::new();
    let mut killed = 0;
    for delay_ms in [300u64, 900, 1200, 1500, 1900, 2400] {
        let mut args = vec!["compact", "--once"];
        args.extend(fb.args(true));
        let mut child = spawn_strata(&bin, &args).unwrap();
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let outcome = match child.try_wait().unwrap() {
            Some(status) => format!("finished first ({status})"),
            None => {
                child.kill().unwrap(); // SIGKILL, by its pid
                killed += 1;
                "SIGKILL".to_string()
            }
        };
        let _ = child.wait_with_output().unwrap();
        let (kinds, report, _) = fb.verify(&bin);
        assert!(
            damage(&kinds).is_empty(),
            "kill at {delay_ms} ms: the bucket is damaged: {:?}\n{report}",
            damage(&kinds)
        );
        let (live, marked, no_compact) = fb.ls(&bin);
        assert_eq!(no_compact, 0, "kill at {delay_ms} ms: no-compact mark");
        rows.push(format!(
            "sigkill | at {delay_ms:>4} ms: {outcome:<22} | verify: {kinds:?} | blocks live {live}, marked {marked}"
        ));
    }
    assert!(killed >= 3, "only {killed} of 6 cycles were killed mid-pass");
    fb.proxy.set(Fault::Pass);
    let clean = fb.run(&bin, &["compact", "--once"], true, Duration::from_secs(60));
    assert_eq!(clean.code, Some(0), "clean pass:\n{}", clean.output);
    let (kinds, report, code) = fb.verify(&bin);
    assert!(damage(&kinds).is_empty() && !kinds.contains_key("overlap"), "after the clean pass:\n{report}");
    assert_eq!(code, Some(0), "verify after the clean pass:\n{report}");
    let (live, marked, _) = fb.ls(&bin);
    let total = read_back_once(&bin, &fb, &tmp.path().join("fresh"), &expected).await;
    println!(
        "fault matrix | sigkill | bucket: {produced} blocks flushed by 3 instances ({live0} live), {total} distinct samples"
    );
    for r in rows {
        println!("fault matrix | {r}");
    }
    println!(
        "fault matrix | sigkill | clean compact --once exit 0 after {} ms; verify {kinds:?}, exit 0; blocks live {live}, \
         marked {marked}; fresh instance read {total} samples, lost 0, duplicated 0",
        clean.took.as_millis()
    );
    drop(fb);
}
