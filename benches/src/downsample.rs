//! `strata-benches compact`: what compaction and downsampling cost on a bucket of
//! generated blocks, run by the real `strata compact --once`.
//!
//! ```text
//!   generate: N series × D days at an interval, one raw block per block_hours,
//!             newest sample `age_days` ago (old enough for 5m and 1h copies)
//!             ─► FILESYSTEM bucket under a temp dir
//!   passes:   strata compact --once (child) until a pass writes nothing
//!             ─► wall, CPU s (the child's, from /proc/self/stat cutime+cstime),
//!                peak RSS (its VmHWM, polled every 20 ms)
//!   result:   live blocks and bytes per resolution; the copies' share of raw bytes
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use strata_block::{BlockBuilder, BlockOrigin, Bucket, BucketOptions, ObjStoreConfig, upload};
use strata_model::{Labels, Sample, TenantId};

use crate::rng::Rng;

/// What to generate and run.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    pub strata_bin: PathBuf,
    pub series: usize,
    pub days: f64,
    pub interval_s: u64,
    /// Length of each generated raw block (as cut from the head: 2h).
    pub block_hours: u64,
    /// Age of the newest sample, days.
    pub age_days: f64,
    pub work_dir: PathBuf,
    pub keep_data: bool,
    pub seed: u64,
}

/// One `strata compact --once`.
#[derive(Debug, Clone, Serialize)]
pub struct Pass {
    pub wall_s: f64,
    pub cpu_s: f64,
    pub peak_rss_bytes: u64,
    /// The pass's own report lines ("blocks downsampled  4", ...).
    pub counts: BTreeMap<String, u64>,
}

/// Live blocks of one resolution after the passes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stored {
    pub blocks: usize,
    pub bytes: u64,
    /// Samples (raw) or windows (downsampled).
    pub rows: u64,
    pub largest_block_rows: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CompactReport {
    pub series: usize,
    pub samples: u64,
    pub raw_blocks_generated: usize,
    pub raw_bytes_generated: u64,
    pub passes: Vec<Pass>,
    /// By resolution in ms (0 = raw).
    pub stored: BTreeMap<i64, Stored>,
}

const TENANT: &str = "bench";
const METRICS: [&str; 4] =
    ["node_cpu_seconds_total", "node_network_receive_bytes_total", "node_load1", "node_memory_free_bytes"];

