//! Runs: one workflow over one window, as a DAG of task runs.
//!
//! [`Run::advance`] is the pure core of execution: given the workflow
//! definition and the task states, it applies the consequences (upstream
//! failures, cancellation under the `stop` strategy, the run's end) and says
//! which tasks may be dispatched. The engine persists and acts on it.

mod provenance;
mod state;

use serde::{Deserialize, Serialize};

pub use provenance::{
    Cause, Comparison, DatasetRead, Difference, Facts, Provenance, Requester, RetryRequest,
    UpstreamRun, UpstreamWindow,
};
pub use state::{InvalidTransition, RunEvent, RunState, TaskEvent, TaskState};

use crate::executor::Trigger;
use crate::schedule::Window;
use crate::workflow::{FailureStrategy, WorkflowDef};

/// One task of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRun {
    pub name: String,
    pub state: TaskState,
    /// Attempts started so far (the next attempt's number is this + 1).
    pub attempts: u32,
    /// Failed attempts that count against the retry policy.
    pub failures: u32,
    /// When a `retrying` task becomes `pending` again (UTC ms).
    pub retry_at: Option<i64>,
    pub last_error: Option<String>,
}

impl TaskRun {
    pub fn new(name: &str) -> Self {
        TaskRun {
            name: name.to_owned(),
            state: TaskState::Pending,
            attempts: 0,
            failures: 0,
            retry_at: None,
            last_error: None,
        }
    }

    pub fn apply(&mut self, event: TaskEvent) -> Result<(), InvalidTransition> {
        self.state = self.state.apply(event)?;
        Ok(())
    }
}

/// An upstream window a run waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamWait {
    pub workflow: String,
    pub window_start: i64,
    pub window_end: i64,
}

/// One run of a workflow for one window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub id: u64,
    pub tenant: String,
    pub workflow: String,
    /// The workflow version this run uses.
    pub version: u32,
    pub window_start: i64,
    pub window_end: i64,
    pub trigger: Trigger,
    pub state: RunState,
    /// In the definition's topological order.
    pub tasks: Vec<TaskRun>,
    /// Upstream windows not yet succeeded, when `waiting_upstream`.
    pub waiting_on: Vec<UpstreamWait>,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    /// The HTTP trigger's body for event runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payload: Vec<u8>,
    /// The backfill that created this run, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<u64>,
    /// A backfill run's priority; live runs have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<crate::backfill::Priority>,
    /// Why it exists and who asked; `unrecorded` in runs stored before.
    #[serde(default)]
    pub provenance: Provenance,
}

/// What [`Run::advance`] decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Advance {
    /// Indexes of tasks that may be dispatched now (still `pending`).
    pub dispatch: Vec<usize>,
    /// The run just ended in this state.
    pub finished: Option<RunState>,
    /// The earliest `retry_at` of a task still waiting on its backoff.
    pub next_retry_at: Option<i64>,
}

impl Run {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u64,
        tenant: &str,
        def: &WorkflowDef,
        version: u32,
        window: Window,
        trigger: Trigger,
        now: i64,
    ) -> Self {
        Run {
            id,
            tenant: tenant.to_owned(),
            workflow: def.name.clone(),
            version,
            window_start: window.start,
            window_end: window.end,
            trigger,
            state: RunState::Queued,
            tasks: def.tasks.iter().map(|t| TaskRun::new(&t.name)).collect(),
            waiting_on: Vec::new(),
            created_ms: now,
            started_ms: None,
            ended_ms: None,
            payload: Vec::new(),
            backfill: None,
            priority: None,
            provenance: Provenance::default(),
        }
    }

    /// The run with its provenance: every creation path says why.
    pub fn with_provenance(mut self, provenance: Provenance) -> Self {
        self.provenance = provenance;
        self
    }

    pub fn window(&self) -> Window {
        Window {
            start: self.window_start,
            end: self.window_end,
        }
    }

    pub fn apply(&mut self, event: RunEvent, now: i64) -> Result<(), InvalidTransition> {
        self.state = self.state.apply(event)?;
        match event {
            RunEvent::Start => self.started_ms = Some(now),
            RunEvent::Retry => self.ended_ms = None,
            _ if self.state.is_terminal() => self.ended_ms = Some(now),
            _ => {}
        }
        Ok(())
    }

    pub fn task_index(&self, name: &str) -> Option<usize> {
        self.tasks.iter().position(|t| t.name == name)
    }

    /// Applies what follows from the current task states at `now` and says
    /// what to dispatch. Only meaningful while the run is `running`.
    pub fn advance(&mut self, def: &WorkflowDef, now: i64) -> Result<Advance, InvalidTransition> {
        let mut out = Advance::default();
        if self.state != RunState::Running {
            return Ok(out);
        }
        for t in &mut self.tasks {
            if t.state == TaskState::Retrying && t.retry_at.is_some_and(|at| at <= now) {
                t.apply(TaskEvent::RetryDue)?;
                t.retry_at = None;
            }
        }
        let stop = def.failure_strategy == FailureStrategy::Stop
            && self.tasks.iter().any(|t| t.state == TaskState::Failed);
        for i in 0..self.tasks.len() {
            let state = self.tasks[i].state;
            if !matches!(state, TaskState::Pending | TaskState::Retrying) {
                continue;
            }
            if stop {
                self.tasks[i].apply(TaskEvent::Cancel)?;
                continue;
            }
            let Some(task_def) = def.task(&self.tasks[i].name) else {
                // A task the definition no longer has cannot run.
                self.tasks[i].apply(TaskEvent::Cancel)?;
                continue;
            };
            let dep_states: Vec<TaskState> = task_def
                .depends_on
                .iter()
                .filter_map(|d| self.task_index(d).map(|j| self.tasks[j].state))
                .collect();
            let broken = dep_states
                .iter()
                .any(|s| s.is_done() && !s.satisfies_dependents());
            if broken {
                self.tasks[i].apply(TaskEvent::UpstreamFailed)?;
            } else if state == TaskState::Pending
                && dep_states.iter().all(|s| s.satisfies_dependents())
            {
                out.dispatch.push(i);
            } else if state == TaskState::Retrying {
                out.next_retry_at = match (out.next_retry_at, self.tasks[i].retry_at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        if self.tasks.iter().all(|t| t.state.is_done()) {
            let ok = self.tasks.iter().all(|t| t.state.satisfies_dependents());
            let event = if ok {
                RunEvent::Succeed
            } else {
                RunEvent::Fail
            };
            self.apply(event, now)?;
            out.finished = Some(self.state);
            out.dispatch.clear();
        }
        Ok(out)
    }

    /// Prepares a finished run to run again from its failed tasks: failed,
    /// cancelled and upstream-failed tasks become pending; succeeded tasks
    /// stay succeeded and are not re-run.
    pub fn reset_failed(&mut self, now: i64) -> Result<(), InvalidTransition> {
        self.apply(RunEvent::Retry, now)?;
        for t in &mut self.tasks {
            if matches!(
                t.state,
                TaskState::Failed | TaskState::UpstreamFailed | TaskState::Cancelled
            ) {
                t.apply(TaskEvent::Reset)?;
                t.failures = 0;
                t.retry_at = None;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
