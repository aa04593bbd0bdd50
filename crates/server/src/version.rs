//! What this build is: version, git revision and branch, compiler (set by `build.rs`).
//! Served by `/api/v1/status/buildinfo`, as `strata_build_info` on `/metrics`, and
//! logged at start-up.

/// The build's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildInfo {
    /// The crate version (`0.1.0`).
    pub version: &'static str,
    /// Short git commit id of the source, or `unknown`.
    pub revision: &'static str,
    /// Git branch of the source, or `unknown`.
    pub branch: &'static str,
    /// Version of the Rust compiler that built it.
    pub rust_version: &'static str,
}

/// This build.
pub const BUILD_INFO: BuildInfo = BuildInfo {
    version: env!("CARGO_PKG_VERSION"),
    revision: env!("STRATA_GIT_REVISION"),
    branch: env!("STRATA_GIT_BRANCH"),
    rust_version: env!("STRATA_RUSTC_VERSION"),
};
