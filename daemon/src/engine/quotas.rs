//! Quotas in the engine: the effective quotas of each tenant, the checks of
//! requests against them, usage, and the dataset-bytes reservation that
//! makes the stored-bytes quota hold across concurrent commits.

use std::sync::Arc;

use super::{Engine, EngineError, Inner};
use crate::quota::{Overrides, QuotaError, Quotas, Usage};
use crate::store::StagedOutputs;
use crate::workflow::WorkflowDef;

/// Attempts of one tenant in flight.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct TenantLoad {
    pub live: u32,
    pub backfill: u32,
}

/// The pass increment of one attempt at weight 1.
pub(super) const STRIDE: u64 = 1 << 20;

impl Inner {
    /// `tenant`'s effective quotas. A tenant without a record (the engine
    /// used alone, as in tests) has the configured defaults.
    pub(super) fn quotas(&self, tenant: &str) -> Arc<Quotas> {
        if let Some(q) = self.lock_quotas().get(tenant) {
            return q.clone();
        }
        let q = match self.store.tenant_get(tenant) {
            Ok(Some(rec)) => self.config.quotas.with(&rec.quotas).unwrap_or_else(|e| {
                // Overrides are validated before they are stored; only a
                // changed default can make them invalid.
                tracing::error!(tenant, "quota overrides ignored: {e}");
                self.config.quotas.clone()
            }),
            Ok(None) => self.config.quotas.clone(),
            Err(e) => {
                // Not cached: the next call reads the record again.
                tracing::error!(tenant, "reading quota overrides: {e}");
                return Arc::new(self.config.quotas.clone());
            }
        };
        let q = Arc::new(q);
        self.lock_quotas().insert(tenant.to_owned(), q.clone());
        q
    }

    /// Loads the quotas of every tenant with active runs into the cache, so
    /// a pass under the engine lock never reads the store for them.
    pub(super) fn warm_quotas(&self) {
        let tenants: std::collections::HashSet<String> = self
            .lock()
            .runs
            .values()
            .map(|r| r.tenant.clone())
            .collect();
        let missing: Vec<String> = {
            let cached = self.lock_quotas();
            tenants
                .into_iter()
                .filter(|t| !cached.contains_key(t))
                .collect()
        };
        for t in missing {
            self.quotas(&t);
        }
    }

    fn lock_quotas(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Arc<Quotas>>> {
        self.quotas.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks a successful attempt's writes against the tenant's stored
    /// bytes quota and reserves them until the commit is persisted.
    pub(super) fn reserve_dataset_bytes(
        &self,
        tenant: &str,
        partition: i64,
        outputs: &StagedOutputs,
    ) -> Result<i64, QuotaError> {
        let q = self.quotas(tenant);
        let delta = match self.store.dataset_delta(tenant, partition, outputs) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(tenant, "measuring dataset writes: {e}");
                outputs.bytes() as i64
            }
        };
        let stored = self.store.dataset_bytes(tenant).unwrap_or_else(|e| {
            tracing::error!(tenant, "reading dataset usage: {e}");
            0
        });
        let mut pending = self
            .dataset_pending
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let reserved = pending.entry(tenant.to_owned()).or_default();
        let after = stored as i64 + *reserved + delta;
        if delta > 0 && after > q.dataset_bytes as i64 {
            return Err(QuotaError::exceeded(
                "dataset_bytes",
                q.dataset_bytes,
                format!("committing {delta} more bytes would store {after} bytes of datasets"),
            ));
        }
        *reserved += delta;
        Ok(delta)
    }

    /// Releases a reservation once its commit is durable (or dropped).
    pub(super) fn release_dataset_bytes(&self, tenant: &str, delta: i64) {
        let mut pending = self
            .dataset_pending
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(r) = pending.get_mut(tenant) {
            *r -= delta;
        }
    }
}

