//! Differential PromQL test: the same generated data is remote-written to Strata and
//! to a real Prometheus (Debian's 2.42), a few hundred queries are asked of both as
//! instant and range queries, and the answers must agree.
//!
//! ```text
//!  seeded generator ──remote write 1.0──► Strata (in-process)  ──┐
//!   (counters, gauges,  ─────────────────► Prometheus 2.42      ──┤ /api/v1/query(_range)
//!    histograms, gaps,                                            ▼
//!    staleness, NaN/Inf)              corpus × times ──► compare status, type, series, values
//! ```
//!
//! Strata implements Prometheus 3 semantics, the reference is 2.42: the known
//! differences between those versions are listed in [`version_difference`] and
//! printed, never skipped silently. Range-selector boundary inclusivity (left-closed
//! in 2.42, left-open in 3) is avoided by the data instead: samples sit a few odd
//! milliseconds off the 15 s grid and every query time ends in `.123`, so no sample
//! ever falls on a window boundary. Strata bugs the test finds go in
//! [`KNOWN_DIFFERENCES`] until they are fixed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use strata_proto::prometheus as pb;
use strata_tests::{PrometheusProcess, Sandbox, free_port, missing_tool, series, write_v1};

/// Prometheus's staleness marker.
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;
/// Scrape interval of the generated data.
const INTERVAL_MS: i64 = 15_000;
/// Scrapes per series: one hour.
const STEPS: i64 = 240;
/// Added to every query time: no query time or window boundary meets a sample.
pub(crate) const QUERY_MS: i64 = 123;
/// Concurrent query workers (each asks both servers).
const WORKERS: usize = 6;

/// Queries whose answer differs between Prometheus 2.42 and Prometheus 3 by design,
/// with the reason; excluded from the match rate and printed. Each rule names the
/// upstream change.
fn version_difference(q: &str) -> Option<&'static str> {
    let over_gauge = ["temperature_celsius", "queue_depth", "odd_gauge"].iter().any(|g| q.contains(g));
    let rate_like = q.starts_with("rate(") || q.starts_with("increase(");
    if q.contains("holt_winters(") {
        Some("renamed double_exponential_smoothing in 3.0 and moved behind the experimental-functions flag")
    } else if q.contains("double_exponential_smoothing(") {
        Some("called holt_winters in 2.42; experimental in 3.x")
    } else if q.contains("{\"up\"}") {
        Some("quoted (UTF-8) metric names are new in 3.0; 2.42 cannot parse them")
    } else if q.contains("\"1bad\"") {
        Some("3.0 accepts any UTF-8 label name; 2.42 rejects names not matching [a-zA-Z_][a-zA-Z0-9_]*")
    } else if rate_like && over_gauge {
        Some(
            "rate/increase over gauges that pass near zero: prometheus#13725 (March 2024, after 2.42) changed when the counter \
             zero point limits extrapolation at a series start",
        )
    } else if (q.starts_with("stddev") || q.starts_with("stdvar"))
        && !q.contains("_over_time")
        && q.contains("odd_gauge")
    {
        Some("stddev/stdvar of a lone NaN or ±Inf: 0 in 2.42, NaN since prometheus#14941 (3.0)")
    } else {
        None
    }
}

/// 2.42-vs-3 differences the data and corpus are built to stay clear of (printed).
const AVOIDED: &[&str] = &[
    "range selectors and lookback are left-closed in 2.42, left-open in 3.0: samples sit 7-40 ms past the \
     15 s grid, query times end in .123, nested subqueries use inner ranges that are no multiple of the \
     inner step",
    "3.0 normalises le/quantile label values at scrape time only: remote-written le values are compared as \
     written (\"0.5\", \"1\", \"+Inf\")",
    "regex . matches newline since 3.0: no label value contains a newline",
    "counter zero-point extrapolation (prometheus#13725): counters and histograms start high and resets \
     keep 40%, so no counter comes near zero",
    "topk/bottomk tie-breaking is unspecified: they rank continuous values only",
];

/// Strata engine bugs found by this test: (exact query template, what is wrong).
/// Remove an entry once the bug is fixed; the test prints whether each still differs.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[];

/// splitmix64: tiny, seeded, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

pub(crate) type LabelPairs = Vec<(String, String)>;

/// One generated series.
pub(crate) struct Gen {
    pub(crate) labels: LabelPairs,
    pub(crate) samples: Vec<(i64, f64)>,
}

/// The scrape behaviour of one target: which steps have samples and where staleness
/// markers go.
struct Target {
    job: &'static str,
    instance: &'static str,
    /// Milliseconds after the 15 s grid (7 mod 1000; each scrape adds 0..30 ms jitter).
    offset: i64,
    first: i64,
    /// Exclusive; a staleness marker follows at this step when it is before the end.
    last: i64,
    /// Steps without scrapes (no marker): longer than the lookback delta.
    gap: Option<(i64, i64)>,
    /// Steps without scrapes that begin with a staleness marker (target flapped).
    stale_gap: Option<(i64, i64)>,
}

enum Step {
    Sample(i64),
    Stale(i64),
    Missing,
}

impl Target {
    fn step(&self, i: i64, t0: i64, rng: &mut Rng) -> Step {
        let t = t0 + i * INTERVAL_MS + self.offset + rng.below(30) as i64;
        if i < self.first || i > self.last {
            return Step::Missing;
        }
        if i == self.last {
            return if i < STEPS { Step::Stale(t) } else { Step::Missing };
        }
        if let Some((a, b)) = self.stale_gap
            && (a..b).contains(&i)
        {
            return if i == a { Step::Stale(t) } else { Step::Missing };
        }
        if let Some((a, b)) = self.gap
            && (a..b).contains(&i)
        {
            return Step::Missing;
        }
        if rng.chance(0.03) { Step::Missing } else { Step::Sample(t) }
    }
}

