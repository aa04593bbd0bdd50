//! `strata tools`: offline commands for people looking after a bucket.
//!
//! ```text
//!  strata tools bucket ls [--tenant T] [--json] ─► Bucket::blocks ─► table (or JSON) on stdout
//!  strata tools bucket inspect T/ULID ─► meta.json + markers ─► BlockIndex ─► per-metric counts
//!  strata tools bucket verify [--tenant T] ─► Bucket::scan ─► overlaps, missing or resized files,
//!                                    incomplete uploads, times far from now ─► read_block each
//!                                    ─► findings and blocks checked, exit 1 on a problem
//! ```
//!
//! Output goes to stdout, progress bars and logs to stderr.

mod verify;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use strata_block::{BlockIndex, BlockInfo, BlockMeta, BlockPath, Bucket, DeletionMark, NoCompactMark, RESOLUTION_RAW};
use strata_model::TenantId;

use crate::compact::maintenance_bucket;
use crate::config::Config;

/// Where the bucket is: the same flags as `serve`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct StoreArgs {
    /// YAML configuration file (see configs/strata.example.yaml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Object storage config in Thanos's objstore YAML shape; replaces `objstore` in the file.
    #[arg(long = "objstore.config-file", value_name = "FILE")]
    objstore_config_file: Option<PathBuf>,
    /// Directory for local state (the default FILESYSTEM bucket is `<DIR>/bucket`);
    /// overrides `data_dir` in the file.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl StoreArgs {
    pub(crate) fn load(&self) -> anyhow::Result<Config> {
        let mut cfg = Config::load(self.config.as_deref(), self.objstore_config_file.as_deref())?;
        if let Some(d) = &self.data_dir {
            cfg.data_dir = d.clone();
        }
        Ok(cfg)
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct ToolsArgs {
    #[command(subcommand)]
    command: ToolsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ToolsCommand {
    /// Look at and check the blocks in object storage.
    #[command(subcommand)]
    Bucket(BucketCommand),
}

#[derive(Debug, clap::Subcommand)]
enum BucketCommand {
    /// List blocks with their time ranges, sizes and markers.
    Ls(LsArgs),
    /// Show one block: its meta.json, markers and series per metric name.
    Inspect(InspectArgs),
    /// Find overlapping, incomplete, damaged or unreadable blocks; exit 1 if any.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
struct LsArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Only this tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// One JSON document (meta.json and markers of every block) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct InspectArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The block, as `<tenant>/<ULID>`.
    block: String,
    /// Metric names listed, most samples first (0: all).
    #[arg(long, default_value_t = 30)]
    limit: usize,
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Only this tenant.
    #[arg(long)]
    tenant: Option<String>,
}

/// Runs a `strata tools` command to completion.
pub(crate) fn run(args: ToolsArgs, log: &crate::LogArgs) -> anyhow::Result<()> {
    let ToolsCommand::Bucket(cmd) = args.command;
    let store = match &cmd {
        BucketCommand::Ls(a) => &a.store,
        BucketCommand::Inspect(a) => &a.store,
        BucketCommand::Verify(a) => &a.store,
    };
    let mut cfg = store.load()?;
    // Tools talk on stdout; only warnings go to the log unless RUST_LOG says otherwise.
    cfg.log.level = "warn".into();
    log.apply(&mut cfg.log);
    crate::telemetry::init(&cfg.log, log.level.as_deref())?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let bucket = maintenance_bucket(&cfg)?;
        match cmd {
            BucketCommand::Ls(a) => {
                let blocks = list(&bucket, a.tenant.as_deref()).await?;
                print_out(&if a.json { ls_json(&blocks)? } else { ls_table(&blocks) });
                Ok(())
            }
            BucketCommand::Inspect(a) => inspect(&bucket, &a.block, a.limit).await,
            BucketCommand::Verify(a) => {
                let tenants = tenants(&bucket, a.tenant.as_deref()).await?;
                let report = verify::verify(&bucket, &tenants, strata_model::now_ms(), &verify::progress()).await?;
                print_out(&verify::render(&report));
                let problems = report.problems();
                if problems > 0 {
                    anyhow::bail!("{problems} problem(s) found");
                }
                Ok(())
            }
        }
    })
}

async fn tenants(bucket: &Bucket, only: Option<&str>) -> anyhow::Result<Vec<TenantId>> {
    match only {
        Some(t) => Ok(vec![TenantId::new(t).map_err(|e| anyhow::anyhow!("--tenant: {e}"))?]),
        None => bucket.tenants().await.context("listing tenants"),
    }
}

