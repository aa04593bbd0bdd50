//! Build information for `/api/v1/status/buildinfo`, `strata_build_info` and the
//! start-up log: the git revision and branch of the source (`STRATA_GIT_REVISION`,
//! `STRATA_GIT_BRANCH`, taken from the environment when set, as a packager would, or
//! from `git`) and the compiler's version. Without git they are `unknown`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=STRATA_GIT_REVISION");
    println!("cargo:rerun-if-env-changed=STRATA_GIT_BRANCH");
    // Rebuilt when HEAD moves: the HEAD file (a branch switch) and the branch's ref (a commit).
    for path in [git(&["rev-parse", "--git-path", "HEAD"]), git(&["symbolic-ref", "-q", "HEAD"])].into_iter().flatten()
    {
        let p = if path.starts_with("refs/") { git(&["rev-parse", "--git-path", &path]) } else { Some(path) };
        if let Some(p) = p.filter(|p| std::path::Path::new(p).exists()) {
            let abs = std::fs::canonicalize(&p).map(|p| p.display().to_string()).unwrap_or(p);
            println!("cargo:rerun-if-changed={abs}");
        }
    }
    let revision = std::env::var("STRATA_GIT_REVISION")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let branch = std::env::var("STRATA_GIT_BRANCH")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| git(&["rev-parse", "--abbrev-ref", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=STRATA_GIT_REVISION={revision}");
    println!("cargo:rustc-env=STRATA_GIT_BRANCH={branch}");
    println!("cargo:rustc-env=STRATA_RUSTC_VERSION={rustc}");
}
