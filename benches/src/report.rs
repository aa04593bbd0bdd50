//! The report: a text table (each figure and its ratio to VictoriaMetrics),
//! `report.json`, and `ratios.svg` (plotters, SVG backend only).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use plotters::prelude::*;

use crate::run::{Fig, RunReport, TargetResult};

const BASELINE: &str = "victoriametrics";

/// One table row: a label, how to read the figure, and whether higher is better.
struct Row {
    label: String,
    get: Box<dyn Fn(&TargetResult) -> Fig>,
    higher_is_better: bool,
    /// Part of the ratio chart.
    chart: bool,
}

fn row(label: &str, higher_is_better: bool, chart: bool, get: impl Fn(&TargetResult) -> Fig + 'static) -> Row {
    Row { label: label.to_string(), get: Box::new(get), higher_is_better, chart }
}

fn mib(f: &Fig) -> Fig {
    match f.num() {
        Some(v) => Fig::Num(v / 1048576.0),
        None => f.clone(),
    }
}

fn rows(report: &RunReport) -> Vec<Row> {
    let mut rows = vec![
        row("ingest samples/s", true, true, |t| {
            t.replay.as_ref().map_or_else(Fig::default, |r| Fig::Num(r.samples_per_second))
        }),
        row("write latency p50 ms", false, false, |t| {
            t.replay.as_ref().map_or_else(Fig::default, |r| Fig::Num(r.latency_ms.p50))
        }),
        row("write latency p99 ms", false, false, |t| {
            t.replay.as_ref().map_or_else(Fig::default, |r| Fig::Num(r.latency_ms.p99))
        }),
        row("CPU s / M samples", false, true, |t| t.cpu_seconds_per_million_samples.clone()),
        row("flush s", false, false, |t| t.flush_seconds.clone()),
        row("peak RSS MiB", false, true, |t| mib(&t.peak_rss_bytes)),
        row("RSS MiB (after ingest + flush)", false, false, |t| mib(&t.rss_bytes)),
        row("RSS MiB (10 s later)", false, true, |t| mib(&t.rss_settled_bytes)),
        row("RSS bytes / active series", false, true, |t| t.rss_bytes_per_active_series.clone()),
        row("disk bytes / sample", false, true, |t| t.disk_bytes_per_sample.clone()),
        row("data dir MiB (all)", false, false, |t| Fig::Num(t.disk_total.apparent as f64 / 1048576.0)),
        row("series count", false, false, |t| t.series_count.clone()),
        row("sample count", false, false, |t| t.sample_count.clone()),
    ];
    let names: Vec<String> =
        report.targets.iter().flat_map(|t| t.queries.iter().map(|q| q.name.clone())).fold(Vec::new(), |mut v, n| {
            if !v.contains(&n) {
                v.push(n);
            }
            v
        });
    for name in names {
        let n = name.clone();
        rows.push(row(&format!("query {name} ms"), false, false, move |t| {
            t.queries.iter().find(|q| q.name == n).map_or_else(Fig::default, |q| q.median_ms.clone())
        }));
    }
    rows.push(row("query medians sum ms", false, true, |t| t.query_median_sum_ms.clone()));
    rows
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn ratio(value: Option<f64>, base: Option<f64>) -> Option<f64> {
    match (value, base) {
        (Some(v), Some(b)) if b != 0.0 && v.is_finite() => Some(v / b),
        _ => None,
    }
}

/// The report as a text table plus the check verdict.
pub fn table(report: &RunReport) -> String {
    let m = &report.manifest;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "workload: {} hosts, {} s at {} s, churn {}/h, seed {} -> {} series ({} active at end), {} samples ({} stale markers), {} bodies",
        m.params.hosts,
        m.params.duration_s,
        m.params.interval_s,
        m.params.churn_per_hour,
        m.params.seed,
        m.total_series,
        m.active_series_at_end,
        m.total_samples,
        m.stale_markers,
        m.bodies
    );
    let _ = writeln!(out, "machine: {} CPUs, load average at start {}", report.cpus, report.loadavg_at_start);
    let base = report.targets.iter().find(|t| t.target == BASELINE);
    let cols: Vec<&TargetResult> = report.targets.iter().collect();
    let mut header = format!("{:<34}", "figure (ratio to VictoriaMetrics)");
    for t in &cols {
        let _ = write!(header, " | {:>24}", t.target);
    }
    let _ = writeln!(out, "{header}");
    let _ = writeln!(out, "{}", "-".repeat(header.len()));
    for r in rows(report) {
        let label = if r.higher_is_better { format!("{} (higher=better)", r.label) } else { r.label.clone() };
        let mut line = format!("{label:<34}");
        let b = base.and_then(|b| (r.get)(b).num());
        for t in &cols {
            let cell = if !t.status.starts_with("ok") && t.replay.is_none() {
                "-".to_string()
            } else {
                match (r.get)(t) {
                    Fig::Num(v) => match ratio(Some(v), b) {
                        Some(x) => format!("{} ({x:.2}x)", fmt_num(v)),
                        None => fmt_num(v),
                    },
                    Fig::Na(why) => why.chars().take(24).collect(),
                }
            };
            let _ = write!(line, " | {cell:>24}");
        }
        let _ = writeln!(out, "{line}");
    }
    for t in &cols {
        if t.status != "ok" {
            let _ = writeln!(out, "{}: {}", t.target, t.status);
        }
        for n in &t.notes {
            let _ = writeln!(out, "{}: note: {n}", t.target);
        }
        if t.status == "ok" {
            let _ = writeln!(out, "{}: disk: {}", t.target, t.disk_note);
        }
    }
    let c = &report.check;
    let _ = writeln!(
        out,
        "count check (expected {} series, {} samples): {}",
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

/// Writes `report.json` (and a copy named after the start time) into `dir`.
pub fn write_json(report: &RunReport, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(report)?;
    let path = dir.join("report.json");
    std::fs::write(&path, &json).with_context(|| format!("write {}", path.display()))?;
    std::fs::write(dir.join(format!("report-{}.json", report.started_at)), &json)?;
    Ok(path)
}

/// Writes `ratios.svg`: per figure, each target's cost relative to VictoriaMetrics
/// (log scale, lower is better; ingest rate is inverted into time per sample).
pub fn write_svg(report: &RunReport, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("ratios.svg");
    let Some(base) = report.targets.iter().find(|t| t.target == BASELINE) else {
        std::fs::write(&path, "<svg xmlns=\"http://www.w3.org/2000/svg\"/>")?;
        return Ok(path);
    };
    let rows: Vec<Row> = rows(report).into_iter().filter(|r| r.chart).collect();
    let targets: Vec<&TargetResult> = report.targets.iter().filter(|t| t.status == "ok").collect();
    // ratios[t][m] = cost of target t relative to the baseline on figure m.
    let ratios: Vec<Vec<Option<f64>>> = targets
        .iter()
        .map(|t| {
            rows.iter()
                .map(|r| {
                    let x = ratio((r.get)(t).num(), (r.get)(base).num())?;
                    let x = if r.higher_is_better { 1.0 / x } else { x };
                    (x > 0.0).then_some(x)
                })
                .collect()
        })
        .collect();
    let all: Vec<f64> = ratios.iter().flatten().flatten().copied().collect();
    let lo = all.iter().copied().fold(0.5f64, f64::min) * 0.8;
    let hi = all.iter().copied().fold(2.0f64, f64::max) * 1.25;
    let k = targets.len() as i32 + 1;
    let xmax = rows.len() as i32 * k;
    let labels: Vec<String> = rows
        .iter()
        .map(|r| if r.higher_is_better { "ingest time/sample".to_string() } else { r.label.clone() })
        .collect();
    {
        let root = SVGBackend::new(&path, (1100, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Cost relative to VictoriaMetrics (1.0 = same, lower is better, log scale)", ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0..xmax, (lo..hi).log_scale().base(2.0))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let fmt = |x: &i32| {
            if x % k == (k - 1) / 2 { labels.get((x / k) as usize).cloned().unwrap_or_default() } else { String::new() }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(xmax as usize + 1)
            .x_label_formatter(&fmt)
            .y_labels(12)
            .y_label_formatter(&|y| format!("{y:.2}"))
            .y_desc("ratio")
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let palette = [BLUE, RED, GREEN, MAGENTA, CYAN];
        for (ti, t) in targets.iter().enumerate() {
            let color = palette[ti % palette.len()];
            let bars: Vec<Rectangle<(i32, f64)>> = ratios[ti]
                .iter()
                .enumerate()
                .filter_map(|(mi, r)| {
                    let r = (*r)?;
                    let x = mi as i32 * k + ti as i32;
                    Some(Rectangle::new([(x, 1.0), (x + 1, r)], color.filled()))
                })
                .collect();
            chart
                .draw_series(bars)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .label(t.target.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
        }
        chart
            .draw_series(std::iter::once(PathElement::new(vec![(0, 1.0), (xmax, 1.0)], BLACK)))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{Check, TimeRange};
    use crate::workload::{Manifest, WorkloadParams};

    fn target(name: &str, cpu: f64) -> TargetResult {
        TargetResult {
            target: name.into(),
            status: "ok".into(),
            cpu_seconds_per_million_samples: Fig::Num(cpu),
            disk_bytes_per_sample: Fig::Na("n/a (not supported)".into()),
            ..TargetResult::default()
        }
    }

    #[test]
    fn table_and_chart_show_ratios() {
        let report = RunReport {
            started_at: 0,
            cpus: 2,
            loadavg_at_start: String::new(),
            manifest: Manifest {
                params: WorkloadParams::default(),
                generator_version: 0,
                total_series: 1,
                active_series_at_end: 1,
                total_samples: 1,
                stale_markers: 0,
                real_samples: 1,
                min_ts: 0,
                max_ts: 0,
                bodies: 1,
                compressed_bytes: 1,
                raw_bytes: 1,
                generate_seconds: 0.0,
            },
            shift_ms: 0,
            range: TimeRange { start_ms: 0, end_ms: 0, interval_s: 15 },
            targets: vec![target("victoriametrics", 2.0), target("strata", 1.0)],
            check: Check::default(),
        };
        let t = table(&report);
        assert!(t.contains("1.000 (0.50x)"), "{t}");
        assert!(t.contains("n/a (not supported)"), "{t}");
        let dir = tempfile::tempdir().unwrap();
        let svg = std::fs::read_to_string(write_svg(&report, dir.path()).unwrap()).unwrap();
        assert!(svg.contains("<svg") && svg.contains("strata"));
    }
}