fn pairs(p: &[(&str, &str)]) -> LabelPairs {
    p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

const LE: [&str; 8] = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"];

/// Generates every series, from `t0` (a whole 10 minutes) for [`STEPS`] scrapes.
pub(crate) fn generate(t0: i64) -> Vec<Gen> {
    let mut rng = Rng(0x5eed_5747_a7a0_0001);
    let mut targets = Vec::new();
    for job in ["api", "db", "web"] {
        for instance in ["i0", "i1", "i2"] {
            targets.push(Target {
                job,
                instance,
                offset: 7 + 1000 * rng.below(14) as i64,
                first: 0,
                last: STEPS,
                gap: None,
                stale_gap: None,
            });
        }
    }
    let find = |ts: &[Target], job: &str, inst: &str| {
        ts.iter().position(|t| t.job == job && t.instance == inst).expect("target")
    };
    let i = find(&targets, "web", "i2");
    targets[i].first = 60; // starts late
    let i = find(&targets, "db", "i1");
    targets[i].last = 170; // stops early, staleness marker
    let i = find(&targets, "api", "i2");
    targets[i].gap = Some((100, 150)); // 12.5 min without data, no marker
    let i = find(&targets, "web", "i1");
    targets[i].stale_gap = Some((120, 130)); // flaps: marker, then back
    let i = find(&targets, "api", "i1");
    targets[i].first = 30;
    targets[i].last = 200;

    let mut out = Vec::new();
    for (ti, tg) in targets.iter().enumerate() {
        let base = [("job", tg.job), ("instance", tg.instance)];
        let with = |name: &str, extra: &[(&str, &str)]| {
            let mut p = vec![("__name__", name)];
            p.extend_from_slice(&base);
            p.extend_from_slice(extra);
            pairs(&p)
        };
        // Series of this target, generated step by step so they share timestamps.
        let mut counters: Vec<(Gen, f64, f64)> = Vec::new(); // (series, value, mean increment)
        for method in ["get", "post"] {
            for code in ["200", "500"] {
                let mean = if code == "200" { 40.0 + 30.0 * rng.unit() } else { 2.0 * rng.unit() };
                counters.push((
                    Gen { labels: with("http_requests_total", &[("method", method), ("code", code)]), samples: vec![] },
                    // Counters start high and resets keep 40%: near-zero counters hit the
                    // zero-point rule that changed after 2.42 (see `version_difference`).
                    (1000.0 + rng.unit() * 1000.0).floor(),
                    mean,
                ));
            }
        }
        let mut buckets: Vec<Gen> = LE
            .iter()
            .map(|le| Gen { labels: with("request_duration_seconds_bucket", &[("le", le)]), samples: vec![] })
            .collect();
        let mut hsum = Gen { labels: with("request_duration_seconds_sum", &[]), samples: vec![] };
        let mut hcount = Gen { labels: with("request_duration_seconds_count", &[]), samples: vec![] };
        let mut bucket_vals = [0f64; 8];
        let (mut sum_v, mut count_v) = (0f64, 0f64);
        let mut temps: Vec<(Gen, f64)> = ["a", "b"]
            .iter()
            .map(|s| {
                (
                    Gen { labels: with("temperature_celsius", &[("sensor", s)]), samples: vec![] },
                    rng.unit() * 40.0 - 20.0,
                )
            })
            .collect();
        let mut queue = (Gen { labels: with("queue_depth", &[]), samples: vec![] }, 0f64);
        let mut mem = (Gen { labels: with("memory_bytes", &[]), samples: vec![] }, 1e9 + rng.unit() * 5e8);
        let mut up = Gen { labels: with("up", &[]), samples: vec![] };
        // NaN and ±Inf live in a few gauges of two targets.
        let odd_kinds: &[&str] = if ti == 0 || ti == 4 { &["nan", "inf", "neginf", "mixed"] } else { &[] };
        let mut odd: Vec<(Gen, f64, &str)> = odd_kinds
            .iter()
            .map(|k| (Gen { labels: with("odd_gauge", &[("kind", k)]), samples: vec![] }, rng.unit() * 10.0 - 5.0, *k))
            .collect();

        let observe = |n: u64, rng: &mut Rng, buckets: &mut [f64; 8], sum: &mut f64, count: &mut f64| {
            for _ in 0..n {
                let d = -0.4 * (1.0 - rng.unit()).ln(); // exponential, mean 0.4 s
                *sum += d;
                *count += 1.0;
                for (k, le) in LE.iter().enumerate() {
                    if *le == "+Inf" || d <= le.parse::<f64>().expect("le") {
                        buckets[k] += 1.0;
                    }
                }
            }
        };
        // Histograms start with history, for the same reason as the counters.
        observe(2000, &mut rng, &mut bucket_vals, &mut sum_v, &mut count_v);
        for i in 0..STEPS {
            let t = match tg.step(i, t0, &mut rng) {
                Step::Missing => continue,
                Step::Stale(t) => {
                    let stale = f64::from_bits(STALE_NAN);
                    let all = counters
                        .iter_mut()
                        .map(|c| &mut c.0)
                        .chain(buckets.iter_mut())
                        .chain([&mut hsum, &mut hcount, &mut queue.0, &mut mem.0, &mut up])
                        .chain(temps.iter_mut().map(|x| &mut x.0))
                        .chain(odd.iter_mut().map(|x| &mut x.0));
                    for g in all {
                        g.samples.push((t, stale));
                    }
                    continue;
                }
                Step::Sample(t) => t,
            };
            for (g, v, mean) in counters.iter_mut() {
                if rng.chance(0.012) {
                    *v = (*v * 0.4).floor(); // reset
                } else {
                    *v += (rng.unit() * 2.0 * *mean).floor();
                }
                g.samples.push((t, *v));
            }
            if rng.chance(0.006) {
                bucket_vals = bucket_vals.map(|b| (b * 0.4).floor());
                sum_v *= 0.4;
                count_v = bucket_vals[7];
            }
            let n = rng.below(25);
            observe(n, &mut rng, &mut bucket_vals, &mut sum_v, &mut count_v);
            for (k, b) in buckets.iter_mut().enumerate() {
                b.samples.push((t, bucket_vals[k]));
            }
            hsum.samples.push((t, sum_v));
            hcount.samples.push((t, count_v));
            for (g, v) in temps.iter_mut() {
                *v += rng.unit() * 2.0 - 1.0;
                g.samples.push((t, *v));
            }
            queue.1 += rng.below(7) as f64 - 3.0;
            queue.0.samples.push((t, queue.1));
            mem.1 += (rng.unit() - 0.5) * 4e6;
            mem.0.samples.push((t, mem.1.round()));
            up.samples.push((t, if rng.chance(0.05) { 0.0 } else { 1.0 }));
            for (g, v, kind) in odd.iter_mut() {
                *v += rng.unit() - 0.5;
                let r = rng.unit();
                let x = match *kind {
                    "nan" if r < 0.15 => f64::NAN,
                    "inf" if r < 0.15 => f64::INFINITY,
                    "neginf" if r < 0.15 => f64::NEG_INFINITY,
                    "mixed" if r < 0.1 => f64::NAN,
                    "mixed" if r < 0.2 => f64::INFINITY,
                    "mixed" if r < 0.3 => f64::NEG_INFINITY,
                    _ => *v,
                };
                g.samples.push((t, x));
            }
        }
        out.extend(counters.into_iter().map(|c| c.0));
        out.extend(buckets);
        out.extend([hsum, hcount, queue.0, mem.0, up]);
        out.extend(temps.into_iter().map(|x| x.0));
        out.extend(odd.into_iter().map(|x| x.0));
    }
    out
}

/// Remote-write requests in time order: each carries every series' samples of one
/// five-minute slice, so Prometheus's head accepts them all.
pub(crate) fn write_requests(data: &[Gen], t0: i64) -> Vec<pb::WriteRequest> {
    let slice = 20 * INTERVAL_MS;
    (0..STEPS * INTERVAL_MS / slice + 1)
        .map(|k| {
            let (a, b) = (t0 + k * slice, t0 + (k + 1) * slice);
            let timeseries = data
                .iter()
                .filter_map(|g| {
                    let s: Vec<(i64, f64)> = g.samples.iter().copied().filter(|(t, _)| (a..b).contains(t)).collect();
                    let l: Vec<(&str, &str)> = g.labels.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                    (!s.is_empty()).then(|| series(&l, &s))
                })
                .collect();
            pb::WriteRequest { timeseries, ..Default::default() }
        })
        .filter(|r| !r.timeseries.is_empty())
        .collect()
}

// ---- the corpus ----

pub(crate) struct Query {
    pub(crate) category: &'static str,
    /// The query with `<T10>`-style placeholders (minutes after the data start).
    pub(crate) template: String,
}

pub(crate) fn corpus() -> Vec<Query> {
    let mut q: Vec<Query> = Vec::new();
    let mut add = |category: &'static str, items: Vec<String>| {
        q.extend(items.into_iter().map(|template| Query { category, template }));
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();

    let metrics = [
        "http_requests_total",
        "request_duration_seconds_bucket",
        "request_duration_seconds_count",
        "temperature_celsius",
        "queue_depth",
        "memory_bytes",
        "up",
        "odd_gauge",
    ];
    let mut sel: Vec<String> = metrics.iter().map(|m| m.to_string()).collect();
    sel.extend(s(&[
        r#"http_requests_total{job="api"}"#,
        r#"http_requests_total{job!="api"}"#,
        r#"http_requests_total{job=~"api|db"}"#,
        r#"http_requests_total{job=~"a.*"}"#,
        r#"http_requests_total{job!~"a.*"}"#,
        r#"http_requests_total{code=~"5.."}"#,
        r#"http_requests_total{method="get",code="200",job="web"}"#,
        r#"{__name__=~"http_.*"}"#,
        r#"{__name__=~"temperature_celsius|queue_depth",instance="i1"}"#,
        r#"{job="db",__name__!~"request_.*"}"#,
        r#"{__name__="up"}"#,
        r#"up{instance=~"i[12]"}"#,
        r#"up{instance=""}"#,
        r#"up{nonexistent=""}"#,
        r#"up{nonexistent!=""}"#,
        r#"odd_gauge{kind=~"nan|inf"}"#,
        r#"request_duration_seconds_bucket{le="+Inf"}"#,
        r#"request_duration_seconds_bucket{le=~"0\\.5|1"}"#,
        "nonexistent_metric",
        "temperature_celsius[5m]",
        "up[1m]",
        "odd_gauge[2m]",
        "temperature_celsius offset 10m",
        "timestamp(temperature_celsius)",
        "timestamp(up offset 2m)",
        "up[5m:1m]",
        "rate(http_requests_total[5m])[10m:1m]",
        "+up",
        "-up",
        r#"{instance=""}"#,
        r#"{"up"}"#,
    ]));
    add("selectors & lookback", sel);

    let counters = ["http_requests_total", "request_duration_seconds_sum", r#"http_requests_total{code="500"}"#];
    let gauges = ["temperature_celsius", "queue_depth", "odd_gauge"];
    let mut rates = Vec::new();
    for f in ["rate", "irate", "increase", "delta", "idelta", "resets", "changes", "deriv"] {
        for m in counters.iter().chain(gauges.iter()) {
            for r in ["1m", "5m", "10m"] {
                rates.push(format!("{f}({m}[{r}])"));
            }
        }
    }
    for m in counters.iter().chain(gauges.iter()) {
        rates.push(format!("predict_linear({m}[10m], 600)"));
        rates.push(format!("predict_linear({m}[5m], -300)"));
    }
    rates.extend(s(&[
        "predict_linear(memory_bytes[15m], 3600)",
        "deriv(memory_bytes[10m])",
        "rate(http_requests_total[30s])",
        "irate(http_requests_total[30s])",
        "increase(request_duration_seconds_count[1h])",
        "holt_winters(temperature_celsius[10m], 0.5, 0.5)",
        "double_exponential_smoothing(temperature_celsius[10m], 0.5, 0.5)",
    ]));
    add("rate & friends", rates);

    let mut ot = Vec::new();
    for f in ["avg", "sum", "count", "min", "max", "last", "present", "stddev", "stdvar"] {
        for m in ["temperature_celsius", "queue_depth", "memory_bytes", "odd_gauge", "http_requests_total"] {
            for r in ["2m", "10m"] {
                ot.push(format!("{f}_over_time({m}[{r}])"));
            }
        }
    }
    for phi in ["0", "0.25", "0.5", "0.9", "1", "-1", "2"] {
        for m in ["temperature_celsius", "odd_gauge"] {
            ot.push(format!("quantile_over_time({phi}, {m}[10m])"));
        }
    }
    add("*_over_time", ot);

    let mut agg = Vec::new();
    for op in ["sum", "avg", "min", "max", "count", "group", "stddev", "stdvar"] {
        for g in ["", " by (job)", " without (instance, sensor)"] {
            for e in ["http_requests_total", "rate(http_requests_total[5m])", "temperature_celsius", "odd_gauge"] {
                agg.push(format!("{op}{g} ({e})"));
            }
        }
    }
    agg.extend(s(&[
        "sum by (job, method) (rate(http_requests_total[5m]))",
        "sum(rate(http_requests_total[5m])) by (code)",
        "max without () (up)",
        "sum by (nonexistent) (up)",
        "count by (__name__) ({job=\"api\"})",
        "sum by (le) (request_duration_seconds_bucket)",
        "count without (le) (request_duration_seconds_bucket)",
        "topk(2, temperature_celsius)",
        "topk by (job) (2, rate(http_requests_total[5m]))",
        r#"topk by (job) (1, odd_gauge{kind=~"nan|neginf"})"#,
        "bottomk(2, temperature_celsius)",
        "bottomk without (instance) (1, memory_bytes)",
        r#"bottomk by (job) (1, odd_gauge{kind=~"nan|inf"})"#,
        "topk(scalar(count(up) / 9), memory_bytes)",
        "topk(0, up)",
        "quantile(0.5, temperature_celsius)",
        "quantile by (job) (0.9, rate(http_requests_total[5m]))",
        "quantile(0, queue_depth)",
        "quantile(1, queue_depth)",
        "quantile(-0.5, queue_depth)",
        "quantile(1.5, queue_depth)",
        "quantile(0.5, odd_gauge)",
        "count_values(\"value\", up)",
        "count_values by (job) (\"v\", queue_depth)",
        "count_values(\"v\", odd_gauge)",
        "count_values(\"le\", request_duration_seconds_bucket)",
        "count_values(\"1bad\", up)",
        "stddev by (job) (memory_bytes)",
        "avg(memory_bytes)",
        "sum(memory_bytes) - sum(memory_bytes offset 1m)",
        "group by (job) (up)",
    ]));
    add("aggregation", agg);

    let bin = s(&[
        "http_requests_total * 2",
        "2 * http_requests_total",
        "temperature_celsius - 10",
        "temperature_celsius / 0",
        "queue_depth % 3",
        "queue_depth ^ 2",
        "temperature_celsius atan2 1",
        "queue_depth atan2 on (job, instance) memory_bytes",
        "-temperature_celsius",
        "-odd_gauge",
        "odd_gauge * 0",
        "odd_gauge + odd_gauge",
        "rate(http_requests_total[5m]) / ignoring(code) group_left sum without (code) (rate(http_requests_total[5m]))",
        "sum by (job, instance) (rate(http_requests_total[5m])) / on (job) group_left sum by (job) (rate(http_requests_total[5m]))",
        "request_duration_seconds_sum / request_duration_seconds_count",
        "rate(request_duration_seconds_sum[5m]) / rate(request_duration_seconds_count[5m])",
        "temperature_celsius > 0",
        "temperature_celsius > bool 0",
        "temperature_celsius < -5",
        "queue_depth >= 0",
        "queue_depth <= bool -2",
        "up == 1",
        "up != 0",
        "up == bool 1",
        "odd_gauge > 0",
        "odd_gauge == bool odd_gauge",
        "odd_gauge != odd_gauge",
        "temperature_celsius == temperature_celsius",
        "temperature_celsius > on (job, instance) group_left queue_depth",
        "1 < bool 2",
        "1 > 2",
        "up and on (job) (temperature_celsius > 0)",
        "up or odd_gauge",
        "temperature_celsius unless ignoring (sensor) queue_depth < 0",
        "up unless on (job) (up == 0)",
        "memory_bytes and memory_bytes > 1.2e9",
        "(up == 0) or (queue_depth > 5)",
        "sum by (job) (up) * on (job) group_right up",
        "sum by (job) (up) + on (job) group_right (instance) memory_bytes",
        "up * on (job, instance) group_left (sensor) temperature_celsius",
        "memory_bytes / on (job, instance) group_left up",
        "queue_depth + on (job, instance) memory_bytes",
        "queue_depth + ignoring (__name__) memory_bytes",
        "http_requests_total + http_requests_total",
        "http_requests_total - http_requests_total offset 5m",
        "vector(1) + up",
        "up + on () group_left vector(1)",
        "sum(up) + sum(up)",
        "sum by (job) (up) and on (job) sum by (job) (up)",
        "vector(1) unless on () up",
        "odd_gauge > bool 0",
        "odd_gauge < Inf",
        "scalar(up) + Inf",
        "scalar(sum(up)) * up",
        "time() - timestamp(up)",
        "http_requests_total + on (job) up",
        "memory_bytes > bool on (job, instance) group_left 1e9 * up",
        "up or up",
        "(up or temperature_celsius) unless memory_bytes",
        "up unless up or up",
        "up and up or queue_depth",
        "http_requests_total / ignoring (method, code) group_left memory_bytes",
        "sum by (job) (rate(http_requests_total[5m])) > on (job) group_right sum by (job, instance) (rate(http_requests_total[5m]))",
        "up == bool on (job, instance) group_left temperature_celsius",
        "absent(up == 2)",
        "timestamp(rate(http_requests_total[5m]))",
        r#"up * on (job, instance) group_left (kind) odd_gauge{kind="nan"}"#,
        "count(count by (job) (up))",
        "vector(1) and vector(1)",
        "time() > bool 0",
        "-{__name__=\"up\"}",
        "temperature_celsius * on (job, instance, sensor) temperature_celsius offset 1m",
    ]);
    add("binary & set operators", bin);

    let mut math = Vec::new();
    for f in [
        "abs", "ceil", "floor", "exp", "sqrt", "ln", "log2", "log10", "sgn", "round", "sin", "cos", "tan", "asin",
        "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "deg", "rad",
    ] {
        for m in ["temperature_celsius", "queue_depth", "odd_gauge"] {
            math.push(format!("{f}({m})"));
        }
    }
    math.extend(s(&[
        "round(temperature_celsius, 0.5)",
        "round(queue_depth, 5)",
        "round(temperature_celsius, 0.1)",
        "changes(temperature_celsius[1h])",
        "resets(http_requests_total[1h])",
        "deriv(up[5m])",
        "predict_linear(up[5m], 60)",
        "round(temperature_celsius, -1)",
        "clamp(temperature_celsius, -5, 5)",
        "clamp(temperature_celsius, 5, -5)",
        "clamp_min(temperature_celsius, 0)",
        "clamp_max(temperature_celsius, 0)",
        "clamp(odd_gauge, -1, 1)",
        "clamp_min(odd_gauge, 0)",
        "clamp_max(odd_gauge, 0)",
        "clamp(odd_gauge, 0, 0)",
        "timestamp(up) - time()",
        "time()",
        "vector(time())",
        "pi()",
        "minute()",
        "hour()",
        "day_of_week()",
        "day_of_month()",
        "day_of_year()",
        "days_in_month()",
        "month()",
        "year()",
        "hour(timestamp(up))",
        "minute(timestamp(temperature_celsius))",
        "days_in_month(vector(1709251200))",
        "day_of_year(vector(1735603200))",
        "year(vector(0))",
        "month(up * 0 + 1e9)",
        "exp(memory_bytes)",
        "sqrt(-1 * abs(queue_depth))",
        "ln(up)",
    ]));
    add("math & time", math);

    add(
        "label_replace/label_join",
        s(&[
            r#"label_replace(up, "foo", "$1", "instance", "i(.*)")"#,
            r#"label_replace(up, "instance", "", "instance", ".*")"#,
            r#"label_replace(temperature_celsius, "sensor", "$2-$1", "job", "(.)(.*)")"#,
            r#"label_replace(up, "new", "x", "nonexistent", "")"#,
            r#"label_replace(up, "new", "x", "job", "nomatch")"#,
            r#"label_replace(up, "__name__", "renamed", "", "")"#,
            r#"label_replace(up, "1bad", "x", "job", ".*")"#,
            r#"label_replace(up, "new", "$1", "job", "(")"#,
            r#"label_replace(up, "job", "$1", "job", "a(.*)")"#,
            r#"label_replace(rate(http_requests_total[5m]), "class", "${1}xx", "code", "(.).*")"#,
            r#"label_replace(up, "x", "$0$0", "job", "db")"#,
            r#"label_join(up, "combo", "-", "job", "instance")"#,
            r#"label_join(up, "job", "", "instance")"#,
            r#"label_join(temperature_celsius, "x", ",", "sensor", "nonexistent", "job")"#,
            r#"label_join(rate(http_requests_total[5m]), "jc", ":", "job", "code")"#,
            r#"label_join(up, "new")"#,
            r#"label_join(up, "__name__", "", "job")"#,
            r#"sum by (class) (label_replace(rate(http_requests_total[5m]), "class", "${1}xx", "code", "(.).*"))"#,
        ]),
    );

    let mut hist = Vec::new();
    for phi in ["0", "0.1", "0.5", "0.9", "0.99", "1", "-0.5", "1.5"] {
        hist.push(format!("histogram_quantile({phi}, sum by (le, job) (rate(request_duration_seconds_bucket[5m])))"));
    }
    hist.extend(s(&[
        "histogram_quantile(0.9, sum by (le) (rate(request_duration_seconds_bucket[5m])))",
        "histogram_quantile(0.9, rate(request_duration_seconds_bucket[5m]))",
        "histogram_quantile(0.5, request_duration_seconds_bucket)",
        "histogram_quantile(0.9, sum by (le, job, instance) (increase(request_duration_seconds_bucket[10m])))",
        "histogram_quantile(0.75, sum without (instance) (rate(request_duration_seconds_bucket[1m])))",
        r#"histogram_quantile(0.9, sum by (le, job) (rate(request_duration_seconds_bucket{le!="+Inf"}[5m])))"#,
        "histogram_quantile(0.9, sum by (job) (rate(request_duration_seconds_bucket[5m])))",
        r#"histogram_quantile(0.5, label_replace(request_duration_seconds_bucket, "le", "5e-1", "le", "0\\.5"))"#,
        r#"histogram_quantile(0.5, label_replace(request_duration_seconds_bucket, "le", "+inf", "le", "\\+Inf"))"#,
        "sort_desc(histogram_quantile(0.9, sum by (le, job) (rate(request_duration_seconds_bucket[5m]))))",
        "histogram_quantile(scalar(vector(0.5)), sum by (le) (rate(request_duration_seconds_bucket[10m])))",
        r#"sum by (job) (rate(request_duration_seconds_bucket{le="0.25"}[5m])) / sum by (job) (rate(request_duration_seconds_count[5m]))"#,
        "sum by (job) (rate(request_duration_seconds_sum[5m])) / sum by (job) (rate(request_duration_seconds_count[5m]))",
    ]));
    add("histogram_quantile", hist);

    add(
        "subqueries",
        s(&[
            "max_over_time(rate(http_requests_total[1m])[10m:1m])",
            "avg_over_time(temperature_celsius[10m:30s])",
            "min_over_time(sum by (job) (up)[15m:2m])",
            "rate(http_requests_total[5m:1m])",
            "max_over_time(deriv(queue_depth[5m])[20m:])",
            "sum_over_time(up[10m:])",
            "count_over_time(temperature_celsius[5m:45s])",
            "last_over_time(temperature_celsius[10m:1m] offset 5m)",
            "quantile_over_time(0.9, rate(http_requests_total[2m])[15m:1m])",
            "max_over_time(histogram_quantile(0.9, sum by (le) (rate(request_duration_seconds_bucket[5m])))[10m:1m])",
            "avg_over_time(odd_gauge[5m:1m])",
            "changes(up[30m:1m])",
            "stddev_over_time(temperature_celsius[10m:15s])",
            "irate(http_requests_total[3m:30s])",
            // Nested: the inner range is no multiple of the inner step, or the outer steps
            // (whole minutes) would put inner steps on the left-open/closed boundary.
            "min_over_time(max_over_time(temperature_celsius[5m30s:1m])[10m:2m])",
            "absent_over_time(nonexistent_metric[5m:1m])",
            "sum_over_time((up == 0)[30m:1m])",
        ]),
    );

    add(
        "offset & @",
        s(&[
            "temperature_celsius offset 5m",
            "temperature_celsius offset -5m",
            "rate(http_requests_total[5m] offset 10m)",
            "sum(up offset 1h)",
            "temperature_celsius @ <T30>",
            "rate(http_requests_total[5m] @ <T30>)",
            "temperature_celsius @ start()",
            "temperature_celsius @ end()",
            "rate(http_requests_total[5m] @ end())",
            "max_over_time(temperature_celsius[10m:1m] @ <T30>)",
            "temperature_celsius @ <T30> offset 5m",
            "sum by (job) (up @ <T10>)",
            "temperature_celsius - temperature_celsius offset 1m",
            "up @ <T50> unless up",
            "count(up @ <T59>)",
            "count_over_time(up[1h] @ end())",
            "up @ 9999999999",
            "up offset 5m @ <T30>",
            "timestamp(up @ end())",
            "sum_over_time(up[5m] @ end())",
            "last_over_time(up[10m:1m] @ end())",
            "timestamp(up @ start())",
            "histogram_quantile(0.5, sum by (le) (request_duration_seconds_bucket offset 10m))",
        ]),
    );

    add(
        "absent",
        s(&[
            "absent(nonexistent_metric)",
            r#"absent(nonexistent_metric{job="api", instance=~"i.*"})"#,
            "absent(up)",
            r#"absent(up{job="nope"})"#,
            "absent(sum(nonexistent_metric))",
            r#"absent(nonexistent_metric{job="a", job="b"})"#,
            "absent_over_time(nonexistent_metric[5m])",
            r#"absent_over_time(up{job="web",instance="i2"}[5m])"#,
            r#"absent_over_time(temperature_celsius{job="db"}[1m])"#,
            r#"absent_over_time(nonexistent_metric{job="x"}[10m])"#,
            r#"absent_over_time(up{job="api",instance="i2"}[2m])"#,
            r#"present_over_time(up{job="db"}[5m])"#,
            "absent(up offset 2h)",
            "absent_over_time(up[1m] offset 2h)",
        ]),
    );

    add(
        "scalar & vector",
        s(&[
            "scalar(up)",
            r#"scalar(up{job="api",instance="i0"})"#,
            "scalar(sum(up))",
            "scalar(nonexistent_metric)",
            "vector(1)",
            "vector(scalar(sum(up)))",
            "1",
            "1 + 2 * 3",
            "2 ^ 3 ^ 2",
            "-1",
            "1 / 0",
            "-1 / 0",
            "0 / 0",
            "1 == bool 1",
            "\"hello\"",
            r#"count(up) * scalar(up{job="api",instance="i0"})"#,
            "sum(up) / count(up)",
            "NaN",
            "Inf",
            "-Inf",
            "0x1F",
            "1.5e-3",
        ]),
    );

    add(
        "sort",
        s(&[
            "sort(temperature_celsius)",
            "sort_desc(temperature_celsius)",
            "sort(rate(http_requests_total[5m]))",
            "sort_desc(sum by (job) (rate(http_requests_total[5m])))",
            "sort(topk(3, memory_bytes))",
            "sort_desc(bottomk(3, memory_bytes))",
            "sort_desc(queue_depth)",
            "sort(odd_gauge)",
            "sort_desc(odd_gauge)",
            "sort_desc(up)",
            "sort(count_values(\"v\", up))",
            "sort_desc(sum by (instance) (memory_bytes))",
            "sort(count_values(\"v\", round(temperature_celsius)))",
        ]),
    );

    add(
        "syntax & literals",
        s(&[
            r#"http_requests_total{job="api",}"#,
            "sum without () (up)",
            "SUM BY (job) (up)",
            "up OFFSET 5m",
            "rate(http_requests_total[1m30s])",
            "rate(http_requests_total[90s])",
            "up offset 1h30m",
            "max_over_time(up[10m:1m] offset 3m)",
            "1e3",
            ".5",
            "5.",
            "-.5",
            "nan",
            "inF",
            "-2 ^ 2",
            "2 * 3 % 2",
            "1 + 2 > bool 2",
            "up # a comment",
            r#"label_replace(up, "x", "a\tb", "", "")"#,
            r#"label_replace(up, "x", "\u00e9\x41", "", "")"#,
            "label_replace(up, `x`, `a\\nb`, ``, ``)",
            r#"up{job=~"API"}"#,
            r#"up{job=~"(?i)API"}"#,
            r#"up{job=~"a|"}"#,
            r#"count(up{job!~""})"#,
            "histogram_quantile(0.9, rate(request_duration_seconds_bucket[5m]) offset 30m)",
        ]),
    );

    add(
        "errors",
        s(&[
            "rate(up)",
            "rate(up[5m]",
            "sum(up[5m])",
            "unknown_function(up)",
            "topk(up, up)",
            "label_replace(up, \"a\", \"b\", \"c\")",
            r#"up{job=~"("}"#,
            r#"{__name__=~".*"}"#,
            "sum by (job) (up) offset 5m",
            "up[5m] offset 1m [1m]",
            "histogram_quantile(up, up)",
            "1 +",
            "up == bool on (job) group_left up",
            "vector(1) @ 100",
            "sum(up) @ <T30>",
            "rate(http_requests_total[0s])",
            "up[5m:0s]",
            "label_join(up, \"x\")",
            "quantile_over_time(up, up[5m])",
        ]),
    );
    q
}

// ---- running queries ----

/// Formats milliseconds as Prometheus API seconds.
pub(crate) fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

pub(crate) use strata_tests::url_encode as enc;

/// Replaces `<Tnn>` with the time `nn` minutes after the data start (plus `.123`).
pub(crate) fn instantiate(template: &str, t0: i64) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(p) = rest.find("<T") {
        out.push_str(&rest[..p]);
        let end = rest[p..].find('>').expect("placeholder end") + p;
        let min: i64 = rest[p + 2..end].parse().expect("placeholder minutes");
        out.push_str(&secs(t0 + min * 60_000 + QUERY_MS));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Eval {
    Instant(i64),
    Range(i64, i64, i64),
}

impl Eval {
    pub(crate) fn describe(&self, t0: i64) -> String {
        let rel = |t: i64| format!("t0{:+}s", (t - t0) as f64 / 1000.0);
        match *self {
            Eval::Instant(t) => format!("instant at {} ({})", rel(t), secs(t)),
            Eval::Range(a, b, s) => format!("range {}..{} step {}s", rel(a), rel(b), s / 1000),
        }
    }

    pub(crate) fn path(&self, query: &str) -> String {
        match *self {
            Eval::Instant(t) => format!("/api/v1/query?query={}&time={}", enc(query), secs(t)),
            Eval::Range(a, b, s) => {
                format!("/api/v1/query_range?query={}&start={}&end={}&step={}", enc(query), secs(a), secs(b), secs(s))
            }
        }
    }
}

/// One evaluation of one query: (evaluation index, evaluation, comparison).
type Outcome = (usize, Eval, Result<(), String>);

pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Value,
}

pub(crate) async fn ask(client: &reqwest::Client, base: &str, path: &str) -> Answer {
    let resp = client.get(format!("{base}{path}")).send().await.expect("query request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("query body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer { status, body }
}

// ---- comparing answers ----

fn parse_value(v: &Value) -> f64 {
    match v.as_str().unwrap_or("") {
        "NaN" => f64::NAN,
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        s => s.parse().unwrap_or_else(|_| panic!("bad sample value {v}")),
    }
}

fn parse_ts(v: &Value) -> i64 {
    (v.as_f64().unwrap_or_else(|| panic!("bad timestamp {v}")) * 1000.0).round() as i64
}

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    // Relative 1e-6; the absolute 1e-9 covers results that are mathematically zero, where
    // 2.42's incremental mean and 3.x's Kahan sums leave different ~1e-17 residues.
    a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs()) || (a - b).abs() <= 1e-9
}

fn metric_key(m: &Value) -> String {
    let map: BTreeMap<&str, &str> = m
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap_or(""))).collect())
        .unwrap_or_default();
    let inner: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// (labels, points) of a vector, matrix or scalar result.
