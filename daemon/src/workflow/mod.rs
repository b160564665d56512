//! Workflow definitions: a DAG of tasks, a schedule, and dependencies on the
//! windows of other workflows.
//!
//! Definitions arrive as TOML (files) or JSON (API) in one raw shape
//! ([`RawWorkflow`], also what the store keeps) and are validated into
//! [`WorkflowDef`]; every error names the field at fault.

mod raw;
mod validate;

use std::time::Duration;

pub use raw::{ParamValue, RawChecks, RawRepair, RawSchedule, RawTask, RawUpstream, RawWorkflow};
pub use validate::{check_name, parse_plugin_ref, Catalog, DefinitionError, MAX_TASKS};

use crate::schedule::Schedule;

/// A validated workflow definition.
#[derive(Debug, Clone)]
pub struct WorkflowDef {
    pub name: String,
    pub description: String,
    pub schedule: Schedule,
    /// Start of the first window (a tick of the schedule).
    pub start: i64,
    /// No window starts at or after this instant.
    pub end: Option<i64>,
    /// Create the windows missed while the daemon was down.
    pub catchup: bool,
    pub max_active_runs: u32,
    pub paused: bool,
    pub failure_strategy: FailureStrategy,
    /// In topological order: every task comes after the tasks it depends on.
    pub tasks: Vec<TaskDef>,
    pub upstream: Vec<UpstreamDep>,
    /// Connections of its tenant its tasks may use.
    pub connections: Vec<String>,
    /// Whether each window's object-storage outputs are checked once its
    /// run has ended.
    pub output_check: OutputCheckPolicy,
    /// What the gap detector does with the gaps it finds.
    pub repair: crate::gap::RepairPolicy,
}

/// `[checks] outputs`: the consistency check the engine runs on a window's
/// published object-storage outputs, like an asset check that is declared
/// with the asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputCheckPolicy {
    /// Only on request (`backfill verify`).
    #[default]
    Off,
    /// Automatically, once the window's run has ended and its outputs are
    /// published; the result is kept with each output.
    AfterWindow,
}

impl WorkflowDef {
    pub fn task(&self, name: &str) -> Option<&TaskDef> {
        self.tasks.iter().find(|t| t.name == name)
    }

    /// `name` and every task that depends on it, directly or not, in
    /// topological order.
    pub fn downstream_of(&self, name: &str) -> Vec<&str> {
        let mut hit: Vec<&str> = vec![name];
        for t in &self.tasks {
            if t.name != name && t.depends_on.iter().any(|d| hit.contains(&d.as_str())) {
                hit.push(&t.name);
            }
        }
        self.tasks
            .iter()
            .map(|t| t.name.as_str())
            .filter(|n| hit.contains(n))
            .collect()
    }
}

/// What a failed task does to the rest of its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureStrategy {
    /// The first failed task fails the run; tasks not started are cancelled.
    Stop,
    /// Every branch that does not depend on the failure still runs.
    Continue,
}

/// One node of the DAG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDef {
    pub name: String,
    pub plugin: PluginRef,
    pub params: Vec<(String, String)>,
    pub depends_on: Vec<String>,
    pub retry: RetryPolicy,
    pub timeout: Option<Duration>,
    pub fuel: Option<u64>,
    pub memory: Option<usize>,
    /// Hosts the task may call over HTTP; empty allows none.
    pub allowed_hosts: crate::egress::Allowlist,
}

/// How a task names its plugin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PluginRef {
    /// The newest version of the named plugin at the time a run starts.
    Latest(String),
    /// `name@N`.
    Version(String, u32),
    /// `sha256:<hex>`: exactly this component.
    Digest(String),
}

impl std::fmt::Display for PluginRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginRef::Latest(n) => write!(f, "{n}"),
            PluginRef::Version(n, v) => write!(f, "{n}@{v}"),
            PluginRef::Digest(d) => write!(f, "{d}"),
        }
    }
}

/// Retries after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Further attempts after the first (0 = no retry).
    pub retries: u32,
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 0,
            backoff: Backoff::Fixed(Duration::from_secs(10)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backoff {
    Fixed(Duration),
    /// `initial * 2^(n-1)` before retry `n`, never more than `max`.
    Exponential {
        initial: Duration,
        max: Duration,
    },
}

impl RetryPolicy {
    /// The delay before attempt `next_attempt` (2 = the first retry), or
    /// `None` if the policy allows no such attempt.
    pub fn delay_before(&self, next_attempt: u32) -> Option<Duration> {
        if next_attempt < 2 || next_attempt > self.retries + 1 {
            return None;
        }
        Some(match &self.backoff {
            Backoff::Fixed(d) => *d,
            Backoff::Exponential { initial, max } => {
                let exp = (next_attempt - 2).min(32);
                initial.saturating_mul(1u32 << exp.min(31)).min(*max)
            }
        })
    }
}

/// "Window W of this workflow needs the windows of `workflow` that overlap
/// W shifted by `offset` of this workflow's windows to have succeeded."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamDep {
    pub workflow: String,
    /// 0: the same span; -1: the previous window (e.g. yesterday).
    pub offset: i64,
}

#[cfg(test)]
mod tests;
