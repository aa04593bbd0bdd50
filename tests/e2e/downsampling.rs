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

/// Scrapes are this far after each interval's start, as a real scrape's offset
/// (never on a window edge).
const OFFSET: i64 = 7_000;

/// Day `[from, from + 1d)` of the workload: counters with a reset every 5 h, and gauges.
fn day(from: i64) -> Vec<(Labels, Vec<Sample>)> {
    let mut out: Vec<(Labels, Vec<Sample>)> = (0..SERIES)
        .map(|s| {
            let counter = s % 2 == 0;
            let name = if counter { "requests_total" } else { "temperature" };
            let labels = Labels::from_pairs([("__name__", name), ("s", &*s.to_string())]);
            let samples = (from + OFFSET..from + DAY)
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
        Self::write_with_raw_retention("7d").await
    }

    async fn write_with_raw_retention(raw: &str) -> History {
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
        let h = History { dir, store, tenant, now, originals, generated };
        h.set_raw_retention(raw);
        h
    }

    fn set_raw_retention(&self, raw: &str) {
        let data = self.dir.path().join("data");
        std::fs::write(
            self.config(),
            format!(
                "data_dir: {}\ncompactor:\n  deletion_delay: 0s\nretention:\n  raw: {raw}\n",
                data.to_str().unwrap()
            ),
        )
        .unwrap();
    }

    /// A `strata query` node over the bucket (read-only).
    async fn query_node(&self, bin: &std::path::Path) -> StrataProcess {
        let config = self.dir.path().join("query.yml");
        let bucket = self.dir.path().join("data").join("bucket");
        std::fs::write(
            &config,
            format!("objstore:\n  type: FILESYSTEM\n  config:\n    directory: {}\n", bucket.to_str().unwrap()),
        )
        .unwrap();
        StrataProcess::query(bin, &config, free_port()).await.unwrap()
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

/// One range query's answer: `(labels, t) -> value`, and its `infos`.
async fn range_answer(
    node: &StrataProcess,
    query: &str,
    (start, end, step): (i64, i64, i64),
    resolution: &str,
) -> (BTreeMap<(String, i64), f64>, Vec<String>) {
    let url = format!(
        "{}/api/v1/query_range?{}",
        node.base(),
        query_string(&[
            ("query", query.to_string()),
            ("start", (start / 1000).to_string()),
            ("end", (end / 1000).to_string()),
            ("step", (step / 1000).to_string()),
            ("max_source_resolution", resolution.to_string()),
        ])
    );
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 200, "{query} ({resolution})");
    let body: serde_json::Value = r.json().await.unwrap();
    let mut out = BTreeMap::new();
    for s in body["data"]["result"].as_array().unwrap() {
        let labels = s["metric"].to_string();
        for p in s["values"].as_array().unwrap() {
            let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
            out.insert((labels.clone(), t), p[1].as_str().unwrap().parse::<f64>().unwrap());
        }
    }
    let infos = body["infos"].as_array().map(|a| a.iter().map(|i| i.as_str().unwrap().to_string()).collect());
    (out, infos.unwrap_or_default())
}

/// The query side over the same 45 days: dashboards at a 1h and a 6h step read the
/// 5m and 1h copies (`auto`), their answers are compared with raw answers per
/// function, and once raw data is expired (7 days) the 45-day dashboard still
/// answers from the copies where `raw` has nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_read_the_copies_and_outlive_raw_retention() {
    let Some(bin) = strata_bin() else { return };
    let h = History::write_with_raw_retention("0s").await;
    h.compact(&bin);
    let node = h.query_node(&bin).await;
    let end = h.now / HOUR * HOUR;
    let start = end - 44 * DAY;
    // Exact over whole windows (step and range multiples of the resolution).
    let exact = [
        "sum_over_time(temperature[R])",
        "count_over_time(temperature[R])",
        "min_over_time(temperature[R])",
        "max_over_time(temperature[R])",
        "avg_over_time(temperature[R])",
        "last_over_time(temperature[R])",
        "increase(requests_total[R])",
        "rate(requests_total[R])",
        "resets(requests_total[R])",
        "sum(rate(requests_total[R]))",
        "temperature",
    ];
    let approximate = ["irate(requests_total[R])"];
    let mut report = Vec::new();
    let mut dashboard_steps = 0;
    for (step, resolution) in [(HOUR, "5m"), (6 * HOUR, "1h")] {
        let range = strata_model::format_resolution(step);
        for (q, must_match) in exact.iter().map(|q| (q, true)).chain(approximate.iter().map(|q| (q, false))) {
            let q = q.replace('R', &range);
            let (raw, raw_infos) = range_answer(&node, &q, (start, end, step), "raw").await;
            let (auto, infos) = range_answer(&node, &q, (start, end, step), "auto").await;
            assert!(raw_infos.iter().all(|i| !i.contains("downsampled")), "{q}: {raw_infos:?}");
            assert!(
                infos.iter().any(|i| i.contains(&format!("downsampled data at resolution {resolution}"))),
                "{q}: {infos:?}"
            );
            let missing = raw.keys().filter(|k| !auto.contains_key(*k)).count();
            let extra = auto.keys().filter(|k| !raw.contains_key(*k)).count();
            let max_rel = raw
                .iter()
                .filter_map(|(k, a)| auto.get(k).map(|b| (a, b)))
                .map(|(a, b)| if a == b { 0.0 } else { (a - b).abs() / a.abs().max(b.abs()) })
                .fold(0.0f64, f64::max);
            report.push(format!(
                "{q:<40} step {:>3}: {} points, {missing} missing, {extra} extra, max relative difference {max_rel:.2e}",
                range,
                raw.len()
            ));
            assert!(!raw.is_empty(), "{q}: no raw answer");
            if q == "sum(rate(requests_total[1h]))" {
                dashboard_steps = raw.len();
            }
            if must_match {
                assert_eq!((missing, extra), (0, 0), "{q}");
                assert!(max_rel <= 1e-9, "{q}: {max_rel}");
            }
        }
    }
    eprintln!("auto against raw over 44 days:\n{}", report.join("\n"));
    node.kill();

    // Raw retention of 7 days: the copies answer what raw no longer holds.
    h.set_raw_retention("7d");
    h.compact(&bin);
    let node = h.query_node(&bin).await;
    let q = "sum(rate(requests_total[1h]))";
    let (raw, _) = range_answer(&node, q, (start, end, HOUR), "raw").await;
    let (auto, infos) = range_answer(&node, q, (start, end, HOUR), "auto").await;
    assert!(raw.keys().all(|(_, t)| *t > h.now - 8 * DAY), "raw data older than its retention answered");
    // Every step the raw data answered before it expired.
    assert_eq!(auto.len(), dashboard_steps, "{infos:?}");
    assert!(auto.keys().any(|(_, t)| *t < start + DAY), "the oldest days answered");
    // 5m is the coarsest a 1h step allows; raw holds the last 40 h.
    assert!(infos.iter().any(|i| i.contains("resolution 5m")), "{infos:?}");
    // An explicit resolution and a bad one.
    let (five, _) = range_answer(&node, q, (start, end, HOUR), "5m").await;
    assert_eq!(five.len(), auto.len());
    let bad = reqwest::get(format!(
        "{}/api/v1/query_range?query=up&start=0&end=60&step=15&max_source_resolution=often",
        node.base()
    ))
    .await
    .unwrap();
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(body["errorType"], "bad_data", "{body}");
    node.kill();
}
