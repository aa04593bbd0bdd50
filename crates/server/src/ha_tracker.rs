//! The ingest-time HA tracker (Mimir's semantics): of the replicas of an HA
//! Prometheus pair, which all write the same series, one per (tenant, cluster) is
//! elected and stored; the others' requests are answered 202 and dropped.
//!
//! ```text
//!  request ─► first series' cluster + replica labels ─┬─ neither: pass through
//!                                                      ├─ elected replica: store, replica label removed
//!                                                      ├─ other, elected silent > failover_timeout:
//!                                                      │    elect it (a failover), store
//!                                                      └─ other: 202 "deduplicated", store nothing
//! ```
//! The elections are kept in `<data_dir>/ha_tracker.json`, written when one changes
//! and when the elected replica's last request is more than `update_timeout` newer
//! than the written one, so a restart does not cause a spurious failover.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use strata_model::TenantId;

/// HA tracker settings (the `ha_tracker:` section); per-tenant overrides replace
/// any field they set.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HaTrackerConfig {
    /// Whether requests carrying the cluster and replica labels are deduplicated.
    pub enabled: bool,
    /// The label naming the HA pair (kept on stored series).
    pub cluster_label: String,
    /// The label naming the replica within the pair (removed from stored series).
    pub replica_label: String,
    /// How much newer the elected replica's last request must be than the one last
    /// written to disk before it is written again.
    #[serde(deserialize_with = "crate::config::duration")]
    pub update_timeout: Duration,
    /// How long the elected replica may be silent before another replica's request
    /// elects that one.
    #[serde(deserialize_with = "crate::config::duration")]
    pub failover_timeout: Duration,
    /// Per-tenant settings, each field optional.
    pub tenants: BTreeMap<String, HaTrackerOverride>,
}

/// One tenant's changes to [`HaTrackerConfig`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HaTrackerOverride {
    pub enabled: Option<bool>,
    pub cluster_label: Option<String>,
    pub replica_label: Option<String>,
    #[serde(deserialize_with = "crate::config::opt_duration")]
    pub failover_timeout: Option<Duration>,
}

impl Default for HaTrackerConfig {
    fn default() -> Self {
        HaTrackerConfig {
            enabled: false,
            cluster_label: "cluster".into(),
            replica_label: "__replica__".into(),
            update_timeout: Duration::from_secs(15),
            failover_timeout: Duration::from_secs(30),
            tenants: BTreeMap::new(),
        }
    }
}

/// The settings that apply to one tenant (borrowed from the configuration: made
/// per request).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TenantHa<'a> {
    pub(crate) cluster_label: &'a str,
    pub(crate) replica_label: &'a str,
    failover_ms: i64,
}

/// The elected replica of one (tenant, cluster).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Election {
    pub(crate) replica: String,
    /// When it was elected, and its last request (ms since the epoch).
    pub(crate) elected_at: i64,
    pub(crate) last_seen: i64,
    pub(crate) failovers: u64,
    /// Samples refused from other replicas since start-up (not persisted).
    #[serde(skip)]
    pub(crate) deduplicated: u64,
}

/// What to do with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// No HA labels, or the tracker is off for the tenant.
    PassThrough,
    /// From the elected replica (perhaps just elected): store it without the
    /// tenant's replica label.
    Accept,
    /// From another replica: answer 202, store nothing.
    Deduplicated { cluster: String, replica: String, elected: String },
}

const STATE_FILE: &str = "ha_tracker.json";

type Key = (String, String);

/// Elections per (tenant, cluster), persisted under the data dir.
#[derive(Debug)]
pub(crate) struct HaTracker {
    cfg: HaTrackerConfig,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    elections: BTreeMap<Key, Election>,
    /// Where elections are kept, once the data dir is known, and what was written.
    path: Option<PathBuf>,
    written: BTreeMap<Key, Election>,
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    elections: Vec<(String, String, Election)>,
}

impl HaTracker {
    pub(crate) fn new(cfg: HaTrackerConfig) -> Self {
        HaTracker { cfg, state: Mutex::new(State::default()) }
    }

