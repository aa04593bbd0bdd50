//! A remote write 2.0 client: symbols, metadata, created timestamps, written-count
//! headers, and every rejection path.

use serde_json::Value;
use strata_proto::write_v2 as v2;
use strata_proto::{CONTENT_TYPE_V2, Message};
use strata_server::ServerConfig;
use strata_tests::{Sandbox, all_series, post_write, remote_read, snappy};
use strata_tsdb::TsdbOptions;

/// Builds a request, interning strings into the symbol table.
#[derive(Default)]
struct Builder {
    symbols: Vec<String>,
    series: Vec<v2::TimeSeries>,
}

impl Builder {
    fn new() -> Self {
        Builder { symbols: vec![String::new()], series: vec![] }
    }

    fn sym(&mut self, s: &str) -> u32 {
        if let Some(i) = self.symbols.iter().position(|x| x == s) {
            return i as u32;
        }
        self.symbols.push(s.into());
        (self.symbols.len() - 1) as u32
    }

    fn series(
        mut self,
        labels: &[(&str, &str)],
        samples: &[(i64, f64)],
        f: impl FnOnce(&mut Self, &mut v2::TimeSeries),
    ) -> Self {
        let mut ts = v2::TimeSeries::default();
        for (n, v) in labels {
            let (n, v) = (self.sym(n), self.sym(v));
            ts.labels_refs.extend([n, v]);
        }
        ts.samples = samples.iter().map(|&(t, v)| v2::Sample { value: v, timestamp: t }).collect();
        f(&mut self, &mut ts);
        self.series.push(ts);
        self
    }

    fn build(self) -> v2::Request {
        v2::Request { symbols: self.symbols, timeseries: self.series }
    }
}

async fn send(sb: &Sandbox, req: &v2::Request) -> (u16, String, reqwest::header::HeaderMap) {
    post_write(&sb.client, &sb.url(""), snappy(&req.encode_to_vec()), CONTENT_TYPE_V2, None).await.unwrap()
}

