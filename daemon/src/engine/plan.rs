//! Dry-run plans of a backfill: every window it would run or skip and why,
//! in execution order, and per downstream workflow the windows its cascade
//! adds (or, left out by the launch's scope, would have added).

use std::sync::Arc;

use serde::Serialize;

use super::{Engine, EngineError};
use crate::backfill::{
    self, cascade, decide, BackfillSpec, CascadeScope, Cursor, Decision, Downstream, Order,
};
use crate::workflow::WorkflowDef;

/// One line of a dry-run plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanEntry {
    pub workflow: String,
    pub window_start: i64,
    pub window_end: i64,
    /// `run` or `skip`.
    pub action: &'static str,
    pub reason: String,
}

/// What a dry run would do, in execution order.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub entries: Vec<PlanEntry>,
    pub runs: usize,
    pub skips: usize,
    /// More windows exist than `PLAN_LIMIT`.
    pub truncated: bool,
    /// What the windows that run will cost, from recorded history.
    pub estimate: crate::backfill::estimate::Estimate,
    /// Per downstream workflow, the windows the cascade adds; with a scope,
    /// the workflows it leaves out too (what they would have added).
    pub cascade: Vec<CascadeAddition>,
    /// Why no window would start now, and until when (its start-at time or
    /// allowed hours); `None` when it would start at once.
    pub waiting: Option<String>,
}

/// One downstream workflow of a plan's cascade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CascadeAddition {
    pub workflow: String,
    /// 1 for direct dependents of the selected workflow, 2 for theirs, ...
    pub depth: usize,
    /// Closed windows it adds (or would add, if left out).
    pub windows: usize,
    /// `false` when the launch's scope leaves it out.
    pub included: bool,
}

impl Engine {
    /// The tenant's current definitions.
    pub(super) fn tenant_heads(&self, tenant: &str) -> Vec<Arc<WorkflowDef>> {
        self.inner
            .lock()
            .heads
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .map(|(_, l)| l.def.clone())
            .collect()
    }

    pub(super) fn plan(
        &self,
        tenant: &str,
        spec: &BackfillSpec,
        def: &WorkflowDef,
        limit: usize,
    ) -> Result<Plan, EngineError> {
        let mut entries = Vec::new();
        let mut repaired = Vec::new();
        let mut cursor = spec.selection.first_cursor(spec.order);
        let mut truncated = false;
        while cursor != Cursor::Done {
            let (ws, next) = spec
                .selection
                .next_segment(&def.schedule, spec.order, cursor, 1024);
            for w in ws {
                if entries.len() >= limit {
                    truncated = true;
                    break;
                }
                let latest = self
                    .inner
                    .store
                    .window_get(tenant, &def.name, w.start)?
                    .map(|r| r.state);
                let (action, reason) = match decide(spec.rerun, latest) {
                    Decision::Run(r) => {
                        repaired.push(w);
                        ("run", r.as_str().to_owned())
                    }
                    Decision::Skip(r) => ("skip", r.as_str().to_owned()),
                };
                entries.push(PlanEntry {
                    workflow: def.name.clone(),
                    window_start: w.start,
                    window_end: w.end,
                    action,
                    reason,
                });
            }
            if truncated {
                break;
            }
            cursor = next;
        }
        let mut cascade_summary = Vec::new();
        if spec.downstream != Downstream::None {
            repaired.sort();
            let heads = self.tenant_heads(tenant);
            let refs: Vec<&WorkflowDef> = heads.iter().map(|d| d.as_ref()).collect();
            let now = self.inner.clock.now_ms();
            let closed = |step: &backfill::CascadeStep| {
                step.windows
                    .iter()
                    .filter(|w| w.end <= now)
                    .copied()
                    .collect::<Vec<_>>()
            };
            let steps = cascade(&refs, &def.name, &repaired, spec.downstream, &spec.scope);
            if spec.scope != CascadeScope::all() {
                // What the scope leaves out, and what that would have added.
                let unscoped = cascade(
                    &refs,
                    &def.name,
                    &repaired,
                    spec.downstream,
                    &CascadeScope::all(),
                );
                for step in unscoped
                    .iter()
                    .filter(|u| !steps.iter().any(|s| s.workflow == u.workflow))
                {
                    cascade_summary.push(CascadeAddition {
                        workflow: step.workflow.clone(),
                        depth: step.depth,
                        windows: closed(step).len(),
                        included: false,
                    });
                }
            }
            for step in steps {
                let mut windows = closed(&step);
                cascade_summary.push(CascadeAddition {
                    workflow: step.workflow.clone(),
                    depth: step.depth,
                    windows: windows.len(),
                    included: true,
                });
                if spec.order == Order::Desc {
                    windows.reverse();
                }
                for w in windows {
                    if entries.len() >= limit {
                        truncated = true;
                        break;
                    }
                    entries.push(PlanEntry {
                        workflow: step.workflow.clone(),
                        window_start: w.start,
                        window_end: w.end,
                        action: "run",
                        reason: format!(
                            "{} (depth {}), after its upstream windows",
                            backfill::RunReason::Downstream.as_str(),
                            step.depth
                        ),
                    });
                }
            }
        }
        let runs = entries.iter().filter(|e| e.action == "run").count();
        Ok(Plan {
            skips: entries.len() - runs,
            runs,
            entries,
            truncated,
            estimate: Default::default(),
            cascade: cascade_summary,
            waiting: None,
        })
    }
}
