//! `strata tools bucket verify`: what is wrong with a bucket, block by block.
//!
//! ```text
//!  Bucket::scan ─► no meta.json ─► incomplete (a problem once older than 1h)
//!               ─► meta.json unreadable, data file missing or of another size
//!               ─► live blocks overlapping (same resolution)
//!               ─► read_block each sound block ─► undecodable, or counts off meta.json
//! ```

use std::collections::BTreeMap;

use indicatif::ProgressBar;
use strata_block::{BlockFile, BlockMeta, BlockPath, Bucket, read_block};
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
}

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

/// Checks every block directory of `tenants`. `now_ms` decides which incomplete
/// uploads are old enough to be a problem.
pub(crate) async fn verify(
    bucket: &Bucket,
    tenants: &[TenantId],
    now_ms: i64,
    pb: &ProgressBar,
) -> anyhow::Result<Vec<Finding>> {
    let mut findings = Vec::new();
    let mut to_read: Vec<(BlockPath, BlockMeta)> = Vec::new();
    for tenant in tenants {
        let scans = bucket.scan(tenant).await?;
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
            live.push((&s.path, meta));
            if sound {
                to_read.push((s.path.clone(), meta.clone()));
            }
        }
        findings.extend(overlaps(&live));
    }

    pb.set_length(to_read.len() as u64);
    for (path, meta) in to_read {
        pb.set_message(path.to_string());
        let detail = match read_block(&**bucket.store(), &path).await {
            Ok(series) => {
                let samples: u64 = series.iter().map(|s| s.samples.len() as u64).sum();
                (series.len() as u64 != meta.stats.num_series || samples != meta.stats.num_samples).then(|| {
                    format!(
                        "holds {} series and {samples} samples, meta.json says {} and {}",
                        series.len(),
                        meta.stats.num_series,
                        meta.stats.num_samples
                    )
                })
            }
            Err(e) => Some(e.to_string()),
        };
        if let Some(detail) = detail {
            findings.push(Finding { block: path, problem: Problem::Unreadable, detail });
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    findings.sort_by(|a, b| (&a.block, a.problem).cmp(&(&b.block, b.problem)));
    Ok(findings)
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

pub(crate) fn render(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "no problems found\n".into();
    }
    let mut t = Table::new(&["BLOCK", "PROBLEM", "DETAIL"]);
    for f in findings {
        t.row(vec![f.block.to_string(), f.problem.name().into(), f.detail.clone()]);
    }
    let problems = findings.iter().filter(|f| f.is_problem()).count();
    let mut out = t.render();
    out.push_str(&format!("\n{problems} problem(s), {} note(s)\n", findings.len() - problems));
    out
}
