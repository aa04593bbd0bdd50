//! `strata-benches`: generate a workload, replay it to a URL, or run the full
//! comparison (see the library docs for the data flow).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};

use strata_benches::downsample::{self, CompactOptions};
use strata_benches::ha::{self, HaOptions};
use strata_benches::replay::{self, ReplayOptions};
use strata_benches::report;
use strata_benches::run::{self, RunOptions, TargetKind, TargetSpec};
use strata_benches::workload::{self, WorkloadParams};

#[derive(Debug, Parser)]
#[command(about = "Benchmark Strata against VictoriaMetrics and Prometheus")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Generate (or reuse) the cached workload and print its manifest.
    Generate(WorkloadArgs),
    /// Replay the workload to a remote write URL.
    Replay {
        #[command(flatten)]
        workload: WorkloadArgs,
        /// Remote write URL, e.g. http://127.0.0.1:8428/api/v1/write.
        #[arg(long)]
        url: String,
        /// Requests in flight.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// Start each target, replay, measure, check, and report.
    Run {
        #[command(flatten)]
        workload: WorkloadArgs,
        /// Targets, comma separated: vm, prometheus, strata.
        #[arg(long, default_value = "vm,prometheus,strata", value_delimiter = ',')]
        targets: Vec<String>,
        /// The strata binary (default: <workspace>/target/release/strata).
        #[arg(long)]
        strata_bin: Option<PathBuf>,
        /// The VictoriaMetrics binary.
        #[arg(long, default_value = "/usr/bin/victoria-metrics")]
        vm_bin: PathBuf,
        /// The Prometheus binary.
        #[arg(long, default_value = "/usr/bin/prometheus")]
        prometheus_bin: PathBuf,
        /// Output directory for the report, chart and server logs.
        #[arg(long, default_value = "bench-out")]
        out: PathBuf,
        /// Where the targets' temporary data dirs go (default: the system temp dir).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Requests in flight during the replay.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Repetitions of each dashboard query (median reported).
        #[arg(long, default_value_t = 5)]
        query_reps: usize,
        /// Keep the targets' data dirs.
        #[arg(long)]
        keep_data: bool,
    },
    /// HA Prometheus pairs: the workload written by two replicas; the HA tracker and
    /// VictoriaMetrics' dedup on the doubled stream, query-time dedup against one replica.
    Ha {
        #[command(flatten)]
        workload: WorkloadArgs,
        /// The strata binary (default: <workspace>/target/release/strata).
        #[arg(long)]
        strata_bin: Option<PathBuf>,
        /// The VictoriaMetrics binary (its setups are skipped when it is missing).
        #[arg(long, default_value = "/usr/bin/victoria-metrics")]
        vm_bin: PathBuf,
        /// The pair's `cluster` label value.
        #[arg(long, default_value = "c1")]
        cluster: String,
        /// Output directory for the report and server logs.
        #[arg(long, default_value = "bench-out")]
        out: PathBuf,
        /// Where the targets' temporary data dirs go (default: the system temp dir).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Requests in flight per replica (the doubled stream has twice as many).
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Repetitions of each dashboard query (median reported).
        #[arg(long, default_value_t = 5)]
        query_reps: usize,
        /// Keep the targets' data dirs.
        #[arg(long)]
        keep_data: bool,
    },
    /// Compaction and downsampling of a generated bucket by `strata compact --once`:
    /// wall, CPU seconds, peak RSS per pass, and bytes stored per resolution.
    Compact {
        /// The strata binary (default: <workspace>/target/release/strata).
        #[arg(long)]
        strata_bin: Option<PathBuf>,
        /// Series in the bucket.
        #[arg(long, default_value_t = 10_000)]
        series: usize,
        /// Days of data.
        #[arg(long, default_value_t = 2.0)]
        days: f64,
        /// Sample interval, seconds.
        #[arg(long, default_value_t = 15)]
        interval: u64,
        /// Length of each generated raw block, hours (blocks cut from the head: 2).
        #[arg(long, default_value_t = 2)]
        block_hours: u64,
        /// Age of the newest sample, days (over 10: both 5m and 1h copies are made).
        #[arg(long, default_value_t = 12.0)]
        age_days: f64,
        /// Output directory for compact.json.
        #[arg(long, default_value = "bench-out")]
        out: PathBuf,
        /// Where the bucket goes (default: the system temp dir).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Keep the bucket.
        #[arg(long)]
        keep_data: bool,
        /// Random seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

#[derive(Debug, Args)]
struct WorkloadArgs {
    /// node_exporter hosts (~630 series each: 180 hosts give ~100k active series).
    #[arg(long, default_value_t = 180)]
    hosts: u32,
    /// Hours of history (fractions allowed, e.g. 0.25).
    #[arg(long, default_value_t = 2.0)]
    hours: f64,
    /// Scrape interval, seconds.
    #[arg(long, default_value_t = 15)]
    interval: u64,
    /// Share of each host's series replaced per hour.
    #[arg(long, default_value_t = 0.05)]
    churn: f64,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Queue-manager shards (parallel series streams).
    #[arg(long, default_value_t = 4)]
    shards: u16,
    /// Samples per request body at most.
    #[arg(long, default_value_t = 2000)]
    max_samples_per_send: u32,
    /// Seconds after which a partial shard batch is sent (0: only full bodies).
    #[arg(long, default_value_t = 5)]
    batch_deadline: u64,
    /// Workload cache directory.
    #[arg(long, default_value = "bench-out/cache")]
    cache_dir: PathBuf,
    /// No progress bars.
    #[arg(long)]
    no_progress: bool,
}

impl WorkloadArgs {
    fn params(&self) -> Result<WorkloadParams> {
        if !(self.hours > 0.0 && self.hours <= 24.0 * 365.0) {
            bail!("--hours must be in (0, 8760]");
        }
        Ok(WorkloadParams {
            hosts: self.hosts,
            duration_s: (self.hours * 3600.0).round() as u64,
            interval_s: self.interval,
            churn_per_hour: self.churn,
            seed: self.seed,
            shards: self.shards,
            max_samples_per_send: self.max_samples_per_send,
            batch_deadline_s: self.batch_deadline,
        })
    }

    fn load(&self) -> Result<(PathBuf, workload::Manifest)> {
        let params = self.params()?;
        let (dir, m) = workload::ensure_cached(&params, &self.cache_dir, !self.no_progress)?;
        eprintln!(
            "workload {}: {} series, {} samples, {} bodies ({:.1} MiB)",
            dir.display(),
            m.total_series,
            m.total_samples,
            m.bodies,
            m.compressed_bytes as f64 / 1048576.0
        );
        Ok((dir, m))
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Generate(w) => {
            let (_, m) = w.load()?;
            println!("{}", serde_json::to_string_pretty(&m)?);
        }
        Cmd::Replay { workload: w, url, concurrency } => {
            let (dir, m) = w.load()?;
            let shift = workload::shift_to_end_near(&m, now_ms());
            let bodies = workload::load_bodies(&dir, &m, shift, !w.no_progress)?;
            let mut opts = ReplayOptions::new(url);
            opts.concurrency = concurrency;
            opts.progress = !w.no_progress;
            let stats = replay::replay(&bodies, &opts)?;
            println!("{}", serde_json::to_string_pretty(&stats)?);
            if stats.failed_requests > 0 {
                bail!("{} requests failed", stats.failed_requests);
            }
        }
        Cmd::Run {
            workload: w,
            targets,
            strata_bin,
            vm_bin,
            prometheus_bin,
            out,
            work_dir,
            concurrency,
            query_reps,
            keep_data,
        } => {
            let ws = workspace_root();
            let mut specs = Vec::new();
            for t in &targets {
                let kind = TargetKind::parse(t)?;
                let bin = match kind {
                    TargetKind::Strata => strata_bin.clone().unwrap_or_else(|| kind.default_binary(&ws)),
                    TargetKind::VictoriaMetrics => vm_bin.clone(),
                    TargetKind::Prometheus => prometheus_bin.clone(),
                };
                specs.push(TargetSpec::new(kind, bin));
            }
            // VictoriaMetrics first: it is the baseline of the ratios.
            specs.sort_by_key(|s| TargetKind::ALL.iter().position(|k| *k == s.kind));
            let (dir, m) = w.load()?;
            let opts = RunOptions {
                targets: specs,
                concurrency,
                query_reps,
                out_dir: out.clone(),
                work_dir: work_dir.unwrap_or_else(std::env::temp_dir),
                keep_data,
                progress: !w.no_progress,
                ready_timeout: Duration::from_secs(120),
                settle: run::SETTLE,
            };
            let rep = run::run(&dir, &m, &opts)?;
            println!("{}", report::table(&rep));
            let json = report::write_json(&rep, &out)?;
            let svg = report::write_svg(&rep, &out)?;
            println!("wrote {} and {}", json.display(), svg.display());
            if !rep.ok() {
                bail!("benchmark check FAILED (see mismatches above)");
            }
        }
        Cmd::Ha { workload: w, strata_bin, vm_bin, cluster, out, work_dir, concurrency, query_reps, keep_data } => {
            if concurrency == 0 {
                bail!("--concurrency must be > 0");
            }
            let (dir, m) = w.load()?;
            let opts = HaOptions {
                strata_bin: strata_bin.unwrap_or_else(|| TargetKind::Strata.default_binary(&workspace_root())),
                vm_bin,
                cluster,
                concurrency,
                query_reps,
                out_dir: out.clone(),
                work_dir: work_dir.unwrap_or_else(std::env::temp_dir),
                keep_data,
                progress: !w.no_progress,
                ready_timeout: Duration::from_secs(120),
                settle: run::SETTLE,
            };
            let rep = ha::run_ha(&dir, &m, &opts)?;
            println!("{}", ha::table(&rep));
            let json = ha::write_json(&rep, &out)?;
            println!("wrote {}", json.display());
            if !rep.ok() {
                bail!("HA benchmark check FAILED (see mismatches above)");
            }
        }
        Cmd::Compact { strata_bin, series, days, interval, block_hours, age_days, out, work_dir, keep_data, seed } => {
            if series == 0 || interval == 0 || block_hours == 0 || days <= 0.0 {
                bail!("--series, --interval, --block-hours and --days must be > 0");
            }
            let opts = CompactOptions {
                strata_bin: strata_bin.unwrap_or_else(|| TargetKind::Strata.default_binary(&workspace_root())),
                series,
                days,
                interval_s: interval,
                block_hours,
                age_days,
                work_dir: work_dir.unwrap_or_else(std::env::temp_dir),
                keep_data,
                seed,
            };
            let rep = downsample::run_compact(&opts)?;
            println!("{}", downsample::compact_table(&rep));
            println!("wrote {}", downsample::write_compact_json(&rep, &out)?.display());
        }
    }
    Ok(())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
