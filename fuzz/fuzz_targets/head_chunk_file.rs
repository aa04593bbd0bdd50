//! A head chunk (spill) file of arbitrary bytes, and a chunk read back from it at an
//! arbitrary offset and length.
#![no_main]

use std::sync::OnceLock;

static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"));
    strata_tsdb::fuzzing::head_chunk_file(&dir.path().join("head_chunks"), data);
});
