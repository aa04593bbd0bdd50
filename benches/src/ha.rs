//! HA mode: the workload as an HA Prometheus pair writes it — two replicas sending
//! identical samples, each series carrying `cluster=<c>` and `__replica__=r1|r2` —
//! and what deduplicating it costs, in Strata and in VictoriaMetrics, measured in
//! the same run.
//!
//! ```text
//!  cache ─► single stream  (+ cluster=c)                     ─► vm-single, strata-single
//!        └► doubled stream (+ cluster=c, __replica__=r1 | r2,
//!           bodies interleaved r1, r2, r1, …; each replica its
//!           own shards and --concurrency requests in flight)  ─► vm-dedup     (-dedup.minScrapeInterval
//!                                                                             + labeldrop __replica__)
//!                                                              ─► strata-tracker (ha_tracker on)
//!                                                              ─► strata-both    (tracker off: both stored,
//!                                                                             queried with dedup=true)
//!  every setup: the run's measure (CPU over the replay, flush, RSS, counts, dashboard)
//!  then: tracker overhead = CPU(strata-tracker) / CPU(strata-single) - 1
//!        Strata / VM      = CPU per accepted sample, strata-tracker / vm-dedup
//!        query dedup      = dashboard medians, strata-both (dedup=true) / strata-single
//!        answers          = strata-both (dedup) and strata-tracker answers == strata-single's
//! ```
//!
//! Every setup that deduplicates must hold exactly the single stream: the counts
//! are checked against the manifest as in `run`, and the dashboard answers of the
//! Strata setups are compared with those of `strata-single`; any difference fails
//! the run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

use crate::run::{self, Check, Fig, QuerySet, RunOptions, TargetKind, TargetResult, TargetSpec, TimeRange};
use crate::workload::{self, Body, Manifest};

/// The label naming the pair (kept on stored series).
pub const CLUSTER_LABEL: &str = "cluster";
/// The label naming the replica (removed by deduplication).
pub const REPLICA_LABEL: &str = "__replica__";
/// The replicas' names.
pub const REPLICAS: [&str; 2] = ["r1", "r2"];

/// The goal of issue 11: the tracker adds under 5 % to ingest CPU.
pub const GOAL_TRACKER_OVERHEAD: f64 = 0.05;
/// The goal of issue 11: query-time dedup costs under 1.5x the single-replica query.
pub const GOAL_QUERY_DEDUP_RATIO: f64 = 1.5;

/// How to run the HA benchmark.
#[derive(Debug, Clone)]
pub struct HaOptions {
    /// The strata binary.
    pub strata_bin: PathBuf,
    /// The VictoriaMetrics binary (its setups are skipped when it is missing).
    pub vm_bin: PathBuf,
    /// The pair's cluster label value.
    pub cluster: String,
    /// Requests in flight per replica (the doubled stream has twice as many).
    pub concurrency: usize,
    /// Repetitions of each dashboard query.
    pub query_reps: usize,
    /// Where logs and the report go.
    pub out_dir: PathBuf,
    /// Where the targets' temporary data dirs go.
    pub work_dir: PathBuf,
    /// Keep the data dirs.
    pub keep_data: bool,
    /// Show progress bars.
    pub progress: bool,
    /// How long a target may take to become ready.
    pub ready_timeout: Duration,
    /// Wait between the RSS reads after the flush.
    pub settle: Duration,
}

/// Which stream a setup receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// One replica, with the cluster label and no replica label.
    Single,
    /// Both replicas, each with the cluster and its replica label.
    Doubled,
}

/// One setup: a target configured one way, fed one stream.
#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    /// Name in the report (`strata-tracker`, …).
    pub name: &'static str,
    /// What it is.
    pub what: &'static str,
    /// The stream it receives.
    pub stream: Stream,
    /// Whether it stores one replica (so accepted samples = the single stream's).
    pub dedups_at_ingest: bool,
    /// The target and its arguments.
    pub spec: TargetSpec,
    /// Parameters of the dashboard passes (the first one is the one compared and
    /// counted with).
    #[serde(skip)]
    query_sets: Vec<QuerySet>,
}

