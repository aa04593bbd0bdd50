//! The compactor against a real (local directory) bucket.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use object_store::{ObjectStoreExt, PutPayload};
use proptest::prelude::*;
use strata_block::{
    AggrSeries, BlockBuilder, BlockFile, BlockInfo, BlockMeta, BlockOrigin, BlockPath, Bucket, BucketOptions,
    ObjStoreConfig, RESOLUTION_1H, RESOLUTION_5M, aggr, read_aggr_block, read_block, upload,
};
use strata_model::{Labels, Sample, Series, TenantId, merge_series, stale_nan};
use ulid::Ulid;

use crate::*;

const H: i64 = 3_600_000;

/// A block meta for planning tests: ULID `n` (its time part), one series and
/// sample, level 1, the given sources (ULIDs of the same form).
pub(crate) fn block_meta(n: u64, min: i64, max: i64, resolution: i64, sources: &[u64]) -> BlockMeta {
    BlockMeta {
        version: strata_block::FORMAT_VERSION,
        ulid: Ulid::from_parts(n, u128::from(n)),
        tenant: "t".into(),
        min_time: min,
        max_time: max,
        stats: strata_block::BlockStats { num_series: 1, num_samples: 1, files: vec![] },
        compaction: strata_block::Compaction {
            level: 1,
            sources: sources.iter().map(|&s| Ulid::from_parts(s, u128::from(s))).collect(),
            parents: vec![],
            deduplicated_replica_labels: vec![],
        },
        resolution,
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    bucket: Arc<Bucket>,
    tenant: TenantId,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjStoreConfig::filesystem(dir.path()).build().unwrap();
    Fixture {
        _dir: dir,
        bucket: Bucket::new(store, BucketOptions::default()),
        tenant: TenantId::new("team-a").unwrap(),
    }
}

impl Fixture {
    async fn put(&self, series: &[Series]) -> BlockMeta {
        let mut b = BlockBuilder::new(self.tenant.as_str()).unwrap();
        for s in series {
            b.add_series(&s.labels, &s.samples).unwrap();
        }
        let block = b.finish(BlockOrigin::fresh()).unwrap().unwrap();
        upload(&**self.bucket.store(), &block).await.unwrap();
        self.bucket.invalidate(&self.tenant);
        block.meta
    }

    fn path(&self, id: Ulid) -> BlockPath {
        BlockPath::new(self.tenant.clone(), id)
    }

    async fn all(&self) -> Vec<BlockInfo> {
        self.bucket.invalidate(&self.tenant);
        self.bucket.blocks(&self.tenant).await.unwrap().to_vec()
    }

    async fn live(&self) -> Vec<BlockInfo> {
        self.all().await.into_iter().filter(|b| b.deletion_mark.is_none() && b.no_compact.is_none()).collect()
    }

    async fn read(&self, id: Ulid) -> Vec<Series> {
        read_block(&**self.bucket.store(), &self.path(id)).await.unwrap()
    }

    fn compactor(&self, opts: CompactorOptions) -> Compactor {
        Compactor::new(self.bucket.clone(), opts).unwrap()
    }
}

/// Compaction only: the fixtures' data lies in 1970, old enough to downsample.
fn opts() -> CompactorOptions {
    CompactorOptions {
        deletion_delay: Duration::from_secs(3600),
        downsample: DownsampleOptions { enabled: false, ..DownsampleOptions::default() },
        ..CompactorOptions::default()
    }
}

fn bits(series: &[Series]) -> Vec<(Labels, Vec<(i64, u64)>)> {
    series.iter().map(|s| (s.labels.clone(), s.samples.iter().map(|x| (x.t, x.v.to_bits())).collect())).collect()
}

/// `n` series of metric `m` with a sample every 15s in `[from, to)`.
fn regular(n: usize, from: i64, to: i64, v0: f64) -> Vec<Series> {
    let mut out: Vec<Series> = (0..n)
        .map(|i| Series {
            labels: Labels::from_pairs([("__name__", "m"), ("instance", &*format!("host-{i:03}"))]),
            samples: (from..to).step_by(15_000).map(|t| Sample::new(t, v0 + (t / 15_000) as f64)).collect(),
        })
        .collect();
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1_000_000i64..1_000_000, 0u32..4).prop_map(|(m, k)| m as f64 / 10f64.powi(k as i32)),
        any::<f64>(),
        Just(stale_nan()),
        Just(-0.0),
    ]
}

