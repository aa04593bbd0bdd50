//! Strata's end-to-end tests, in one binary. Tests that need an outside program
//! (Prometheus, weed, DuckDB, the built `strata` binary) print why and return when
//! it is absent; in CI (`CI=true`, set by `.ci/run`) an absent one fails the test
//! (`strata_tests::missing_tool`), since CI installs everything.

mod bad_input;
mod blocks;
mod crash;
mod differential;
mod downsampling;
mod faults;
mod federation;
mod ha;
mod ha_prometheus;
mod limits;
mod lock;
mod ops;
mod prometheus;
mod query_api;
mod read_api;
mod s3;
mod skew;
mod status_api;
mod write_v2;
