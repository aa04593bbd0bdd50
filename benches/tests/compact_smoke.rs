//! Compaction benchmark smoke test: a tiny generated bucket (20 series, one day at
//! 60 s, 12 days old) through the real `strata compact --once`. Asserts what the
//! report's figures rest on: the passes ran to a fixed point, both downsampled
//! resolutions exist and hold one window per series and window with data; never a
//! timing.

use std::path::{Path, PathBuf};

use strata_benches::downsample::{self, CompactOptions};

fn strata_bin() -> Option<PathBuf> {
    let bin = match std::env::var_os("STRATA_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let exe = std::env::current_exe().expect("test binary path");
            // target/<profile>/deps/<test binary> → target/<profile>/strata
            exe.parent()?.parent()?.join("strata")
        }
    };
    if bin.is_file() {
        return Some(bin);
    }
    let why = format!("strata binary {} not found (cargo build -p strata --bins)", bin.display());
    assert!(std::env::var("CI").as_deref() != Ok("true"), "compact smoke: {why}");
    println!("compact smoke: skipping: {why}");
    None
}

#[test]
fn compact_benchmark_reports_every_resolution() {
    let Some(bin) = strata_bin() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    let opts = CompactOptions {
        strata_bin: bin,
        series: 20,
        days: 1.0,
        interval_s: 60,
        block_hours: 2,
        age_days: 12.0,
        work_dir: tmp.path().to_path_buf(),
        keep_data: false,
        seed: 1,
    };
    let rep = downsample::run_compact(&opts).expect("benchmark runs");
    assert_eq!((rep.samples, rep.raw_blocks_generated), (20 * 1440, 12));
    let last = rep.passes.last().expect("a pass ran");
    assert_eq!(last.counts.get("blocks downsampled"), Some(&0), "{:?}", rep.passes);
    assert!(rep.passes[0].counts["blocks downsampled"] > 0, "{:?}", rep.passes);
    let rows = |r: i64| rep.stored.get(&r).map(|s| s.rows).unwrap_or_default();
    assert_eq!(rows(0), rep.samples, "raw kept (retention 0s)");
    assert_eq!(rows(300_000), 20 * 288, "one 5m window per series and 5 minutes");
    assert_eq!(rows(3_600_000), 20 * 24, "one 1h window per series and hour");
    let table = downsample::compact_table(&rep);
    assert!(table.contains("5m") && table.contains("1h"), "{table}");
    let json = downsample::write_compact_json(&rep, Path::new(&tmp.path().join("out"))).unwrap();
    assert!(std::fs::read_to_string(json).unwrap().contains("\"peak_rss_bytes\""));
}
