//! How one series' value evolves from scrape to scrape, and the precision it is
//! emitted at (exporters print integers, a few decimals, or full `%g` floats).

use crate::rng::Rng;

/// The rounding an exporter applies before printing a value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Precision {
    /// `d` decimals; negative `d` rounds to a multiple of `10^-d` (e.g. kHz as Hz).
    Dec(i32),
    /// A multiple of 1024 (values read from /proc in kB).
    Kib,
    /// Full binary64 precision.
    Full,
}

impl Precision {
    pub(crate) fn apply(self, x: f64) -> f64 {
        match self {
            Precision::Dec(d) if d >= 0 => {
                let m = 10f64.powi(d);
                (x * m).round() / m
            }
            Precision::Dec(d) => {
                let m = 10f64.powi(-d);
                (x / m).round() * m
            }
            Precision::Kib => (x / 1024.0).floor() * 1024.0,
            Precision::Full => x,
        }
    }

    /// Counters must never go down after rounding: truncate instead of rounding.
    fn apply_counter(self, x: f64) -> f64 {
        match self {
            Precision::Dec(d) if d >= 0 => {
                let m = 10f64.powi(d);
                (x * m).floor() / m
            }
            other => other.apply(x),
        }
    }
}

/// A series' value model.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Model {
    /// Never changes (info metrics, sizes, limits).
    Const(f64),
    /// Grows by `rate` per second on average with relative `noise`; resets on reboot.
    Counter { rate: f64, noise: f64, prec: Precision },
    /// Random walk in `[lo, hi]` with per-scrape standard deviation `step * (hi - lo)`.
    Gauge { lo: f64, hi: f64, step: f64, prec: Precision },
    /// `node_cpu_seconds_total` for mode index `mode` (see the catalog's CPU_MODES).
    Cpu { mode: u8 },
    /// Wall-clock seconds at scrape time, full precision.
    Time,
    /// Boot (or process start) time in seconds; changes on reboot.
    BootTime,
    /// A log-normal duration around `median` seconds, full precision.
    Duration { median: f64 },
    /// Prometheus's `up`.
    Up,
    /// Prometheus's `scrape_duration_seconds`.
    ScrapeDuration,
    /// `scrape_samples_scraped` and `scrape_samples_post_metric_relabeling`.
    ScrapeSamples,
    /// `scrape_series_added`.
    ScrapeSeriesAdded,
}

/// Per-scrape facts shared by all series of one host.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScrapeCtx {
    pub(crate) ts_ms: i64,
    pub(crate) interval_s: f64,
    pub(crate) boot_time_s: f64,
    /// CPU utilisation of the host in `[0, 1]`.
    pub(crate) util: f64,
    pub(crate) samples_scraped: usize,
    pub(crate) series_added: usize,
}

/// Share of CPU time per mode (idle gets the rest), scaled by utilisation.
const CPU_BUSY_SHARES: [f64; 8] = [0.0, 0.04, 0.005, 0.005, 0.03, 0.02, 0.25, 0.65];

impl Model {
    /// The exact (unrounded) state of a fresh series on a host up for `uptime_s`.
    pub(crate) fn initial(self, rng: &mut Rng, uptime_s: f64, util: f64) -> f64 {
        match self {
            Model::Const(v) => v,
            Model::Counter { rate, .. } => rate * uptime_s * rng.range(0.8, 1.2),
            Model::Gauge { lo, hi, .. } => rng.range(lo, hi),
            Model::Cpu { mode } => uptime_s * cpu_share(mode, util) * rng.range(0.9, 1.1),
            _ => 0.0,
        }
    }

    /// Advances `state` by one scrape and returns the value the exporter prints.
    pub(crate) fn step(self, state: &mut f64, rng: &mut Rng, ctx: &ScrapeCtx) -> f64 {
        match self {
            Model::Const(v) => v,
            Model::Counter { rate, noise, prec } => {
                if rate > 0.0 {
                    let inc = rate * ctx.interval_s * (1.0 + noise * rng.normal());
                    *state += inc.max(0.0);
                }
                prec.apply_counter(*state)
            }
            Model::Gauge { lo, hi, step, prec } => {
                if hi > lo {
                    let next = *state + (hi - lo) * step * rng.normal();
                    // Reflect at the bounds so the walk stays inside [lo, hi].
                    *state = if next < lo {
                        (2.0 * lo - next).min(hi)
                    } else if next > hi {
                        (2.0 * hi - next).max(lo)
                    } else {
                        next
                    };
                }
                prec.apply(*state)
            }
            Model::Cpu { mode } => {
                let share = cpu_share(mode, ctx.util);
                let inc = ctx.interval_s * share * (1.0 + 0.1 * rng.normal());
                *state += inc.max(0.0);
                Precision::Dec(2).apply_counter(*state)
            }
            Model::Time => ctx.ts_ms as f64 / 1000.0 + rng.range(0.0, 0.004),
            Model::BootTime => ctx.boot_time_s,
            Model::Duration { median } => median * (0.5 * rng.normal()).exp(),
            Model::Up => 1.0,
            Model::ScrapeDuration => 0.015 * (0.3 * rng.normal()).exp(),
            Model::ScrapeSamples => ctx.samples_scraped as f64,
            Model::ScrapeSeriesAdded => ctx.series_added as f64,
        }
    }

    /// Whether a host reboot resets this series' state.
    pub(crate) fn resets_on_reboot(self) -> bool {
        matches!(self, Model::Counter { .. } | Model::Cpu { .. })
    }
}

fn cpu_share(mode: u8, util: f64) -> f64 {
    if mode == 0 { 1.0 - util } else { util * CPU_BUSY_SHARES[usize::from(mode)] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_matches_exporter_output() {
        assert_eq!(Precision::Dec(2).apply(1.23456), 1.23);
        assert_eq!(Precision::Dec(0).apply(1234.6), 1235.0);
        assert_eq!(Precision::Dec(-3).apply(2_345_678_901.0), 2_345_679_000.0);
        assert_eq!(Precision::Kib.apply(5000.0), 4096.0);
        assert_eq!(Precision::Full.apply(0.1), 0.1);
    }

    #[test]
    fn counters_never_decrease() {
        let mut rng = Rng::new(1, 1);
        let m = Model::Counter { rate: 0.01, noise: 0.9, prec: Precision::Dec(2) };
        let ctx =
            ScrapeCtx { ts_ms: 0, interval_s: 15.0, boot_time_s: 0.0, util: 0.3, samples_scraped: 0, series_added: 0 };
        let mut state = 0.0;
        let mut last = 0.0;
        for _ in 0..1000 {
            let v = m.step(&mut state, &mut rng, &ctx);
            assert!(v >= last);
            last = v;
        }
    }
}
