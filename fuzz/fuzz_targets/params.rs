//! The HTTP API's time, duration and `match[]` selector parsers.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        strata_server::fuzzing::params(s);
    }
});