    /// The settings for `tenant`, `None` when the tracker is off for it.
    pub(crate) fn for_tenant(&self, tenant: &TenantId) -> Option<TenantHa<'_>> {
        let o = self.cfg.tenants.get(tenant.as_str());
        let enabled = o.and_then(|o| o.enabled).unwrap_or(self.cfg.enabled);
        enabled.then(|| TenantHa {
            cluster_label: o.and_then(|o| o.cluster_label.as_deref()).unwrap_or(&self.cfg.cluster_label),
            replica_label: o.and_then(|o| o.replica_label.as_deref()).unwrap_or(&self.cfg.replica_label),
            failover_ms: o
                .and_then(|o| o.failover_timeout)
                .unwrap_or(self.cfg.failover_timeout)
                .as_millis()
                .try_into()
                .unwrap_or(i64::MAX),
        })
    }

    /// Reads the elections kept under `dir` and keeps them there from now on. A
    /// missing or unreadable file starts empty (logged): the worst case is one
    /// election, never lost data.
    pub(crate) fn load(&self, dir: &Path) {
        let path = dir.join(STATE_FILE);
        let mut st = self.state.lock();
        match std::fs::read(&path) {
            Ok(b) => match serde_json::from_slice::<StateFile>(&b) {
                Ok(f) => {
                    st.elections = f.elections.into_iter().map(|(t, c, e)| ((t, c), e)).collect();
                    st.written = st.elections.clone();
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ha tracker state unreadable; starting empty")
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "ha tracker state unreadable; starting empty"),
        }
        st.path = Some(path);
    }

    /// Decides about a request of `tenant` whose first series carries `cluster`
    /// and `replica` (either may be absent), at wall time `now` (ms), and records
    /// the outcome: an election, a failover, the elected replica's last request,
    /// or `samples` deduplicated.
    pub(crate) fn check(
        &self,
        tenant: &TenantId,
        ha: &TenantHa<'_>,
        cluster: Option<&str>,
        replica: Option<&str>,
        samples: u64,
        now: i64,
    ) -> Verdict {
        let (Some(cluster), Some(replica)) = (cluster, replica) else {
            return Verdict::PassThrough;
        };
        let key = (tenant.as_str().to_string(), cluster.to_string());
        let mut st = self.state.lock();
        let verdict = match st.elections.get_mut(&key) {
            None => {
                tracing::info!(tenant = %tenant, cluster, replica, "ha tracker: replica elected");
                let e = Election {
                    replica: replica.into(),
                    elected_at: now,
                    last_seen: now,
                    failovers: 0,
                    deduplicated: 0,
                };
                st.elections.insert(key.clone(), e);
                Verdict::Accept
            }
            Some(e) if e.replica == replica => {
                e.last_seen = e.last_seen.max(now);
                Verdict::Accept
            }
            Some(e) if now.saturating_sub(e.last_seen) > ha.failover_ms => {
                tracing::warn!(
                    tenant = %tenant,
                    cluster,
                    from = %e.replica,
                    to = replica,
                    silent_ms = now - e.last_seen,
                    "ha tracker: failover"
                );
                e.replica = replica.into();
                e.elected_at = now;
                e.last_seen = now;
                e.failovers += 1;
                Verdict::Accept
            }
            Some(e) => {
                e.deduplicated += samples;
                Verdict::Deduplicated { cluster: cluster.into(), replica: replica.into(), elected: e.replica.clone() }
            }
        };
        let update_ms = i64::try_from(self.cfg.update_timeout.as_millis()).unwrap_or(i64::MAX);
        let stale = match (st.elections.get(&key), st.written.get(&key)) {
            (Some(e), Some(w)) => e.replica != w.replica || e.last_seen - w.last_seen > update_ms,
            (Some(_), None) => true,
            _ => false,
        };
        if stale {
            persist(&mut st);
        }
        verdict
    }

    /// Every election, for `/api/v1/status/ha` and `/metrics`.
    /// Adds samples counted after [`Self::check`] said `Deduplicated` (the write
    /// path counts a refused request's samples only once it knows it is refused).
    pub(crate) fn add_deduplicated(&self, tenant: &TenantId, cluster: &str, samples: u64) {
        let key = (tenant.as_str().to_string(), cluster.to_string());
        if let Some(e) = self.state.lock().elections.get_mut(&key) {
            e.deduplicated += samples;
        }
    }

    pub(crate) fn elections(&self) -> Vec<(String, String, Election)> {
        self.state.lock().elections.iter().map(|((t, c), e)| (t.clone(), c.clone(), e.clone())).collect()
    }
}

