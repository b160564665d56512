//! The backfill state machine: every change of a backfill's state goes
//! through [`BackfillState::apply`]; nothing else assigns one.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackfillState {
    Running,
    Paused,
    /// Every window ended and none failed.
    Succeeded,
    /// Every window ended and some failed, or `max_failed_windows` stopped it.
    Failed,
    Cancelled,
}

/// What can happen to a backfill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackfillEvent {
    /// The user paused it: no new windows start.
    Pause,
    Resume,
    Cancel,
    /// Every window of every stage ended; `failed` if some failed.
    Finish {
        failed: bool,
    },
    /// `max_failed_windows` was reached.
    FailureLimit,
    /// Retry-failed re-runs the failed windows of an ended backfill.
    RetryFailed,
    /// The next window would pass its budget: it pauses itself.
    BudgetExceeded,
}

/// A transition the backfill machine does not allow; the message is what a
/// caller is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("backfill is {}: {}", from.as_str(), why)]
pub struct InvalidBackfillTransition {
    pub from: BackfillState,
    pub event: BackfillEvent,
    pub why: &'static str,
}

impl BackfillState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            BackfillState::Succeeded | BackfillState::Failed | BackfillState::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BackfillState::Running => "running",
            BackfillState::Paused => "paused",
            BackfillState::Succeeded => "succeeded",
            BackfillState::Failed => "failed",
            BackfillState::Cancelled => "cancelled",
        }
    }

    /// The one transition function of backfills.
    pub fn apply(self, event: BackfillEvent) -> Result<BackfillState, InvalidBackfillTransition> {
        use BackfillEvent as E;
        use BackfillState as S;
        let refuse = |why| {
            Err(InvalidBackfillTransition {
                from: self,
                event,
                why,
            })
        };
        match (self, event) {
            (S::Running | S::Paused, E::Pause) => Ok(S::Paused),
            (S::Running, E::BudgetExceeded) => Ok(S::Paused),
            (S::Paused, E::BudgetExceeded) => refuse("already paused"),
            (S::Running | S::Paused, E::Resume) => Ok(S::Running),
            (S::Running | S::Paused, E::Cancel) => Ok(S::Cancelled),
            (S::Running, E::Finish { failed: false }) => Ok(S::Succeeded),
            (S::Running, E::Finish { failed: true }) => Ok(S::Failed),
            (S::Running, E::FailureLimit) => Ok(S::Failed),
            (S::Succeeded | S::Failed, E::RetryFailed) => Ok(S::Running),
            (S::Running | S::Paused, E::RetryFailed) => {
                refuse("still active; retry-failed applies to ended backfills")
            }
            (S::Cancelled, E::RetryFailed) => refuse("cancelled; create a new backfill"),
            (S::Paused, E::Finish { .. } | E::FailureLimit) => {
                refuse("paused; it ends only after it resumes")
            }
            (_, _) => refuse("it already ended"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{BackfillEvent as E, BackfillState as S};

    #[test]
    fn backfill_transition_table() {
        let states = [S::Running, S::Paused, S::Succeeded, S::Failed, S::Cancelled];
        let events = [
            E::Pause,
            E::Resume,
            E::Cancel,
            E::Finish { failed: false },
            E::Finish { failed: true },
            E::FailureLimit,
            E::RetryFailed,
            E::BudgetExceeded,
        ];
        // Rows: states; columns: events in the order above; None = refused.
        let table: [[Option<S>; 8]; 5] = [
            [
                Some(S::Paused),
                Some(S::Running),
                Some(S::Cancelled),
                Some(S::Succeeded),
                Some(S::Failed),
                Some(S::Failed),
                None,
                Some(S::Paused),
            ],
            [
                Some(S::Paused),
                Some(S::Running),
                Some(S::Cancelled),
                None,
                None,
                None,
                None,
                None,
            ],
            [None, None, None, None, None, None, Some(S::Running), None],
            [None, None, None, None, None, None, Some(S::Running), None],
            [None; 8],
        ];
        for (i, from) in states.iter().enumerate() {
            for (j, event) in events.iter().enumerate() {
                assert_eq!(
                    from.apply(*event).ok(),
                    table[i][j],
                    "{from:?} on {event:?}"
                );
            }
        }
        assert_eq!(
            S::Cancelled.apply(E::RetryFailed).unwrap_err().to_string(),
            "backfill is cancelled: cancelled; create a new backfill"
        );
    }
}
