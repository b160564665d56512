//! The run and task state machines. Every state change in Tidemark goes
//! through [`RunState::apply`] or [`TaskState::apply`]; nothing else assigns
//! a state.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Lifecycle of a run (one workflow, one window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Created, waiting for a dispatch slot.
    Queued,
    /// Waiting for windows of upstream workflows to succeed.
    WaitingUpstream,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// What can happen to a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEvent {
    /// Some upstream window has not succeeded yet.
    UpstreamPending,
    /// Every upstream window succeeded (or there are none).
    UpstreamReady,
    /// A backfill run's upstream window failed or will never run: waiting
    /// would never end.
    UpstreamUnsatisfied,
    /// Its first task was dispatched.
    Start,
    /// Every task ended and none failed.
    Succeed,
    /// A task failed and the run is over.
    Fail,
    Cancel,
    /// Run again from its failed tasks (retry-from-failed).
    Retry,
}

/// Lifecycle of one task within a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Pending,
    Running,
    /// Failed, another attempt is due after the backoff.
    Retrying,
    Succeeded,
    Failed,
    /// A task it depends on failed (or was cancelled); it will not run.
    UpstreamFailed,
    /// Not part of this run (e.g. before a backfill's `from_task`).
    Skipped,
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskEvent {
    /// An attempt was handed to the executor.
    Start,
    Succeed,
    /// The attempt failed; `retry` says whether the policy allows another.
    Fail {
        retry: bool,
    },
    /// The daemon stopped while the attempt ran: it is retried without
    /// counting against the retry policy.
    Interrupt,
    /// The backoff elapsed.
    RetryDue,
    UpstreamFailed,
    Skip,
    Cancel,
    /// Make a failed, cancelled or upstream-failed task runnable again.
    Reset,
}

/// A transition that the machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid transition: {event} in state {from}")]
pub struct InvalidTransition {
    pub from: String,
    pub event: String,
}

fn invalid(from: impl fmt::Debug, event: impl fmt::Debug) -> InvalidTransition {
    InvalidTransition {
        from: format!("{from:?}"),
        event: format!("{event:?}"),
    }
}

impl RunState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Succeeded | RunState::Failed | RunState::Cancelled
        )
    }

    /// The one transition function of runs.
    pub fn apply(self, event: RunEvent) -> Result<RunState, InvalidTransition> {
        use RunEvent as E;
        use RunState as S;
        Ok(match (self, event) {
            (S::Queued | S::WaitingUpstream, E::UpstreamPending) => S::WaitingUpstream,
            (S::Queued | S::WaitingUpstream, E::UpstreamReady) => S::Queued,
            (S::Queued | S::WaitingUpstream, E::UpstreamUnsatisfied) => S::Failed,
            (S::Queued, E::Start) => S::Running,
            (S::Running, E::Succeed) => S::Succeeded,
            (S::Running, E::Fail) => S::Failed,
            (s, E::Cancel) if !s.is_terminal() => S::Cancelled,
            (S::Failed | S::Cancelled, E::Retry) => S::Queued,
            (s, e) => return Err(invalid(s, e)),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::WaitingUpstream => "waiting_upstream",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<RunState> {
        RunState::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub const ALL: [RunState; 6] = [
        RunState::Queued,
        RunState::WaitingUpstream,
        RunState::Running,
        RunState::Succeeded,
        RunState::Failed,
        RunState::Cancelled,
    ];
}

impl TaskState {
    /// Ended for this run (until a retry-from-failed resets it).
    pub fn is_done(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded
                | TaskState::Failed
                | TaskState::UpstreamFailed
                | TaskState::Skipped
                | TaskState::Cancelled
        )
    }

    /// Whether tasks that depend on this one may run.
    pub fn satisfies_dependents(self) -> bool {
        matches!(self, TaskState::Succeeded | TaskState::Skipped)
    }

    /// The one transition function of tasks.
    pub fn apply(self, event: TaskEvent) -> Result<TaskState, InvalidTransition> {
        use TaskEvent as E;
        use TaskState as S;
        Ok(match (self, event) {
            (S::Pending, E::Start) => S::Running,
            (S::Running, E::Succeed) => S::Succeeded,
            (S::Running, E::Fail { retry: true }) => S::Retrying,
            (S::Running, E::Fail { retry: false }) => S::Failed,
            (S::Running, E::Interrupt) => S::Pending,
            (S::Retrying, E::RetryDue) => S::Pending,
            (S::Pending | S::Retrying, E::UpstreamFailed) => S::UpstreamFailed,
            (S::Pending, E::Skip) => S::Skipped,
            (S::Pending | S::Running | S::Retrying, E::Cancel) => S::Cancelled,
            (S::Failed | S::UpstreamFailed | S::Cancelled, E::Reset) => S::Pending,
            (s, e) => return Err(invalid(s, e)),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Running => "running",
            TaskState::Retrying => "retrying",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::UpstreamFailed => "upstream_failed",
            TaskState::Skipped => "skipped",
            TaskState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<TaskState> {
        TaskState::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub const ALL: [TaskState; 8] = [
        TaskState::Pending,
        TaskState::Running,
        TaskState::Retrying,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::UpstreamFailed,
        TaskState::Skipped,
        TaskState::Cancelled,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_lifecycle() {
        let s = RunState::Queued;
        let s = s.apply(RunEvent::UpstreamPending).unwrap();
        assert_eq!(s, RunState::WaitingUpstream);
        let s = s.apply(RunEvent::UpstreamReady).unwrap();
        let s = s.apply(RunEvent::Start).unwrap();
        assert_eq!(s.apply(RunEvent::Succeed), Ok(RunState::Succeeded));
        let failed = s.apply(RunEvent::Fail).unwrap();
        assert_eq!(failed.apply(RunEvent::Retry), Ok(RunState::Queued));
        assert!(RunState::Succeeded.apply(RunEvent::Cancel).is_err());
        assert!(RunState::Succeeded.apply(RunEvent::Retry).is_err());
        assert!(RunState::Queued.apply(RunEvent::Succeed).is_err());
        assert_eq!(
            RunState::WaitingUpstream.apply(RunEvent::UpstreamUnsatisfied),
            Ok(RunState::Failed)
        );
        assert!(RunState::Running
            .apply(RunEvent::UpstreamUnsatisfied)
            .is_err());
        for s in RunState::ALL {
            assert_eq!(RunState::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn task_lifecycle() {
        use TaskEvent as E;
        let t = TaskState::Pending.apply(E::Start).unwrap();
        assert_eq!(t.apply(E::Fail { retry: true }), Ok(TaskState::Retrying));
        assert_eq!(t.apply(E::Fail { retry: false }), Ok(TaskState::Failed));
        assert_eq!(t.apply(E::Interrupt), Ok(TaskState::Pending));
        assert_eq!(
            TaskState::Retrying.apply(E::RetryDue),
            Ok(TaskState::Pending)
        );
        assert_eq!(TaskState::Failed.apply(E::Reset), Ok(TaskState::Pending));
        // A success is final: nothing can make it run again.
        for e in [
            E::Start,
            E::Reset,
            E::Cancel,
            E::Interrupt,
            E::Fail { retry: true },
        ] {
            assert!(TaskState::Succeeded.apply(e).is_err(), "{e:?}");
        }
        assert!(TaskState::Pending.apply(E::Succeed).is_err());
        for s in TaskState::ALL {
            assert_eq!(TaskState::parse(s.as_str()), Some(s));
        }
    }
}
