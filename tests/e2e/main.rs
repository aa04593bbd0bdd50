//! Strata's end-to-end tests, in one binary. Tests that need an outside program
//! (Prometheus, the built `strata` binary) print why and return when it is absent;
//! CI installs everything, so nothing is skipped there.

mod bad_input;
mod blocks;
mod crash;
mod differential;
mod faults;
mod prometheus;
mod query_api;
mod read_api;
mod s3;
mod write_v2;