/// The setups, in run order (VictoriaMetrics first, as in `run`).
pub fn setups(opts: &HaOptions, interval_s: u64) -> Vec<Setup> {
    let vm = |label: &str| {
        let mut s = TargetSpec::new(TargetKind::VictoriaMetrics, opts.vm_bin.clone());
        s.label = label.to_string();
        s
    };
    let strata = |label: &str| {
        let mut s = TargetSpec::new(TargetKind::Strata, opts.strata_bin.clone());
        s.label = label.to_string();
        s
    };
    let mut vm_dedup = vm("vm-dedup");
    // VictoriaMetrics deduplicates samples of one series: the replica label must go
    // before storage (its docs: HA senders must be configured identically), here by
    // its ingestion relabeling; then one sample per -dedup.minScrapeInterval stays.
    vm_dedup.files.push(("relabel.yml".into(), format!("- action: labeldrop\n  regex: {REPLICA_LABEL}\n")));
    vm_dedup.args.push(format!("-dedup.minScrapeInterval={interval_s}s"));
    vm_dedup.args.push("-relabelConfig={dir}/relabel.yml".into());
    let mut tracker = strata("strata-tracker");
    tracker.files.push((
        "strata.yaml".into(),
        format!(
            "ha_tracker:\n  enabled: true\n  cluster_label: {CLUSTER_LABEL}\n  replica_label: {REPLICA_LABEL}\n  \
             update_timeout: 15s\n  failover_timeout: 30s\n"
        ),
    ));
    tracker.args.extend(["--config".to_string(), "{dir}/strata.yaml".to_string()]);
    let main = vec![QuerySet::default()];
    let dedup = vec![
        QuerySet {
            suffix: String::new(),
            params: vec![("dedup".into(), "true".into()), ("replicaLabels[]".into(), REPLICA_LABEL.into())],
        },
        QuerySet { suffix: " [dedup=false]".into(), params: vec![("dedup".into(), "false".into())] },
    ];
    vec![
        Setup {
            name: "vm-single",
            what: "VictoriaMetrics, one replica",
            stream: Stream::Single,
            dedups_at_ingest: false,
            spec: vm("vm-single"),
            query_sets: main.clone(),
        },
        Setup {
            name: "vm-dedup",
            what: "VictoriaMetrics, both replicas, -dedup.minScrapeInterval + labeldrop __replica__",
            stream: Stream::Doubled,
            dedups_at_ingest: true,
            spec: vm_dedup,
            query_sets: main.clone(),
        },
        Setup {
            name: "strata-single",
            what: "Strata, one replica, tracker off",
            stream: Stream::Single,
            dedups_at_ingest: false,
            spec: strata("strata-single"),
            query_sets: main.clone(),
        },
        Setup {
            name: "strata-tracker",
            what: "Strata, both replicas, HA tracker on",
            stream: Stream::Doubled,
            dedups_at_ingest: true,
            spec: tracker,
            query_sets: main,
        },
        Setup {
            name: "strata-both",
            what: "Strata, both replicas stored (tracker off), queried with dedup=true",
            stream: Stream::Doubled,
            dedups_at_ingest: false,
            spec: strata("strata-both"),
            query_sets: dedup,
        },
    ]
}

/// One setup's measurements.
#[derive(Debug, Clone, Serialize)]
pub struct SetupResult {
    /// The setup.
    pub setup: Setup,
    /// Samples the target received (both replicas for the doubled stream).
    pub samples_received: u64,
    /// Samples the target keeps: the single stream's where it deduplicates at
    /// ingest (checked by the counts), all it received otherwise.
    pub samples_accepted: u64,
    /// Samples in bodies answered 202 (Strata's tracker: the other replica's).
    pub samples_answered_202: u64,
    /// Server CPU seconds over the replay per million samples received.
    pub cpu_seconds_per_million_received: Fig,
    /// The same per million samples accepted.
    pub cpu_seconds_per_million_accepted: Fig,
    /// Everything the run's measurement gives.
    pub result: TargetResult,
}

/// One dashboard query, query-time dedup against one replica.
#[derive(Debug, Clone, Serialize)]
pub struct QueryCompare {
    /// Query name.
    pub name: String,
    /// Median on `strata-single`, ms.
    pub single_ms: Fig,
    /// Median on `strata-both` with `dedup=true`, ms.
    pub dedup_ms: Fig,
    /// Median on `strata-both` with `dedup=false` (both replicas returned), ms.
    pub no_dedup_ms: Fig,
    /// `dedup_ms / single_ms`.
    pub ratio: Fig,
}

