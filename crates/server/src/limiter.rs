//! Per-tenant ingestion rate limiting with token buckets.

use std::collections::HashMap;
use std::time::Instant;

use parking_lot::Mutex;
use strata_model::TenantId;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets of samples, one per tenant. Rate and burst come with each call
/// (the tenant's limits, which may change at run time): a lowered burst caps the
/// tokens held at once.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    buckets: Mutex<HashMap<TenantId, Bucket>>,
}

impl RateLimiter {
    /// Takes `n` samples from the tenant's bucket of `rate` samples per second and
    /// `burst` capacity, or says no; a rate of 0 disables limiting. A request larger
    /// than the burst passes only when the bucket is full, so it cannot be refused forever.
    pub(crate) fn allow(&self, tenant: &TenantId, n: u64, rate: f64, burst: f64) -> bool {
        self.allow_at(tenant, n, rate, burst, Instant::now())
    }

    fn allow_at(&self, tenant: &TenantId, n: u64, rate: f64, burst: f64, now: Instant) -> bool {
        if rate <= 0.0 || rate.is_nan() {
            return true;
        }
        let burst = if burst.is_nan() { 1.0 } else { burst.max(1.0) };
        let mut buckets = self.buckets.lock();
        let b = buckets.entry(tenant.clone()).or_insert(Bucket { tokens: burst, at: now });
        b.tokens = (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        let need = (n as f64).min(burst);
        if b.tokens >= need {
            b.tokens -= need;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn refills_over_time() {
        let l = RateLimiter::default();
        let t = TenantId::new("a").unwrap();
        let now = Instant::now();
        assert!(l.allow_at(&t, 150, 100.0, 200.0, now));
        assert!(!l.allow_at(&t, 100, 100.0, 200.0, now));
        assert!(l.allow_at(&t, 100, 100.0, 200.0, now + Duration::from_secs(1)));
        // Other tenants have their own bucket.
        assert!(l.allow_at(&TenantId::new("b").unwrap(), 200, 100.0, 200.0, now));
        // Over-burst requests pass when the bucket is full.
        assert!(l.allow_at(&t, 10_000, 100.0, 200.0, now + Duration::from_secs(10)));
        // A lowered burst caps the tokens at once; a rate of 0 lets everything pass.
        let later = now + Duration::from_secs(20);
        assert!(l.allow_at(&t, 5, 100.0, 5.0, later));
        assert!(!l.allow_at(&t, 5, 100.0, 5.0, later));
        assert!(l.allow_at(&t, 5, 0.0, 5.0, later));
    }
}
