//! The runner: replays one cached workload into every target in turn and measures
//! each one the same way, then checks they all hold the same data.
//!
//! ```text
//! per target: start ─► cpu0 ─► replay ─► cpu1 ─► flush ─► VmHWM/VmRSS
//!             ─► count check (series, samples) ─► dashboard queries × reps
//!             ─► stop (SIGTERM) ─► du data dir
//! ```

pub(crate) mod query;
pub(crate) mod target;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde::Serialize;

pub use query::{QueryTiming, TimeRange};
pub use target::{DirSize, TargetKind, TargetSpec};

use crate::replay::{self, ReplayOptions, ReplayStats};
use crate::workload::{self, Body, Manifest};
use target::{Flush, Server};

/// How long after the flush RSS is read again: long enough for jemalloc's decay
/// (1 s in Strata's build) and Go's scavenger to return freed memory, the same for
/// every target.
pub const SETTLE: Duration = Duration::from_secs(10);

/// A measured figure, or why there is none (never a made-up number).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Fig {
    /// The value.
    Num(f64),
    /// Why it is missing, e.g. "n/a (not supported: HTTP 404)".
    Na(String),
}

impl Fig {
    /// The value, if measured.
    pub fn num(&self) -> Option<f64> {
        match self {
            Fig::Num(v) if v.is_finite() => Some(*v),
            _ => None,
        }
    }

    fn na(why: impl Into<String>) -> Self {
        Fig::Na(why.into())
    }
}

impl Default for Fig {
    fn default() -> Self {
        Fig::na("n/a (not measured)")
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Targets to benchmark (missing binaries are reported as skipped).
    pub targets: Vec<TargetSpec>,
    /// Replay requests in flight.
    pub concurrency: usize,
    /// Repetitions of each dashboard query.
    pub query_reps: usize,
    /// Where logs (and the report) go.
    pub out_dir: PathBuf,
    /// Where the targets' temporary data dirs go.
    pub work_dir: PathBuf,
    /// Keep the data dirs after the run.
    pub keep_data: bool,
    /// Show progress bars.
    pub progress: bool,
    /// How long a target may take to become ready.
    pub ready_timeout: Duration,
    /// Wait between the RSS reads after the flush ([`SETTLE`]; tests use less).
    pub settle: Duration,
}

/// One pass over the dashboard queries: a suffix for the query names (empty for the
/// main pass) and the parameters sent with every call, e.g. `dedup=true`.
#[derive(Debug, Clone, Default)]
pub(crate) struct QuerySet {
    pub(crate) suffix: String,
    pub(crate) params: Vec<(String, String)>,
}

/// Everything measured on one target.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TargetResult {
    /// Target name.
    pub target: String,
    /// Its binary.
    pub binary: String,
    /// What `--version` printed.
    pub version: Option<String>,
    /// "ok", "skipped: …" or "failed: …".
    pub status: String,
    /// The replay.
    pub replay: Option<ReplayStats>,
    /// Server CPU seconds (utime+stime) spent during the replay.
    pub cpu_seconds_replay: Fig,
    /// The same per million samples sent.
    pub cpu_seconds_per_million_samples: Fig,
    /// Server CPU seconds spent by the flush call.
    pub cpu_seconds_flush: Fig,
    /// Wall seconds of the flush call.
    pub flush_seconds: Fig,
    /// VmHWM after ingestion and flush.
    pub peak_rss_bytes: Fig,
    /// VmRSS right after ingestion and flush.
    pub rss_bytes: Fig,
    /// VmRSS `SETTLE` later, once allocators and garbage collectors have returned
    /// what the flush freed (the same wait for every target).
    pub rss_settled_bytes: Fig,
    /// `rss_settled_bytes` / series active at the end of the workload.
    pub rss_bytes_per_active_series: Fig,
    /// VmHWM at the end (queries included).
    pub peak_rss_bytes_end: Fig,
    /// Whole data dir after shutdown (VictoriaMetrics' `cache/` excluded).
    pub disk_total: DirSize,
    /// The persisted part, sized after a clean shutdown: Strata `bucket/` (after its
    /// flush), VictoriaMetrics `data/` + `indexdb/`, Prometheus whole dir (WAL + head
    /// chunks: the head is not compacted before it spans 3 h).
    pub disk_bytes_persisted: Fig,
    /// `disk_bytes_persisted` / real samples.
    pub disk_bytes_per_sample: Fig,
    /// What `disk_bytes_persisted` covers.
    pub disk_note: String,
    /// Series the target returns over the range.
    pub series_count: Fig,
    /// Samples the target returns over the range (stale markers excluded).
    pub sample_count: Fig,
    /// Dashboard queries.
    pub queries: Vec<QueryTiming>,
    /// Sum of the dashboard query medians, ms (only when all ran).
    pub query_median_sum_ms: Fig,
    /// What the target's `/api/v1/status/ha` listed after the replay (Strata's HA
    /// tracker elections), when it lists any.
    pub ha_status: Option<serde_json::Value>,
    /// Anything worth reading next to the numbers.
    pub notes: Vec<String>,
}

