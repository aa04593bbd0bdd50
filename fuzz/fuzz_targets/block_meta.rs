//! A block's `meta.json`, its marker files and its object keys.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_block::fuzzing::meta_and_markers(data));
