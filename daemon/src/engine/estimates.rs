//! Estimates of a backfill's plan from recorded history: the engine reads
//! a bounded slice of it (the newest windows of each workflow involved, and
//! of a few others that use a plugin with no history of its own) and
//! `backfill::estimate` does the arithmetic.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::attempt::plugin_key;
use super::plan::Plan;
use super::{Engine, EngineError};
use crate::backfill::estimate::{
    self, Defaults, Estimate, Sample, TaskInput, WorkflowInput, DEFAULT_TASK_FUEL, DEFAULT_TASK_MS,
};
use crate::backfill::BackfillSpec;
use crate::run::RunState;
use crate::workflow::WorkflowDef;

/// Newest windows read per workflow: recent enough to reflect today's
/// data, few enough that a dry run stays cheap whatever the history.
pub(super) const HISTORY_WINDOWS: usize = 20;
/// Other workflows read for a plugin's history, at most.
const PLUGIN_WORKFLOWS: usize = 4;

/// Samples gathered from the windows read so far.
#[derive(Default)]
struct History {
    read: HashSet<String>,
    /// `(workflow, version, task)` → successful attempts.
    tasks: HashMap<(String, u32, String), Vec<Sample>>,
    /// Plugin name (or digest) → successful attempts.
    plugins: HashMap<String, Vec<Sample>>,
    /// `(workflow, version)` → durations of successful runs.
    runs: HashMap<(String, u32), Vec<u64>>,
}

impl Engine {
    /// Reads the newest windows of `workflow` into `h` (once per workflow).
    fn read_history(
        &self,
        tenant: &str,
        workflow: &str,
        h: &mut History,
    ) -> Result<(), EngineError> {
        if !h.read.insert(workflow.to_owned()) {
            return Ok(());
        }
        let store = &self.inner.store;
        for (_, w) in store.windows_newest(tenant, workflow, HISTORY_WINDOWS)? {
            if w.state != RunState::Succeeded {
                continue;
            }
            let Some(run) = self.run(tenant, w.run_id)? else {
                continue;
            };
            if let (Some(s), Some(e)) = (run.started_ms, run.ended_ms) {
                h.runs
                    .entry((run.workflow.clone(), run.version))
                    .or_default()
                    .push(e.saturating_sub(s).max(0) as u64);
            }
            for a in store.attempts(tenant, run.id)? {
                if a.error_kind.is_some() {
                    continue;
                }
                let sample = Sample {
                    duration_ms: a.ended_ms.saturating_sub(a.started_ms).max(0) as u64,
                    fuel: a.fuel.unwrap_or(0),
                    bytes: a.bytes_written.unwrap_or(0),
                };
                if let Some(p) = &a.plugin {
                    h.plugins.entry(p.clone()).or_default().push(sample);
                }
                h.tasks
                    .entry((run.workflow.clone(), run.version, a.task))
                    .or_default()
                    .push(sample);
            }
        }
        Ok(())
    }

    /// The estimate of `plan`, whose first workflow is `def` at `version`
    /// and the others (downstream stages) at their newest versions.
    pub(super) fn estimate_plan(
        &self,
        tenant: &str,
        spec: &BackfillSpec,
        def: &Arc<WorkflowDef>,
        version: u32,
        plan: &Plan,
    ) -> Result<Estimate, EngineError> {
        // Runs per workflow, in stage order; the selected workflow first.
        let mut counts: Vec<(String, u64)> = vec![(def.name.clone(), 0)];
        for e in plan.entries.iter().filter(|e| e.action == "run") {
            match counts.iter_mut().find(|(w, _)| *w == e.workflow) {
                Some((_, n)) => *n += 1,
                None => counts.push((e.workflow.clone(), 1)),
            }
        }
        let heads: Vec<(String, u32, Arc<WorkflowDef>)> = self
            .inner
            .lock()
            .heads
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .map(|((_, n), l)| (n.clone(), l.version, l.def.clone()))
            .collect();
        let mut stages: Vec<(u32, Arc<WorkflowDef>, u64)> = Vec::new();
        for (name, runs) in counts {
            if name == def.name {
                stages.push((version, def.clone(), runs));
            } else if let Some((_, v, d)) = heads.iter().find(|(n, _, _)| *n == name) {
                stages.push((*v, d.clone(), runs));
            }
        }
        let mut h = History::default();
        for (_, d, _) in &stages {
            self.read_history(tenant, &d.name, &mut h)?;
        }
        // Plugins with no history in these workflows: a few others that
        // use them may have some.
        let mut wanted: HashSet<&str> = HashSet::new();
        for (v, d, _) in &stages {
            for t in &d.tasks {
                let key = (d.name.clone(), *v, t.name.clone());
                let p = plugin_key(&t.plugin);
                if !h.tasks.contains_key(&key) && !h.plugins.contains_key(p) {
                    wanted.insert(p);
                }
            }
        }
        let mut extra = 0;
        for (name, _, d) in &heads {
            if extra == PLUGIN_WORKFLOWS || wanted.is_empty() {
                break;
            }
            if h.read.contains(name)
                || !d
                    .tasks
                    .iter()
                    .any(|t| wanted.contains(plugin_key(&t.plugin)))
            {
                continue;
            }
            self.read_history(tenant, name, &mut h)?;
            wanted.retain(|p| !h.plugins.contains_key(*p));
            extra += 1;
        }
        let limits = &self.inner.config.limits;
        let inputs: Vec<WorkflowInput> = stages
            .iter()
            .enumerate()
            .map(|(i, (v, d, runs))| {
                // Only the selected workflow's runs start at `from_task`.
                let from = spec.from_task.as_deref().filter(|_| i == 0);
                let included = from.map(|f| d.downstream_of(f));
                let tasks = d
                    .tasks
                    .iter()
                    .filter(|t| {
                        included
                            .as_ref()
                            .is_none_or(|k| k.contains(&t.name.as_str()))
                    })
                    .map(|t| {
                        let key = (d.name.clone(), *v, t.name.clone());
                        TaskInput {
                            name: t.name.clone(),
                            depends_on: t.depends_on.clone(),
                            retries: t.retry.retries,
                            version: h.tasks.get(&key).cloned().unwrap_or_default(),
                            plugin: h
                                .plugins
                                .get(plugin_key(&t.plugin))
                                .cloned()
                                .unwrap_or_default(),
                            defaults: Defaults {
                                duration_ms: DEFAULT_TASK_MS,
                                fuel: DEFAULT_TASK_FUEL,
                                bytes: 0,
                                max_duration_ms: t.timeout.unwrap_or(limits.timeout).as_millis()
                                    as u64,
                                max_fuel: t.fuel.unwrap_or(limits.fuel),
                                max_bytes: limits.output_bytes as u64,
                            },
                        }
                    })
                    .collect();
                WorkflowInput {
                    workflow: d.name.clone(),
                    version: *v,
                    runs: *runs,
                    parallelism: spec.parallelism,
                    tasks,
                    run_durations: h
                        .runs
                        .get(&(d.name.clone(), *v))
                        .cloned()
                        .unwrap_or_default(),
                    from_task: from.is_some(),
                }
            })
            .collect();
        Ok(estimate::estimate(&inputs, plan.truncated))
    }
}
