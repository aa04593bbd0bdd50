//! One simulated node_exporter target: its series, their state, reboots (a failed
//! scrape, stale markers, then reset counters) and churn (container veth interfaces
//! replaced over time, the old ones ending with stale markers).

use std::collections::HashSet;

use super::catalog::{self, HostShape, SeriesDef};
use super::model::{Model, ScrapeCtx};
use crate::rng::Rng;

/// The value Prometheus writes when a series disappears.
pub(crate) const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// Average host reboots per hour (each costs one failed scrape).
const REBOOTS_PER_HOUR: f64 = 0.02;
/// Container veth interfaces alive at any time on each host.
const VETHS_PER_HOST: usize = 5;
/// Share of scrapes whose timestamp is off the interval grid by a few ms (Prometheus
/// aligns timestamps within 2 ms, so only late scrapes show jitter).
const JITTER_SHARE: f64 = 0.08;

/// Where a host records its new series and sends its samples.
pub(crate) trait Emit {
    /// Records a new series (labels sorted by name); returns its global id.
    fn register(&mut self, labels: Vec<(String, String)>) -> u32;
    /// One scraped sample (or stale marker) of series `id`.
    fn sample(&mut self, id: u32, ts_ms: i64, value: f64);
}

#[derive(Debug)]
struct Series {
    id: u32,
    model: Model,
    state: f64,
}

#[derive(Debug)]
struct Veth {
    series: Vec<Series>,
}

/// A simulated target.
#[derive(Debug)]
pub(crate) struct Host {
    instance: String,
    /// Fixed scrape offset inside the interval, as Prometheus derives from the target hash.
    pub(crate) offset_ms: i64,
    rng: Rng,
    util: f64,
    boot_time_s: f64,
    fixed: Vec<Series>,
    scrape: Vec<Series>,
    veths: Vec<Veth>,
    /// Every veth id this host has used.
    veth_ids: HashSet<u32>,
    /// The previous scrape failed: series are stale and the host is rebooting.
    down: bool,
    first: bool,
}

impl Host {
    pub(crate) fn new(seed: u64, idx: u32, interval_ms: i64, start_ms: i64, out: &mut dyn Emit) -> Self {
        let mut rng = Rng::new(seed, 1 + u64::from(idx));
        let shape = HostShape::draw(&mut rng);
        let instance = format!("host-{idx:05}:9100");
        let offset_ms = rng.below(interval_ms as u64) as i64;
        let uptime_s = rng.range(3_600.0, 60.0 * 86_400.0);
        let util = rng.range(0.05, 0.6);
        let mut host = Self {
            instance,
            offset_ms,
            rng,
            util,
            boot_time_s: (start_ms as f64 / 1000.0 - uptime_s).floor(),
            fixed: Vec::new(),
            scrape: Vec::new(),
            veths: Vec::new(),
            veth_ids: HashSet::new(),
            down: false,
            first: true,
        };
        let fixed = catalog::host_series(&shape);
        host.fixed = host.instantiate(fixed, uptime_s, out);
        let scrape = catalog::scrape_series();
        host.scrape = host.instantiate(scrape, uptime_s, out);
        for _ in 0..VETHS_PER_HOST {
            // Containers started some time before the workload begins.
            let age_s = host.rng.range(0.0, uptime_s.min(86_400.0));
            let veth = host.new_veth(out, age_s);
            host.veths.push(veth);
        }
        host
    }

    /// Series this host exposes right now (scrape series included).
    pub(crate) fn active_series(&self) -> usize {
        self.exported_series() + self.scrape.len()
    }

    /// Series that got a real (non-stale) sample in the last scrape.
    pub(crate) fn live_series(&self) -> usize {
        if self.down { self.scrape.len() } else { self.active_series() }
    }

    fn exported_series(&self) -> usize {
        self.fixed.len() + self.veths.iter().map(|v| v.series.len()).sum::<usize>()
    }

    fn instantiate(&mut self, defs: Vec<SeriesDef>, uptime_s: f64, out: &mut dyn Emit) -> Vec<Series> {
        defs.into_iter()
            .map(|def| {
                let mut labels = def.labels;
                labels.push(("instance".into(), self.instance.clone()));
                labels.push(("job".into(), "node".into()));
                labels.sort();
                Series {
                    id: out.register(labels),
                    model: def.model,
                    state: def.model.initial(&mut self.rng, uptime_s, self.util),
                }
            })
            .collect()
    }

