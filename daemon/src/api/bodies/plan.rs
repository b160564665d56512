//! What a backfill's dry run answers: its plan, window by window, with the
//! windows each downstream workflow of the cascade adds, and its estimate.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a dry run would do with one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanAction {
    Run,
    Skip,
}

/// One line of a dry-run plan.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlanEntry {
    pub workflow: String,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub action: PlanAction,
    pub reason: String,
}

/// What a backfill would do, in execution order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Plan {
    pub entries: Vec<PlanEntry>,
    pub runs: u64,
    pub skips: u64,
    /// More windows exist than the plan lists.
    pub truncated: bool,
    /// Per downstream workflow, how many windows the cascade adds (each
    /// listed in `entries`); with `downstream_include` or
    /// `downstream_exclude`, the workflows they leave out too, with
    /// `included: false` and the windows they would have added.
    pub cascade: Vec<CascadeAddition>,
}

/// One downstream workflow of a dry run's cascade.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CascadeAddition {
    pub workflow: String,
    /// 1 for direct dependents of the selected workflow, 2 for theirs, ...
    pub depth: u32,
    /// Closed windows it adds (or would add, when left out).
    pub windows: u64,
    /// `false` when the launch's scope leaves it out.
    pub included: bool,
}

impl From<crate::engine::Plan> for Plan {
    fn from(p: crate::engine::Plan) -> Self {
        Plan {
            entries: p
                .entries
                .into_iter()
                .map(|e| PlanEntry {
                    workflow: e.workflow,
                    window_start_ms: e.window_start,
                    window_end_ms: e.window_end,
                    action: if e.action == "skip" {
                        PlanAction::Skip
                    } else {
                        PlanAction::Run
                    },
                    reason: e.reason,
                })
                .collect(),
            runs: p.runs as u64,
            skips: p.skips as u64,
            truncated: p.truncated,
            cascade: p
                .cascade
                .into_iter()
                .map(|c| CascadeAddition {
                    workflow: c.workflow,
                    depth: c.depth as u32,
                    windows: c.windows as u64,
                    included: c.included,
                })
                .collect(),
        }
    }
}

/// The answer to a `dry_run` request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DryRun {
    /// Always `true`.
    pub dry_run: bool,
    /// Why no window would start now, and until when (`waiting: start-at
    /// ...`, `waiting: off-peak until ...`); `null` if it would start at
    /// once.
    #[schema(required = true)]
    pub waiting: Option<String>,
    pub plan: Plan,
    /// What the windows that run will cost, per workflow and in total.
    pub estimate: super::estimates::Estimate,
}