fn written(h: &reqwest::header::HeaderMap, what: &str) -> u64 {
    h.get(format!("x-prometheus-remote-write-{what}-written"))
        .unwrap_or_else(|| panic!("{what} header"))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn symbols_metadata_and_written_headers() {
    let sb = Sandbox::start().await;
    let req = Builder::new()
        .series(
            &[("__name__", "http_requests_total"), ("code", "200"), ("job", "api")],
            &[(1000, 1.0), (2000, 5.0)],
            |b, ts| {
                ts.metadata = Some(v2::Metadata {
                    r#type: v2::metadata::MetricType::Counter as i32,
                    help_ref: b.sym("Requests."),
                    unit_ref: b.sym(""),
                });
            },
        )
        .series(&[("__name__", "http_requests_total"), ("code", "500"), ("job", "api")], &[(1000, 0.0)], |_, _| {})
        .series(&[("__name__", "temp_celsius"), ("room", "a")], &[(1000, 21.5)], |b, ts| {
            ts.metadata = Some(v2::Metadata {
                r#type: v2::metadata::MetricType::Gauge as i32,
                help_ref: b.sym("Temperature."),
                unit_ref: b.sym("celsius"),
            });
            ts.exemplars.push(v2::Exemplar { labels_refs: vec![], value: 1.0, timestamp: 1000 });
        })
        .build();
    let (s, b, h) = send(&sb, &req).await;
    assert_eq!(s, 204, "{b}");
    assert_eq!(written(&h, "samples"), 4);
    assert_eq!(written(&h, "histograms"), 0);
    assert_eq!(written(&h, "exemplars"), 0, "exemplars are counted and dropped");

    let got = remote_read(&sb.client, &sb.url(""), all_series(), 0, 10_000, None).await.unwrap();
    assert_eq!(got.len(), 3);
    let meta: Value = sb.client.get(sb.url("/api/v1/metadata")).send().await.unwrap().json().await.unwrap();
    assert_eq!(meta["data"]["http_requests_total"][0]["type"], "counter");
    assert_eq!(meta["data"]["http_requests_total"][0]["help"], "Requests.");
    assert_eq!(meta["data"]["temp_celsius"][0]["unit"], "celsius");
    let text = sb.client.get(sb.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("strata_remote_write_exemplars_dropped_total 1"), "{text}");
}

#[tokio::test]
async fn rejection_paths() {
    let sb = Sandbox::start().await;
    // Symbol reference out of range: the whole request is malformed.
    let mut req = Builder::new().series(&[("__name__", "x")], &[(1, 1.0)], |_, _| {}).build();
    req.timeseries[0].labels_refs[1] = 99;
    let (s, b, h) = send(&sb, &req).await;
    assert_eq!(s, 400);
    assert!(b.contains("symbol reference 99 is out of range"), "{b}");
    assert_eq!(written(&h, "samples"), 0);

    // Odd number of label refs.
    req.timeseries[0].labels_refs.pop();
    let (s, b, _) = send(&sb, &req).await;
    assert_eq!(s, 400);
    assert!(b.contains("odd number"), "{b}");

    // First symbol not empty.
    let mut req = Builder::new().series(&[("__name__", "x")], &[(1, 1.0)], |_, _| {}).build();
    req.symbols[0] = "oops".into();
    let (s, b, _) = send(&sb, &req).await;
    assert_eq!(s, 400);
    assert!(b.contains("first symbol must be the empty string"), "{b}");

    // Native histograms: refused with a permanent error; floats in the request stored.
    let req = Builder::new()
        .series(&[("__name__", "floats")], &[(1000, 1.0)], |_, _| {})
        .series(&[("__name__", "hist")], &[], |_, ts| {
            ts.histograms.push(v2::Histogram { timestamp: 1000, ..Default::default() })
        })
        .build();
    let (s, b, h) = send(&sb, &req).await;
    assert_eq!(s, 400);
    assert!(b.contains("native_histograms_unsupported"), "{b}");
    assert_eq!(written(&h, "samples"), 1);
    assert_eq!(written(&h, "histograms"), 0);

    // Invalid names, out of order, duplicates: counted per reason.
    let req = Builder::new()
        .series(&[("__name__", "floats")], &[(500, 1.0), (1000, 2.0), (2000, 3.0)], |_, _| {})
        .series(&[("__name__", "bad name")], &[(1000, 1.0)], |_, _| {})
        .series(&[("__name__", "ok"), ("a-b", "c")], &[(1000, 1.0)], |_, _| {})
        .build();
    let (s, b, h) = send(&sb, &req).await;
    assert_eq!(s, 400);
    for reason in ["out_of_order", "duplicate_timestamp", "invalid_metric_name", "invalid_label_name"] {
        assert!(b.contains(reason), "{reason} missing: {b}");
    }
    assert_eq!(written(&h, "samples"), 1);

    // Unknown proto message type.
    let (s, _, _) = post_write(
        &sb.client,
        &sb.url(""),
        snappy(&req.encode_to_vec()),
        "application/x-protobuf;proto=io.prometheus.write.v3.Request",
        None,
    )
    .await
    .unwrap();
    assert_eq!(s, 415);
}

#[tokio::test]
async fn created_timestamps_become_zero_samples_when_enabled() {
    let cfg = ServerConfig { ingest_created_timestamps: true, ..Default::default() };
    let sb = Sandbox::start_with(cfg, TsdbOptions::default(), None).await;
    let req = Builder::new()
        .series(&[("__name__", "reqs_total")], &[(10_000, 4.0)], |_, ts| ts.created_timestamp = 5_000)
        .build();
    let (s, b, _) = send(&sb, &req).await;
    assert_eq!(s, 204, "{b}");
    // A later request with the same created timestamp does not add it again or fail.
    let req = Builder::new()
        .series(&[("__name__", "reqs_total")], &[(20_000, 6.0)], |_, ts| ts.created_timestamp = 5_000)
        .build();
    assert_eq!(send(&sb, &req).await.0, 204);
    let got = remote_read(&sb.client, &sb.url(""), all_series(), 0, 100_000, None).await.unwrap();
    let samples: Vec<(i64, f64)> = got[0].samples.iter().map(|s| (s.timestamp, s.value)).collect();
    assert_eq!(samples, vec![(5_000, 0.0), (10_000, 4.0), (20_000, 6.0)]);
}
