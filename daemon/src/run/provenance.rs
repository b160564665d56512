//! Provenance: why a run exists, who asked for it, and what it was built
//! from (the upstream windows it waited for). What each attempt ran and read
//! (plugin digest, dataset partitions) is kept with the attempt, where it is
//! known; [`Comparison`] lines two runs of one window up against each other.

use serde::{Deserialize, Serialize};

/// Why a run exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cause {
    /// Stored before provenance was recorded: nothing is known.
    #[default]
    Unrecorded,
    /// The workflow's schedule made the window due.
    Schedule,
    /// Someone asked for the window containing `at` to run now.
    Manual { at: i64 },
    /// The HTTP trigger, with the request's idempotency key if it sent one.
    Trigger { idempotency_key: Option<String> },
    /// A backfill selected the window; `reason` is why its rerun policy ran
    /// it (`missing`, `failed`, `all`, ...).
    Backfill { backfill: u64, reason: String },
    /// A backfill's cascade: the same backfill repaired workflows upstream
    /// of this one, and `upstream` are their windows this window depends
    /// on.
    Cascade {
        backfill: u64,
        upstream: Vec<UpstreamWindow>,
    },
    /// A gap repair: the backfill the gap detector created (or was asked
    /// for), with why it found the window wanting (missing, failed, stale
    /// and which input changed).
    GapRepair { backfill: u64, reason: String },
}

/// One window of another workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamWindow {
    pub workflow: String,
    pub window_start: i64,
    pub window_end: i64,
}

/// Who asked for a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Requester {
    #[default]
    Unrecorded,
    /// The daemon itself: its cron.
    Scheduler,
    /// A request through the API with one of the tenant's tokens.
    Token { id: u64, label: String },
}

/// An upstream window that had succeeded when the run left its wait, and
/// the run that made it succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamRun {
    pub workflow: String,
    pub window_start: i64,
    pub window_end: i64,
    pub run_id: u64,
}

/// What a run records about its origin. Absent from runs stored before it
/// existed: they load with everything `unrecorded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Provenance {
    #[serde(default)]
    pub cause: Cause,
    #[serde(default)]
    pub requested_by: Requester,
    /// Upstream windows satisfied when it last left `waiting_upstream` (or
    /// `queued`), in dependency order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstream: Vec<UpstreamRun>,
    /// Each retry asked of the run, oldest first. A retry keeps the run's
    /// cause and first requester, so who re-ran it is only known from here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retries: Vec<RetryRequest>,
}

/// Who asked for one retry of a run, and when (UTC ms, the engine's clock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryRequest {
    pub requested_by: Requester,
    pub at: i64,
}

impl Provenance {
    pub fn new(cause: Cause, requested_by: Requester) -> Self {
        Provenance {
            cause,
            requested_by,
            upstream: Vec::new(),
            retries: Vec::new(),
        }
    }

    /// A run of the schedule: the daemon asked.
    pub fn scheduled() -> Self {
        Self::new(Cause::Schedule, Requester::Scheduler)
    }
}

/// A dataset partition an attempt read, and the version of it it saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetRead {
    pub dataset: String,
    pub partition: i64,
    /// The partition's content version when first read (a digest of its
    /// stored value, the same on every store backend); `None` when the
    /// partition did not exist.
    pub version: Option<String>,
}

/// One field that differs between two runs, as text for both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// What differs: `version`, `cause`, `requested_by`, `params`,
    /// `plugin:TASK`, `read:DATASET@PARTITION`, `upstream:WF@START`.
    pub field: String,
    pub this: Option<String>,
    pub other: Option<String>,
}

/// What one run saw, reduced to comparable text: the input of
/// [`Comparison::between`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub version: u32,
    pub cause: String,
    pub requested_by: String,
    /// `(field, value)`: params per task, plugin digests per task, reads per
    /// partition, upstream runs per window; keys unique.
    pub items: std::collections::BTreeMap<String, String>,
}

/// Two runs of one window compared: every field that differs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Comparison {
    pub differences: Vec<Difference>,
}

impl Comparison {
    pub fn between(this: &Facts, other: &Facts) -> Self {
        let mut differences = Vec::new();
        let mut push = |field: &str, a: Option<&String>, b: Option<&String>| {
            if a != b {
                differences.push(Difference {
                    field: field.to_owned(),
                    this: a.cloned(),
                    other: b.cloned(),
                });
            }
        };
        push(
            "version",
            Some(&this.version.to_string()),
            Some(&other.version.to_string()),
        );
        push("cause", Some(&this.cause), Some(&other.cause));
        push(
            "requested_by",
            Some(&this.requested_by),
            Some(&other.requested_by),
        );
        let keys: std::collections::BTreeSet<&String> =
            this.items.keys().chain(other.items.keys()).collect();
        for k in keys {
            push(k, this.items.get(k), other.items.get(k));
        }
        Comparison { differences }
    }
}

impl Cause {
    /// One line for people and comparisons.
    pub fn describe(&self) -> String {
        match self {
            Cause::Unrecorded => "unrecorded".into(),
            Cause::Schedule => "schedule".into(),
            Cause::Manual { at } => format!("manual (window at {at})"),
            Cause::Trigger {
                idempotency_key: Some(k),
            } => format!("trigger (idempotency key {k:?})"),
            Cause::Trigger {
                idempotency_key: None,
            } => "trigger".into(),
            Cause::Backfill { backfill, reason } => format!("backfill {backfill} ({reason})"),
            Cause::Cascade { backfill, upstream } => {
                let mut from: Vec<&str> = upstream.iter().map(|u| u.workflow.as_str()).collect();
                from.dedup();
                format!("cascade of backfill {backfill} from {}", from.join(", "))
            }
            Cause::GapRepair { backfill, reason } => {
                format!("gap repair by backfill {backfill} ({reason})")
            }
        }
    }
}

impl Requester {
    pub fn describe(&self) -> String {
        match self {
            Requester::Unrecorded => "unrecorded".into(),
            Requester::Scheduler => "scheduler".into(),
            Requester::Token { id, label } => format!("token {id} ({label})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_stored_before_provenance_loads_as_unrecorded() {
        let p: Provenance = serde_json::from_str("{}").unwrap();
        assert_eq!(p.cause, Cause::Unrecorded);
        assert_eq!(p.requested_by, Requester::Unrecorded);
    }

    #[test]
    fn comparison_names_each_field_that_differs_and_nothing_else() {
        let mut a = Facts {
            version: 1,
            cause: Cause::Schedule.describe(),
            requested_by: Requester::Scheduler.describe(),
            ..Default::default()
        };
        a.items.insert("plugin:load".into(), "sha256:aa".into());
        a.items.insert("read:orders@0".into(), "v1".into());
        let mut b = a.clone();
        b.version = 2;
        b.items.insert("plugin:load".into(), "sha256:bb".into());
        b.items.remove("read:orders@0");
        let c = Comparison::between(&a, &b);
        let fields: Vec<&str> = c.differences.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, ["version", "plugin:load", "read:orders@0"]);
        assert_eq!(c.differences[2].other, None);
        assert!(Comparison::between(&a, &a).differences.is_empty());
    }
}
