//! HA smoke test: a tiny workload (2 hosts, 10 minutes) written by two replicas,
//! through every HA setup whose binary is installed. Asserts what a user depends on:
//! the tracker stores exactly one replica, and query-time dedup answers exactly as
//! one replica does (both checked inside `ha::run_ha`); never a timing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use strata_benches::ha::{self, HaOptions};
use strata_benches::workload::{self, WorkloadParams};

fn strata_bin() -> PathBuf {
    match std::env::var_os("STRATA_BIN") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/strata"),
    }
}

#[test]
fn ha_pair_dedups_to_one_replica() {
    let bin = strata_bin();
    if !bin.is_file() {
        println!("ha smoke: skipping: strata binary {} not found", bin.display());
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let params = WorkloadParams { hosts: 2, duration_s: 600, ..WorkloadParams::default() };
    let (dir, manifest) = workload::ensure_cached(&params, &tmp.path().join("cache"), false).expect("generate");
    let opts = HaOptions {
        strata_bin: bin,
        vm_bin: PathBuf::from("/usr/bin/victoria-metrics"),
        cluster: "c1".into(),
        concurrency: 2,
        query_reps: 1,
        out_dir: tmp.path().join("out"),
        work_dir: tmp.path().join("work"),
        keep_data: false,
        progress: false,
        ready_timeout: Duration::from_secs(120),
        settle: Duration::ZERO,
    };
    let rep = ha::run_ha(&dir, &manifest, &opts).expect("ha run completes");
    println!("{}", ha::table(&rep));
    for s in rep.setups.iter().filter(|s| s.setup.spec.kind == strata_benches::run::TargetKind::Strata) {
        assert_eq!(s.result.status, "ok", "{}: {}", s.setup.name, s.result.status);
    }
    assert!(rep.check.passed, "HA check failed: {:?}", rep.check.mismatches);
    let tracker = rep.setups.iter().find(|s| s.setup.name == "strata-tracker").unwrap();
    assert_eq!(tracker.samples_answered_202, manifest.total_samples);
    assert!(rep.summary.query_dedup_ratio.num().is_some(), "query-time dedup was not measured");
    ha::write_json(&rep, &opts.out_dir).expect("json");
}
