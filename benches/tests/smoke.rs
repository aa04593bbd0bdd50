//! Smoke test: a tiny workload (2 hosts, 10 minutes) generated, replayed and measured
//! against whichever targets are installed. Asserts only that the run completed and
//! the count check passed — never a timing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use strata_benches::run::{self, RunOptions, TargetKind, TargetSpec};
use strata_benches::workload::{self, WorkloadParams};

fn strata_bin() -> PathBuf {
    match std::env::var_os("STRATA_BIN") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/strata"),
    }
}

#[test]
fn tiny_workload_runs_and_counts_match() {
    let candidates = [
        (TargetKind::VictoriaMetrics, PathBuf::from("/usr/bin/victoria-metrics")),
        (TargetKind::Prometheus, PathBuf::from("/usr/bin/prometheus")),
        (TargetKind::Strata, strata_bin()),
    ];
    let mut targets = Vec::new();
    for (kind, bin) in candidates {
        if bin.is_file() {
            targets.push(TargetSpec::new(kind, bin));
        } else {
            println!("smoke: skipping {}: binary {} not found", kind.name(), bin.display());
        }
    }
    if targets.is_empty() {
        println!("smoke: no target installed, nothing to run");
        return;
    }

    let tmp = tempfile::tempdir().expect("temp dir");
    let params = WorkloadParams { hosts: 2, duration_s: 600, ..WorkloadParams::default() };
    let (dir, manifest) = workload::ensure_cached(&params, &tmp.path().join("cache"), false).expect("generate");
    let opts = RunOptions {
        targets,
        concurrency: 4,
        query_reps: 2,
        out_dir: tmp.path().join("out"),
        work_dir: tmp.path().join("work"),
        keep_data: false,
        progress: false,
        ready_timeout: Duration::from_secs(120),
        settle: run::SETTLE,
    };
    let report = run::run(&dir, &manifest, &opts).expect("run completes");
    println!("{}", strata_benches::report::table(&report));
    for t in &report.targets {
        assert_eq!(t.status, "ok", "{}: {}", t.target, t.status);
    }
    assert!(report.check.passed, "count check failed: {:?}", report.check.mismatches);
    strata_benches::report::write_json(&report, &opts.out_dir).expect("json");
    strata_benches::report::write_svg(&report, &opts.out_dir).expect("svg");
}