fn series_of(result_type: &str, result: &Value) -> Vec<(String, Vec<(i64, f64)>)> {
    let point = |p: &Value| (parse_ts(&p[0]), parse_value(&p[1]));
    match result_type {
        "vector" => result
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| (metric_key(&s["metric"]), vec![point(&s["value"])]))
            .collect(),
        "matrix" => result
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| (metric_key(&s["metric"]), s["values"].as_array().into_iter().flatten().map(point).collect()))
            .collect(),
        "scalar" => vec![("scalar".to_string(), vec![point(result)])],
        _ => vec![],
    }
}

/// The points around index `at`.
fn show(points: &[(i64, f64)], at: usize) -> String {
    let lo = at.saturating_sub(1);
    let shown: Vec<String> = points.iter().skip(lo).take(4).map(|(t, v)| format!("{}@{}", v, secs(*t))).collect();
    format!("[{lo}: {}] ({} points)", shown.join(" "), points.len())
}

/// Compares Prometheus's answer (`want`) with Strata's (`got`). `ordered`: the query
/// defines the order of its result (sort, sort_desc), so the value order must agree.
pub(crate) fn compare(want: &Answer, got: &Answer, ordered: bool) -> Result<(), String> {
    let (ws, gs) = (want.body["status"].as_str(), got.body["status"].as_str());
    if ws != Some("success") || gs != Some("success") {
        let (we, ge) = (&want.body["errorType"], &got.body["errorType"]);
        if ws == gs && we == ge && want.status == got.status {
            return Ok(());
        }
        return Err(format!(
            "status: Prometheus {} {} {}; Strata {} {} {}",
            want.status,
            we,
            want.body.get("error").unwrap_or(&want.body),
            got.status,
            ge,
            got.body.get("error").unwrap_or(&got.body)
        ));
    }
    let (wt, gt) = (&want.body["data"]["resultType"], &got.body["data"]["resultType"]);
    if wt != gt {
        return Err(format!("result type: Prometheus {wt}, Strata {gt}"));
    }
    let wt = wt.as_str().unwrap_or("");
    let (wr, gr) = (&want.body["data"]["result"], &got.body["data"]["result"]);
    if wt == "string" {
        return if wr == gr { Ok(()) } else { Err(format!("string: Prometheus {wr}, Strata {gr}")) };
    }
    let (mut w, mut g) = (series_of(wt, wr), series_of(wt, gr));
    if ordered {
        let wv: Vec<f64> = w.iter().map(|s| s.1[0].1).collect();
        let gv: Vec<f64> = g.iter().map(|s| s.1[0].1).collect();
        if wv.len() == gv.len() && !wv.iter().zip(&gv).all(|(a, b)| close(*a, *b)) {
            return Err(format!("order: Prometheus values {wv:?}, Strata values {gv:?}"));
        }
    }
    w.sort_by(|a, b| a.0.cmp(&b.0));
    g.sort_by(|a, b| a.0.cmp(&b.0));
    let wk: Vec<&String> = w.iter().map(|s| &s.0).collect();
    let gk: Vec<&String> = g.iter().map(|s| &s.0).collect();
    if wk != gk {
        let missing: Vec<&&String> = wk.iter().filter(|k| !gk.contains(k)).take(3).collect();
        let extra: Vec<&&String> = gk.iter().filter(|k| !wk.contains(k)).take(3).collect();
        return Err(format!(
            "series: Prometheus {} Strata {}; missing in Strata {missing:?}; only in Strata {extra:?}",
            wk.len(),
            gk.len()
        ));
    }
    for ((key, wp), (_, gp)) in w.iter().zip(&g) {
        let first_diff = wp.iter().zip(gp).position(|(a, b)| a.0 != b.0 || !close(a.1, b.1));
        if let Some(at) = first_diff.or((wp.len() != gp.len()).then_some(wp.len().min(gp.len()))) {
            return Err(format!("{key}: Prometheus {} Strata {}", show(wp, at), show(gp, at)));
        }
    }
    Ok(())
}

