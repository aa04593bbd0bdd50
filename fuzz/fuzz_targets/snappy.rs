//! Snappy block-format bodies through the capped decompressor.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_server::fuzzing::snappy(data));
