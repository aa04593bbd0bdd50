//! `strata compact`: compaction, retention and garbage collection of the bucket as a
//! process of its own (for when `serve` runs with `compactor.enabled: false`).
//!
//! ```text
//!  Config ─► object store ─► Bucket ─► Compactor ─► a pass every compactor.interval
//!                                                  ─► SIGTERM/SIGINT: stop, pass dropped safely
//!         --once ─► one pass ─► report on stdout (exit 1 if a tenant failed)
//! ```

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use strata_block::{Bucket, BucketOptions};
use strata_compact::{Compactor, CompactorOptions, DownsampleOptions, Report};
use strata_model::TenantId;

use crate::config::Config;
use crate::tools::{StoreArgs, Table, print_out};

#[derive(Debug, clap::Args)]
pub(crate) struct CompactArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Run one pass (retention, compaction, garbage collection), print what it did, and exit.
    #[arg(long)]
    pub(crate) once: bool,
}

/// The compactor settings of a configuration (also what `serve` should use).
pub(crate) fn compactor_options(cfg: &Config) -> CompactorOptions {
    let retention = Arc::new(cfg.clone());
    CompactorOptions {
        ranges: CompactorOptions::ranges_from(&cfg.compactor.ranges),
        deletion_delay: cfg.compactor.deletion_delay,
        retention: Arc::new(move |t: &TenantId| retention.retention(t.as_str())),
        replica_labels: cfg.compactor.deduplication.replica_labels.clone(),
        downsample: DownsampleOptions {
            enabled: cfg.compactor.downsample.enabled,
            raw_to_5m_after: cfg.compactor.downsample.raw_to_5m_after,
            five_m_to_1h_after: cfg.compactor.downsample.five_m_to_1h_after,
        },
        spool_dir: cfg.data_dir.join("compactor"),
    }
}

/// A bucket handle for a maintenance process: listings are never reused (other
/// processes change the bucket) and only a small index cache is kept.
pub(crate) fn maintenance_bucket(cfg: &Config) -> anyhow::Result<Arc<Bucket>> {
    let store = cfg.objstore().build().context("object storage")?;
    Ok(Bucket::new(store, BucketOptions { index_cache_bytes: 64 << 20, list_ttl: Duration::ZERO }))
}

pub(crate) async fn run(cfg: Config, once: bool) -> anyhow::Result<()> {
    let bucket = maintenance_bucket(&cfg)?;
    let compactor = Compactor::new(bucket, compactor_options(&cfg)).context("compactor settings")?;
    if once {
        let report = tokio::select! {
            r = compactor.run_once() => r.context("compaction pass")?,
            () = crate::shutdown_signal() => anyhow::bail!("interrupted"),
        };
        print_out(&report_table(&report));
        if report.failures > 0 {
            anyhow::bail!("{} tenant(s) failed; see the log", report.failures);
        }
        return Ok(());
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(compactor.run(cfg.compactor.interval, stopped));
    crate::shutdown_signal().await;
    let _ = stop.send(true);
    task.await.context("compactor task")?;
    Ok(())
}

fn report_table(r: &Report) -> String {
    let mut t = Table::new(&["", ""]).right_aligned(&[1]);
    for (name, n) in [
        ("tenants", r.tenants),
        ("groups merged", r.groups_merged),
        ("blocks written", r.blocks_written),
        ("blocks compacted away", r.blocks_compacted),
        ("blocks expired (retention)", r.blocks_expired),
        ("blocks downsampled", r.blocks_downsampled),
        ("blocks deleted", r.blocks_deleted),
        ("incomplete uploads deleted", r.incomplete_deleted),
        ("blocks marked no-compact", r.blocks_no_compact),
        ("tenant failures", r.failures),
    ] {
        t.row(vec![name.to_string(), n.to_string()]);
    }
    t.render_without_header()
}

#[cfg(test)]
mod tests {
    use strata_compact::Retention;

    use super::*;

    #[test]
    fn options_follow_the_config() {
        let cfg = Config::from_yaml(
            "compactor:\n  ranges: [1h, 4h]\n  deletion_delay: 10m\n  downsample: {raw_to_5m_after: 1d, 5m_to_1h_after: 3d}\n\
             retention:\n  raw: 7d\n  5m: 90d\n  tenants:\n    keep: 0s\n    short: {raw: 2d, 1h: 1y}\n",
        )
        .unwrap();
        let o = compactor_options(&cfg);
        assert_eq!(o.ranges, [3_600_000, 4 * 3_600_000]);
        assert_eq!(o.deletion_delay, Duration::from_secs(600));
        assert_eq!(o.downsample.raw_to_5m_after, Duration::from_secs(86_400));
        assert_eq!(o.downsample.five_m_to_1h_after, Duration::from_secs(3 * 86_400));
        assert_eq!(o.spool_dir, cfg.data_dir.join("compactor"));
        let day = |n: u64| Some(Duration::from_secs(n * 86_400));
        let r = |t: &str| (o.retention)(&TenantId::new(t).unwrap());
        assert_eq!(r("a"), Retention { raw: day(7), five_m: day(90), one_h: None });
        assert_eq!(r("keep"), Retention { raw: None, five_m: day(90), one_h: None });
        assert_eq!(
            r("short"),
            Retention { raw: day(2), five_m: day(90), one_h: Some(Duration::from_secs(31_557_600)) }
        );
        o.validate().unwrap();
    }

    #[test]
    fn report_prints_every_count() {
        let r = Report { tenants: 2, groups_merged: 3, failures: 1, ..Report::default() };
        let s = report_table(&r);
        let line = s.lines().find(|l| l.starts_with("groups merged")).unwrap();
        assert_eq!(line.split_whitespace().last(), Some("3"), "{s}");
        assert_eq!(s.lines().count(), 10);
    }
}