/// Writes the elections (atomically: temporary file, fsync, rename).
fn persist(st: &mut State) {
    let Some(path) = st.path.clone() else { return };
    let file =
        StateFile { elections: st.elections.iter().map(|((t, c), e)| (t.clone(), c.clone(), e.clone())).collect() };
    let tmp = path.with_extension("json.tmp");
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(&file).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    match write() {
        Ok(()) => st.written = st.elections.clone(),
        // Kept in memory; the next change retries. A restart may then elect anew.
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "ha tracker state not written"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> (HaTracker, TenantId) {
        let cfg = HaTrackerConfig { enabled: true, ..Default::default() };
        let t = HaTracker::new(cfg);
        (t, TenantId::new("t").unwrap())
    }

    fn accepted(v: &Verdict) -> bool {
        matches!(v, Verdict::Accept)
    }

    #[test]
    fn one_replica_is_elected_and_the_other_is_deduplicated_until_failover() {
        let (t, tenant) = tracker();
        let ha = t.for_tenant(&tenant).unwrap();
        let s = 1_000_000;
        assert!(accepted(&t.check(&tenant, &ha, Some("c1"), Some("a"), 10, s)));
        assert_eq!(
            t.check(&tenant, &ha, Some("c1"), Some("b"), 10, s + 1_000),
            Verdict::Deduplicated { cluster: "c1".into(), replica: "b".into(), elected: "a".into() }
        );
        // Another cluster elects on its own.
        assert!(accepted(&t.check(&tenant, &ha, Some("c2"), Some("b"), 10, s + 1_000)));
        // a keeps writing: b stays deduplicated even past the failover timeout.
        assert!(accepted(&t.check(&tenant, &ha, Some("c1"), Some("a"), 10, s + 20_000)));
        assert!(!accepted(&t.check(&tenant, &ha, Some("c1"), Some("b"), 10, s + 45_000)));
        // a silent for more than 30 s: b takes over, and a is now the one refused.
        assert!(accepted(&t.check(&tenant, &ha, Some("c1"), Some("b"), 10, s + 50_001)));
        assert!(!accepted(&t.check(&tenant, &ha, Some("c1"), Some("a"), 10, s + 51_000)));
        let e = t.elections().into_iter().find(|(_, c, _)| c == "c1").unwrap().2;
        assert_eq!((e.replica.as_str(), e.failovers, e.deduplicated), ("b", 1, 30));
        // Neither label, or only one: untouched.
        assert_eq!(t.check(&tenant, &ha, None, None, 1, s), Verdict::PassThrough);
        assert_eq!(t.check(&tenant, &ha, Some("c1"), None, 1, s), Verdict::PassThrough);
    }

    #[test]
    fn elections_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (t, tenant) = tracker();
        let ha = t.for_tenant(&tenant).unwrap();
        t.load(dir.path());
        let s = 1_000_000;
        assert!(accepted(&t.check(&tenant, &ha, Some("c1"), Some("b"), 1, s)));
        let (t2, _) = tracker();
        let ha2 = t2.for_tenant(&tenant).unwrap();
        t2.load(dir.path());
        // Within the failover timeout of b's last write, a is refused after a restart.
        assert!(!accepted(&t2.check(&tenant, &ha2, Some("c1"), Some("a"), 1, s + 5_000)));
        assert!(accepted(&t2.check(&tenant, &ha2, Some("c1"), Some("b"), 1, s + 6_000)));
    }

    #[test]
    fn per_tenant_overrides() {
        let yaml =
            "enabled: false\ntenants:\n  team-a: {enabled: true, replica_label: prom_replica, failover_timeout: 5s}\n";
        let cfg: HaTrackerConfig = serde_norway::from_str(yaml).unwrap();
        let t = HaTracker::new(cfg);
        assert!(t.for_tenant(&TenantId::new("other").unwrap()).is_none());
        let ha = t.for_tenant(&TenantId::new("team-a").unwrap()).unwrap();
        assert_eq!((ha.replica_label, ha.cluster_label, ha.failover_ms), ("prom_replica", "cluster", 5_000));
    }
}
