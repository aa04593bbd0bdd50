//! A whole WAL segment file: replay must keep a valid prefix and never panic.
#![no_main]

use std::sync::OnceLock;

static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"));
    strata_tsdb::fuzzing::wal_segment(dir.path(), data);
});