/// The figures issue 11 asks for.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// CPU(strata-tracker) / CPU(strata-single) - 1, CPU seconds over the replay.
    pub tracker_overhead: Fig,
    /// Below [`GOAL_TRACKER_OVERHEAD`]; `None` when not measured.
    pub tracker_overhead_goal_met: Option<bool>,
    /// CPU(vm-dedup) / CPU(vm-single) - 1: what deduplicating costs VictoriaMetrics.
    pub vm_dedup_overhead: Fig,
    /// CPU s per M accepted samples: strata-tracker.
    pub strata_tracker_cpu_per_million_accepted: Fig,
    /// CPU s per M accepted samples: vm-dedup.
    pub vm_dedup_cpu_per_million_accepted: Fig,
    /// strata-tracker / vm-dedup, CPU per accepted sample.
    pub strata_to_vm_cpu_ratio: Fig,
    /// Per dashboard query.
    pub queries: Vec<QueryCompare>,
    /// Sum of the dedup medians / sum of the single-replica medians.
    pub query_dedup_ratio: Fig,
    /// Below [`GOAL_QUERY_DEDUP_RATIO`]; `None` when not measured.
    pub query_dedup_goal_met: Option<bool>,
    /// The largest per-query ratio, and its query.
    pub worst_query: Option<(String, f64)>,
}

/// The whole HA run.
#[derive(Debug, Clone, Serialize)]
pub struct HaReport {
    /// Unix seconds at the start.
    pub started_at: u64,
    /// CPUs of the machine.
    pub cpus: usize,
    /// `/proc/loadavg` at the start.
    pub loadavg_at_start: String,
    /// `/proc/loadavg` at the end.
    pub loadavg_at_end: String,
    /// The workload (one replica's).
    pub manifest: Manifest,
    /// The cluster label value.
    pub cluster: String,
    /// Shift applied to the cached timestamps, ms.
    pub shift_ms: i64,
    /// The shifted range.
    pub range: TimeRange,
    /// One entry per setup.
    pub setups: Vec<SetupResult>,
    /// The figures of issue 11.
    pub summary: Summary,
    /// Counts against the manifest, answers against `strata-single`.
    pub check: Check,
}

