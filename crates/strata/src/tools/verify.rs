//! `strata tools bucket verify`: what is wrong with a bucket, block by block.
//!
//! ```text
//!  Bucket::scan ─► no meta.json ─► incomplete (a problem once older than 1h)
//!               ─► meta.json unreadable, data file missing or of another size
//!               ─► live blocks overlapping (same resolution), or with times far from now
//!                  (before 1990, or more than a day ahead)
//!               ─► read_block (read_aggr_block) each sound block ─► undecodable, or counts off meta.json
//! ```

use std::collections::BTreeMap;

use indicatif::ProgressBar;
use strata_block::{BlockFile, BlockMeta, BlockPath, Bucket, read_aggr_block, read_block};
use strata_compact::MIN_INCOMPLETE_AGE;
use strata_model::TenantId;

use super::{Table, bar, fmt_bytes, fmt_duration_ms, fmt_time};

/// What is wrong with a block directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Problem {
    /// No `meta.json`: an upload that failed (or is still running, if young).
    Incomplete { young: bool },
    /// `meta.json` exists but does not parse or names another block.
    BadMeta,
    /// A data file named in `meta.json` (or required by the format) is absent.
    MissingFile,
    /// A data file's size differs from `meta.json`.
    SizeMismatch,
    /// Two live blocks of one resolution hold overlapping time ranges.
    Overlap,
    /// The block's data does not decode, or holds other counts than `meta.json` says.
    Unreadable,
    /// A live block's time range reaches before [`EARLIEST_PLAUSIBLE_MS`] or more
    /// than [`MAX_AHEAD_MS`] past now: a sender's broken clock, or a damaged meta.json.
    /// Such a block is never compacted with the others, and retention by time does
    /// not make sense of it.
    ImplausibleTime,
}

/// 1990-01-01T00:00:00Z: no Prometheus sample comes from before this.
pub(crate) const EARLIEST_PLAUSIBLE_MS: i64 = 631_152_000_000;

/// How far past now a block's times may reach (clock skew, the ingest grace).
pub(crate) const MAX_AHEAD_MS: i64 = 24 * 3_600_000;

impl Problem {
    fn name(self) -> &'static str {
        match self {
            Problem::Incomplete { young: true } => "upload in progress",
            Problem::Incomplete { young: false } => "incomplete upload",
            Problem::BadMeta => "bad meta.json",
            Problem::MissingFile => "missing file",
            Problem::SizeMismatch => "size mismatch",
            Problem::Overlap => "overlap",
            Problem::Unreadable => "unreadable",
            Problem::ImplausibleTime => "implausible time",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub(crate) block: BlockPath,
    pub(crate) problem: Problem,
    pub(crate) detail: String,
}

impl Finding {
    /// Everything is a problem except an upload younger than an hour, which may
    /// still be running.
    pub(crate) fn is_problem(&self) -> bool {
        self.problem != Problem::Incomplete { young: true }
    }
}

/// A progress bar on stderr for the block reads.
pub(crate) fn progress() -> ProgressBar {
    bar(0, "reading blocks")
}

/// What `verify` found, and how much it looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    pub(crate) findings: Vec<Finding>,
    /// Block directories checked (complete or not).
    pub(crate) blocks: usize,
    /// Blocks read back in full (those with a sound meta.json and files, not marked for deletion).
    pub(crate) read: usize,
}

impl Report {
    pub(crate) fn problems(&self) -> usize {
        self.findings.iter().filter(|f| f.is_problem()).count()
    }
}

/// Why a live block's `[min_time, max_time)` is far from `now_ms`, if it is.
fn implausible_time(meta: &BlockMeta, now_ms: i64) -> Option<String> {
    let ahead = now_ms.saturating_add(MAX_AHEAD_MS);
    let mut why = Vec::new();
    if meta.min_time < EARLIEST_PLAUSIBLE_MS {
        why.push(format!("starts before {}", fmt_time(EARLIEST_PLAUSIBLE_MS)));
    }
    // max_time is exclusive: a block ending exactly at the limit holds nothing past it.
    if meta.max_time.saturating_sub(1) > ahead || meta.min_time > ahead {
        why.push(format!("reaches more than {} past now ({})", fmt_duration_ms(MAX_AHEAD_MS), fmt_time(now_ms)));
    }
    (!why.is_empty()).then(|| {
        format!(
            "min time {} ({}), max time {} ({}): {}",
            fmt_time(meta.min_time),
            meta.min_time,
            fmt_time(meta.max_time),
            meta.max_time,
            why.join(", ")
        )
    })
}

