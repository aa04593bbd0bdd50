//! Criterion micro-benchmarks of Strata's hot paths: remote-write decode, head + WAL
//! append, XOR chunk encode/decode, and PromQL evaluation of typical dashboard queries.
//!
//! `cargo bench -p strata-benches --bench hot_paths`

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use strata_model::{Labels, Sample, TenantId};
use strata_promql::Engine;
use strata_promql::test_source::MemQuerier;
use strata_proto::prometheus as pb;
use strata_server::remote_write_decode::decode_v1;
use strata_tsdb::chunk::{XorAppender, decode_all};
use strata_tsdb::{FsyncPolicy, SeriesInput, Tsdb, TsdbOptions, WalOptions};

const BATCH: usize = 2000;

fn node_labels(i: usize) -> Vec<(String, String)> {
    vec![
        ("__name__".into(), format!("node_metric_{}", i % 60)),
        ("cpu".into(), (i % 8).to_string()),
        ("instance".into(), format!("host-{:04}:9100", i / 600)),
        ("job".into(), "node".into()),
        ("mode".into(), ["idle", "user", "system", "iowait"][i % 4].into()),
    ]
}

/// A body shaped like Prometheus's: one sample per series, full label sets.
fn write_request(t: i64) -> pb::WriteRequest {
    pb::WriteRequest {
        timeseries: (0..BATCH)
            .map(|i| pb::TimeSeries {
                labels: node_labels(i).into_iter().map(|(name, value)| pb::Label { name, value }).collect(),
                samples: vec![pb::Sample { value: (i * 17) as f64 + 0.25, timestamp: t }],
                ..Default::default()
            })
            .collect(),
        metadata: vec![],
    }
}

fn decode(c: &mut Criterion) {
    let raw = write_request(1_700_000_000_000).encode_to_vec();
    let mut g = c.benchmark_group("remote_write_decode");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("v1_2000_samples", |b| b.iter(|| black_box(decode_v1(black_box(&raw)).unwrap().samples_len())));
    g.finish();
}

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    // Interval fsync: this measures CPU, not the disk's fsync latency.
    let opts = TsdbOptions {
        wal: WalOptions { fsync: FsyncPolicy::Interval(Duration::from_secs(1)), ..Default::default() },
        ..Default::default()
    };
    let db = Tsdb::open(dir.path(), opts).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let tenant = TenantId::new("bench").unwrap();
    let labels: Vec<Vec<(String, String)>> = (0..BATCH).map(node_labels).collect();
    let pairs: Vec<Vec<(&str, &str)>> =
        labels.iter().map(|l| l.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect()).collect();
    let mut t = 1_700_000_000_000i64;
    let mut g = c.benchmark_group("head_wal_append");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("2000_series_one_sample_each", |b| {
        b.iter(|| {
            t += 15_000;
            let samples: Vec<[Sample; 1]> = (0..BATCH).map(|i| [Sample::new(t, i as f64)]).collect();
            let inputs: Vec<SeriesInput<'_>> =
                pairs.iter().zip(&samples).map(|(l, s)| SeriesInput { labels: l, samples: s }).collect();
            let (o, commit) = db.append(&tenant, &inputs, &[]).unwrap();
            rt.block_on(commit.wait()).unwrap();
            black_box(o.accepted)
        })
    });
    g.finish();
}

fn chunks(c: &mut Criterion) {
    let samples: Vec<Sample> =
        (0..120).map(|i| Sample::new(1_700_000_000_000 + i * 15_000 + (i % 7), 1000.0 + (i as f64) * 0.5)).collect();
    let mut enc = XorAppender::new();
    for s in &samples {
        enc.append(s.t, s.v);
    }
    let bytes = enc.finish();
    let mut g = c.benchmark_group("xor_chunk");
    g.throughput(Throughput::Elements(120));
    g.bench_function("encode_120", |b| {
        b.iter(|| {
            let mut a = XorAppender::new();
            for s in &samples {
                a.append(s.t, s.v);
            }
            black_box(a.finish())
        })
    });
    g.bench_function("decode_120", |b| b.iter(|| black_box(decode_all(black_box(&bytes)).unwrap())));
    g.finish();
}

fn promql(c: &mut Criterion) {
    // 1,000 CPU counters (50 hosts × 20) over 2 h at 15 s.
    let mut q = MemQuerier::new();
    let start = 1_700_000_000_000i64;
    for i in 0..1000usize {
        let labels = Labels::from_pairs([
            ("__name__", "node_cpu_seconds_total".to_string()),
            ("instance", format!("host-{:03}", i / 20)),
            ("cpu", (i % 10).to_string()),
            ("mode", if i % 20 < 10 { "idle".to_string() } else { "user".to_string() }),
        ]);
        q.add(labels, (0..480).map(|k| Sample::new(start + k * 15_000, k as f64 * 0.75 + i as f64)));
    }
    let engine = Engine::default();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let end = start + 2 * 3600 * 1000;
    let mut g = c.benchmark_group("promql_range_2h_60s");
    for query in [
        r#"sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))"#,
        "max_over_time(node_cpu_seconds_total[10m])",
        "topk(5, rate(node_cpu_seconds_total[5m]))",
    ] {
        g.bench_with_input(BenchmarkId::from_parameter(query), query, |b, query| {
            b.iter(|| rt.block_on(engine.range_query(&q, query, start, end, 60_000)).unwrap())
        });
    }
    g.finish();
}

criterion_group! {
    name = hot_paths;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = decode, append, chunks, promql
}
criterion_main!(hot_paths);
