//! One WAL record (type byte, then payload): decode, re-encode, decode again.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_tsdb::fuzzing::wal_record(data));