// ---- Prometheus ----

pub(crate) async fn start_prometheus(dir: &Path) -> PrometheusProcess {
    std::fs::write(dir.join("prometheus.yml"), "global:\n  scrape_interval: 15s\n  evaluation_interval: 1m\n")
        .expect("write config");
    PrometheusProcess::start(dir, free_port(), &["--web.enable-remote-write-receiver"]).await.expect("start prometheus")
}

pub(crate) fn excluded(template: &str) -> Option<(&'static str, &'static str)> {
    KNOWN_DIFFERENCES
        .iter()
        .find(|(q, _)| *q == template)
        .map(|(_, why)| ("Strata bug", *why))
        .or_else(|| version_difference(template).map(|why| ("2.42 vs 3", why)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promql_matches_prometheus() {
    if !PrometheusProcess::installed() {
        missing_tool("prometheus", "`prometheus --version` failed (apt-get install prometheus; .ci/run does it)");
        return;
    }
    let started = Instant::now();
    let client = reqwest::Client::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let prom = start_prometheus(dir.path()).await;
    let purl = prom.base();
    let sb = Sandbox::start().await;
    let surl = sb.url("");

    // An hour of data ending 5 to 15 minutes ago, from a whole 10 minutes (so subquery
    // steps, aligned to absolute time, fall the same way on every run).
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64;
    let t0 = (now - 65 * 60_000) / 600_000 * 600_000;
    let data = generate(t0);
    let samples: usize = data.iter().map(|g| g.samples.len()).sum();
    for req in write_requests(&data, t0) {
        for base in [&purl, &surl] {
            let (status, body) = write_v1(&client, base, &req, None).await.expect("remote write");
            assert!((200..300).contains(&status), "remote write to {base}: {status} {body}");
        }
    }
    println!("wrote {} series, {samples} samples to both", data.len());

    let m = 60_000;
    let mut evals: Vec<Eval> =
        [5 * m, 26 * m, 47 * m + 30_000, 62 * m].iter().map(|&d| Eval::Instant(t0 + d + QUERY_MS)).collect();
    evals.push(Eval::Range(t0 - 3 * m + QUERY_MS, t0 + 64 * m + QUERY_MS, 60_000));
    evals.push(Eval::Range(t0 + 20 * m + QUERY_MS, t0 + 40 * m + QUERY_MS, 17_000));

    let corpus = corpus();
    let jobs: Vec<(usize, usize, Eval)> =
        (0..corpus.len()).flat_map(|qi| evals.iter().enumerate().map(move |(ei, e)| (qi, ei, *e))).collect();
    let texts: Arc<Vec<String>> = Arc::new(corpus.iter().map(|q| instantiate(&q.template, t0)).collect());
    let jobs = Arc::new(jobs);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (jobs, next, texts, client) = (jobs.clone(), next.clone(), texts.clone(), client.clone());
        let (purl, surl) = (purl.clone(), surl.clone());
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let j = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(qi, ei, eval)) = jobs.get(j) else { break };
                let text = &texts[qi];
                let path = eval.path(text);
                let want = ask(&client, &purl, &path).await;
                let got = ask(&client, &surl, &path).await;
                let ordered =
                    matches!(eval, Eval::Instant(_)) && (text.starts_with("sort(") || text.starts_with("sort_desc("));
                out.push((qi, ei, eval, compare(&want, &got, ordered)));
            }
            out
        }));
    }
    let mut outcomes: Vec<Vec<Outcome>> = (0..corpus.len()).map(|_| Vec::new()).collect();
    for w in workers {
        for (qi, ei, eval, r) in w.await.expect("worker") {
            outcomes[qi].push((ei, eval, r));
        }
    }
    for o in &mut outcomes {
        o.sort_by_key(|x| x.0);
    }

    // Match table by category; excluded queries reported apart.
    let mut table: Vec<(&str, usize, usize, usize)> = Vec::new(); // (category, matched, total, excluded)
    let mut mismatches = Vec::new();
    let mut excluded_report = Vec::new();
    for (qi, (q, outs)) in corpus.iter().zip(&outcomes).enumerate() {
        if !table.iter().any(|r| r.0 == q.category) {
            table.push((q.category, 0, 0, 0));
        }
        let row = table.iter_mut().find(|r| r.0 == q.category).expect("row");
        let first_bad = outs.iter().find(|(_, _, r)| r.is_err());
        if let Some((kind, why)) = excluded(&q.template) {
            row.3 += 1;
            let state = if first_bad.is_some() { "differs" } else { "now matches" };
            excluded_report.push(format!("  [{kind}] {} — {why} ({state})", q.template));
            continue;
        }
        row.2 += 1;
        match first_bad {
            None => row.1 += 1,
            Some((_, eval, Err(e))) => {
                mismatches.push(format!("  {}\n    query: {}\n    {}: {e}", q.category, texts[qi], eval.describe(t0)))
            }
            Some((_, _, Ok(()))) => {}
        }
    }
    println!("\n{:<28} {:>8} {:>6} {:>9}", "category", "matched", "total", "excluded");
    let (mut matched, mut total) = (0, 0);
    for (c, ok, n, ex) in &table {
        println!("{c:<28} {ok:>8} {n:>6} {ex:>9}");
        matched += ok;
        total += n;
    }
    println!("{:<28} {matched:>8} {total:>6}", "all");
    println!("{} queries × {} evaluations each, {:.1}s", corpus.len(), evals.len(), started.elapsed().as_secs_f64());
    println!("\navoided by construction:");
    for a in AVOIDED {
        println!("  {a}");
    }
    println!("\nexcluded ({}):", excluded_report.len());
    for e in &excluded_report {
        println!("{e}");
    }
    if !mismatches.is_empty() {
        println!("\nmismatches ({}), first 12:", mismatches.len());
        for m in mismatches.iter().take(12) {
            println!("{m}");
        }
    }
    drop(prom);
    sb.stop().await;
    assert!(mismatches.is_empty(), "{} of {total} queries differ from Prometheus", mismatches.len());
}
