//! Downsampling end to end: 45 days of daily blocks written straight into a bucket,
//! then the real `strata compact --once`, twice, with a 7-day raw retention. The
//! bucket must then hold 5m copies of everything older than 40 h and 1h copies of
//! everything older than 10 days, raw data only where it is younger than 7 days or
//! not yet copied, and not one sample lost on the way, also when the compactor is
//! killed in the middle.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use strata_block::{
    BlockBuilder, BlockOrigin, Bucket, BucketOptions, ObjStoreConfig, RESOLUTION_1H, RESOLUTION_5M, read_aggr_block,
    read_block, upload,
};
use strata_model::{Labels, Sample, TenantId, now_ms};
use strata_tests::*;
use ulid::Ulid;

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;
/// Sample interval of the generated data.
const STEP: i64 = 120_000;
const SERIES: usize = 6;

/// Day `[from, from + 1d)` of the workload: counters with a reset every 5 h, and gauges.
fn day(from: i64) -> Vec<(Labels, Vec<Sample>)> {
    let mut out: Vec<(Labels, Vec<Sample>)> = (0..SERIES)
        .map(|s| {
            let counter = s % 2 == 0;
            let name = if counter { "requests_total" } else { "temperature" };
            let labels = Labels::from_pairs([("__name__", name), ("s", &*s.to_string())]);
            let samples = (from..from + DAY)
                .step_by(STEP as usize)
                .map(|t| {
                    let v =
                        if counter { ((t % (5 * HOUR)) / STEP) as f64 } else { ((t / STEP + s as i64) % 41) as f64 };
                    Sample::new(t, v)
                })
                .collect();
            (labels, samples)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A bucket of 45 daily raw blocks ending today, and a config for it: 7d raw
/// retention, no deletion delay.
struct History {
    dir: tempfile::TempDir,
    store: std::sync::Arc<dyn strata_block::ObjectStore>,
    tenant: TenantId,
    now: i64,
    originals: HashSet<Ulid>,
    generated: u64,
}

impl History {
    async fn write() -> History {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let store = ObjStoreConfig::filesystem(data.join("bucket")).build().unwrap();
        let tenant = TenantId::new("anonymous").unwrap();
        let now = now_ms();
        let first_day = (now - 45 * DAY) / DAY * DAY;
        let mut originals = HashSet::new();
        let mut generated = 0u64;
        for k in 0..45 {
            let mut b = BlockBuilder::new(tenant.as_str()).unwrap();
            for (labels, samples) in day(first_day + k * DAY) {
                generated += samples.len() as u64;
                b.add_series(&labels, &samples).unwrap();
            }
            let block = b.finish(BlockOrigin::fresh()).unwrap().unwrap();
            upload(&*store, &block).await.unwrap();
            originals.insert(block.meta.ulid);
        }
        let config = dir.path().join("strata.yml");
        std::fs::write(
            &config,
            format!("data_dir: {}\ncompactor:\n  deletion_delay: 0s\nretention:\n  raw: 7d\n", data.to_str().unwrap()),
        )
        .unwrap();
        History { dir, store, tenant, now, originals, generated }
    }

    fn config(&self) -> String {
        self.dir.path().join("strata.yml").to_str().unwrap().to_string()
    }

    /// `strata compact --once` to its end, successfully.
    fn compact(&self, bin: &std::path::Path) {
        let config = self.config();
        let run = run_strata(bin, &["compact", "--once", "--config", &config], Duration::from_secs(600)).unwrap();
        assert_eq!(run.code, Some(0), "{}", run.output);
        assert!(run.output.contains("blocks downsampled"), "{}", run.output);
    }

    /// What the bucket must hold after the passes: every day somewhere, raw only
    /// within its retention, 5m up to 40 h ago, 1h up to 10 days ago, every sample
    /// counted once, and a clean `tools bucket verify`.
    async fn check(&self, bin: &std::path::Path) {
        let (store, now) = (&self.store, self.now);
        let bucket = Bucket::new(store.clone(), BucketOptions { list_ttl: Duration::ZERO, ..BucketOptions::default() });
        let blocks: Vec<_> =
            bucket.blocks(&self.tenant).await.unwrap().iter().filter(|b| b.deletion_mark.is_none()).cloned().collect();
        let at = |res: i64| blocks.iter().filter(move |b| b.meta.resolution == res);
        let sources =
            |res: i64| -> HashSet<Ulid> { at(res).flat_map(|b| b.meta.compaction.sources.iter().copied()).collect() };
        let (raw_src, five_src, hour_src) = (sources(0), sources(RESOLUTION_5M), sources(RESOLUTION_1H));

        // Every day is somewhere; what raw no longer holds, 5m does.
        for id in &self.originals {
            assert!(raw_src.contains(id) || five_src.contains(id), "day block {id} lost");
        }
        // Raw data older than the retention is gone (each was copied first), younger stays.
        for b in at(0) {
            assert!(b.meta.max_time > now - 7 * DAY, "raw block {} outlived its retention", b.meta.ulid);
        }
        assert!(at(0).any(|b| b.meta.max_time > now - DAY), "the newest raw data was kept");
        // 5m copies reach up to 40 h ago, 1h copies up to 10 days ago, and not further.
        let newest = |res: i64| at(res).map(|b| b.meta.max_time).max().unwrap_or(i64::MIN);
        let (n5, n1) = (newest(RESOLUTION_5M), newest(RESOLUTION_1H));
        assert!(n5 <= now - 40 * HOUR && n5 > now - 6 * DAY, "5m ends {n5}");
        assert!(n1 <= now - 10 * DAY && n1 > now - 20 * DAY, "1h ends {n1}");
        assert!(hour_src.is_subset(&five_src), "a 1h copy without its 5m copy");
        // The oldest days are in 1h blocks too.
        assert!(self.originals.iter().filter(|id| hour_src.contains(id)).count() >= 30);
        // Copies of one resolution never overlap once the passes are done.
        for res in [RESOLUTION_5M, RESOLUTION_1H] {
            let mut spans: Vec<(i64, i64)> = at(res).map(|b| (b.meta.min_time, b.meta.max_time)).collect();
            spans.sort_unstable();
            assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "overlapping {res} copies: {spans:?}");
        }

        // No sample lost or doubled: raw samples of uncopied raw blocks plus the
        // window counts of the 5m blocks are what was generated, per series.
        let mut per_series: BTreeMap<Labels, u64> = BTreeMap::new();
        for b in at(0).filter(|b| !b.meta.compaction.sources.iter().all(|s| five_src.contains(s))) {
            for s in read_block(&**store, &b.path).await.unwrap() {
                *per_series.entry(s.labels).or_default() += s.samples.len() as u64;
            }
        }
        for b in at(RESOLUTION_5M) {
            for s in read_aggr_block(&**store, &b.path).await.unwrap() {
                *per_series.entry(s.labels).or_default() += s.windows.iter().map(|w| u64::from(w.count)).sum::<u64>();
            }
        }
        assert_eq!(per_series.len(), SERIES);
        assert_eq!(per_series.values().sum::<u64>(), self.generated, "{per_series:?}");
        assert!(per_series.values().all(|&n| n == self.generated / SERIES as u64), "{per_series:?}");
        // The 1h copies hold what their 5m copies hold.
        let mut hour_counts = 0u64;
        for b in at(RESOLUTION_1H) {
            for s in read_aggr_block(&**store, &b.path).await.unwrap() {
                hour_counts += s.windows.iter().map(|w| u64::from(w.count)).sum::<u64>();
            }
        }
        let days_in_1h = self.originals.iter().filter(|id| hour_src.contains(id)).count() as u64;
        assert_eq!(hour_counts, days_in_1h * self.generated / 45);

        // The bucket verifies clean, downsampled blocks included.
        let config = self.config();
        let verify =
            run_strata(bin, &["tools", "bucket", "verify", "--config", &config], Duration::from_secs(120)).unwrap();
        assert_eq!(verify.code, Some(0), "{}", verify.output);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_five_days_get_5m_and_1h_copies_and_raw_expires_only_once_copied() {
    let Some(bin) = strata_bin() else { return };
    let h = History::write().await;
    // The first pass copies (raw is kept: not yet copied), the second expires raw.
    h.compact(&bin);
    h.compact(&bin);
    h.check(&bin).await;
}

/// SIGKILL at moments spread over the passes (merges, copies, supersedes, marks),
/// then passes to the end: the same bucket as without the kills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_downsampling_loses_and_doubles_nothing() {
    let Some(bin) = strata_bin() else { return };
    let h = History::write().await;
    let config = h.config();
    let mut killed = 0;
    for delay_ms in [30u64, 80, 150, 250, 400, 600, 900] {
        let mut child = spawn_strata(&bin, &["compact", "--once", "--config", &config]).unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
    }
    assert!(killed > 0, "no pass was long enough to be killed");
    h.compact(&bin);
    h.compact(&bin);
    h.check(&bin).await;
}
