//! Remote read: decompressed `ReadRequest` bytes decoded, matchers converted and checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_server::fuzzing::remote_read(data));
