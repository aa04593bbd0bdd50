//! Seed corpora for the fuzz targets, written by the repository's own encoders
//! (prost types of `strata-proto`, the WAL record framer, the XOR appender, the
//! block metadata types) so libFuzzer starts from valid inputs. Deterministic:
//! rewriting gives the same files.

use std::path::{Path, PathBuf};

use strata_block::{BlockMeta, DeletionMark, NoCompactMark};
use strata_model::{Sample, stale_nan};
use strata_proto::Message;
use strata_proto::prometheus as v1;
use strata_proto::write_v2 as v2;
use strata_tsdb::chunk::XorAppender;
use strata_tsdb::wal::{MetadataEntry, Record, RefSample, SeriesEntry};

struct Seeds {
    root: PathBuf,
    written: usize,
    bytes: usize,
}

impl Seeds {
    fn put(&mut self, target: &str, name: &str, data: &[u8]) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).expect("create seed dir");
        std::fs::write(dir.join(name), data).expect("write seed");
        self.written += 1;
        self.bytes += data.len();
    }
}

fn label(n: &str, v: &str) -> v1::Label {
    v1::Label { name: n.into(), value: v.into() }
}

/// Remote write 1.0 bodies: one series, a typical scrape, and the odd cases.
fn v1_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let one = v1::WriteRequest {
        timeseries: vec![v1::TimeSeries {
            labels: vec![label("__name__", "up"), label("job", "node")],
            samples: vec![v1::Sample { value: 1.0, timestamp: 1_700_000_000_000 }],
            ..Default::default()
        }],
        metadata: vec![],
    };
    let scrape = v1::WriteRequest {
        timeseries: (0..8)
            .map(|i| v1::TimeSeries {
                labels: vec![
                    label("__name__", "http_requests_total"),
                    label("code", if i % 3 == 0 { "500" } else { "200" }),
                    label("instance", &format!("10.0.0.{i}:9100")),
                    label("job", "api"),
                ],
                samples: (0..4)
                    .map(|k| v1::Sample { value: (i * 100 + k) as f64, timestamp: 1_700_000_000_000 + k * 15_000 })
                    .collect(),
                exemplars: if i == 0 {
                    vec![v1::Exemplar { labels: vec![label("trace_id", "abc")], value: 1.0, timestamp: 1 }]
                } else {
                    vec![]
                },
                histograms: vec![],
            })
            .collect(),
        metadata: vec![v1::MetricMetadata {
            r#type: 1,
            metric_family_name: "http_requests_total".into(),
            help: "Requests served.".into(),
            unit: "".into(),
        }],
    };
    let odd = v1::WriteRequest {
        timeseries: vec![
            v1::TimeSeries {
                labels: vec![label("__name__", "m"), label("a", ""), label("b", "é✓")],
                samples: vec![
                    v1::Sample { value: stale_nan(), timestamp: -1 },
                    v1::Sample { value: f64::INFINITY, timestamp: i64::MAX },
                ],
                ..Default::default()
            },
            v1::TimeSeries { labels: vec![label("a-b", "1")], ..Default::default() },
            v1::TimeSeries {
                labels: vec![label("__name__", "h"), label("x", "1"), label("x", "2")],
                histograms: vec![v1::Histogram { timestamp: 5, ..Default::default() }],
                ..Default::default()
            },
        ],
        metadata: vec![v1::MetricMetadata { r#type: 99, metric_family_name: "1bad".into(), ..Default::default() }],
    };
    vec![("one", one.encode_to_vec()), ("scrape", scrape.encode_to_vec()), ("odd", odd.encode_to_vec())]
}

/// Remote write 2.0 bodies: symbols, references, metadata, created timestamps.
fn v2_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let symbols: Vec<String> =
        ["", "__name__", "req_total", "job", "api", "instance", "a", "b", "Requests.", "seconds", "le", "+Inf"]
            .map(String::from)
            .to_vec();
    let scrape = v2::Request {
        symbols: symbols.clone(),
        timeseries: vec![
            v2::TimeSeries {
                labels_refs: vec![1, 2, 3, 4, 5, 6],
                samples: (0..4)
                    .map(|k| v2::Sample { value: k as f64, timestamp: 1_700_000_000_000 + k * 15_000 })
                    .collect(),
                metadata: Some(v2::Metadata { r#type: 1, help_ref: 8, unit_ref: 0 }),
                created_timestamp: 1_699_999_990_000,
                ..Default::default()
            },
            v2::TimeSeries {
                labels_refs: vec![1, 2, 3, 4, 5, 7],
                samples: vec![v2::Sample { value: stale_nan(), timestamp: 1_700_000_000_000 }],
                exemplars: vec![v2::Exemplar { labels_refs: vec![3, 4], value: 1.0, timestamp: 2 }],
                metadata: Some(v2::Metadata { r#type: 2, help_ref: 0, unit_ref: 9 }),
                ..Default::default()
            },
        ],
    };
    let odd = v2::Request {
        symbols,
        timeseries: vec![
            v2::TimeSeries {
                labels_refs: vec![1, 2, 10, 11],
                histograms: vec![v2::Histogram { timestamp: 3, ..Default::default() }],
                ..Default::default()
            },
            v2::TimeSeries { labels_refs: vec![3, 4], ..Default::default() },
            v2::TimeSeries { labels_refs: vec![1, 99], ..Default::default() },
        ],
    };
    vec![("scrape", scrape.encode_to_vec()), ("odd", odd.encode_to_vec())]
}

fn read_requests() -> Vec<(&'static str, Vec<u8>)> {
    let m = |t: i32, n: &str, v: &str| v1::LabelMatcher { r#type: t, name: n.into(), value: v.into() };
    let simple = v1::ReadRequest {
        queries: vec![v1::Query {
            start_timestamp_ms: 1_700_000_000_000,
            end_timestamp_ms: 1_700_000_600_000,
            matchers: vec![m(0, "__name__", "up"), m(2, "job", "api|node")],
            hints: None,
        }],
        accepted_response_types: vec![0],
    };
    let streamed = v1::ReadRequest {
        queries: vec![
            v1::Query {
                start_timestamp_ms: 0,
                end_timestamp_ms: i64::MAX,
                matchers: vec![m(1, "job", ""), m(3, "instance", ".*:9100"), m(0, "__name__", "x")],
                hints: Some(v1::ReadHints { step_ms: 15_000, func: "rate".into(), ..Default::default() }),
            },
            v1::Query { matchers: vec![m(2, "a", "(")], ..Default::default() },
        ],
        accepted_response_types: vec![1, 0],
    };
    vec![("simple", simple.encode_to_vec()), ("streamed", streamed.encode_to_vec())]
}

const QUERIES: &[&str] = &[
    "up",
    "up{job=\"api\",instance=~\"a|b\"}",
    "{__name__=~\"http_.*\",code!=\"500\"}",
    "rate(http_requests_total[5m])",
    "sum by (job) (rate(http_requests_total[1m]))",
    "increase(http_requests_total{code=\"200\"}[2m] offset 1m)",
    "histogram_quantile(0.9, sum by (le) (rate(req_seconds_bucket[5m])))",
    "max_over_time(temp[10m:30s])",
    "avg_over_time(deriv(temp[2m])[5m:1m])",
    "topk(2, up) or bottomk(1, temp)",
    "up and on(instance) group_left http_requests_total",
    "http_requests_total / ignoring(code) group_left sum without(code) (http_requests_total)",
    "label_replace(up, \"host\", \"$1\", \"instance\", \"(.*)\")",
    "label_join(up, \"x\", \"-\", \"job\", \"instance\")",
    "absent(nope{job=\"x\"})",
    "count_values(\"v\", up)",
    "quantile(0.5, temp) + scalar(sum(up))",
    "clamp(temp, -1, 1) > bool 0",
    "predict_linear(temp[5m], 60)",
    "holt_winters(temp[5m], 0.5, 0.5)",
    "time() - timestamp(up) @ 300",
    "vector(1) unless up",
    "sort_desc(changes(temp[10m]))",
    "stddev_over_time(temp[5m]) ^ 2 % 3",
    "1 + 2 * -3",
    "\"a string\"",
    "up[5m]",
    "last_over_time(up[1m] @ end())",
    "limitk(1, up)",
    "sum(rate(http_requests_total[5m])) by (job) atan2 on() vector(1)",
];

const PARAMS: &[&str] = &[
    "1700000000",
    "1700000000.123",
    "-1.5e3",
    "2023-11-14T22:13:20Z",
    "2023-11-14T22:13:20.500+02:00",
    "2023-11-14T22:13:20.123456789-07:30",
    "1h30m",
    "5m",
    "1y2w3d4h5m6s7ms",
    "0.001",
    "up{job=\"api\"}",
    "{__name__=~\"a|b\",x!~\".*\"}",
    "up or down",
    "NaN",
];

fn wal_records() -> Vec<Record> {
    vec![
        Record::Series {
            tenant: "anonymous".into(),
            series: vec![
                SeriesEntry {
                    series_ref: 1,
                    labels: vec![("__name__".into(), "up".into()), ("job".into(), "api".into())],
                },
                SeriesEntry { series_ref: 2, labels: vec![("__name__".into(), "temp".into())] },
            ],
        },
        Record::Samples {
            tenant: "anonymous".into(),
            samples: (0..6)
                .map(|i| RefSample {
                    series_ref: 1 + i % 2,
                    sample: Sample::new(
                        1_700_000_000_000 + i as i64 * 15_000,
                        if i == 5 { stale_nan() } else { i as f64 },
                    ),
                })
                .collect(),
        },
        Record::Metadata {
            tenant: "team-a".into(),
            entries: vec![MetadataEntry {
                family: "up".into(),
                kind: "gauge".into(),
                help: "Whether the target is up.".into(),
                unit: "".into(),
            }],
        },
    ]
}

fn chunk(samples: impl IntoIterator<Item = (i64, f64)>) -> Vec<u8> {
    let mut a = XorAppender::new();
    for (t, v) in samples {
        a.append(t, v);
    }
    a.finish().into_vec()
}

fn chunks() -> Vec<(&'static str, Vec<u8>)> {
    let t0 = 1_700_000_000_000;
    vec![
        ("one", chunk([(t0, 1.0)])),
        ("two", chunk([(t0, 1.0), (t0 + 15_000, 1.5)])),
        ("regular", chunk((0..120).map(|i| (t0 + i * 15_000, (i / 10) as f64)))),
        ("jittery", chunk((0..60).map(|i: i64| (t0 + i * 15_000 + (i * 7919) % 1000 - 500, (i as f64).sin() * 1e6)))),
        ("special", chunk([(-5, f64::NAN), (0, stale_nan()), (1 << 40, f64::NEG_INFINITY), (1 << 41, -0.0)])),
    ]
}

fn metas() -> Vec<(&'static str, Vec<u8>)> {
    let id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    let meta: BlockMeta = serde_json::from_value(serde_json::json!({
        "version": strata_block::FORMAT_VERSION,
        "ulid": id,
        "tenant": "anonymous",
        "min_time": 1_700_000_000_000i64,
        "max_time": 1_700_007_200_000i64,
        "stats": {
            "num_series": 120,
            "num_samples": 57_600,
            "files": [
                {"name": "series.parquet", "size_bytes": 4_096},
                {"name": "samples.parquet", "size_bytes": 123_456},
            ],
        },
        "compaction": {"level": 2, "sources": [id, "01BX5ZZKBKACTAV9WEVGEMMVRZ"], "parents": ["01BX5ZZKBKACTAV9WEVGEMMVRZ"]},
        "resolution": strata_block::RESOLUTION_RAW,
    }))
    .expect("meta.json");
    let deletion: DeletionMark = serde_json::from_value(serde_json::json!({
        "version": strata_block::MARKER_VERSION, "id": id, "deletion_time": 1_700_000_000, "reason": "retention",
    }))
    .expect("deletion mark");
    let no_compact: NoCompactMark = serde_json::from_value(serde_json::json!({
        "version": strata_block::MARKER_VERSION, "id": id, "no_compact_time": 1_700_000_000, "reason": "unreadable",
    }))
    .expect("no-compact mark");
    vec![
        ("meta.json", serde_json::to_vec_pretty(&meta).expect("json")),
        ("deletion-mark.json", serde_json::to_vec_pretty(&deletion).expect("json")),
        ("no-compact-mark.json", serde_json::to_vec_pretty(&no_compact).expect("json")),
        ("key", format!("anonymous/{id}/meta.json").into_bytes()),
    ]
}

/// Where the fuzz workspace keeps its seeds.
fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds")
}

/// Rewrites `fuzz/seeds/`: `cargo test -p strata-server --lib fuzzing::seeds -- --ignored`.
#[test]
#[ignore = "writes fuzz/seeds; run by hand when a format changes"]
fn write_seeds() {
    let mut s = Seeds { root: seeds_dir(), written: 0, bytes: 0 };
    let mut snappy = snap::raw::Encoder::new();
    for (name, body) in v1_bodies() {
        s.put("snappy", &format!("v1-{name}"), &snappy.compress_vec(&body).expect("snappy"));
        s.put("remote_write_v1", name, &body);
    }
    for (name, body) in v2_bodies() {
        s.put("snappy", &format!("v2-{name}"), &snappy.compress_vec(&body).expect("snappy"));
        s.put("remote_write_v2", name, &body);
    }
    for (name, body) in read_requests() {
        s.put("snappy", &format!("read-{name}"), &snappy.compress_vec(&body).expect("snappy"));
        s.put("remote_read", name, &body);
    }
    for (i, q) in QUERIES.iter().enumerate() {
        s.put("promql", &format!("q{i:02}"), q.as_bytes());
    }
    for (i, p) in PARAMS.iter().enumerate() {
        s.put("params", &format!("p{i:02}"), p.as_bytes());
    }
    let records = wal_records();
    for (i, r) in records.iter().enumerate() {
        // A record seed is its type byte then its payload: the frame without length and CRC.
        let frame = strata_tsdb::fuzzing::wal_frames(std::slice::from_ref(r));
        let mut seed = vec![frame[0]];
        seed.extend_from_slice(&frame[9..]);
        s.put("wal_record", &format!("r{i}"), &seed);
    }
    let segment = strata_tsdb::fuzzing::wal_frames(&records);
    s.put("wal_segment", "whole", &segment);
    s.put("wal_segment", "torn", &segment[..segment.len() - 3]);
    let mut corrupt = segment.clone();
    corrupt[20] ^= 0x40;
    s.put("wal_segment", "corrupt", &corrupt);
    let chunks = chunks();
    let mut file = Vec::new();
    let mut at = Vec::new();
    for (name, c) in &chunks {
        s.put("xor_chunk", name, c);
        at.push((file.len() as u32, c.len() as u16));
        file.extend_from_slice(c);
    }
    for (i, (offset, len)) in at.into_iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        let mut seed = offset.to_le_bytes().to_vec();
        seed.extend_from_slice(&len.to_le_bytes());
        seed.extend_from_slice(&file);
        s.put("head_chunk_file", &format!("c{i}"), &seed);
    }
    for (name, m) in metas() {
        s.put("block_meta", name, &m);
    }
    println!("{} seeds, {} bytes, under {}", s.written, s.bytes, s.root.display());
}

/// Every committed seed goes through its target's entry point without a panic, so
/// a change that breaks a seed's target shows up in the unit tests.
#[test]
fn committed_seeds_pass_their_targets() {
    let tmp = tempfile::tempdir().unwrap();
    let Ok(targets) = std::fs::read_dir(seeds_dir()) else { return };
    for target in targets {
        let target = target.unwrap();
        let name = target.file_name().into_string().unwrap();
        for seed in std::fs::read_dir(target.path()).unwrap() {
            let data = std::fs::read(seed.unwrap().path()).unwrap();
            match name.as_str() {
                "remote_write_v1" => super::remote_write_v1(&data),
                "remote_write_v2" => super::remote_write_v2(&data),
                "snappy" => super::snappy(&data),
                "remote_read" => super::remote_read(&data),
                "params" => super::params(std::str::from_utf8(&data).unwrap()),
                "promql" => drop(strata_promql::parse(std::str::from_utf8(&data).unwrap())),
                "wal_record" => strata_tsdb::fuzzing::wal_record(&data),
                "wal_segment" => strata_tsdb::fuzzing::wal_segment(tmp.path(), &data),
                "xor_chunk" => strata_tsdb::fuzzing::xor_chunk(&data),
                "head_chunk_file" => strata_tsdb::fuzzing::head_chunk_file(&tmp.path().join("head_chunks"), &data),
                "block_meta" => strata_block::fuzzing::meta_and_markers(&data),
                other => panic!("seeds for an unknown target {other}"),
            }
        }
    }
}
