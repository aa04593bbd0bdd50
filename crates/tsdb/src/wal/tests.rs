//! The writer's failure handling, with segment writes made to fail on demand.

use std::time::{Duration, Instant};

use strata_model::{Sample, TenantId};

use super::record::{self, RefSample};
use super::segment::fault;
use super::*;
use crate::{SeriesInput, Tsdb, TsdbOptions};

fn frames(i: u64) -> Vec<u8> {
    let mut payload = Vec::new();
    record::encode_samples(&mut payload, "t", &[RefSample { series_ref: 1, sample: Sample::new(i as i64, i as f64) }]);
    let mut out = Vec::new();
    put_frame(&mut out, record::TYPE_SAMPLES, &payload);
    out
}

fn replayed(dir: &Path) -> Vec<i64> {
    let mut ts = Vec::new();
    let wal = Wal::open(dir, WalOptions::default(), |_, rec| {
        if let Record::Samples { samples, .. } = rec {
            ts.extend(samples.iter().map(|s| s.sample.t));
        }
    })
    .unwrap();
    drop(wal);
    ts
}

async fn until_healthy(is_failed: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while is_failed() {
        assert!(start.elapsed() < Duration::from_secs(5), "wal did not recover");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

#[tokio::test]
async fn failed_writes_stay_pending_and_land_once_the_disk_takes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let wal = Wal::open(&dir, WalOptions::default(), |_, _| {}).unwrap();
    wal.append(frames(1), 1, None).wait().await.unwrap();

    fault::set(&dir, true);
    assert!(wal.append(frames(2), 1, None).wait().await.is_err(), "a failed write is never acknowledged");
    assert!(wal.is_failed());
    // Queued while failed (its samples would already be in the head): refused, kept.
    assert!(wal.append(frames(3), 1, None).wait().await.is_err());
    // A duplicate-only request cannot be acknowledged ahead of the pending originals.
    assert!(wal.append(Vec::new(), 0, None).wait().await.is_err());
    // A rotation would seal the segment ahead of the pending bytes.
    assert!(wal.request_rotate().await.unwrap().is_err());
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(wal.is_failed(), "retries keep failing while the disk does");
    assert!(wal.stats().write_failures.load(Ordering::Relaxed) >= 2);

    fault::set(&dir, false);
    until_healthy(|| wal.is_failed()).await;
    assert_eq!(wal.stats().recoveries.load(Ordering::Relaxed), 1);
    wal.append(frames(4), 1, None).wait().await.unwrap();
    assert!(wal.request_rotate().await.unwrap().is_ok());
    wal.append(frames(5), 1, None).wait().await.unwrap();
    drop(wal);
    assert_eq!(replayed(&dir), vec![1, 2, 3, 4, 5], "pending bytes written once, in queue order");
}

#[tokio::test]
async fn shutdown_while_failed_tries_once_more() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let wal = Wal::open(&dir, WalOptions::default(), |_, _| {}).unwrap();
    fault::set(&dir, true);
    assert!(wal.append(frames(1), 1, None).wait().await.is_err());
    drop(wal); // the last try fails too: nothing was acknowledged, nothing written
    fault::set(&dir, false);
    assert_eq!(replayed(&dir), Vec::<i64>::new());
}

#[tokio::test]
async fn tsdb_refuses_appends_while_the_wal_cannot_write_and_resumes_by_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Tsdb::open(tmp.path(), TsdbOptions::default()).unwrap();
    let tenant = TenantId::new("t").unwrap();
    let labels = [("__name__", "m")];
    let append = |t: i64| {
        let samples = [Sample::new(t, t as f64)];
        db.append(&tenant, &[SeriesInput { labels: &labels, samples: &samples }], &[])
    };
    append(1).unwrap().1.wait().await.unwrap();
    fault::set(&tmp.path().join("wal"), true);
    let (_, commit) = append(2).unwrap();
    assert!(commit.wait().await.is_err());
    assert!(db.is_failed());
    assert!(matches!(append(3), Err(crate::Error::WalFailed)), "refused before the head");
    fault::set(&tmp.path().join("wal"), false);
    until_healthy(|| db.is_failed()).await;
    // The client's retry of t=2: a duplicate, acknowledged, and durable.
    let (outcome, commit) = append(2).unwrap();
    commit.wait().await.unwrap();
    assert_eq!(outcome.duplicates_ignored, 1);
    append(3).unwrap().1.wait().await.unwrap();
    drop(db);
    let db = Tsdb::open(tmp.path(), TsdbOptions::default()).unwrap();
    let head = db.head(&tenant).unwrap();
    assert_eq!(head.stats().samples, 3);
}