/// The correctness check across targets.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Check {
    /// Series the workload holds.
    pub expected_series: u64,
    /// Real samples the workload holds.
    pub expected_samples: u64,
    /// Every disagreement, loudly worded.
    pub mismatches: Vec<String>,
    /// Figures that could not be checked (endpoint missing).
    pub unchecked: Vec<String>,
    /// No mismatch and every measured target checked.
    pub passed: bool,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Unix seconds at the start.
    pub started_at: u64,
    /// CPUs of the machine.
    pub cpus: usize,
    /// `/proc/loadavg` at the start: other load on the machine makes timings noisy.
    pub loadavg_at_start: String,
    /// The workload.
    pub manifest: Manifest,
    /// Shift applied to the cached timestamps, ms.
    pub shift_ms: i64,
    /// The shifted range.
    pub range: TimeRange,
    /// One entry per target.
    pub targets: Vec<TargetResult>,
    /// The cross-target check.
    pub check: Check,
}

impl RunReport {
    /// True when the count check passed and no target failed.
    pub fn ok(&self) -> bool {
        self.check.passed && !self.targets.iter().any(|t| t.status.starts_with("failed"))
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Runs the workload cached in `cache_dir` against every target of `opts`.
pub fn run(cache_dir: &std::path::Path, manifest: &Manifest, opts: &RunOptions) -> Result<RunReport> {
    let started_at = (now_ms() / 1000) as u64;
    let loadavg_at_start = std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_string();
    let shift_ms = workload::shift_to_end_near(manifest, now_ms());
    eprintln!(
        "loading {} bodies ({:.1} MiB) and shifting them to end near now",
        manifest.bodies,
        manifest.compressed_bytes as f64 / 1048576.0
    );
    let bodies = workload::load_bodies(cache_dir, manifest, shift_ms, opts.progress)?;
    let range = TimeRange {
        start_ms: manifest.min_ts + shift_ms,
        end_ms: manifest.max_ts + shift_ms,
        interval_s: manifest.params.interval_s,
    };
    let mut results = Vec::new();
    for spec in &opts.targets {
        let mut r = TargetResult {
            target: spec.label.clone(),
            binary: spec.bin.display().to_string(),
            ..TargetResult::default()
        };
        if !spec.bin.is_file() {
            r.status = format!("skipped: binary {} not found", spec.bin.display());
            eprintln!("{}: {}", r.target, r.status);
            results.push(r);
            continue;
        }
        r.version = target::binary_version(spec);
        eprintln!("== {}", r.target);
        match measure(spec, &bodies, manifest, &range, opts, &[QuerySet::default()], &mut r) {
            Ok(()) => r.status = "ok".into(),
            Err(e) => {
                r.status = format!("failed: {e:#}");
                eprintln!("{}: {}", r.target, r.status);
            }
        }
        results.push(r);
    }
    let check = check(manifest, &results);
    Ok(RunReport {
        started_at,
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        loadavg_at_start,
        manifest: manifest.clone(),
        shift_ms,
        range,
        targets: results,
        check,
    })
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(false).build().into()
}

/// Starts `spec`, replays `bodies` into it and measures it into `r`; the counts use
/// the first of `query_sets`' parameters, and the dashboard runs once per set.
pub(crate) fn measure(
    spec: &TargetSpec,
    bodies: &[Body],
    manifest: &Manifest,
    range: &TimeRange,
    opts: &RunOptions,
    query_sets: &[QuerySet],
    r: &mut TargetResult,
) -> Result<()> {
    let short = agent(Duration::from_secs(5));
    let long = agent(Duration::from_secs(600));
    let mut server =
        Server::start(spec, &opts.work_dir, &opts.out_dir.join("logs"), opts.keep_data, opts.ready_timeout, &short)?;
    if r.version.is_none() {
        r.version = server.version_from_metrics(&short).or_else(|| target::package_version(&spec.bin));
    }
    eprintln!("  version: {}", r.version.as_deref().unwrap_or("unknown"));
    let shards = bodies.iter().map(|b| usize::from(b.shard) + 1).max().unwrap_or(0);
    if opts.concurrency > shards {
        r.notes.push(format!(
            "concurrency {} > {shards} shards: only {shards} requests can be in flight",
            opts.concurrency
        ));
    }
    if opts.keep_data {
        r.notes.push(format!("data kept in {}", server.data_dir.display()));
    }

    // Ingestion.
    let cpu0 = server.cpu_seconds()?;
    let mut ropts = ReplayOptions::new(format!("{}/api/v1/write", server.base));
    ropts.concurrency = opts.concurrency;
    ropts.progress = opts.progress;
    let stats = replay::replay(bodies, &ropts)?;
    let cpu1 = server.cpu_seconds()?;
    eprintln!(
        "  replay: {} samples in {:.1}s ({:.0}/s), {} failed requests, p50 {:.1} ms p99 {:.1} ms",
        stats.samples_accepted,
        stats.wall_seconds,
        stats.samples_per_second,
        stats.failed_requests,
        stats.latency_ms.p50,
        stats.latency_ms.p99
    );
    for e in stats.errors.iter().take(3) {
        eprintln!("  replay error: {e}");
    }
    if stats.failed_requests > 0 {
        r.notes.push(format!(
            "{} of {} write requests failed; first: {}",
            stats.failed_requests,
            stats.requests,
            stats.errors.first().map_or("", String::as_str)
        ));
    }
    let aborted = stats.aborted;
    let sent = stats.samples_sent;
    r.replay = Some(stats);
    if aborted || !server.alive() {
        anyhow::bail!(
            "server stopped answering during replay; log tail:\n{}",
            target::log_tail(&server.log_path, 2000)
        );
    }
    if spec.kind == TargetKind::Strata {
        r.ha_status = ha_status(&short, &server.base);
    }
    r.cpu_seconds_replay = Fig::Num(cpu1 - cpu0);
    r.cpu_seconds_per_million_samples = Fig::Num((cpu1 - cpu0) / (sent as f64 / 1e6));

    // Flush, then memory (disk is sized after shutdown, below).
    match server.flush(&long)? {
        Flush::Done(secs) => {
            r.flush_seconds = Fig::Num(secs);
            r.cpu_seconds_flush = Fig::Num(server.cpu_seconds()? - cpu1);
        }
        Flush::NotSupported(why) => {
            r.flush_seconds = Fig::na(format!("n/a ({why})"));
            r.cpu_seconds_flush = Fig::na("n/a (no flush)");
        }
    }
    let (hwm, rss) = server.memory()?;
    r.peak_rss_bytes = Fig::Num(hwm as f64);
    r.rss_bytes = Fig::Num(rss as f64);
    std::thread::sleep(opts.settle);
    let (_, settled) = server.memory()?;
    r.rss_settled_bytes = Fig::Num(settled as f64);
    r.rss_bytes_per_active_series = Fig::Num(settled as f64 / manifest.active_series_at_end.max(1) as f64);
    // Correctness: the same data must come back.
    let count_params = query_sets.first().map_or(&[][..], |q| &q.params[..]);
    r.series_count = match query::count_series(&long, &server.base, range, count_params) {
        Ok(n) => Fig::Num(n as f64),
        Err(e) => e.to_fig(),
    };
    r.sample_count = match query::count_samples(&long, &server.base, range, count_params) {
        Ok((n, method)) => {
            r.notes.push(format!("sample count by {method}"));
            Fig::Num(n as f64)
        }
        Err(e) => e.to_fig(),
    };
    eprintln!("  counts: series {:?}, samples {:?}", r.series_count, r.sample_count);

    // Dashboard queries.
    let hosts = manifest.params.hosts as usize;
    for set in query_sets {
        for q in query::dashboard(range, hosts) {
            let mut t = query::time_query(&long, &server.base, &q, range, opts.query_reps, &set.params);
            if !set.suffix.is_empty() {
                t.name = format!("{}{}", t.name, set.suffix);
                // Result sizes fixed by the workload hold for the main pass only.
                t.expected_results = None;
            }
            r.queries.push(t);
        }
    }
    // The sum covers the main pass, so it compares across targets.
    let main = query::dashboard(range, hosts).len();
    let medians: Option<Vec<f64>> = r.queries.iter().take(main).map(|q| q.median_ms.num()).collect();
    r.query_median_sum_ms = match medians {
        Some(m) => Fig::Num(m.iter().sum()),
        None => Fig::na("n/a (not every query ran)"),
    };
    let (hwm_end, _) = server.memory()?;
    r.peak_rss_bytes_end = Fig::Num(hwm_end as f64);

    // Disk, after a clean shutdown: VictoriaMetrics keeps writing parts for seconds
    // after /internal/force_flush returns, so sizes taken right after it are too small.
    if !server.stop(Duration::from_secs(60)) {
        r.notes.push("server did not exit within 60 s of SIGTERM and was killed: disk size may be incomplete".into());
    }
    measure_disk(spec.kind, &server, manifest, r);
    Ok(())
}

/// The elections `GET /api/v1/status/ha` lists, `None` when it lists none (or the
/// endpoint is missing).
fn ha_status(agent: &ureq::Agent, base: &str) -> Option<serde_json::Value> {
    let mut resp = agent.get(format!("{base}/api/v1/status/ha")).call().ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&resp.body_mut().read_to_string().ok()?).ok()?;
    let data = v.get("data")?;
    (data.as_array().is_some_and(|a| !a.is_empty())).then(|| data.clone())
}

fn measure_disk(kind: TargetKind, server: &Server, manifest: &Manifest, r: &mut TargetResult) {
    // VictoriaMetrics writes its caches (cache/) on shutdown: not data, not counted.
    let skip: &[&str] = if kind == TargetKind::VictoriaMetrics { &["cache"] } else { &[] };
    r.disk_total = target::dir_size_except(&server.data_dir, skip);
    let (persisted, note) = match kind {
        TargetKind::Strata => {
            let flushed = matches!(r.flush_seconds, Fig::Num(_));
            let bucket = target::dir_size(&server.data_dir.join("bucket"));
            if flushed {
                (Fig::Num(bucket.apparent as f64), "bucket/ after flush and shutdown (WAL excluded)")
            } else {
                (Fig::na("n/a (flush not supported)"), "flush not supported: nothing persisted to measure")
            }
        }
        TargetKind::VictoriaMetrics => (
            Fig::Num(r.disk_total.apparent as f64),
            "storageDataPath after force_flush and shutdown (data/ + indexdb/, cache/ excluded)",
        ),
        TargetKind::Prometheus => {
            let blocks = std::fs::read_dir(&server.data_dir)
                .map(|d| d.flatten().filter(|e| e.path().join("meta.json").is_file()).count())
                .unwrap_or(0);
            (
                Fig::Num(r.disk_total.apparent as f64),
                if blocks == 0 {
                    "whole dir after shutdown = WAL + head chunks: no flush API and the head \
                     is not compacted before it spans 3 h"
                } else {
                    "whole dir = WAL + head chunks + compacted blocks (head partly compacted)"
                },
            )
        }
    };
    r.disk_bytes_per_sample = match persisted.num() {
        Some(b) => Fig::Num(b / manifest.real_samples.max(1) as f64),
        None => persisted.clone(),
    };
    r.disk_bytes_persisted = persisted;
    r.disk_note = note.into();
}

/// Compares every target's counts with the workload and with each other.
pub(crate) fn check(manifest: &Manifest, results: &[TargetResult]) -> Check {
    let mut c =
        Check { expected_series: manifest.total_series, expected_samples: manifest.real_samples, ..Check::default() };
    for r in results.iter().filter(|r| r.status == "ok") {
        for (what, fig, expected) in
            [("series", &r.series_count, manifest.total_series), ("samples", &r.sample_count, manifest.real_samples)]
        {
            match fig {
                Fig::Num(v) if *v as u64 == expected => {}
                Fig::Num(v) => c.mismatches.push(format!(
                    "{}: {what} count {} != expected {expected} ({:+})",
                    r.target,
                    *v as u64,
                    *v as i64 - expected as i64
                )),
                Fig::Na(why) if why.starts_with("n/a") => c.unchecked.push(format!("{}: {what} count {why}", r.target)),
                Fig::Na(why) => c.mismatches.push(format!("{}: {what} count failed: {why}", r.target)),
            }
        }
        for q in &r.queries {
            if let (Some(got), Some(want)) = (q.results, q.expected_results)
                && got != want
            {
                c.mismatches.push(format!("{}: query {} returned {got} results, expected {want}", r.target, q.name));
            }
        }
    }
    c.passed = c.mismatches.is_empty();
    c
}
