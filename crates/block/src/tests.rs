//! Round trips through the real format and a real (local) object store.

use std::sync::Arc;

use proptest::prelude::*;
use strata_model::{Labels, Matcher, Querier, Sample, SelectHints, Series, TenantId, stale_nan};

use crate::aggr::AggrSeries;

use crate::*;

fn build(tenant: &str, series: &[Series]) -> EncodedBlock {
    let mut b = BlockBuilder::new(tenant).unwrap();
    for s in series {
        b.add_series(&s.labels, &s.samples).unwrap();
    }
    b.finish(BlockOrigin::fresh()).unwrap().unwrap()
}

fn bits(series: &[Series]) -> Vec<(Labels, Vec<(i64, u64)>)> {
    series.iter().map(|s| (s.labels.clone(), s.samples.iter().map(|x| (x.t, x.v.to_bits())).collect())).collect()
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1_000_000i64..1_000_000, 0u32..6).prop_map(|(m, k)| m as f64 / 10f64.powi(k as i32)),
        any::<f64>(),
        Just(stale_nan()),
        Just(f64::from_bits(0x7ff8_0000_0000_1234)),
        Just(-0.0),
        Just(f64::INFINITY),
    ]
}

fn series_set() -> impl Strategy<Value = Vec<Series>> {
    let one =
        (proptest::collection::btree_set(0i64..5_000, 1..60), proptest::collection::vec(value(), 60), 0i64..1_000_000)
            .prop_map(|(ts, vs, base)| ts.into_iter().zip(vs).map(|(t, v)| Sample::new(base + t * 997, v)).collect());
    proptest::collection::btree_map("[a-c]{1,3}", one, 1..12).prop_map(|m| {
        m.into_iter()
            .map(|(name, samples)| Series { labels: Labels::from_pairs([("__name__", "m"), ("k", &*name)]), samples })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn block_round_trip_is_bit_exact(series in series_set()) {
        let block = build("t", &series);
        prop_assert_eq!(block.meta.stats.num_series, series.len() as u64);
        let path = BlockPath::new(TenantId::new("t").unwrap(), block.meta.ulid);
        let back = decode_block(&path, block.series.clone(), block.samples.to_bytes().unwrap()).unwrap();
        prop_assert_eq!(bits(&back), bits(&series));
    }
}

fn workload(n: usize, samples: usize) -> Vec<Series> {
    let mut out: Vec<Series> = (0..n)
        .map(|i| Series {
            labels: Labels::from_pairs([
                ("__name__", if i % 2 == 0 { "up" } else { "node_cpu_seconds_total" }),
                ("instance", &*format!("host-{i:04}:9100")),
                ("job", "node"),
            ]),
            samples: (0..samples as i64)
                .map(|k| {
                    Sample::new(1_700_000_000_000 + k * 15_000 + (k % 7 == 3) as i64, (i as f64) * 0.25 + k as f64)
                })
                .collect(),
        })
        .collect();
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn querier_reads_selected_series_by_byte_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let raw = ObjStoreConfig::filesystem(dir.path()).build().unwrap();
    let metered = Arc::new(MeteredStore::new(raw));
    let stats = metered.stats().clone();
    let store: Arc<dyn ObjectStore> = metered;
    let series = workload(2_000, 480);
    let block = build("team-a", &series);
    let total = block.meta.data_bytes();
    upload(&*store, &block).await.unwrap();

    let bucket = Bucket::new(store, BucketOptions::default());
    let q = bucket.querier(TenantId::new("team-a").unwrap());
    let want = &series[1234];
    let inst = want.labels.get("instance").unwrap();
    let m = [Matcher::equal("instance", inst)];
    let hints = SelectHints::range(i64::MIN, i64::MAX);
    let got = q.select(&hints, &m).await.unwrap();
    assert_eq!(bits(&got), bits(std::slice::from_ref(want)));

    // A second one-series query with the index cached reads only a few pages.
    let before = stats.get_bytes();
    let want = &series[77];
    let m = [Matcher::equal("instance", want.labels.get("instance").unwrap())];
    let got = q.select(&hints, &m).await.unwrap();
    assert_eq!(bits(&got), bits(std::slice::from_ref(want)));
    let read = stats.get_bytes() - before;
    assert!(read * 20 < total, "one-series read fetched {read} of {total} bytes");

    // Time range and regex selection.
    let t0 = 1_700_000_000_000 + 100 * 15_000;
    let hints = SelectHints::range(t0, t0 + 15_000 * 9);
    let m = [
        Matcher::equal("__name__", "up"),
        Matcher::new(strata_model::MatchOp::RegexMatch, "instance", "host-00(0|1)[0-9]:9100").unwrap(),
    ];
    let got = q.select(&hints, &m).await.unwrap();
    assert_eq!(got.len(), 10);
    assert!(got.iter().all(|s| s.samples.len() == 10 && s.samples[0].t >= t0));
    let names = q.label_names(hints.range, &[]).await.unwrap();
    assert_eq!(names, ["__name__", "instance", "job"]);
    let values = q.label_values("__name__", hints.range, &[]).await.unwrap();
    assert_eq!(values, ["node_cpu_seconds_total", "up"]);
    // A range covering the whole block answers from the postings alone.
    let all = strata_model::TimeRange::all();
    assert_eq!(q.label_values("__name__", all, &[]).await.unwrap(), values);
    assert_eq!(q.label_names(all, &[]).await.unwrap(), names);
    assert_eq!(q.label_values("instance", all, &[]).await.unwrap().len(), 2_000);
}

#[test]
fn series_table_written_in_batches_reads_back_whole() {
    // More series than one series-table batch holds, so ids and row spans must
    // continue across batches.
    let series = workload(2 * super::write::BATCH_SERIES + 123, 3);
    let block = build("t", &series);
    assert_eq!(block.meta.stats.num_series, series.len() as u64);
    let path = BlockPath::new(TenantId::new("t").unwrap(), block.meta.ulid);
    let back = decode_block(&path, block.series.clone(), block.samples.to_bytes().unwrap()).unwrap();
    assert_eq!(bits(&back), bits(&series));
}

fn build_aggr(tenant: &str, resolution: i64, series: &[Series]) -> (EncodedBlock, Vec<AggrSeries>) {
    let mut b = AggrBlockBuilder::new(tenant, resolution).unwrap();
    let mut want = Vec::new();
    for s in series {
        let windows = aggr::aggregate(&s.samples, resolution);
        b.add_series(&s.labels, &windows).unwrap();
        want.push(AggrSeries { labels: s.labels.clone(), windows });
    }
    let origin = BlockOrigin { level: 3, sources: vec![ulid::Ulid::from_parts(1, 1)], ..BlockOrigin::fresh() };
    (b.finish(origin).unwrap().unwrap(), want)
}

/// Windows compared bit for bit (NaNs included).
fn aggr_bits(series: &[AggrSeries]) -> Vec<(Labels, Vec<[u64; 12]>)> {
    series
        .iter()
        .map(|s| {
            let ws = s
                .windows
                .iter()
                .map(|w| {
                    [
                        w.t as u64,
                        u64::from(w.count),
                        w.sum.to_bits(),
                        w.min.to_bits(),
                        w.max.to_bits(),
                        w.first_t as u64,
                        w.first.to_bits(),
                        w.last_t as u64,
                        w.last.to_bits(),
                        u64::from(w.resets),
                        w.correction.to_bits(),
                        u64::from(w.stale_end),
                    ]
                })
                .collect();
            (s.labels.clone(), ws)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn aggregate_block_round_trip_is_bit_exact(series in series_set()) {
        let (block, want) = build_aggr("t", RESOLUTION_5M, &series);
        prop_assert_eq!(block.meta.resolution, RESOLUTION_5M);
        prop_assert_eq!(block.meta.stats.num_series, series.len() as u64);
        let rows: usize = want.iter().map(|s| s.windows.len()).sum();
        prop_assert_eq!(block.meta.stats.num_samples, rows as u64);
        let path = BlockPath::new(TenantId::new("t").unwrap(), block.meta.ulid);
        let back = decode_aggr_block(&path, block.series.clone(), block.samples.to_bytes().unwrap()).unwrap();
        prop_assert_eq!(aggr_bits(&back), aggr_bits(&want));
        // The generic decoder gives one sample per window, so counts match meta.json.
        let plain = decode_block(&path, block.series.clone(), block.samples.to_bytes().unwrap()).unwrap();
        prop_assert_eq!(plain.iter().map(|s| s.samples.len()).sum::<usize>(), rows);
    }
}

#[test]
fn aggregate_builder_refuses_misaligned_windows() {
    let mut b = AggrBlockBuilder::new("t", RESOLUTION_5M).unwrap();
    let mut w = aggr::aggregate(&[Sample::new(1, 1.0)], RESOLUTION_5M);
    w[0].t = 7;
    assert!(b.add_series(&Labels::from_pairs([("a", "b")]), &w).is_err());
    assert!(AggrBlockBuilder::new("t", 0).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_queries_ignore_downsampled_blocks_and_select_aggr_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjStoreConfig::filesystem(dir.path()).build().unwrap();
    let series = workload(50, 200);
    let raw = build("team-a", &series);
    upload(&*store, &raw).await.unwrap();
    let (five, want) = build_aggr("team-a", RESOLUTION_5M, &series);
    upload(&*store, &five).await.unwrap();
    let bucket = Bucket::new(store, BucketOptions::default());
    let q = bucket.querier(TenantId::new("team-a").unwrap());

    let hints = SelectHints::range(i64::MIN, i64::MAX);
    let got = q.select(&hints, &[]).await.unwrap();
    assert_eq!(bits(&got), bits(&series), "raw answers unchanged by the 5m block");

    let all = strata_model::TimeRange::all();
    let got = q.select_aggr(RESOLUTION_5M, all, &[]).await.unwrap();
    assert_eq!(aggr_bits(&got), aggr_bits(&want));
    assert!(q.select_aggr(RESOLUTION_1H, all, &[]).await.unwrap().is_empty());
    assert!(q.select_aggr(RESOLUTION_RAW, all, &[]).await.is_err());
    assert_eq!(q.blocks_at(RESOLUTION_5M, all).await.unwrap().len(), 1);

    // A range inside one window returns that window (it overlaps the range).
    let w = want[3].windows[2];
    let r = strata_model::TimeRange { start: w.t + 1, end: w.t + 2 };
    let m = [Matcher::equal("instance", want[3].labels.get("instance").unwrap())];
    let got = q.select_aggr(RESOLUTION_5M, r, &m).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].windows, vec![w]);

    // Two copies of the same windows merge into one.
    let (again, _) = build_aggr("team-a", RESOLUTION_5M, &series);
    upload(&**bucket.store(), &again).await.unwrap();
    bucket.invalidate(&TenantId::new("team-a").unwrap());
    let got = q.select_aggr(RESOLUTION_5M, all, &[]).await.unwrap();
    assert_eq!(aggr_bits(&got), aggr_bits(&want));
}
