//! What operators see of refused samples: a counter per tenant and reason
//! (`strata_discarded_samples_total`, Mimir's `cortex_discarded_samples_total`) and
//! a WARN line per tenant and reason at most every [`LOG_EVERY`], naming an example
//! series and how many samples were refused since the last line.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use strata_model::TenantId;

use crate::metrics::Metrics;

/// Shortest time between two log lines for one tenant and reason.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(10);

/// When a line was last logged for one (tenant, reason), and samples refused since.
type LastLine = (Option<Instant>, u64);

/// Per (tenant, reason), its [`LastLine`].
#[derive(Debug, Default)]
pub(crate) struct DiscardLog {
    seen: Mutex<HashMap<(TenantId, &'static str), LastLine>>,
}

impl DiscardLog {
    /// Counts `n` samples of `tenant` refused for `reason` and logs them when the
    /// last line for the pair is at least [`LOG_EVERY`] old. Returns whether it logged.
    pub(crate) fn record(
        &self,
        metrics: &Metrics,
        tenant: &TenantId,
        reason: &'static str,
        n: u64,
        example: &str,
        now: Instant,
    ) -> bool {
        if n == 0 {
            return false;
        }
        metrics
            .discarded_samples
            .get_or_create(&vec![("tenant", tenant.as_str().to_string()), ("reason", reason.to_string())])
            .inc_by(n);
        let mut seen = self.seen.lock();
        let (last, pending) = seen.entry((tenant.clone(), reason)).or_insert((None, 0));
        *pending += n;
        if last.is_some_and(|at| now.duration_since(at) < LOG_EVERY) {
            return false;
        }
        tracing::warn!(tenant = %tenant, reason, samples = *pending, example, "samples discarded");
        *last = Some(now);
        *pending = 0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_sample_and_logs_each_pair_at_most_every_interval() {
        let m = Metrics::detached();
        let log = DiscardLog::default();
        let (a, b) = (TenantId::new("a").unwrap(), TenantId::new("b").unwrap());
        let t = Instant::now();
        assert!(log.record(&m, &a, "too_far_in_future", 2, "series x", t));
        assert!(!log.record(&m, &a, "too_far_in_future", 3, "series x", t + Duration::from_secs(1)));
        // Another reason or tenant has its own interval.
        assert!(log.record(&m, &a, "out_of_order", 1, "series y", t + Duration::from_secs(1)));
        assert!(log.record(&m, &b, "too_far_in_future", 1, "series z", t + Duration::from_secs(1)));
        assert!(log.record(&m, &a, "too_far_in_future", 1, "series x", t + LOG_EVERY));
        assert!(!log.record(&m, &a, "too_far_in_future", 0, "series x", t + 3 * LOG_EVERY));
        let text = m.render();
        assert!(text.contains(r#"strata_discarded_samples_total{tenant="a",reason="too_far_in_future"} 6"#), "{text}");
        assert!(text.contains(r#"strata_discarded_samples_total{tenant="b",reason="too_far_in_future"} 1"#), "{text}");
        assert!(text.contains(r#"strata_discarded_samples_total{tenant="a",reason="out_of_order"} 1"#), "{text}");
    }
}