impl HaReport {
    /// True when every check passed and no setup failed.
    pub fn ok(&self) -> bool {
        self.check.passed && !self.setups.iter().any(|s| s.result.status.starts_with("failed"))
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_string()
}

/// The two replicas' bodies interleaved as an HA pair sends them: body i of r1,
/// body i of r2, …; r2's shards are numbered after r1's, so each replica keeps its
/// own shards (and, with twice the workers, its own requests in flight).
pub fn interleave(r1: Vec<Body>, r2: Vec<Body>, shards: u16) -> Vec<Body> {
    let mut out = Vec::with_capacity(r1.len() + r2.len());
    let mut r2 = r2.into_iter();
    for a in r1 {
        out.push(a);
        if let Some(mut b) = r2.next() {
            b.shard += shards;
            out.push(b);
        }
    }
    out.extend(r2.map(|mut b| {
        b.shard += shards;
        b
    }));
    out
}

/// Runs every setup on the workload cached in `cache_dir`.
pub fn run_ha(cache_dir: &Path, manifest: &Manifest, opts: &HaOptions) -> Result<HaReport> {
    let started_at = (now_ms() / 1000) as u64;
    let loadavg_at_start = loadavg();
    let shift_ms = workload::shift_to_end_near(manifest, now_ms());
    let range = TimeRange {
        start_ms: manifest.min_ts + shift_ms,
        end_ms: manifest.max_ts + shift_ms,
        interval_s: manifest.params.interval_s,
    };
    let cluster = (CLUSTER_LABEL.to_string(), opts.cluster.clone());
    let replica = |r: &str| vec![(REPLICA_LABEL.to_string(), r.to_string()), cluster.clone()];
    eprintln!("loading the single stream and both replicas' streams ({} bodies each)", manifest.bodies);
    let single = workload::load_bodies_with_labels(
        cache_dir,
        manifest,
        shift_ms,
        std::slice::from_ref(&cluster),
        opts.progress,
    )?;
    let r1 = workload::load_bodies_with_labels(cache_dir, manifest, shift_ms, &replica(REPLICAS[0]), opts.progress)?;
    let r2 = workload::load_bodies_with_labels(cache_dir, manifest, shift_ms, &replica(REPLICAS[1]), opts.progress)?;
    let doubled = interleave(r1, r2, manifest.params.shards);

    let mut results = Vec::new();
    for setup in setups(opts, manifest.params.interval_s) {
        let (bodies, concurrency) = match setup.stream {
            Stream::Single => (&single, opts.concurrency),
            Stream::Doubled => (&doubled, opts.concurrency * 2),
        };
        let ropts = RunOptions {
            targets: Vec::new(),
            concurrency,
            query_reps: opts.query_reps,
            out_dir: opts.out_dir.clone(),
            work_dir: opts.work_dir.clone(),
            keep_data: opts.keep_data,
            progress: opts.progress,
            ready_timeout: opts.ready_timeout,
            settle: opts.settle,
        };
        let mut r = TargetResult {
            target: setup.name.to_string(),
            binary: setup.spec.bin.display().to_string(),
            ..TargetResult::default()
        };
        if !setup.spec.bin.is_file() {
            r.status = format!("skipped: binary {} not found", setup.spec.bin.display());
            eprintln!("{}: {}", setup.name, r.status);
        } else {
            eprintln!("== {} ({})", setup.name, setup.what);
            match run::measure(&setup.spec, bodies, manifest, &range, &ropts, &setup.query_sets, &mut r) {
                Ok(()) => r.status = "ok".into(),
                Err(e) => {
                    r.status = format!("failed: {e:#}");
                    eprintln!("{}: {}", setup.name, r.status);
                }
            }
        }
        results.push(setup_result(setup, r, manifest));
    }
    let mut check = run::check(manifest, &results.iter().map(|s| s.result.clone()).collect::<Vec<_>>());
    check_ha(manifest, &results, &mut check);
    check.passed = check.mismatches.is_empty();
    let summary = summarize(&results);
    Ok(HaReport {
        started_at,
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        loadavg_at_start,
        loadavg_at_end: loadavg(),
        manifest: manifest.clone(),
        cluster: opts.cluster.clone(),
        shift_ms,
        range,
        setups: results,
        summary,
        check,
    })
}

fn setup_result(setup: Setup, result: TargetResult, manifest: &Manifest) -> SetupResult {
    let received = result.replay.as_ref().map_or(0, |r| r.samples_sent);
    let answered_202 = result.replay.as_ref().and_then(|r| r.samples_by_status.get(&202).copied()).unwrap_or(0);
    let accepted = if setup.dedups_at_ingest { manifest.total_samples } else { received };
    let per = |n: u64| match result.cpu_seconds_replay.num() {
        Some(cpu) if n > 0 => Fig::Num(cpu / (n as f64 / 1e6)),
        _ => result.cpu_seconds_replay.clone(),
    };
    SetupResult {
        cpu_seconds_per_million_received: per(received),
        cpu_seconds_per_million_accepted: per(accepted),
        samples_received: received,
        samples_accepted: accepted,
        samples_answered_202: answered_202,
        setup,
        result,
    }
}

/// Checks beyond the counts: the tracker stored exactly one replica's samples
/// without a failover, and Strata's deduplicated answers equal one replica's.
fn check_ha(manifest: &Manifest, results: &[SetupResult], c: &mut Check) {
    let ok = |name: &str| results.iter().find(|s| s.setup.name == name && s.result.status == "ok");
    if let Some(t) = ok("strata-tracker") {
        let stored = t.samples_received - t.samples_answered_202;
        if stored != manifest.total_samples || t.samples_answered_202 != manifest.total_samples {
            c.mismatches.push(format!(
                "strata-tracker: {stored} samples answered 204 and {} answered 202; each should be one replica's {}",
                t.samples_answered_202, manifest.total_samples
            ));
        }
        let elections = t.result.ha_status.as_ref().and_then(Value::as_array).cloned().unwrap_or_default();
        match elections.as_slice() {
            [e] if e["failovers"] == 0 && e["deduplicatedSamples"] == t.samples_answered_202 => {}
            _ => c.mismatches.push(format!(
                "strata-tracker: /api/v1/status/ha should list one election without failovers that \
                 deduplicated {} samples; it lists {}",
                t.samples_answered_202,
                Value::Array(elections.clone())
            )),
        }
    }
    let Some(reference) = ok("strata-single") else {
        c.unchecked.push("answers: strata-single did not run, nothing to compare with".into());
        return;
    };
    for name in ["strata-tracker", "strata-both"] {
        let Some(s) = ok(name) else {
            c.unchecked.push(format!("answers: {name} did not run"));
            continue;
        };
        for want in &reference.result.queries {
            let got = s.result.queries.iter().find(|q| q.name == want.name);
            match (want.answer.as_ref(), got.and_then(|q| q.answer.as_ref())) {
                (Some(w), Some(g)) if canonical(w) == canonical(g) => {}
                (Some(w), Some(g)) => c.mismatches.push(format!(
                    "{name}: query {} answers differently from strata-single: {}",
                    want.name,
                    first_difference(&canonical(w), &canonical(g))
                )),
                _ => c.mismatches.push(format!("{name}: query {} has no answer to compare", want.name)),
            }
        }
    }
}

/// An answer's `data` in an order-free form: result series sorted by their labels,
/// label values and series lists sorted.
pub fn canonical(data: &Value) -> Value {
    let sorted = |items: &[Value]| {
        let mut v: Vec<(String, Value)> = items
            .iter()
            .map(|x| (serde_json::to_string(x.get("metric").unwrap_or(x)).unwrap_or_default(), x.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Value::Array(v.into_iter().map(|(_, x)| x).collect())
    };
    match data {
        Value::Array(items) => sorted(items),
        Value::Object(o) => {
            let mut o = o.clone();
            if let Some(Value::Array(items)) = o.get("result") {
                let s = sorted(items);
                o.insert("result".into(), s);
            }
            Value::Object(o)
        }
        other => other.clone(),
    }
}

/// A short description of where two canonical answers first differ.
fn first_difference(want: &Value, got: &Value) -> String {
    let list = |v: &Value| -> Vec<Value> {
        v.as_array().or_else(|| v.get("result").and_then(Value::as_array)).cloned().unwrap_or_default()
    };
    let (w, g) = (list(want), list(got));
    if w.len() != g.len() {
        return format!("{} results, expected {}", g.len(), w.len());
    }
    for (a, b) in w.iter().zip(&g) {
        if a != b {
            let cut = |v: &Value| v.to_string().chars().take(300).collect::<String>();
            return format!("expected {} got {}", cut(a), cut(b));
        }
    }
    "result types differ".into()
}

fn summarize(results: &[SetupResult]) -> Summary {
    let get = |name: &str| results.iter().find(|s| s.setup.name == name && s.result.status == "ok");
    let cpu = |name: &str| get(name).and_then(|s| s.result.cpu_seconds_replay.num());
    let over = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Fig::Num(a / b - 1.0),
        _ => Fig::Na("n/a (a setup did not run)".into()),
    };
    let mut s = Summary {
        tracker_overhead: over(cpu("strata-tracker"), cpu("strata-single")),
        vm_dedup_overhead: over(cpu("vm-dedup"), cpu("vm-single")),
        ..Summary::default()
    };
    s.tracker_overhead_goal_met = s.tracker_overhead.num().map(|x| x < GOAL_TRACKER_OVERHEAD);
    let accepted = |name: &str| get(name).map_or_else(Fig::default, |s| s.cpu_seconds_per_million_accepted.clone());
    s.strata_tracker_cpu_per_million_accepted = accepted("strata-tracker");
    s.vm_dedup_cpu_per_million_accepted = accepted("vm-dedup");
    s.strata_to_vm_cpu_ratio =
        match (s.strata_tracker_cpu_per_million_accepted.num(), s.vm_dedup_cpu_per_million_accepted.num()) {
            (Some(a), Some(b)) if b > 0.0 => Fig::Num(a / b),
            _ => Fig::Na("n/a (a setup did not run)".into()),
        };
    let (Some(single), Some(both)) = (get("strata-single"), get("strata-both")) else {
        s.query_dedup_ratio = Fig::Na("n/a (strata-single or strata-both did not run)".into());
        return s;
    };
    let median = |r: &TargetResult, name: &str| {
        r.queries.iter().find(|q| q.name == name).map_or_else(Fig::default, |q| q.median_ms.clone())
    };
    let (mut sum_single, mut sum_dedup, mut complete) = (0.0, 0.0, true);
    for q in &single.result.queries {
        let (a, b) = (median(&single.result, &q.name), median(&both.result, &q.name));
        let ratio = match (a.num(), b.num()) {
            (Some(a), Some(b)) if a > 0.0 => {
                sum_single += a;
                sum_dedup += b;
                if s.worst_query.as_ref().is_none_or(|(_, w)| b / a > *w) {
                    s.worst_query = Some((q.name.clone(), b / a));
                }
                Fig::Num(b / a)
            }
            _ => {
                complete = false;
                Fig::Na("n/a (not measured)".into())
            }
        };
        s.queries.push(QueryCompare {
            name: q.name.clone(),
            single_ms: a,
            dedup_ms: b,
            no_dedup_ms: median(&both.result, &format!("{} [dedup=false]", q.name)),
            ratio,
        });
    }
    s.query_dedup_ratio = if complete && sum_single > 0.0 {
        Fig::Num(sum_dedup / sum_single)
    } else {
        Fig::Na("n/a (not every query ran)".into())
    };
    s.query_dedup_goal_met = s.query_dedup_ratio.num().map(|x| x < GOAL_QUERY_DEDUP_RATIO);
    s
}

fn fmt(f: &Fig) -> String {
    match f {
        Fig::Num(v) if v.abs() >= 1000.0 => format!("{v:.0}"),
        Fig::Num(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Fig::Num(v) => format!("{v:.3}"),
        Fig::Na(why) => why.chars().take(18).collect(),
    }
}

fn pct(f: &Fig) -> String {
    f.num().map_or_else(|| fmt(f), |v| format!("{:+.1} %", v * 100.0))
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "goal MET",
        Some(false) => "goal MISSED",
        None => "not measured",
    }
}

/// The report as text tables, the figures of issue 11 and the check verdict.
pub fn table(rep: &HaReport) -> String {
    let m = &rep.manifest;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "HA workload: {} hosts, {} s at {} s, seed {}: one replica = {} series, {} samples; \
         two replicas (cluster={}, {REPLICA_LABEL}={}|{}) = {} samples",
        m.params.hosts,
        m.params.duration_s,
        m.params.interval_s,
        m.params.seed,
        m.total_series,
        m.total_samples,
        rep.cluster,
        REPLICAS[0],
        REPLICAS[1],
        2 * m.total_samples
    );
    let _ = writeln!(
        out,
        "machine: {} CPUs, load average at start {}, at end {}",
        rep.cpus, rep.loadavg_at_start, rep.loadavg_at_end
    );
    let ran: Vec<&SetupResult> = rep.setups.iter().filter(|s| s.result.replay.is_some()).collect();
    let mut header = format!("{:<32}", "figure");
    for s in &ran {
        let _ = write!(header, " | {:>16}", s.setup.name);
    }
    let _ = writeln!(out, "{header}");
    let _ = writeln!(out, "{}", "-".repeat(header.len()));
    type Cell = Box<dyn Fn(&SetupResult) -> String>;
    let num = |f: fn(&SetupResult) -> Fig| -> Cell { Box::new(move |s| fmt(&f(s))) };
    let mut rows: Vec<(String, Cell)> = vec![
        ("stream".into(), Box::new(|s| format!("{:?}", s.setup.stream).to_lowercase())),
        ("samples received".into(), Box::new(|s| s.samples_received.to_string())),
        ("samples accepted (kept)".into(), Box::new(|s| s.samples_accepted.to_string())),
        ("samples answered 202".into(), Box::new(|s| s.samples_answered_202.to_string())),
        ("CPU s (replay)".into(), num(|s| s.result.cpu_seconds_replay.clone())),
        ("CPU s / M received".into(), num(|s| s.cpu_seconds_per_million_received.clone())),
        ("CPU s / M accepted".into(), num(|s| s.cpu_seconds_per_million_accepted.clone())),
        ("replay s".into(), num(|s| s.result.replay.as_ref().map_or_else(Fig::default, |r| Fig::Num(r.wall_seconds)))),
        (
            "write latency p50 ms".into(),
            num(|s| s.result.replay.as_ref().map_or_else(Fig::default, |r| Fig::Num(r.latency_ms.p50))),
        ),
        (
            "peak RSS MiB".into(),
            num(|s| s.result.peak_rss_bytes.num().map_or_else(Fig::default, |v| Fig::Num(v / 1048576.0))),
        ),
        (
            "disk bytes / kept sample".into(),
            num(|s| match s.result.disk_bytes_persisted.num() {
                Some(b) if s.samples_accepted > 0 => Fig::Num(b / s.samples_accepted as f64),
                _ => s.result.disk_bytes_persisted.clone(),
            }),
        ),
        ("series count".into(), num(|s| s.result.series_count.clone())),
        ("sample count".into(), num(|s| s.result.sample_count.clone())),
    ];
    let names: Vec<String> =
        ran.iter().flat_map(|s| s.result.queries.iter().map(|q| q.name.clone())).fold(Vec::new(), |mut v, n| {
            if !v.contains(&n) {
                v.push(n);
            }
            v
        });
    for name in names {
        let n = name.clone();
        rows.push((
            format!("query {name} ms"),
            Box::new(move |s: &SetupResult| {
                s.result.queries.iter().find(|q| q.name == n).map_or_else(|| "-".to_string(), |q| fmt(&q.median_ms))
            }),
        ));
    }
    for (label, cell) in &rows {
        let mut line = format!("{:<32}", label.chars().take(32).collect::<String>());
        for s in &ran {
            let _ = write!(line, " | {:>16}", cell(s));
        }
        let _ = writeln!(out, "{line}");
    }
    for s in &rep.setups {
        if s.result.status != "ok" {
            let _ = writeln!(out, "{}: {}", s.setup.name, s.result.status);
        }
        for n in &s.result.notes {
            let _ = writeln!(out, "{}: note: {n}", s.setup.name);
        }
    }
    let sm = &rep.summary;
    let _ = writeln!(out, "\nissue 11 figures:");
    let _ = writeln!(
        out,
        "  HA tracker overhead (CPU strata-tracker on 2x / strata-single on 1x - 1): {}  [{} < {:.0} %]",
        pct(&sm.tracker_overhead),
        verdict(sm.tracker_overhead_goal_met),
        GOAL_TRACKER_OVERHEAD * 100.0
    );
    let _ = writeln!(
        out,
        "  VictoriaMetrics dedup overhead (vm-dedup on 2x / vm-single on 1x - 1): {}",
        pct(&sm.vm_dedup_overhead)
    );
    let _ = writeln!(
        out,
        "  CPU s / M accepted samples, doubled stream: strata-tracker {}, vm-dedup {}, Strata/VM {}x",
        fmt(&sm.strata_tracker_cpu_per_million_accepted),
        fmt(&sm.vm_dedup_cpu_per_million_accepted),
        fmt(&sm.strata_to_vm_cpu_ratio)
    );
    let _ = writeln!(out, "  query-time dedup (strata-both, dedup=true) vs one replica (strata-single), medians ms:");
    for q in &sm.queries {
        let _ = writeln!(
            out,
            "    {:<26} single {:>9}  dedup {:>9}  ratio {:>6}x  (dedup=false {})",
            q.name,
            fmt(&q.single_ms),
            fmt(&q.dedup_ms),
            fmt(&q.ratio),
            fmt(&q.no_dedup_ms)
        );
    }
    let _ = writeln!(
        out,
        "  query-time dedup, sum of medians: {}x  [{} < {GOAL_QUERY_DEDUP_RATIO}x]{}",
        fmt(&sm.query_dedup_ratio),
        verdict(sm.query_dedup_goal_met),
        sm.worst_query.as_ref().map_or_else(String::new, |(n, r)| format!("; worst query {n} {r:.2}x"))
    );
    let c = &rep.check;
    let _ = writeln!(
        out,
        "check (counts = one replica's {} series / {} samples; Strata dedup answers = strata-single's): {}",
        c.expected_series,
        c.expected_samples,
        if c.passed { "PASSED" } else { "FAILED" }
    );
    for u in &c.unchecked {
        let _ = writeln!(out, "  unchecked: {u}");
    }
    for mm in &c.mismatches {
        let _ = writeln!(out, "  !!! MISMATCH: {mm}");
    }
    out
}

/// Writes `ha-report.json` (and a copy named after the start time) into `dir`.
pub fn write_json(rep: &HaReport, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(rep)?;
    let path = dir.join("ha-report.json");
    std::fs::write(&path, &json).with_context(|| format!("write {}", path.display()))?;
    std::fs::write(dir.join(format!("ha-report-{}.json", rep.started_at)), &json)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(shard: u16, t: i64) -> Body {
        Body { shard, samples: 1, min_ts: t, max_ts: t, data: vec![t as u8] }
    }

    #[test]
    fn replicas_interleave_on_their_own_shards() {
        let r1 = vec![body(0, 1), body(1, 2), body(0, 3)];
        let r2 = vec![body(0, 1), body(1, 2), body(0, 3)];
        let out = interleave(r1, r2, 2);
        let got: Vec<(u16, i64)> = out.iter().map(|b| (b.shard, b.min_ts)).collect();
        assert_eq!(got, [(0, 1), (2, 1), (1, 2), (3, 2), (0, 3), (2, 3)]);
    }

    #[test]
    fn canonical_answers_ignore_order_only() {
        let a = serde_json::json!({"resultType": "matrix", "result": [
            {"metric": {"instance": "b"}, "values": [[1, "2"]]},
            {"metric": {"instance": "a"}, "values": [[1, "1"]]},
        ]});
        let b = serde_json::json!({"resultType": "matrix", "result": [
            {"metric": {"instance": "a"}, "values": [[1, "1"]]},
            {"metric": {"instance": "b"}, "values": [[1, "2"]]},
        ]});
        assert_eq!(canonical(&a), canonical(&b));
        let c = serde_json::json!({"resultType": "matrix", "result": [
            {"metric": {"instance": "a"}, "values": [[1, "1"]]},
            {"metric": {"instance": "b"}, "values": [[1, "2.5"]]},
        ]});
        assert_ne!(canonical(&a), canonical(&c));
        assert!(first_difference(&canonical(&a), &canonical(&c)).contains("2.5"));
        assert_eq!(canonical(&serde_json::json!(["y", "x"])), serde_json::json!(["x", "y"]));
    }

    #[test]
    fn goals_follow_the_figures() {
        let opts = HaOptions {
            strata_bin: "/nonexistent/strata".into(),
            vm_bin: "/nonexistent/vm".into(),
            cluster: "c1".into(),
            concurrency: 4,
            query_reps: 1,
            out_dir: "out".into(),
            work_dir: "work".into(),
            keep_data: false,
            progress: false,
            ready_timeout: Duration::from_secs(1),
            settle: Duration::ZERO,
        };
        let mk = |name: &str, cpu: f64, q: f64| {
            let setup = setups(&opts, 15).into_iter().find(|s| s.name == name).unwrap();
            let r = TargetResult {
                target: name.into(),
                status: "ok".into(),
                cpu_seconds_replay: Fig::Num(cpu),
                queries: vec![run::QueryTiming {
                    name: "q".into(),
                    median_ms: Fig::Num(q),
                    first_ms: None,
                    results: None,
                    expected_results: None,
                    answer: None,
                }],
                ..TargetResult::default()
            };
            SetupResult {
                setup,
                samples_received: 1_000_000,
                samples_accepted: 1_000_000,
                samples_answered_202: 0,
                cpu_seconds_per_million_received: Fig::Num(cpu),
                cpu_seconds_per_million_accepted: Fig::Num(cpu),
                result: r,
            }
        };
        let results = vec![
            mk("vm-single", 2.0, 1.0),
            mk("vm-dedup", 5.0, 1.0),
            mk("strata-single", 1.0, 10.0),
            mk("strata-tracker", 1.04, 10.0),
            mk("strata-both", 2.0, 16.0),
        ];
        let s = summarize(&results);
        assert!((s.tracker_overhead.num().unwrap() - 0.04).abs() < 1e-9);
        assert_eq!(s.tracker_overhead_goal_met, Some(true));
        assert!((s.vm_dedup_overhead.num().unwrap() - 1.5).abs() < 1e-9);
        assert!((s.strata_to_vm_cpu_ratio.num().unwrap() - 1.04 / 5.0).abs() < 1e-9);
        assert!((s.query_dedup_ratio.num().unwrap() - 1.6).abs() < 1e-9);
        assert_eq!(s.query_dedup_goal_met, Some(false));
    }
}
