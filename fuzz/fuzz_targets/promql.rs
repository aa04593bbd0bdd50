//! PromQL: parse, plan and evaluate arbitrary query text over a small fixed
//! in-memory series set, as an instant query and as a range query. Evaluation is
//! bounded: inputs over 500 bytes are skipped, the range is 10 minutes at a 1-minute
//! step, and the engine has a 1 s timeout and a 100,000-sample limit.
#![no_main]

use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use strata_model::{Labels, Sample, stale_nan};
use strata_promql::test_source::MemQuerier;
use strata_promql::{Engine, EngineOptions};

const MAX_QUERY_BYTES: usize = 500;
const END_MS: i64 = 600_000;
const SCRAPE_MS: i64 = 15_000;

/// Gauges, counters with a reset, special values, a stale marker and histogram
/// buckets: enough for every function and operator to have something to chew on.
fn source() -> &'static MemQuerier {
    static SOURCE: OnceLock<MemQuerier> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let mut q = MemQuerier::new();
        let times = || (0..=END_MS / SCRAPE_MS).map(|i| i * SCRAPE_MS);
        let mut add = |pairs: &[(&str, &str)], f: &dyn Fn(i64) -> f64| {
            q.add(Labels::from_pairs(pairs.iter().copied()), times().map(|t| Sample::new(t, f(t))));
        };
        add(&[("__name__", "up"), ("job", "api"), ("instance", "a")], &|_| 1.0);
        add(&[("__name__", "up"), ("job", "api"), ("instance", "b")], &|t| ((t / SCRAPE_MS) % 2) as f64);
        add(&[("__name__", "http_requests_total"), ("job", "api"), ("code", "200")], &|t| {
            let n = t / SCRAPE_MS;
            (if n < 20 { n * 10 } else { (n - 20) * 3 }) as f64
        });
        add(&[("__name__", "http_requests_total"), ("job", "api"), ("code", "500")], &|t| match t / SCRAPE_MS {
            7 => f64::NAN,
            13 => stale_nan(),
            n => n as f64 * 0.5,
        });
        add(&[("__name__", "temp"), ("loc", "x")], &|t| match t / SCRAPE_MS {
            3 => f64::INFINITY,
            4 => f64::NEG_INFINITY,
            n => -20.0 + n as f64 * 1.25,
        });
        for (le, k) in [("0.1", 1.0), ("1", 4.0), ("+Inf", 5.0)] {
            add(&[("__name__", "req_seconds_bucket"), ("job", "api"), ("le", le)], &|t| k * (t / SCRAPE_MS) as f64);
        }
        q
    })
}

/// Polls a future that never waits on I/O (the in-memory source answers at once).
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_QUERY_BYTES {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    let opts = EngineOptions { timeout: Duration::from_secs(1), max_samples: 100_000, ..EngineOptions::default() };
    let engine = Engine::new(opts.clone());
    let _ = block_on(engine.instant_query(source(), text, END_MS / 2));
    let engine = Engine::new(EngineOptions { delayed_name_removal: true, ..opts });
    let _ = block_on(engine.range_query(source(), text, 0, END_MS, 60_000));
});
