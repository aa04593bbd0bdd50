//! Faults Strata must ride out by itself, with the real binary: a disk that fills up
//! under the WAL, an object store that errors or stalls (through [`FaultProxy`]), and
//! SIGKILL during compaction. Principle: no acknowledged sample is lost or doubled,
//! bad faults answer 503 (retryable) and never 500, and once the fault goes Strata
//! recovers without a restart. Each test prints its row of the fault matrix.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use strata_proto::prometheus as pb;
use strata_tests::*;
use tokio::sync::Mutex;

const WRITERS: usize = 2;
const SERIES_PER_WRITER: usize = 20;
const SAMPLES_PER_REQUEST: i64 = 10;

fn value(series: usize, t: i64) -> f64 {
    (series as f64) * 1e6 + (t as f64) * 0.25
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
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
    let Some(bin) = strata_bin() else {
        println!("SKIPPED: strata binary not built (cargo build -p strata --bins, or set STRATA_BIN)");
        return;
    };
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
    let Some(bin) = strata_bin() else {
        println!("SKIPPED: strata binary not built (cargo build -p strata --bins, or set STRATA_BIN)");
        return;
    };
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
