//! Why a run exists and what it was built from, as the API and CLI show
//! it (`runs why`), and two runs of one window compared field by field.

use std::sync::Arc;

use super::{Engine, EngineError};
use crate::executor::Trigger;
use crate::run::{Comparison, DatasetRead, Facts, Run};
use crate::workflow::WorkflowDef;

/// What one task of a run ran and read: from its last attempt, the one
/// whose outcome counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskOrigin {
    pub task: String,
    /// The plugin as the workflow version names it (name, name@version or
    /// digest); `None` if that version can no longer be loaded.
    pub plugin: Option<String>,
    /// The digest of the component the last attempt ran; `None` before any
    /// attempt, or in attempts recorded before digests were.
    pub plugin_digest: Option<String>,
    /// The last attempt's number; `None` before any attempt.
    pub attempt: Option<u32>,
    /// The task's params in the run's workflow version.
    pub params: Vec<(String, String)>,
    pub reads: Vec<DatasetRead>,
    pub reads_omitted: u64,
}

/// A run's provenance with what each task ran and read.
#[derive(Debug, Clone)]
pub struct Why {
    pub run: Run,
    pub tasks: Vec<TaskOrigin>,
}

impl Why {
    /// The run reduced to comparable text. An event run's payload is
    /// compared by digest: it may be large and is shown elsewhere.
    pub fn facts(&self) -> Facts {
        let p = &self.run.provenance;
        let mut facts = Facts {
            version: self.run.version,
            cause: p.cause.describe(),
            requested_by: p.requested_by.describe(),
            ..Default::default()
        };
        let items = &mut facts.items;
        if !self.run.payload.is_empty() {
            items.insert("payload".into(), crate::executor::digest(&self.run.payload));
        }
        for t in &self.tasks {
            for (k, v) in &t.params {
                items.insert(format!("params:{}.{k}", t.task), v.clone());
            }
            if let Some(d) = &t.plugin_digest {
                items.insert(format!("plugin:{}", t.task), d.clone());
            }
            for r in &t.reads {
                items.insert(
                    format!("read:{}:{}@{}", t.task, r.dataset, r.partition),
                    r.version.clone().unwrap_or_else(|| "absent".into()),
                );
            }
        }
        for u in &p.upstream {
            items.insert(
                format!("upstream:{}@{}", u.workflow, u.window_start),
                format!("run {}", u.run_id),
            );
        }
        facts
    }
}

impl Engine {
    /// Why run `id` exists, who asked, and what each task ran and read.
    pub fn why(&self, tenant: &str, id: u64) -> Result<Why, EngineError> {
        let run = self.run(tenant, id)?.ok_or(EngineError::RunNotFound(id))?;
        let def = match self.version_def(tenant, &run) {
            Ok(d) => Some(d),
            // A deleted workflow's runs still explain themselves, without
            // the definition's part.
            Err(EngineError::WorkflowNotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let attempts = self.inner.store.attempts(tenant, id)?;
        let tasks = run
            .tasks
            .iter()
            .map(|t| {
                let task_def = def.as_ref().and_then(|d| d.task(&t.name));
                // Attempts come in (task, attempt) order: the last is the
                // newest.
                let last = attempts.iter().rfind(|a| a.task == t.name);
                TaskOrigin {
                    task: t.name.clone(),
                    plugin: task_def.map(|d| d.plugin.to_string()),
                    plugin_digest: last.and_then(|a| a.plugin_digest.clone()),
                    attempt: last.map(|a| a.attempt),
                    params: task_def.map(|d| d.params.clone()).unwrap_or_default(),
                    reads: last.map(|a| a.reads.clone()).unwrap_or_default(),
                    reads_omitted: last.map_or(0, |a| a.reads_omitted),
                }
            })
            .collect();
        Ok(Why { run, tasks })
    }

    /// Runs `id` and `other` side by side with every difference between
    /// them. Both must be runs of one window of one workflow (two event
    /// runs of one workflow compare too: each has its own instant).
    pub fn compare_runs(
        &self,
        tenant: &str,
        id: u64,
        other: u64,
    ) -> Result<(Why, Why, Comparison), EngineError> {
        let a = self.why(tenant, id)?;
        let b = self.why(tenant, other)?;
        let events = a.run.trigger == Trigger::Event && b.run.trigger == Trigger::Event;
        let why_not = if a.run.workflow != b.run.workflow {
            Some(format!(
                "run {id} is of workflow {:?}, run {other} of {:?}",
                a.run.workflow, b.run.workflow
            ))
        } else if a.run.window_start != b.run.window_start && !events {
            Some(format!(
                "run {id} is of the window starting at {}, run {other} of the one at {}",
                crate::schedule::format_utc(a.run.window_start),
                crate::schedule::format_utc(b.run.window_start)
            ))
        } else {
            None
        };
        if let Some(why) = why_not {
            return Err(EngineError::NotComparable { id, other, why });
        }
        let cmp = Comparison::between(&a.facts(), &b.facts());
        Ok((a, b, cmp))
    }

    fn version_def(&self, tenant: &str, run: &Run) -> Result<Arc<WorkflowDef>, EngineError> {
        if let Some(d) = self.inner.def_for(&self.inner.lock(), run) {
            return Ok(d);
        }
        self.inner.load_version(tenant, &run.workflow, run.version)
    }
}