/// Whether a workflow fits the tenant's quotas: task count, and every task's
/// own limits no higher than the per-attempt ceilings.
pub(super) fn check_workflow(q: &Quotas, def: &WorkflowDef) -> Result<(), QuotaError> {
    if def.tasks.len() > q.tasks_per_workflow as usize {
        return Err(QuotaError::exceeded(
            "tasks_per_workflow",
            q.tasks_per_workflow as u64,
            format!("workflow {:?} has {} tasks", def.name, def.tasks.len()),
        ));
    }
    for t in &def.tasks {
        let asks = [
            ("fuel_per_attempt", t.fuel, q.fuel_per_attempt),
            (
                "memory_per_attempt",
                t.memory.map(|m| m as u64),
                q.memory_per_attempt,
            ),
            (
                "timeout_per_attempt_ms",
                t.timeout.map(|d| d.as_millis() as u64),
                q.timeout_per_attempt_ms,
            ),
        ];
        for (quota, ask, limit) in asks {
            if let Some(ask) = ask.filter(|a| *a > limit) {
                return Err(QuotaError::exceeded(
                    quota,
                    limit,
                    format!("task {:?} asks for {ask}", t.name),
                ));
            }
        }
    }
    Ok(())
}

impl Engine {
    /// `tenant`'s effective quotas.
    pub fn quotas(&self, tenant: &str) -> Arc<Quotas> {
        self.inner.quotas(tenant)
    }

    /// Replaces `tenant`'s quota overrides (validated first; nothing is
    /// stored if they are invalid) and returns the effective quotas.
    pub fn set_quotas(&self, tenant: &str, overrides: Overrides) -> Result<Quotas, EngineError> {
        let q = self.inner.config.quotas.with(&overrides)?;
        let mut rec = self
            .inner
            .store
            .tenant_get(tenant)?
            .ok_or_else(|| EngineError::TenantNotFound(tenant.to_owned()))?;
        rec.quotas = overrides;
        self.inner.store.tenant_update(&rec)?;
        self.inner
            .lock_quotas()
            .insert(tenant.to_owned(), Arc::new(q.clone()));
        tracing::info!(tenant, "quotas changed");
        self.inner.wake.notify_one();
        Ok(q)
    }

    /// Spends one token of `tenant`'s trigger rate.
    pub fn take_trigger(&self, tenant: &str) -> Result<(), EngineError> {
        let q = self.inner.quotas(tenant);
        let now = self.inner.clock.now_ms();
        Ok(self
            .inner
            .triggers
            .take(tenant, q.triggers_per_minute, now)?)
    }

    /// What `tenant` uses now.
    pub fn usage(&self, tenant: &str) -> Result<Usage, EngineError> {
        let q = self.inner.quotas(tenant);
        let plugins = self.inner.store.plugin_list(tenant)?;
        let (load, active_runs, fuel) = {
            let st = self.inner.lock();
            (
                st.tenant_load.get(tenant).copied().unwrap_or_default(),
                st.runs.values().filter(|r| r.tenant == tenant).count() as u32,
                st.fuel.get(tenant).copied().unwrap_or(0),
            )
        };
        Ok(Usage {
            running_attempts: load.live + load.backfill,
            running_live_attempts: load.live,
            running_backfill_attempts: load.backfill,
            plugins: plugins.len() as u32,
            plugin_bytes_stored: plugins.iter().map(|p| p.size).sum(),
            dataset_bytes: self.inner.store.dataset_bytes(tenant)?,
            active_runs,
            fuel_consumed: fuel,
            trigger_tokens_left: self.inner.triggers.available(
                tenant,
                q.triggers_per_minute,
                self.inner.clock.now_ms(),
            ),
        })
    }

    /// Refuses a plugin upload over the tenant's size or count quota.
    pub(super) fn check_plugin_quota(&self, tenant: &str, size: usize) -> Result<(), EngineError> {
        let q = self.inner.quotas(tenant);
        if size as u64 > q.plugin_bytes {
            return Err(QuotaError::exceeded(
                "plugin_bytes",
                q.plugin_bytes,
                format!("the plugin is {size} bytes"),
            )
            .into());
        }
        let stored = self.inner.store.plugin_list(tenant)?.len();
        if stored as u64 >= q.plugins as u64 {
            return Err(QuotaError::exceeded(
                "plugins",
                q.plugins as u64,
                format!("{stored} plugin versions are stored; delete some first"),
            )
            .into());
        }
        Ok(())
    }
}