/// Checks every block directory of `tenants`. `now_ms` decides which incomplete
/// uploads are old enough to be a problem, and which times are implausible.
pub(crate) async fn verify(
    bucket: &Bucket,
    tenants: &[TenantId],
    now_ms: i64,
    pb: &ProgressBar,
) -> anyhow::Result<Report> {
    let mut findings = Vec::new();
    let mut blocks = 0;
    let mut to_read: Vec<(BlockPath, BlockMeta)> = Vec::new();
    for tenant in tenants {
        let scans = bucket.scan(tenant).await?;
        blocks += scans.len();
        let mut live: Vec<(&BlockPath, &BlockMeta)> = Vec::new();
        for s in &scans {
            let mut finding = |problem, detail: String| {
                findings.push(Finding { block: s.path.clone(), problem, detail });
            };
            let meta = match &s.meta {
                None => {
                    let age = now_ms - s.last_modified;
                    let files: Vec<&str> = s.files.keys().map(|f| f.name()).collect();
                    let young = age < MIN_INCOMPLETE_AGE.as_millis() as i64;
                    let detail =
                        format!("no meta.json; files: {}; last written {} ago", files.join(", "), fmt_duration_ms(age));
                    finding(Problem::Incomplete { young }, detail);
                    continue;
                }
                Some(Err(e)) => {
                    finding(Problem::BadMeta, e.clone());
                    continue;
                }
                Some(Ok(m)) => m,
            };
            let mut sound = true;
            let mut expected: BTreeMap<&str, Option<u64>> = BlockFile::DATA.iter().map(|f| (f.name(), None)).collect();
            for f in &meta.stats.files {
                expected.insert(&f.name, Some(f.size_bytes));
            }
            for (name, want) in expected {
                let have = BlockFile::from_name(name).and_then(|f| s.files.get(&f).copied());
                match (have, want) {
                    (None, _) => {
                        sound = false;
                        finding(Problem::MissingFile, format!("{name} is missing"));
                    }
                    (Some(have), Some(want)) if have != want => {
                        sound = false;
                        finding(
                            Problem::SizeMismatch,
                            format!("{name} is {} ({have} bytes), meta.json says {want} bytes", fmt_bytes(have)),
                        );
                    }
                    _ => {}
                }
            }
            if s.files.contains_key(&BlockFile::DeletionMark) {
                continue;
            }
            if let Some(detail) = implausible_time(meta, now_ms) {
                finding(Problem::ImplausibleTime, detail);
            }
            live.push((&s.path, meta));
            if sound {
                to_read.push((s.path.clone(), meta.clone()));
            }
        }
        findings.extend(overlaps(&live));
    }

    let read = to_read.len();
    pb.set_length(read as u64);
    for (path, meta) in to_read {
        pb.set_message(path.to_string());
        // A downsampled block's "samples" are its windows.
        let counts = if meta.is_raw() {
            read_block(&**bucket.store(), &path)
                .await
                .map(|series| (series.len() as u64, series.iter().map(|s| s.samples.len() as u64).sum::<u64>()))
        } else {
            read_aggr_block(&**bucket.store(), &path)
                .await
                .map(|series| (series.len() as u64, series.iter().map(|s| s.windows.len() as u64).sum::<u64>()))
        };
        let detail = match counts {
            Ok((num_series, samples)) => (num_series != meta.stats.num_series || samples != meta.stats.num_samples)
                .then(|| {
                    format!(
                        "holds {num_series} series and {samples} samples, meta.json says {} and {}",
                        meta.stats.num_series, meta.stats.num_samples
                    )
                }),
            Err(e) => Some(e.to_string()),
        };
        if let Some(detail) = detail {
            findings.push(Finding { block: path, problem: Problem::Unreadable, detail });
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    findings.sort_by(|a, b| (&a.block, a.problem).cmp(&(&b.block, b.problem)));
    Ok(Report { findings, blocks, read })
}

/// One finding per live block that overlaps an earlier one of the same resolution.
fn overlaps(live: &[(&BlockPath, &BlockMeta)]) -> Vec<Finding> {
    let mut sorted = live.to_vec();
    sorted.sort_by_key(|(_, m)| (m.resolution, m.min_time, m.ulid));
    let mut out = Vec::new();
    for (i, (path, m)) in sorted.iter().enumerate() {
        let others: Vec<String> = sorted[..i]
            .iter()
            .filter(|(_, o)| o.resolution == m.resolution && o.max_time > m.min_time)
            .map(|(_, o)| o.ulid.to_string())
            .collect();
        if !others.is_empty() {
            out.push(Finding {
                block: (*path).clone(),
                problem: Problem::Overlap,
                detail: format!(
                    "[{}, {}) overlaps {} (the compactor merges overlapping blocks)",
                    fmt_time(m.min_time),
                    fmt_time(m.max_time),
                    others.join(", ")
                ),
            });
        }
    }
    out
}

pub(crate) fn render(report: &Report) -> String {
    let checked = format!("{} block(s) checked, {} read back", report.blocks, report.read);
    if report.findings.is_empty() {
        return format!("{checked}: no problems found\n");
    }
    let mut t = Table::new(&["BLOCK", "PROBLEM", "DETAIL"]);
    for f in &report.findings {
        t.row(vec![f.block.to_string(), f.problem.name().into(), f.detail.clone()]);
    }
    let problems = report.problems();
    let mut out = t.render();
    out.push_str(&format!("\n{checked}: {problems} problem(s), {} note(s)\n", report.findings.len() - problems));
    out
}
