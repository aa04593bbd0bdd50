//! Remote write 1.0: decompressed `WriteRequest` bytes through the zero-copy decoder
//! and the write handler's per-series validation.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_server::fuzzing::remote_write_v1(data));
