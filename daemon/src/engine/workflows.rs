//! Workflows as the API sees them: summaries, versions, pause and delete.

use serde::Serialize;

use super::{Engine, EngineError};
use crate::run::RunState;
use crate::store::StoredWorkflow;

/// One workflow in a listing.
#[derive(Debug, Clone, Serialize)]
pub struct WorkflowSummary {
    pub name: String,
    pub version: u32,
    pub cron: String,
    pub timezone: String,
    pub paused: bool,
    pub tasks: usize,
    pub upstream: Vec<String>,
    /// The newest window that has a run, and that run's state.
    pub last_window_start: Option<i64>,
    pub last_window_state: Option<RunState>,
    /// When the next window closes and becomes due (none when paused or
    /// past the end).
    pub next_due: Option<i64>,
}

impl Engine {
    /// The tenant's workflows (newest versions), by name.
    pub fn workflows(&self, tenant: &str) -> Result<Vec<WorkflowSummary>, EngineError> {
        let heads: Vec<(String, super::Loaded)> = {
            let st = self.inner.lock();
            st.heads
                .iter()
                .filter(|((t, _), _)| t == tenant)
                .map(|((_, n), l)| (n.clone(), l.clone()))
                .collect()
        };
        let now = self.inner.clock.now_ms();
        let mut out = Vec::with_capacity(heads.len());
        for (name, l) in heads {
            let stored = self
                .inner
                .store
                .workflow_get(tenant, &name, Some(l.version))?;
            let last = self.inner.store.window_latest(tenant, &name)?;
            let def = &l.def;
            let next_due = if def.paused {
                None
            } else {
                def.schedule
                    .window_containing(now)
                    .map(|w| w.end)
                    .filter(|_| def.end.is_none_or(|e| now < e))
            };
            out.push(WorkflowSummary {
                name,
                version: l.version,
                cron: stored
                    .as_ref()
                    .map(|s| s.raw.schedule.cron.clone())
                    .unwrap_or_default(),
                timezone: def.schedule.tz().name().to_owned(),
                paused: def.paused,
                tasks: def.tasks.len(),
                upstream: def.upstream.iter().map(|u| u.workflow.clone()).collect(),
                last_window_start: last.as_ref().map(|(s, _)| *s),
                last_window_state: last.map(|(_, w)| w.state),
                next_due,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn workflow_versions(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Vec<StoredWorkflow>, EngineError> {
        let versions = self.inner.store.workflow_versions(tenant, name)?;
        if versions.is_empty() {
            return Err(EngineError::WorkflowNotFound(name.to_owned()));
        }
        Ok(versions)
    }

    /// Pauses or unpauses a workflow. `paused` is part of the definition, so
    /// this stores a new version that differs only in it (and a later apply
    /// of a file decides again); nothing happens if it already has that
    /// state.
    pub async fn set_paused(
        &self,
        tenant: &str,
        name: &str,
        paused: bool,
    ) -> Result<StoredWorkflow, EngineError> {
        let mut head = self
            .inner
            .store
            .workflow_get(tenant, name, None)?
            .ok_or_else(|| EngineError::WorkflowNotFound(name.to_owned()))?;
        if head.raw.paused == paused {
            return Ok(head);
        }
        head.raw.paused = paused;
        let stored = self.apply_workflow(tenant, head.raw).await?;
        tracing::info!(tenant, workflow = name, paused, "workflow pause changed");
        Ok(stored)
    }

    /// Deletes a workflow's definition (all versions) and stops scheduling
    /// it. Refused while it has active runs or other workflows depend on
    /// it; its run history and datasets stay.
    pub fn delete_workflow(&self, tenant: &str, name: &str) -> Result<(), EngineError> {
        let key = (tenant.to_owned(), name.to_owned());
        let head = {
            let mut st = self.inner.lock();
            if !st.heads.contains_key(&key) {
                return Err(EngineError::WorkflowNotFound(name.to_owned()));
            }
            if let Some(r) = st
                .runs
                .values()
                .find(|r| r.tenant == tenant && r.workflow == name)
            {
                return Err(EngineError::InUse(format!(
                    "workflow {name:?} has an active run ({}); cancel it or wait",
                    r.id
                )));
            }
            let dependents: Vec<&str> = st
                .heads
                .iter()
                .filter(|((t, _), l)| {
                    t == tenant && l.def.upstream.iter().any(|u| u.workflow == name)
                })
                .map(|((_, n), _)| n.as_str())
                .collect();
            if !dependents.is_empty() {
                return Err(EngineError::InUse(format!(
                    "workflows {dependents:?} depend on {name:?}; change them first"
                )));
            }
            // Unscheduled before the store write, so no run of it starts
            // meanwhile; the write (with its fsync) happens without the lock.
            st.cursors.remove(&key);
            st.heads.remove(&key)
        };
        if let Err(e) = self.inner.store.workflow_delete(tenant, name) {
            if let Some(head) = head {
                self.inner.lock().heads.insert(key, head);
            }
            return Err(e.into());
        }
        self.inner
            .lock()
            .versions
            .retain(|(t, n, _), _| !(t == tenant && n == name));
        tracing::info!(tenant, workflow = name, "workflow deleted");
        Ok(())
    }
}

impl Engine {
    /// Every version of a plugin.
    pub fn plugin_versions(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Vec<crate::store::PluginMeta>, EngineError> {
        let versions: Vec<_> = self
            .inner
            .store
            .plugin_list(tenant)?
            .into_iter()
            .filter(|m| m.name == name)
            .collect();
        if versions.is_empty() {
            return Err(EngineError::PluginNotFound(name.to_owned()));
        }
        Ok(versions)
    }

    /// Deletes a plugin version that no workflow (newest versions, and
    /// older ones that active runs use) resolves to.
    pub fn delete_plugin_version(
        &self,
        tenant: &str,
        name: &str,
        version: u32,
    ) -> Result<(), EngineError> {
        let defs: Vec<std::sync::Arc<crate::workflow::WorkflowDef>> = {
            let st = self.inner.lock();
            st.heads
                .iter()
                .filter(|((t, _), _)| t == tenant)
                .map(|(_, l)| l.def.clone())
                .chain(
                    st.versions
                        .iter()
                        .filter(|((t, _, _), _)| t == tenant)
                        .map(|(_, d)| d.clone()),
                )
                .collect()
        };
        for def in &defs {
            for task in &def.tasks {
                let used = self
                    .inner
                    .store
                    .plugin_resolve(tenant, &task.plugin)?
                    .is_some_and(|m| m.name == name && m.version == version);
                if used {
                    return Err(EngineError::InUse(format!(
                        "plugin {name} version {version} is used by task {:?} of workflow {:?}",
                        task.name, def.name
                    )));
                }
            }
        }
        if !self.inner.store.plugin_delete(tenant, name, version)? {
            return Err(EngineError::PluginNotFound(format!("{name}@{version}")));
        }
        tracing::info!(tenant, plugin = name, version, "plugin version deleted");
        Ok(())
    }
}