/// Complete blocks of the selected tenants, by tenant then time.
async fn list(bucket: &Bucket, tenant: Option<&str>) -> anyhow::Result<Vec<BlockInfo>> {
    let mut out = Vec::new();
    for t in tenants(bucket, tenant).await? {
        out.extend(bucket.blocks(&t).await.with_context(|| format!("listing tenant {t}"))?.iter().cloned());
    }
    Ok(out)
}

fn ls_table(blocks: &[BlockInfo]) -> String {
    let mut t = Table::new(&[
        "TENANT", "ULID", "MIN TIME", "MAX TIME", "DURATION", "LEVEL", "RES", "SERIES", "SAMPLES", "SIZE", "B/SAMPLE",
        "MARKS",
    ])
    .right_aligned(&[4, 5, 7, 8, 9, 10]);
    // Totals count the blocks without deletion mark: a marked block's samples are
    // also in the block that replaced it (or expired), and its bytes go at the next GC.
    let (mut samples, mut bytes, mut live) = (0u64, 0u64, 0usize);
    let mut marked_bytes = 0u64;
    for b in blocks {
        let m = &b.meta;
        if b.deletion_mark.is_none() {
            samples = samples.saturating_add(m.stats.num_samples);
            bytes = bytes.saturating_add(m.data_bytes());
            live += 1;
        } else {
            marked_bytes = marked_bytes.saturating_add(m.data_bytes());
        }
        t.row(vec![
            m.tenant.clone(),
            m.ulid.to_string(),
            fmt_time(m.min_time),
            fmt_time(m.max_time),
            fmt_span_ms(m.min_time, m.max_time),
            m.compaction.level.to_string(),
            fmt_resolution(m.resolution),
            fmt_count(m.stats.num_series),
            fmt_count(m.stats.num_samples),
            fmt_bytes(m.data_bytes()),
            bytes_per_sample(m),
            marks(b.deletion_mark.as_ref(), b.no_compact.as_ref()),
        ]);
    }
    let mut out = t.render();
    out.push_str(&format!(
        "\n{} blocks; {live} without deletion mark: {} samples, {}",
        blocks.len(),
        fmt_count(samples),
        fmt_bytes(bytes)
    ));
    let marked = blocks.len() - live;
    if marked > 0 {
        out.push_str(&format!("; {marked} marked for deletion: {}", fmt_bytes(marked_bytes)));
    }
    out.push('\n');
    out
}

#[derive(Serialize)]
struct LsEntry<'a> {
    path: String,
    meta: &'a BlockMeta,
    deletion_mark: Option<&'a DeletionMark>,
    no_compact_mark: Option<&'a NoCompactMark>,
}

fn ls_json(blocks: &[BlockInfo]) -> anyhow::Result<String> {
    let entries: Vec<LsEntry<'_>> = blocks
        .iter()
        .map(|b| LsEntry {
            path: b.path.to_string(),
            meta: &b.meta,
            deletion_mark: b.deletion_mark.as_ref(),
            no_compact_mark: b.no_compact.as_ref(),
        })
        .collect();
    let mut s = serde_json::to_string_pretty(&entries)?;
    s.push('\n');
    Ok(s)
}

fn bytes_per_sample(m: &BlockMeta) -> String {
    if m.stats.num_samples == 0 {
        return "-".into();
    }
    format!("{:.2}", m.data_bytes() as f64 / m.stats.num_samples as f64)
}

fn marks(deletion: Option<&DeletionMark>, no_compact: Option<&NoCompactMark>) -> String {
    let mut out = Vec::new();
    if let Some(d) = deletion {
        out.push(format!("deletion ({})", ellipsize(&d.reason, 40)));
    }
    if let Some(n) = no_compact {
        out.push(format!("no-compact ({})", ellipsize(&n.reason, 40)));
    }
    if out.is_empty() { "-".into() } else { out.join(", ") }
}

/// Parses `<tenant>/<ULID>` (a trailing `/` or file name is allowed).
fn parse_block(s: &str) -> anyhow::Result<BlockPath> {
    let bad = || anyhow::anyhow!("{s:?} is not <tenant>/<ULID>");
    let mut parts = s.split('/').filter(|p| !p.is_empty());
    let (Some(tenant), Some(id)) = (parts.next(), parts.next()) else { return Err(bad()) };
    if parts.next().is_some_and(|f| strata_block::BlockFile::from_name(f).is_none()) || parts.next().is_some() {
        return Err(bad());
    }
    let tenant = TenantId::new(tenant).map_err(|e| anyhow::anyhow!("{s:?}: {e}"))?;
    let id = ulid::Ulid::from_string(id).map_err(|e| anyhow::anyhow!("{s:?}: block id: {e}"))?;
    Ok(BlockPath::new(tenant, id))
}

