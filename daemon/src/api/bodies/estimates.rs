//! A backfill's budget, its estimate (in a dry run, and stored with the
//! backfill) and what it actually spent.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::api_enum;
use crate::backfill::estimate as domain;

/// Limits on what a backfill may spend. Before each new window the
/// backfill projects what it has spent plus one average window per window
/// in flight and the next; if that passes a limit it pauses itself with the
/// reason instead of starting the window. Resuming lifts the budget.
/// Every limit is optional; a zero or negative one is refused.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Seconds from the first window's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, example = 3600)]
    pub max_wall_seconds: Option<i64>,
    /// Fuel of every attempt of its runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_fuel: Option<i64>,
    /// Dataset and object bytes its successful attempts commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_bytes: Option<i64>,
}

impl From<Budget> for crate::backfill::RawBudget {
    fn from(b: Budget) -> Self {
        crate::backfill::RawBudget {
            max_wall_seconds: b.max_wall_seconds,
            max_fuel: b.max_fuel,
            max_bytes: b.max_bytes,
        }
    }
}

impl From<crate::backfill::RawBudget> for Budget {
    fn from(b: crate::backfill::RawBudget) -> Self {
        Budget {
            max_wall_seconds: b.max_wall_seconds,
            max_fuel: b.max_fuel,
            max_bytes: b.max_bytes,
        }
    }
}

api_enum! {
    /// What an estimate rests on: `version` (successful attempts or runs of
    /// the same workflow version), `plugin` (successful attempts of the
    /// same plugin elsewhere) or `default` (no history: expected 1 s and
    /// 10,000,000 fuel per task, no bytes; low 0, high the task's limits).
    EstimateBasis = domain::Basis { Version, Plugin, Default }
}

/// A figure's range: the smallest sample, the mean, the largest.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct EstimateRange {
    pub low: u64,
    pub expected: u64,
    pub high: u64,
}

impl From<domain::Range> for EstimateRange {
    fn from(r: domain::Range) -> Self {
        EstimateRange {
            low: r.low,
            expected: r.expected,
            high: r.high,
        }
    }
}

/// One task's cost per attempt, and what it rests on.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskEstimate {
    pub task: String,
    pub basis: EstimateBasis,
    /// How many successful attempts the figures come from.
    pub samples: u32,
    /// Duration of one attempt (milliseconds).
    pub duration_ms: EstimateRange,
    pub fuel: EstimateRange,
    pub bytes: EstimateRange,
}

/// One workflow of the plan: its runs at the requested parallelism.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WorkflowEstimate {
    pub workflow: String,
    pub version: u32,
    /// Windows that run.
    pub runs: u64,
    pub parallelism: u32,
    /// What a run's duration rests on: its own successful runs
    /// (`version`), else the weakest basis of its tasks (critical path).
    pub run_basis: EstimateBasis,
    pub run_samples: u32,
    /// Duration of one run (milliseconds).
    pub run_ms: EstimateRange,
    /// `ceil(runs / parallelism)` × the run duration (milliseconds).
    pub wall_ms: EstimateRange,
    /// Attempts; `high` counts every retry.
    pub task_runs: EstimateRange,
    pub fuel: EstimateRange,
    pub bytes: EstimateRange,
    pub tasks: Vec<TaskEstimate>,
}

/// Sums over the plan's workflows (stages run one after another).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct EstimateTotals {
    /// Milliseconds.
    pub wall_ms: EstimateRange,
    pub task_runs: EstimateRange,
    pub fuel: EstimateRange,
    pub bytes: EstimateRange,
}

/// What a backfill's plan will cost, from recorded history (the newest
/// windows of each workflow).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Estimate {
    pub workflows: Vec<WorkflowEstimate>,
    pub total: EstimateTotals,
    /// The plan was cut at its limit: the figures cover its first windows.
    pub truncated: bool,
}

impl From<domain::Totals> for EstimateTotals {
    fn from(t: domain::Totals) -> Self {
        EstimateTotals {
            wall_ms: t.wall_ms.into(),
            task_runs: t.task_runs.into(),
            fuel: t.fuel.into(),
            bytes: t.bytes.into(),
        }
    }
}

impl From<domain::TaskEstimate> for TaskEstimate {
    fn from(t: domain::TaskEstimate) -> Self {
        TaskEstimate {
            task: t.task,
            basis: t.basis.into(),
            samples: t.samples,
            duration_ms: t.duration_ms.into(),
            fuel: t.fuel.into(),
            bytes: t.bytes.into(),
        }
    }
}

impl From<domain::WorkflowEstimate> for WorkflowEstimate {
    fn from(w: domain::WorkflowEstimate) -> Self {
        WorkflowEstimate {
            workflow: w.workflow,
            version: w.version,
            runs: w.runs,
            parallelism: w.parallelism,
            run_basis: w.run_basis.into(),
            run_samples: w.run_samples,
            run_ms: w.run_ms.into(),
            wall_ms: w.wall_ms.into(),
            task_runs: w.task_runs.into(),
            fuel: w.fuel.into(),
            bytes: w.bytes.into(),
            tasks: w.tasks.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<domain::Estimate> for Estimate {
    fn from(e: domain::Estimate) -> Self {
        Estimate {
            workflows: e.workflows.into_iter().map(Into::into).collect(),
            total: e.total.into(),
            truncated: e.truncated,
        }
    }
}

/// What a backfill has spent so far, to set against its estimate.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct Spent {
    /// From its first window's start to its end, or to now (milliseconds).
    pub wall_ms: u64,
    /// Attempts of its runs that ended.
    pub task_runs: u64,
    pub fuel: u64,
    pub bytes: u64,
}

impl Spent {
    pub fn new(b: &crate::store::BackfillRecord, now_ms: i64) -> Self {
        Spent {
            wall_ms: b.actual.wall_ms(b.ended_ms.unwrap_or(now_ms)),
            task_runs: b.actual.task_runs,
            fuel: b.actual.fuel,
            bytes: b.actual.bytes,
        }
    }
}