/// Series labels in label order, and whether each is a counter.
fn series_set(n: usize) -> Vec<(Labels, bool)> {
    let mut out: Vec<(Labels, bool)> = (0..n)
        .map(|i| {
            let name = METRICS[i % METRICS.len()];
            let labels = Labels::from_pairs([
                ("__name__", name),
                ("instance", &*format!("host-{:04}:9100", i / 64)),
                ("job", "node"),
                ("idx", &*(i % 64).to_string()),
            ]);
            (labels, name.ends_with("_total"))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Samples of series `i` in `[from, to)`: counters with a reset now and then,
/// gauges that wander; values rounded as exporters' are.
fn samples(seed: u64, i: usize, counter: bool, from: i64, to: i64, step: i64) -> Vec<Sample> {
    let mut rng = Rng::new(seed ^ from as u64, i as u64);
    let mut v = if counter { rng.range(0.0, 1e6).round() } else { rng.range(0.0, 100.0) };
    (from..to)
        .step_by(step as usize)
        .map(|t| {
            if counter {
                v = if rng.chance(1e-4) { 0.0 } else { v + rng.below(2_000) as f64 };
            } else {
                v = ((v + rng.normal()) * 100.0).round() / 100.0;
            }
            Sample::new(t, v)
        })
        .collect()
}

pub fn run_compact(opts: &CompactOptions) -> Result<CompactReport> {
    if !opts.strata_bin.exists() {
        bail!("{} not found (cargo build --release -p strata)", opts.strata_bin.display());
    }
    let dir = tempfile::Builder::new().prefix("strata-bench-compact-").tempdir_in(&opts.work_dir)?;
    let data = dir.path().join("data");
    let store = ObjStoreConfig::filesystem(data.join("bucket")).build()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let tenant = TenantId::new(TENANT)?;

    let day = 86_400_000i64;
    let step = (opts.interval_s * 1000) as i64;
    let block = (opts.block_hours * 3_600_000) as i64;
    let end = (strata_model::now_ms() - (opts.age_days * day as f64) as i64) / block * block;
    let start = end - (opts.days * day as f64) as i64 / block * block;
    let set = series_set(opts.series);
    let spool = dir.path().join("spool");
    let (mut samples_total, mut raw_blocks, mut raw_bytes) = (0u64, 0usize, 0u64);
    let t0 = Instant::now();
    for from in (start..end).step_by(block as usize) {
        let mut b = BlockBuilder::spooled(tenant.as_str(), &spool)?;
        for (i, (labels, counter)) in set.iter().enumerate() {
            let s = samples(opts.seed, i, *counter, from, from + block, step);
            samples_total += s.len() as u64;
            b.add_series(labels, &s)?;
        }
        let encoded = b.finish(BlockOrigin::fresh())?.context("generated block is empty")?;
        raw_bytes += encoded.meta.data_bytes();
        rt.block_on(upload(&*store, &encoded))?;
        raw_blocks += 1;
    }
    eprintln!(
        "generated {raw_blocks} blocks, {} series, {samples_total} samples, {raw_bytes} bytes in {:.1}s",
        opts.series,
        t0.elapsed().as_secs_f64()
    );

    let config = dir.path().join("strata.yml");
    std::fs::write(
        &config,
        format!("data_dir: {}\ncompactor:\n  deletion_delay: 0s\nretention:\n  raw: 0s\n", data.display()),
    )?;
    let mut passes = Vec::new();
    for _ in 0..6 {
        let pass = run_pass(&opts.strata_bin, &config)?;
        let work = ["groups merged", "blocks downsampled"]
            .iter()
            .map(|k| pass.counts.get(*k).copied().unwrap_or(0))
            .sum::<u64>();
        passes.push(pass);
        if work == 0 {
            break;
        }
    }

    let bucket = Bucket::new(store.clone(), BucketOptions { list_ttl: Duration::ZERO, ..BucketOptions::default() });
    let blocks = rt.block_on(bucket.blocks(&tenant))?;
    let mut stored: BTreeMap<i64, Stored> = BTreeMap::new();
    for b in blocks.iter().filter(|b| b.deletion_mark.is_none()) {
        let s = stored.entry(b.meta.resolution).or_default();
        s.blocks += 1;
        s.bytes += b.meta.data_bytes();
        s.rows += b.meta.stats.num_samples;
        s.largest_block_rows = s.largest_block_rows.max(b.meta.stats.num_samples);
    }
    if opts.keep_data {
        eprintln!("kept {}", dir.keep().display());
    }
    Ok(CompactReport {
        series: opts.series,
        samples: samples_total,
        raw_blocks_generated: raw_blocks,
        raw_bytes_generated: raw_bytes,
        passes,
        stored,
    })
}

/// cutime + cstime of this process: CPU of the children it has waited for.
fn children_cpu_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let rest = stat.rsplit_once(')').context("bad /proc stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3; cutime and cstime are fields 16 and 17.
    let cu: u64 = f.get(13).context("no cutime")?.parse()?;
    let cs: u64 = f.get(14).context("no cstime")?.parse()?;
    Ok((cu + cs) as f64 / rustix::param::clock_ticks_per_second() as f64)
}

fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

fn run_pass(bin: &Path, config: &Path) -> Result<Pass> {
    let cpu0 = children_cpu_seconds()?;
    let t = Instant::now();
    let mut child = std::process::Command::new(bin)
        .args(["compact", "--once", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    let pid = child.id();
    let mut peak = 0u64;
    while child.try_wait()?.is_none() {
        peak = peak.max(vm_hwm(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output()?;
    let wall_s = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("strata compact --once failed: {}", String::from_utf8_lossy(&out.stdout));
    }
    let counts = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (name, n) = l.trim().rsplit_once(char::is_whitespace)?;
            Some((name.trim().to_string(), n.parse().ok()?))
        })
        .collect();
    Ok(Pass { wall_s, cpu_s: children_cpu_seconds()? - cpu0, peak_rss_bytes: peak, counts })
}

fn res_name(r: i64) -> &'static str {
    match r {
        0 => "raw",
        300_000 => "5m",
        3_600_000 => "1h",
        _ => "?",
    }
}

pub fn compact_table(rep: &CompactReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} series, {} samples in {} raw blocks ({:.1} MiB, {:.3} bytes/sample)",
        rep.series,
        rep.samples,
        rep.raw_blocks_generated,
        rep.raw_bytes_generated as f64 / 1048576.0,
        rep.raw_bytes_generated as f64 / rep.samples.max(1) as f64
    );
    let _ = writeln!(
        out,
        "{:<6} {:>10} {:>10} {:>12} {:>14} {:>10}",
        "pass", "wall s", "CPU s", "peak RSS MiB", "merged", "downsampled"
    );
    for (i, p) in rep.passes.iter().enumerate() {
        let c = |k: &str| p.counts.get(k).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "{:<6} {:>10.2} {:>10.2} {:>12.1} {:>14} {:>10}",
            i + 1,
            p.wall_s,
            p.cpu_s,
            p.peak_rss_bytes as f64 / 1048576.0,
            c("groups merged"),
            c("blocks downsampled")
        );
    }
    let raw = rep.stored.get(&0).map_or(0, |s| s.bytes).max(1);
    let _ = writeln!(
        out,
        "{:<6} {:>7} {:>12} {:>10} {:>14} {:>16}",
        "res", "blocks", "MiB", "of raw", "rows", "largest block"
    );
    for (r, s) in &rep.stored {
        let _ = writeln!(
            out,
            "{:<6} {:>7} {:>12.2} {:>9.1}% {:>14} {:>16}",
            res_name(*r),
            s.blocks,
            s.bytes as f64 / 1048576.0,
            100.0 * s.bytes as f64 / raw as f64,
            s.rows,
            s.largest_block_rows
        );
    }
    out
}

pub fn write_compact_json(rep: &CompactReport, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("compact.json");
    std::fs::write(&path, serde_json::to_vec_pretty(rep)?)?;
    Ok(path)
}