async fn inspect(bucket: &Bucket, block: &str, limit: usize) -> anyhow::Result<()> {
    let path = parse_block(block)?;
    let blocks = bucket.blocks(&path.tenant).await.context("listing blocks")?;
    let Some(info) = blocks.iter().find(|b| b.path == path).cloned() else {
        let scan = bucket.scan(&path.tenant).await.context("listing blocks")?;
        match scan.iter().find(|s| s.path == path) {
            Some(s) => anyhow::bail!(
                "{path} has no readable meta.json (files: {}); `strata tools bucket verify` explains",
                s.files.keys().map(|f| f.name()).collect::<Vec<_>>().join(", ")
            ),
            None => anyhow::bail!("no block {path} in the bucket"),
        }
    };
    print_out(&describe(&info));

    let pb = ProgressBar::new_spinner().with_message(format!("reading the series table of {path}"));
    pb.enable_steady_tick(Duration::from_millis(120));
    let ix = BlockIndex::load(bucket.store().clone(), path.clone(), info.meta.clone()).await;
    pb.finish_and_clear();
    let ix = ix.with_context(|| format!("reading {path}"))?;
    let pb = bar(ix.series.len() as u64, "counting series per metric");
    let per_metric = per_metric(&ix, &pb);
    pb.finish_and_clear();
    print_out(&metrics_table(per_metric, limit));
    Ok(())
}

/// Series and samples per metric name, most samples first.
fn per_metric(ix: &BlockIndex, pb: &ProgressBar) -> Vec<(String, u64, u64)> {
    let mut m: HashMap<&str, (u64, u64)> = HashMap::new();
    for (i, s) in ix.series.iter().enumerate() {
        let e = m.entry(s.labels.metric_name().unwrap_or("")).or_default();
        e.0 += 1;
        e.1 += u64::from(s.rows);
        if i % 4096 == 4095 {
            pb.inc(4096);
        }
    }
    let mut out: Vec<(String, u64, u64)> = m.into_iter().map(|(k, (a, b))| (k.to_string(), a, b)).collect();
    out.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    out
}

fn metrics_table(per_metric: Vec<(String, u64, u64)>, limit: usize) -> String {
    let mut t = Table::new(&["METRIC", "SERIES", "SAMPLES"]).right_aligned(&[1, 2]);
    let n = per_metric.len();
    let shown = if limit == 0 { n } else { limit.min(n) };
    for (name, series, samples) in per_metric.into_iter().take(shown) {
        t.row(vec![if name.is_empty() { "(no name)".into() } else { name }, fmt_count(series), fmt_count(samples)]);
    }
    let mut out = format!("\n{n} metric names\n");
    out.push_str(&t.render());
    if shown < n {
        out.push_str(&format!("... {} more (--limit 0 lists all)\n", n - shown));
    }
    out
}

fn describe(b: &BlockInfo) -> String {
    let m = &b.meta;
    let mut t = Table::new(&["", ""]);
    let mut kv = |k: &str, v: String| t.row(vec![k.to_string(), v]);
    kv("block", b.path.to_string());
    kv("format version", m.version.to_string());
    kv("min time", format!("{} ({})", fmt_time(m.min_time), m.min_time));
    kv("max time", format!("{} ({}, exclusive)", fmt_time(m.max_time), m.max_time));
    kv("duration", fmt_span_ms(m.min_time, m.max_time));
    kv("resolution", fmt_resolution(m.resolution));
    kv("level", m.compaction.level.to_string());
    kv("series", fmt_count(m.stats.num_series));
    kv("samples", fmt_count(m.stats.num_samples));
    kv("size", format!("{} ({} bytes/sample)", fmt_bytes(m.data_bytes()), bytes_per_sample(m)));
    for f in &m.stats.files {
        kv("file", format!("{} {} ({} bytes)", f.name, fmt_bytes(f.size_bytes), f.size_bytes));
    }
    let list = |ids: &[ulid::Ulid]| {
        let mut s: Vec<String> = ids.iter().take(8).map(|u| u.to_string()).collect();
        if ids.len() > 8 {
            s.push(format!("... {} more", ids.len() - 8));
        }
        if s.is_empty() { "-".to_string() } else { format!("{}: {}", ids.len(), s.join(" ")) }
    };
    kv("sources", list(&m.compaction.sources));
    kv("parents", list(&m.compaction.parents));
    let unix = fmt_time_secs;
    match &b.deletion_mark {
        Some(d) => kv("deletion mark", format!("{} at {}", d.reason, unix(d.deletion_time))),
        None => kv("deletion mark", "-".into()),
    }
    match &b.no_compact {
        Some(n) => kv("no-compact mark", format!("{} at {}", n.reason, unix(n.no_compact_time))),
        None => kv("no-compact mark", "-".into()),
    }
    t.render_without_header()
}