    fn new_veth(&mut self, out: &mut dyn Emit, age_s: f64) -> Veth {
        // A name never reused on this host: a reused label set would be one series to
        // the database but two in the manifest.
        let mut id = self.rng.below(1 << 28) as u32;
        while !self.veth_ids.insert(id) {
            id = self.rng.below(1 << 28) as u32;
        }
        let name = format!("veth{id:07x}");
        let series = self.instantiate(catalog::veth_series(&name), age_s, out);
        Veth { series }
    }

    /// The timestamp of scrape `k` (scrapes start at `start_ms`).
    pub(crate) fn scrape_ts(&mut self, start_ms: i64, interval_ms: i64, k: u64) -> i64 {
        let ts = start_ms + self.offset_ms + k as i64 * interval_ms;
        if self.rng.chance(JITTER_SHARE) { ts + 3 + self.rng.below(25) as i64 } else { ts }
    }

    /// Runs one scrape at `ts_ms`; `churn_per_scrape` is the expected number of
    /// veth replacements in this scrape.
    pub(crate) fn scrape(&mut self, ts_ms: i64, interval_s: f64, churn_per_scrape: f64, out: &mut dyn Emit) {
        let stale = f64::from_bits(STALE_NAN);
        let reboot = !self.first && self.rng.chance(REBOOTS_PER_HOUR * interval_s / 3600.0);
        self.util = (self.util + 0.02 * self.rng.normal()).clamp(0.02, 0.95);

        if reboot {
            // The scrape fails: Prometheus marks every series of the last scrape stale.
            if !self.down {
                for s in self.fixed.iter().chain(self.veths.iter().flat_map(|v| &v.series)) {
                    out.sample(s.id, ts_ms, stale);
                }
            }
            self.down = true;
            for s in &self.scrape {
                let v = match s.model {
                    Model::Up | Model::ScrapeSamples | Model::ScrapeSeriesAdded => 0.0,
                    _ => 0.001 + 0.001 * self.rng.f64(),
                };
                out.sample(s.id, ts_ms, v);
            }
            return;
        }

        let mut added = 0;
        if self.first {
            added = self.exported_series();
            self.first = false;
        }
        if self.down {
            // Back from a reboot: counters restart near zero.
            self.down = false;
            let uptime_s = self.rng.range(20.0, interval_s + 20.0);
            self.boot_time_s = (ts_ms as f64 / 1000.0 - uptime_s).floor();
            for s in &mut self.fixed {
                if s.model.resets_on_reboot() {
                    s.state = s.model.initial(&mut self.rng, uptime_s, self.util);
                }
            }
            added = self.exported_series();
        }

        // Churn: whole veths end (stale markers) and new ones appear in this scrape.
        let mut events = churn_per_scrape.floor() as usize;
        if self.rng.chance(churn_per_scrape.fract()) {
            events += 1;
        }
        for _ in 0..events.min(self.veths.len()) {
            let i = self.rng.below(self.veths.len() as u64) as usize;
            for s in &self.veths[i].series {
                out.sample(s.id, ts_ms, stale);
            }
            self.veths[i] = self.new_veth(out, 0.0);
            added += self.veths[i].series.len();
        }

        let ctx = ScrapeCtx {
            ts_ms,
            interval_s,
            boot_time_s: self.boot_time_s,
            util: self.util,
            samples_scraped: self.exported_series(),
            series_added: added,
        };
        let rng = &mut self.rng;
        for s in
            self.fixed.iter_mut().chain(self.veths.iter_mut().flat_map(|v| &mut v.series)).chain(self.scrape.iter_mut())
        {
            let v = s.model.step(&mut s.state, rng, &ctx);
            out.sample(s.id, ts_ms, v);
        }
    }

    /// Veth series per host, used to turn a churn rate into replacement events.
    pub(crate) fn veth_series_len() -> usize {
        catalog::veth_series("veth0000000").len()
    }
}
