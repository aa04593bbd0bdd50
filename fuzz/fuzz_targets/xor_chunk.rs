//! One XOR chunk: decode never panics; valid chunks re-encode to the same samples.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_tsdb::fuzzing::xor_chunk(data));