fn bar(len: u64, msg: &str) -> ProgressBar {
    let pb = ProgressBar::new(len).with_message(msg.to_string());
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta})") {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

/// Writes to stdout; a closed pipe (`| head`) ends output quietly.
pub(crate) fn print_out(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes()).and_then(|()| out.flush());
}

pub(crate) use strata_model::format_rfc3339_ms as fmt_time;

/// [`fmt_time`] of a time in Unix seconds (markers' times).
pub(crate) fn fmt_time_secs(secs: i64) -> String {
    match secs.checked_mul(1000) {
        Some(ms) => fmt_time(ms),
        None => format!("{secs}s (out of range)"),
    }
}

/// The duration from `from` to `to` (ms), exact even when the difference does not
/// fit an `i64` (a block from i64::MIN to i64::MAX).
pub(crate) fn fmt_span_ms(from: i64, to: i64) -> String {
    fmt_duration_ms_wide(i128::from(to) - i128::from(from))
}

/// Compact duration: `14d`, `2h`, `1h59m45s`, `250ms`.
pub(crate) fn fmt_duration_ms(ms: i64) -> String {
    fmt_duration_ms_wide(i128::from(ms))
}

fn fmt_duration_ms_wide(ms: i128) -> String {
    if ms < 0 {
        return format!("-{}", fmt_duration_ms_wide(-ms));
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let mut s = (ms + 500) / 1000;
    let mut out = String::new();
    for (unit, n) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if s >= n {
            out.push_str(&format!("{}{unit}", s / n));
            s %= n;
        }
    }
    out
}

fn fmt_resolution(r: i64) -> String {
    if r == RESOLUTION_RAW { "raw".into() } else { fmt_duration_ms(r) }
}

pub(crate) fn fmt_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if v < 10.0 { format!("{v:.2} {}", UNITS[u]) } else { format!("{v:.1} {}", UNITS[u]) }
}

/// `1234567` as `1,234,567`.
pub(crate) fn fmt_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `s` cut to about `max` characters with `…`, except that a block id (a ULID: 26
/// Crockford base32 characters) is never cut: the cut moves to its end.
/// "compacted into <ULID>" names the block to look at next; half an id names nothing.
fn ellipsize(s: &str, max: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= max {
        return s.to_string();
    }
    let mut cut = max.saturating_sub(1);
    // Runs of ULID characters bounded by other characters, 26 long, that parse.
    let is_ulid_char = |c: char| c.is_ascii_alphanumeric();
    let mut start = 0;
    while start < chars.len() {
        if !is_ulid_char(chars[start]) {
            start += 1;
            continue;
        }
        let end = (start..chars.len()).find(|&i| !is_ulid_char(chars[i])).unwrap_or(chars.len());
        let run: String = chars[start..end].iter().collect();
        if start < cut && cut < end && run.len() == ulid::ULID_LEN && ulid::Ulid::from_string(&run).is_ok() {
            cut = end;
        }
        start = end;
    }
    if cut >= chars.len() {
        return s.to_string();
    }
    let mut out: String = chars[..cut].iter().collect();
    out.push('…');
    out
}

/// A plain text table: columns padded to their widest cell, two spaces apart.
#[derive(Debug)]
pub(crate) struct Table {
    header: Vec<String>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|s| s.to_string()).collect(), right: vec![false; header.len()], rows: vec![] }
    }

    /// Right-aligns the given columns (numbers).
    pub(crate) fn right_aligned(mut self, cols: &[usize]) -> Table {
        for &c in cols {
            self.right[c] = true;
        }
        self
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len());
        self.rows.push(cells);
    }

    pub(crate) fn render(&self) -> String {
        self.render_rows(true)
    }

    pub(crate) fn render_without_header(&self) -> String {
        self.render_rows(false)
    }

    fn render_rows(&self, header: bool) -> String {
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.header.iter().map(|h| if header { width(h) } else { 0 }).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(width(c));
            }
        }
        let mut out = String::new();
        let lines = header.then_some(&self.header).into_iter().chain(&self.rows);
        for r in lines {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = " ".repeat(widths[i] - width(c));
                if self.right[i] {
                    line.push_str(&pad);
                    line.push_str(c);
                } else {
                    line.push_str(c);
                    line.push_str(&pad);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests;
