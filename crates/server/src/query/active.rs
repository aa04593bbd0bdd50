//! Queries running now, per tenant: `GET /api/v1/status/active_queries` lists them,
//! and `max_concurrent_queries` counts them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use serde::Serialize;
use strata_model::TenantId;

#[derive(Debug)]
struct Running {
    tenant: TenantId,
    query: String,
    /// `instant` or `range`.
    kind: &'static str,
    /// Wall-clock start, milliseconds.
    started_ms: i64,
    started: Instant,
}

/// The registry of running queries.
#[derive(Debug, Default)]
pub(crate) struct ActiveQueries {
    inner: Mutex<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    next_id: u64,
    running: BTreeMap<u64, Running>,
    per_tenant: BTreeMap<TenantId, usize>,
}

/// One running query; dropping it (an answer, an error, a client gone) removes it.
#[derive(Debug)]
pub(crate) struct ActiveQuery {
    registry: Arc<ActiveQueries>,
    id: u64,
}

impl Drop for ActiveQuery {
    fn drop(&mut self) {
        let mut r = self.registry.inner.lock();
        if let Some(q) = r.running.remove(&self.id)
            && let Some(n) = r.per_tenant.get_mut(&q.tenant)
        {
            *n -= 1;
            if *n == 0 {
                r.per_tenant.remove(&q.tenant);
            }
        }
    }
}

/// One entry of the status listing.
#[derive(Debug, Serialize, PartialEq)]
pub(crate) struct ActiveQueryStatus {
    pub(crate) tenant: String,
    pub(crate) query: String,
    pub(crate) kind: &'static str,
    /// RFC 3339 start time, as Prometheus's API writes times in status answers.
    pub(crate) start: String,
    #[serde(rename = "elapsedSeconds")]
    pub(crate) elapsed_seconds: f64,
}

impl ActiveQueries {
    /// Registers a query unless the tenant already runs `max` (0: no limit); the
    /// check and the registration are one step, so concurrent requests cannot
    /// overshoot.
    pub(crate) fn start(
        self: &Arc<Self>,
        tenant: &TenantId,
        kind: &'static str,
        query: &str,
        max: usize,
    ) -> Option<ActiveQuery> {
        let mut r = self.inner.lock();
        let n = r.per_tenant.get(tenant).copied().unwrap_or(0);
        if max > 0 && n >= max {
            return None;
        }
        r.next_id += 1;
        let id = r.next_id;
        r.running.insert(
            id,
            Running {
                tenant: tenant.clone(),
                query: query.to_string(),
                kind,
                started_ms: strata_model::now_ms(),
                started: Instant::now(),
            },
        );
        *r.per_tenant.entry(tenant.clone()).or_insert(0) += 1;
        Some(ActiveQuery { registry: self.clone(), id })
    }

    /// Every running query, oldest first.
    pub(crate) fn list(&self) -> Vec<ActiveQueryStatus> {
        let r = self.inner.lock();
        r.running
            .values()
            .map(|q| ActiveQueryStatus {
                tenant: q.tenant.as_str().to_string(),
                query: q.query.clone(),
                kind: q.kind,
                start: rfc3339(q.started_ms),
                elapsed_seconds: q.started.elapsed().as_secs_f64(),
            })
            .collect()
    }
}

fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_tenant_cap_and_release_on_drop() {
        let reg = Arc::new(ActiveQueries::default());
        let (a, b) = (TenantId::new("a").unwrap(), TenantId::new("b").unwrap());
        let q1 = reg.start(&a, "range", "up", 2).unwrap();
        let q2 = reg.start(&a, "instant", "sum(up)", 2).unwrap();
        assert!(reg.start(&a, "instant", "x", 2).is_none());
        let _other = reg.start(&b, "instant", "x", 2).expect("another tenant's own count");
        assert!(reg.start(&a, "instant", "x", 0).is_some(), "0 is no limit");
        let list = reg.list();
        assert_eq!(list.len(), 3);
        assert_eq!((list[0].tenant.as_str(), list[0].query.as_str(), list[0].kind), ("a", "up", "range"));
        assert!(list[0].start.ends_with('Z'));
        drop(q1);
        let _q3 = reg.start(&a, "instant", "x", 2).expect("a slot freed");
        drop(q2);
        assert_eq!(reg.list().len(), 2);
    }
}
