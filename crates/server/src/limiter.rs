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

/// Token buckets of samples, one per tenant.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<TenantId, Bucket>>,
}

impl RateLimiter {
    /// `rate` samples per second with `burst` capacity; a rate of 0 disables limiting.
    pub(crate) fn new(rate: f64, burst: f64) -> Self {
        RateLimiter { rate, burst: burst.max(1.0), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes `n` samples from the tenant's bucket, or says no. A request larger than
    /// the burst passes only when the bucket is full, so it cannot be refused forever.
    pub(crate) fn allow(&self, tenant: &TenantId, n: u64) -> bool {
        self.allow_at(tenant, n, Instant::now())
    }

    fn allow_at(&self, tenant: &TenantId, n: u64, now: Instant) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let mut buckets = self.buckets.lock();
        let b = buckets.entry(tenant.clone()).or_insert(Bucket { tokens: self.burst, at: now });
        b.tokens = (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * self.rate).min(self.burst);
        b.at = now;
        let need = (n as f64).min(self.burst);
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
        let l = RateLimiter::new(100.0, 200.0);
        let t = TenantId::new("a").unwrap();
        let now = Instant::now();
        assert!(l.allow_at(&t, 150, now));
        assert!(!l.allow_at(&t, 100, now));
        assert!(l.allow_at(&t, 100, now + Duration::from_secs(1)));
        // Other tenants have their own bucket.
        assert!(l.allow_at(&TenantId::new("b").unwrap(), 200, now));
        // Over-burst requests pass when the bucket is full.
        assert!(l.allow_at(&t, 10_000, now + Duration::from_secs(10)));
    }
}