/// One block's series: a few label sets from a small pool (so blocks share series),
/// random timestamps in `[0, 2h)`, and an `anchor` series spanning the whole range so
/// that every block overlaps every other.
fn block_series() -> impl Strategy<Value = Vec<Series>> {
    let samples = proptest::collection::btree_map(0i64..2 * H, value(), 1..40)
        .prop_map(|m| m.into_iter().map(|(t, v)| Sample::new(t, v)).collect::<Vec<_>>());
    (proptest::collection::btree_map("[a-e]", samples, 0..5), value()).prop_map(|(m, v)| {
        let mut out: Vec<Series> = m
            .into_iter()
            .map(|(k, samples)| Series { labels: Labels::from_pairs([("__name__", "m"), ("k", &*k)]), samples })
            .collect();
        out.push(Series {
            labels: Labels::from_pairs([("__name__", "anchor")]),
            samples: vec![Sample::new(0, v), Sample::new(2 * H - 1, v)],
        });
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn compaction_preserves_every_sample(blocks in proptest::collection::vec(block_series(), 2..=4)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let f = fixture();
            let mut inputs = Vec::new();
            for series in &blocks {
                inputs.push((f.put(series).await, series.clone()));
            }
            let report = f.compactor(opts()).run_once().await.unwrap();
            assert_eq!((report.groups_merged, report.blocks_written, report.blocks_compacted), (1, 1, blocks.len()));
            // Merged in (min_time, ulid) order: the earlier block wins identical timestamps.
            inputs.sort_by_key(|(m, _)| (m.min_time, m.ulid));
            let want = merge_series(inputs.iter().map(|(_, s)| s.clone()).collect());
            let live = f.live().await;
            assert_eq!(live.len(), 1);
            let out = &live[0].meta;
            assert_eq!(out.compaction.level, 2);
            assert_eq!(out.compaction.parents, inputs.iter().map(|(m, _)| m.ulid).collect::<Vec<_>>());
            let mut sources: Vec<Ulid> = inputs.iter().map(|(m, _)| m.ulid).collect();
            sources.sort();
            assert_eq!(out.compaction.sources, sources);
            assert_eq!(bits(&f.read(out.ulid).await), bits(&want));
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merging_a_block_with_its_copy_changes_nothing() {
    let f = fixture();
    let series = regular(20, 0, 2 * H, 0.5);
    let a = f.put(&series).await;
    let b = f.put(&series).await;
    let c = f.compactor(opts());
    let report = c.run_once().await.unwrap();
    assert_eq!((report.groups_merged, report.blocks_written, report.blocks_compacted), (1, 1, 2));
    let live = f.live().await;
    assert_eq!(live.len(), 1);
    let m = &live[0].meta;
    assert_eq!(
        (m.min_time, m.max_time, m.stats.num_series, m.stats.num_samples),
        (a.min_time, a.max_time, 20, 20 * 480)
    );
    assert_eq!(bits(&f.read(m.ulid).await), bits(&series));
    let mut sources = vec![a.ulid, b.ulid];
    sources.sort();
    assert_eq!(m.compaction.sources, sources);
    for info in f.all().await.iter().filter(|i| i.meta.ulid != m.ulid) {
        let mark = info.deletion_mark.as_ref().expect("input marked");
        assert_eq!(mark.reason, format!("compacted into {}", m.ulid));
    }
    // Nothing left to do: a second pass changes nothing.
    let again = c.run_once().await.unwrap();
    assert_eq!(again, Report { tenants: 1, ..Report::default() });
    assert_eq!(c.stats().compactions.load(Ordering::Relaxed), 1);
    assert_eq!(c.stats().blocks_marked_for_deletion.load(Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_window_of_head_blocks_becomes_one_block() {
    let f = fixture();
    let mut inputs = Vec::new();
    for i in 0..7 {
        let s = regular(5, i * 2 * H, (i + 1) * 2 * H, i as f64);
        let m = f.put(&s).await;
        inputs.push((m, s));
    }
    let report = f.compactor(opts()).run_once().await.unwrap();
    assert_eq!((report.groups_merged, report.blocks_compacted), (1, 6));
    let live = f.live().await;
    assert_eq!(live.len(), 2);
    let merged = &live[0].meta;
    assert_eq!((merged.min_time, merged.max_time), (0, 12 * H - 15_000 + 1));
    assert_eq!(merged.compaction.parents.len(), 6);
    assert_eq!(live[1].meta.ulid, inputs[6].0.ulid);
    let want = merge_series(inputs[..6].iter().map(|(_, s)| s.clone()).collect());
    assert_eq!(bits(&f.read(merged.ulid).await), bits(&want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_blocks_are_marked_no_compact_and_the_rest_compacts() {
    let f = fixture();
    let a_series = regular(4, 0, 2 * H, 1.0);
    let b_series = regular(6, 0, 2 * H, 2.0);
    let a = f.put(&a_series).await;
    let b = f.put(&b_series).await;
    let garbage = f.put(&regular(3, 0, 2 * H, 3.0)).await;
    let missing = f.put(&regular(3, 0, 2 * H, 4.0)).await;
    let store = f.bucket.store();
    store.put(&f.path(garbage.ulid).file(BlockFile::Samples), PutPayload::from(vec![0x42u8; 4096])).await.unwrap();
    store.delete(&f.path(missing.ulid).file(BlockFile::Samples)).await.unwrap();

    let c = f.compactor(opts());
    let report = c.run_once().await.unwrap();
    assert_eq!(report.blocks_no_compact, 2);
    assert_eq!((report.groups_merged, report.blocks_compacted, report.failures), (1, 2, 0));
    assert_eq!(c.stats().blocks_marked_no_compact.load(Ordering::Relaxed), 2);
    let all = f.all().await;
    for bad in [garbage.ulid, missing.ulid] {
        let info = all.iter().find(|i| i.meta.ulid == bad).unwrap();
        let mark = info.no_compact.as_ref().expect("no-compact mark");
        assert_eq!(mark.id, bad);
        assert!(info.deletion_mark.is_none());
    }
    let reason = |id| all.iter().find(|i| i.meta.ulid == id).unwrap().no_compact.as_ref().unwrap().reason.clone();
    assert!(reason(missing.ulid).contains("data file missing"), "{}", reason(missing.ulid));
    assert!(reason(garbage.ulid).contains("samples.parquet"), "{}", reason(garbage.ulid));

    let live = f.live().await;
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].meta.compaction.parents.len(), 2);
    let mut ab = vec![(a.clone(), a_series), (b.clone(), b_series)];
    ab.sort_by_key(|(m, _)| (m.min_time, m.ulid));
    let want = merge_series(ab.into_iter().map(|(_, s)| s).collect());
    assert_eq!(bits(&f.read(live[0].meta.ulid).await), bits(&want));

    // The marked blocks stay out of later passes.
    assert_eq!(c.run_once().await.unwrap(), Report { tenants: 1, ..Report::default() });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_marks_and_gc_deletes_after_the_delay() {
    let f = fixture();
    let now = now_unix_ms();
    let old1 = f.put(&regular(2, 0, 2 * H, 0.0)).await;
    let old2 = f.put(&regular(2, 10 * H, 12 * H, 0.0)).await;
    let recent = f.put(&regular(2, now - 2 * H, now - H, 0.0)).await;

    // With a delay, marks are written but nothing is deleted yet.
    let day = Duration::from_secs(86_400);
    let retention = Retention { raw: Some(day), ..Retention::default() };
    let marked = apply_retention(&f.bucket, &f.tenant, &retention, false, now).await.unwrap();
    assert_eq!(marked.len(), 2);
    assert!(marked.contains(&old1.ulid) && marked.contains(&old2.ulid));
    let all = f.all().await;
    assert!(
        all.iter()
            .filter(|b| b.meta.ulid != recent.ulid)
            .all(|b| b.deletion_mark.as_ref().unwrap().reason == "retention")
    );
    let gc = collect_garbage(&f.bucket, &f.tenant, Duration::from_secs(3600), now).await.unwrap();
    assert_eq!(gc, GcReport::default());
    let gc = collect_garbage(&f.bucket, &f.tenant, Duration::from_secs(3600), now + 3_601_000).await.unwrap();
    assert_eq!(gc.deleted.len(), 2);
    let left = f.all().await;
    assert_eq!(left.iter().map(|b| b.meta.ulid).collect::<Vec<_>>(), [recent.ulid]);
    assert!(f.bucket.scan(&f.tenant).await.unwrap().iter().all(|s| s.path.id == recent.ulid));

    // The whole loop with deletion_delay = 0: marked and deleted in one pass.
    let old3 = f.put(&regular(2, 0, 2 * H, 0.0)).await;
    let o = CompactorOptions {
        deletion_delay: Duration::ZERO,
        retention: CompactorOptions::uniform_retention(retention),
        ..opts()
    };
    let report = f.compactor(o).run_once().await.unwrap();
    assert_eq!((report.blocks_expired, report.blocks_deleted), (1, 1));
    assert!(f.all().await.iter().all(|b| b.meta.ulid != old3.ulid));
    assert_eq!(f.live().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_removes_abandoned_uploads_only_when_old() {
    let f = fixture();
    let kept = f.put(&regular(1, 0, H, 0.0)).await;
    let abandoned = f.path(Ulid::new());
    f.bucket.store().put(&abandoned.file(BlockFile::Series), PutPayload::from(vec![1u8; 10])).await.unwrap();
    let now = now_unix_ms();
    let young = collect_garbage(&f.bucket, &f.tenant, Duration::ZERO, now).await.unwrap();
    assert_eq!(young, GcReport::default());
    // Older than an hour (the floor, even with no deletion delay): deleted.
    let old = collect_garbage(&f.bucket, &f.tenant, Duration::ZERO, now + 3_601_000).await.unwrap();
    assert_eq!(old.incomplete, [abandoned.id]);
    let dirs: Vec<Ulid> = f.bucket.scan(&f.tenant).await.unwrap().iter().map(|s| s.path.id).collect();
    assert_eq!(dirs, [kept.ulid]);
    // A longer deletion delay raises the floor.
    let abandoned = f.path(Ulid::new());
    f.bucket.store().put(&abandoned.file(BlockFile::Series), PutPayload::from(vec![1u8; 10])).await.unwrap();
    let r = collect_garbage(&f.bucket, &f.tenant, Duration::from_secs(7200), now + 3_601_000).await.unwrap();
    assert!(r.incomplete.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_stops_on_shutdown() {
    let f = fixture();
    f.put(&regular(2, 0, 2 * H, 0.0)).await;
    f.put(&regular(2, 0, 2 * H, 0.0)).await;
    let c = f.compactor(opts());
    let stats = c.stats();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(c.run(Duration::from_secs(3600), rx));
    for _ in 0..200 {
        if stats.runs.load(Ordering::Relaxed) > 0 && stats.last_success_unix_seconds.load(Ordering::Relaxed) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stats.compactions.load(Ordering::Relaxed), 1);
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("run stops").unwrap();
    let m = stats.metrics();
    assert!(m.iter().any(|m| m.name == metric_names::COMPACTIONS && m.value == 1.0));
}

#[test]
fn options_are_validated() {
    let bucket = fixture().bucket;
    let bad = |ranges: Vec<i64>| Compactor::new(bucket.clone(), CompactorOptions { ranges, ..opts() }).is_err();
    assert!(bad(vec![]));
    assert!(bad(vec![2 * H, 0]));
    assert!(bad(vec![12 * H, 2 * H]));
    assert!(!bad(vec![2 * H, 12 * H]));
    assert_eq!(
        CompactorOptions::ranges_from(&[Duration::from_secs(7200), Duration::from_secs(43_200)]),
        [2 * H, 12 * H]
    );
}

/// An HA pair's series: `replica` label `a` or `b`, scraping out of phase.
fn replica_series(replica: &str, from: i64, to: i64, phase: i64, skip: std::ops::Range<i64>) -> Vec<Series> {
    ["requests_total", "up"]
        .iter()
        .map(|name| Series {
            labels: Labels::from_pairs([("__name__", *name), ("instance", "x"), ("replica", replica)]),
            samples: (from / 15_000..to / 15_000)
                .map(|k| k * 15_000 + phase)
                .filter(|t| !skip.contains(t))
                .map(|t| Sample::new(t, if *name == "up" { 1.0 } else { (t / 1000) as f64 }))
                .collect(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_dedup_keeps_one_series_per_target_and_records_the_labels() {
    let f = fixture();
    // Replica a in one block with a hole, replica b in an overlapping one, and a
    // third block holding both replicas on its own (nothing to merge it with).
    let a = f.put(&replica_series("a", 0, 2 * H, 0, H / 2..H)).await;
    let b = f.put(&replica_series("b", 0, 2 * H, 5_000, 0..0)).await;
    let mut both = replica_series("a", 20 * H, 22 * H, 0, 0..0);
    both.extend(replica_series("b", 20 * H, 22 * H, 5_000, 0..0));
    both.sort_by(|x, y| x.labels.cmp(&y.labels));
    f.put(&both).await;
    let want_first =
        strata_model::dedup_samples(&[&f.read(a.ulid).await[0].samples, &f.read(b.ulid).await[0].samples], true);

    let o = CompactorOptions { replica_labels: vec!["replica".into()], ..opts() };
    let c = f.compactor(o.clone());
    c.run_once().await.unwrap();
    let live = f.live().await;
    assert_eq!(live.len(), 2, "{live:?}");
    for block in &live {
        assert_eq!(block.meta.compaction.deduplicated_replica_labels, ["replica"]);
        let series = f.read(block.meta.ulid).await;
        assert_eq!(series.len(), 2, "one series per target: {series:?}");
        assert!(series.iter().all(|s| s.labels.get("replica").is_none()));
        // The hole in replica a is filled from b: no gap longer than one scrape plus the phase.
        for s in &series {
            assert!(s.samples.windows(2).all(|w| w[1].t - w[0].t <= 20_000), "{:?}", s.labels);
            if s.labels.get("__name__") == Some("requests_total") {
                assert!(s.samples.windows(2).all(|w| w[1].v >= w[0].v), "counter went backwards");
            }
        }
    }
    let first = live.iter().find(|b| b.meta.min_time == 0).unwrap();
    let counter =
        f.read(first.meta.ulid).await.into_iter().find(|s| s.labels.get("__name__") == Some("requests_total"));
    assert_eq!(counter.unwrap().samples, want_first, "the same merge as query-time dedup");
    // Nothing left to do: a second pass writes nothing.
    let again = c.run_once().await.unwrap();
    assert_eq!(again.blocks_written, 0, "{again:?}");
}

/// Compaction and downsampling as configured by default (the fixtures' data is old).
fn downsampling() -> CompactorOptions {
    CompactorOptions { deletion_delay: Duration::from_secs(3600), ..CompactorOptions::default() }
}

impl Fixture {
    async fn read_aggr(&self, id: Ulid) -> Vec<AggrSeries> {
        read_aggr_block(&**self.bucket.store(), &self.path(id)).await.unwrap()
    }

    /// The live block of `resolution` whose sources are `sources`.
    async fn copy_of(&self, sources: &[Ulid], resolution: i64) -> BlockInfo {
        let live = self.live().await;
        let found = live.iter().find(|b| b.meta.resolution == resolution && b.meta.compaction.sources == sources);
        found.unwrap_or_else(|| panic!("no live copy of {sources:?} at {resolution}: {live:?}")).clone()
    }
}

/// What a downsampled copy of `raw` must hold.
fn aggregated(raw: &[Series], resolution: i64) -> Vec<AggrSeries> {
    raw.iter()
        .map(|s| AggrSeries { labels: s.labels.clone(), windows: aggr::aggregate(&s.samples, resolution) })
        .collect()
}

/// A counter with resets inside 5m windows and exactly at a window edge, and a
/// gauge that ends with a stale marker.
fn counters_and_gauges(from: i64, to: i64) -> Vec<Series> {
    let mut counter = Vec::new();
    let mut v = 0.0;
    for t in (from..to).step_by(15_000) {
        v = if t % (37 * 60_000) == 0 || t % (5 * 60_000) == 0 && t % (3 * 3_600_000) == 0 { 1.0 } else { v + 3.0 };
        counter.push(Sample::new(t, v));
    }
    let mut gauge: Vec<Sample> =
        (from..to - 60_000).step_by(10_000).map(|t| Sample::new(t, (t / 1000 % 97) as f64)).collect();
    gauge.push(Sample::new(to - 30_000, stale_nan()));
    let mut out = vec![
        Series { labels: Labels::from_pairs([("__name__", "g")]), samples: gauge },
        Series { labels: Labels::from_pairs([("__name__", "c_total")]), samples: counter },
    ];
    out.extend(regular(3, from, to, 5.0));
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_raw_blocks_get_5m_and_1h_copies_equal_to_the_raw_aggregates() {
    let f = fixture();
    // Two 2h blocks in an incomplete 12h window: never compacted, downsampled anyway.
    let b1 = f.put(&counters_and_gauges(0, 2 * H)).await;
    let b2 = f.put(&counters_and_gauges(2 * H, 4 * H)).await;
    let c = f.compactor(downsampling());
    let report = c.run_once().await.unwrap();
    assert_eq!((report.groups_merged, report.blocks_downsampled), (0, 4), "{report:?}");
    for raw in [&b1, &b2] {
        let series = f.read(raw.ulid).await;
        let five = f.copy_of(&raw.compaction.sources, RESOLUTION_5M).await;
        let want5 = aggregated(&series, RESOLUTION_5M);
        assert_eq!(f.read_aggr(five.meta.ulid).await, want5);
        assert_eq!(five.meta.compaction.parents, [raw.ulid]);
        let hour = f.copy_of(&raw.compaction.sources, RESOLUTION_1H).await;
        let want1: Vec<AggrSeries> = want5
            .iter()
            .map(|s| AggrSeries { labels: s.labels.clone(), windows: aggr::coarsen(&s.windows, RESOLUTION_1H) })
            .collect();
        assert_eq!(f.read_aggr(hour.meta.ulid).await, want1);
        // The 1h copy of the 5m copy is the 1h aggregate of the raw data.
        let direct = aggregated(&series, RESOLUTION_1H);
        for (a, b) in want1.iter().zip(&direct) {
            assert_eq!(a.windows.len(), b.windows.len());
            for (x, y) in a.windows.iter().zip(&b.windows) {
                assert_eq!((x.count, x.resets, x.first_t, x.last_t), (y.count, y.resets, y.first_t, y.last_t));
                assert!((x.sum - y.sum).abs() <= 1e-9 * y.sum.abs().max(1.0), "{x:?} {y:?}");
            }
        }
    }
    // Nothing left to do.
    let again = c.run_once().await.unwrap();
    assert_eq!(again, Report { tenants: 1, ..Report::default() });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_block_is_downsampled_again_and_replaces_the_smaller_copies() {
    let f = fixture();
    let b1 = f.put(&regular(4, 0, 2 * H, 0.0)).await;
    f.put(&regular(4, 2 * H, 4 * H, 0.0)).await;
    let c = f.compactor(downsampling());
    c.run_once().await.unwrap();
    let old5 = f.copy_of(&b1.compaction.sources, RESOLUTION_5M).await;
    let old1 = f.copy_of(&b1.compaction.sources, RESOLUTION_1H).await;
    // A late copy of b1's data overlaps it: the raw blocks merge, and the merged
    // block's copies supersede b1's.
    let copy = f.put(&regular(4, 0, 2 * H, 0.0)).await;
    let report = c.run_once().await.unwrap();
    assert_eq!((report.groups_merged, report.blocks_downsampled), (1, 2), "{report:?}");
    let mut sources = vec![b1.ulid, copy.ulid];
    sources.sort();
    let new5 = f.copy_of(&sources, RESOLUTION_5M).await;
    f.copy_of(&sources, RESOLUTION_1H).await;
    assert_eq!(f.read_aggr(new5.meta.ulid).await, f.read_aggr(old5.meta.ulid).await);
    let all = f.all().await;
    for old in [&old5, &old1] {
        let b = all.iter().find(|b| b.meta.ulid == old.meta.ulid).unwrap();
        assert!(b.deletion_mark.as_ref().is_some_and(|m| m.reason.starts_with("downsampled again")), "{b:?}");
    }
    let live = f.live().await;
    assert_eq!(live.iter().filter(|b| b.meta.resolution == RESOLUTION_5M).count(), 2);
    assert_eq!(live.iter().filter(|b| b.meta.resolution == RESOLUTION_1H).count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_expires_only_once_its_downsampled_copy_exists() {
    let f = fixture();
    let raw = f.put(&regular(2, 0, 2 * H, 0.0)).await;
    let day = Duration::from_secs(86_400);
    let keep_raw_a_day = Retention { raw: Some(day), five_m: None, one_h: None };
    let o = CompactorOptions { retention: CompactorOptions::uniform_retention(keep_raw_a_day), ..downsampling() };
    let c = f.compactor(o.clone());
    // First pass: expired, but no copy yet: kept, then downsampled.
    let first = c.run_once().await.unwrap();
    assert_eq!((first.blocks_expired, first.blocks_downsampled), (0, 2), "{first:?}");
    assert!(f.live().await.iter().any(|b| b.meta.ulid == raw.ulid));
    // Second pass: the 5m copy exists, raw goes; 5m and 1h stay (kept forever).
    let second = c.run_once().await.unwrap();
    assert_eq!(second.blocks_expired, 1, "{second:?}");
    let live = f.live().await;
    assert_eq!(live.iter().map(|b| b.meta.resolution).collect::<Vec<_>>().len(), 2);
    assert!(live.iter().all(|b| !b.meta.is_raw()));
    // Without downsampling, raw goes at once.
    let f = fixture();
    f.put(&regular(2, 0, 2 * H, 0.0)).await;
    let off = CompactorOptions { downsample: DownsampleOptions { enabled: false, ..o.downsample.clone() }, ..o };
    let r = f.compactor(off).run_once().await.unwrap();
    assert_eq!((r.blocks_expired, r.blocks_downsampled), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_raw_block_is_marked_no_compact_and_not_downsampled() {
    let f = fixture();
    let good = f.put(&regular(2, 0, 2 * H, 0.0)).await;
    let bad = f.put(&regular(2, 24 * H, 26 * H, 0.0)).await;
    let key = f.path(bad.ulid).file(BlockFile::Samples);
    f.bucket.store().put(&key, PutPayload::from(vec![7u8; 64])).await.unwrap();
    let report = f.compactor(downsampling()).run_once().await.unwrap();
    assert_eq!((report.blocks_no_compact, report.blocks_downsampled), (1, 2), "{report:?}");
    f.copy_of(&good.compaction.sources, RESOLUTION_1H).await;
    let all = f.all().await;
    assert!(all.iter().find(|b| b.meta.ulid == bad.ulid).unwrap().no_compact.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_left_unmarked_by_a_killed_pass_is_superseded_by_the_next() {
    let f = fixture();
    let raw = f.put(&regular(2, 0, 2 * H, 0.0)).await;
    let input = f.live().await.into_iter().find(|b| b.meta.ulid == raw.ulid).unwrap();
    // Two copies of one block: what two passes leave when each is killed after its
    // upload (the bucket listing of the second did not see the first's copy yet).
    let spool = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        downsample_block(&f.bucket, &input, RESOLUTION_5M, spool.path()).await.unwrap();
    }
    f.bucket.invalidate(&f.tenant);
    assert_eq!(f.live().await.iter().filter(|b| b.meta.resolution == RESOLUTION_5M).count(), 2);
    f.compactor(downsampling()).run_once().await.unwrap();
    let live = f.live().await;
    assert_eq!(live.iter().filter(|b| b.meta.resolution == RESOLUTION_5M).count(), 1, "{live:?}");
    assert_eq!(live.iter().filter(|b| b.meta.resolution == RESOLUTION_1H).count(), 1, "{live:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_files_left_by_a_killed_process_are_removed_when_old() {
    let f = fixture();
    let spool = tempfile::tempdir().unwrap();
    let old = spool.path().join(".tmpold");
    let young = spool.path().join(".tmpyoung");
    std::fs::write(&old, b"x").unwrap();
    std::fs::write(&young, b"x").unwrap();
    let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::options().write(true).open(&old).unwrap().set_modified(two_hours_ago).unwrap();
    let o = CompactorOptions { spool_dir: spool.path().to_path_buf(), ..opts() };
    f.compactor(o).run_once().await.unwrap();
    assert!(!old.exists(), "an hour-old spool file is removed");
    assert!(young.exists(), "a young one may belong to a running merge");
}
