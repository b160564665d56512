//! The engine's metrics: the snapshot gauges set at scrape time, then the
//! whole registry in the Prometheus text format.

use std::collections::{BTreeMap, BTreeSet};

use super::Engine;
use crate::metrics::{labels, Metrics};
use crate::run::{RunState, TaskState};

impl Engine {
    /// Every metric, in the Prometheus text exposition format.
    pub fn metrics_text(&self) -> String {
        let m = &self.inner.metrics;
        m.clear_snapshot();
        let mut tenants: BTreeSet<String> = match self.inner.store.tenant_list() {
            Ok(list) => list.into_iter().map(|t| t.name).collect(),
            Err(e) => {
                tracing::error!("listing tenants for metrics: {e}");
                BTreeSet::new()
            }
        };
        let mut loads = BTreeMap::new();
        {
            let st = self.inner.lock();
            let mut active: BTreeMap<(&str, &str), i64> = BTreeMap::new();
            let mut depth: BTreeMap<&str, i64> = BTreeMap::new();
            for r in st.runs.values() {
                *active.entry((&r.tenant, r.state.as_str())).or_default() += 1;
                let waiting = match r.state {
                    RunState::Queued => 1,
                    RunState::Running => r
                        .tasks
                        .iter()
                        .filter(|t| t.state == TaskState::Pending)
                        .count() as i64,
                    _ => 0,
                };
                *depth.entry(&r.tenant).or_default() += waiting;
            }
            for ((tenant, state), n) in active {
                Metrics::set(
                    &m.active_runs,
                    labels(&[("tenant", tenant), ("state", state)]),
                    n,
                );
            }
            for (tenant, n) in depth {
                tenants.insert(tenant.to_owned());
                Metrics::set(&m.queue_depth, labels(&[("tenant", tenant)]), n);
            }
            for (tenant, load) in &st.tenant_load {
                for (pool, n) in [("live", load.live), ("backfill", load.backfill)] {
                    Metrics::set(
                        &m.attempts_running,
                        labels(&[("tenant", tenant), ("pool", pool)]),
                        n as i64,
                    );
                }
                loads.insert(tenant.clone(), *load);
            }
            for b in st.backfills.values() {
                let r = &b.record;
                let id = r.id.to_string();
                for (state, n) in [
                    ("running", r.running),
                    ("succeeded", r.succeeded),
                    ("failed", r.failed),
                    ("skipped", r.skipped),
                    ("cancelled", r.cancelled),
                ] {
                    Metrics::set(
                        &m.backfill_windows,
                        labels(&[("tenant", &r.tenant), ("backfill", &id), ("state", state)]),
                        n as i64,
                    );
                }
                Metrics::set(
                    &m.backfill_throttled,
                    labels(&[("tenant", &r.tenant), ("backfill", &id)]),
                    i64::from(r.throttled.is_some()),
                );
            }
        }
        for tenant in &tenants {
            let q = self.inner.quotas(tenant);
            if let Ok(serde_json::Value::Object(limits)) = serde_json::to_value(&*q) {
                for (quota, v) in limits {
                    let v = v.as_u64().unwrap_or(0).min(i64::MAX as u64) as i64;
                    m.quota_limit
                        .get_or_create(&vec![("tenant", tenant.clone()), ("quota", quota)])
                        .set(v);
                }
            }
            let load = loads.get(tenant).copied().unwrap_or_default();
            let mut usage = vec![("concurrent_attempts", (load.live + load.backfill) as i64)];
            if let Ok(u) = self.usage(tenant) {
                usage.push(("plugins", u.plugins as i64));
                usage.push(("dataset_bytes", u.dataset_bytes.min(i64::MAX as u64) as i64));
                usage.push((
                    "triggers_per_minute",
                    q.triggers_per_minute as i64 - u.trigger_tokens_left as i64,
                ));
            }
            for (quota, v) in usage {
                Metrics::set(
                    &m.quota_usage,
                    labels(&[("tenant", tenant), ("quota", quota)]),
                    v,
                );
            }
        }
        m.encode()
    }
}
