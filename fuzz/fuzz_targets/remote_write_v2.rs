//! Remote write 2.0: decompressed `io.prometheus.write.v2.Request` bytes through the
//! zero-copy decoder (symbol table and references) and the per-series validation.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_server::fuzzing::remote_write_v2(data));
