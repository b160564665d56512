//! The gap and late-data detector, its pure part: which windows of a
//! workflow need repair and why, and the backfill that repairs them.
//!
//! A window is a gap when it is **missing** (due, never ran), **failed**
//! (its latest run failed or was cancelled) or **stale** (it succeeded, but
//! an input it was built from was committed again afterwards). Staleness is
//! decided by content where the run's attempts recorded what they read: a
//! dataset partition whose content version differs from the one read. A
//! run that read no dataset partition is judged by the upstream windows it
//! waited for: one whose latest successful run is not the one it saw.
//! The engine gathers these facts from the store; this module decides.

use serde::{Deserialize, Serialize};

use crate::backfill::RawBackfillRequest;
use crate::run::{DatasetRead, RunState, UpstreamRun};
use crate::schedule::{format_utc, Window};

/// How far back the detector looks unless told otherwise.
pub const DEFAULT_LOOKBACK_MS: i64 = 7 * 86_400_000;
/// Most windows one scan examines (a bounded read, whatever the range).
pub const SCAN_LIMIT: usize = 20_000;

/// What a workflow lets the detector do with what it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepairMode {
    /// Report on request only.
    #[default]
    Off,
    /// Create the repair backfill paused, for someone to approve (resume).
    Propose,
    /// Create the repair backfill and let it run.
    Auto,
}

impl RepairMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RepairMode::Off => "off",
            RepairMode::Propose => "propose",
            RepairMode::Auto => "auto",
        }
    }
}

/// A workflow's `repair` setting, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepairPolicy {
    pub mode: RepairMode,
    /// The detector looks at windows starting this far back.
    pub lookback_ms: i64,
}

impl Default for RepairPolicy {
    fn default() -> Self {
        RepairPolicy {
            mode: RepairMode::Off,
            lookback_ms: DEFAULT_LOOKBACK_MS,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapKind {
    Missing,
    Failed,
    Stale,
}

/// One window that needs repair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub window: Window,
    pub kind: GapKind,
    /// Its latest run, if it has one.
    pub run_id: Option<u64>,
    pub reason: String,
}

/// What the store says about one window's latest run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Latest {
    Never,
    /// A run of it has not ended: whatever it needs, it is being done.
    Active,
    Failed {
        run_id: u64,
        /// The run was itself a gap repair: proposing it again would
        /// retry a failure for ever, so the detector leaves it to a person.
        by_repair: bool,
        error: Option<String>,
    },
    /// `changed` are the inputs committed again since it ran
    /// ([`changed_inputs`]); empty when it is fresh.
    Succeeded {
        run_id: u64,
        changed: Vec<String>,
    },
}

/// Whether `window` is a gap, and why.
pub fn classify(window: Window, latest: Latest) -> Option<Gap> {
    let gap = |kind, run_id, reason| {
        Some(Gap {
            window,
            kind,
            run_id,
            reason,
        })
    };
    match latest {
        Latest::Never => gap(GapKind::Missing, None, "missing: never ran".into()),
        Latest::Active => None,
        Latest::Failed {
            by_repair: true, ..
        } => None,
        Latest::Failed { run_id, error, .. } => {
            let why = error.map(|e| format!(": {e}")).unwrap_or_default();
            gap(
                GapKind::Failed,
                Some(run_id),
                format!("failed: run {run_id} failed{why}"),
            )
        }
        Latest::Succeeded { changed, .. } if changed.is_empty() => None,
        Latest::Succeeded { run_id, changed } => gap(
            GapKind::Stale,
            Some(run_id),
            format!("stale: {}", changed.join("; ")),
        ),
    }
}

/// The inputs of succeeded run `run_id` that were committed again after it
/// ran, each described. `reads` are its attempts' dataset reads (the last
/// attempt per task); `version_now` gives a partition's current content
/// version. `upstream` are the upstream runs it waited for, judged only
/// when it read nothing; `latest_upstream` gives an upstream window's
/// latest run and its state.
pub fn changed_inputs(
    run_id: u64,
    reads: &[DatasetRead],
    mut version_now: impl FnMut(&str, i64) -> Option<String>,
    upstream: &[UpstreamRun],
    mut latest_upstream: impl FnMut(&str, i64) -> Option<(u64, RunState)>,
) -> Vec<String> {
    let mut changed = Vec::new();
    if !reads.is_empty() {
        let mut seen = std::collections::BTreeSet::new();
        for r in reads {
            if !seen.insert((r.dataset.as_str(), r.partition)) {
                continue; // two tasks read it: one line says it
            }
            let now = version_now(&r.dataset, r.partition);
            if now == r.version {
                continue;
            }
            let at = format!("{}@{}", r.dataset, format_utc(r.partition));
            changed.push(match (&r.version, now) {
                (Some(was), Some(now)) => format!(
                    "{at} was committed again after run {run_id} read it (version {} is now {})",
                    short(was),
                    short(&now)
                ),
                (None, Some(now)) => format!(
                    "{at} was committed (version {}) after run {run_id} found it empty",
                    short(&now)
                ),
                (Some(was), None) => format!(
                    "{at} was deleted after run {run_id} read it (version {})",
                    short(was)
                ),
                (None, None) => unreachable!("equal versions are skipped"),
            });
        }
        return changed;
    }
    for u in upstream {
        match latest_upstream(&u.workflow, u.window_start) {
            Some((latest, RunState::Succeeded)) if latest != u.run_id => changed.push(format!(
                "{}@{} ran again (run {latest} succeeded after run {} that run {run_id} waited for)",
                u.workflow,
                format_utc(u.window_start),
                u.run_id
            )),
            _ => {}
        }
    }
    changed
}

/// A content version, shortened for people (the full one is in `runs why`).
fn short(version: &str) -> &str {
    let hex = version.strip_prefix("sha256:").unwrap_or(version);
    &hex[..hex.len().min(12)]
}

/// What one scan of a workflow found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub workflow: String,
    /// Windows starting in `[since, until)` were examined.
    pub since: i64,
    pub until: i64,
    pub scanned: usize,
    /// More windows were due than one scan examines ([`SCAN_LIMIT`]): the
    /// newest were examined.
    pub truncated: bool,
    /// In window order.
    pub gaps: Vec<Gap>,
}

impl Report {
    /// The backfill that repairs exactly the gaps: their windows by date,
    /// every one run (stale windows succeeded), nothing downstream (each
    /// downstream workflow's own scan finds what this repair makes stale).
    /// `None` when there is nothing to repair.
    pub fn request(&self, version: u32, dry_run: bool) -> Option<RawBackfillRequest> {
        if self.gaps.is_empty() {
            return None;
        }
        let dates = self.gaps.iter().map(|g| format_utc(g.window.start));
        let mut req: RawBackfillRequest = serde_json::from_value(serde_json::json!({
            "workflow": self.workflow,
            "rerun": "all",
        }))
        .expect("a minimal request deserializes");
        req.dates = Some(dates.collect());
        req.version = Some(version);
        req.dry_run = dry_run;
        Some(req)
    }

    /// Each gap's window start and reason, in window order.
    pub fn reasons(&self) -> Vec<(i64, String)> {
        self.gaps
            .iter()
            .map(|g| (g.window.start, g.reason.clone()))
            .collect()
    }

    /// "2 missing, 1 stale", for logs and pause reasons.
    pub fn summary(&self) -> String {
        let count = |k| self.gaps.iter().filter(|g| g.kind == k).count();
        [
            (GapKind::Missing, "missing"),
            (GapKind::Failed, "failed"),
            (GapKind::Stale, "stale"),
        ]
        .iter()
        .filter_map(|(k, name)| {
            Some(count(*k))
                .filter(|n| *n > 0)
                .map(|n| format!("{n} {name}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
    }
}

/// Why a backfill exists when the detector (or a repair request) created
/// it: kept with the backfill, so each run it creates names its window's
/// reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairOrigin {
    /// `auto` or `propose` when the detector created it on its own; `off`
    /// when someone asked for the repair.
    pub mode: RepairMode,
    /// `(window start, reason)`, sorted by start.
    pub reasons: Vec<(i64, String)>,
}

impl RepairOrigin {
    pub fn reason(&self, window_start: i64) -> Option<&str> {
        self.reasons
            .binary_search_by_key(&window_start, |(s, _)| *s)
            .ok()
            .map(|i| self.reasons[i].1.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn w(i: i64) -> Window {
        Window {
            start: i * H,
            end: (i + 1) * H,
        }
    }

    fn read(dataset: &str, partition: i64, version: Option<&str>) -> DatasetRead {
        DatasetRead {
            dataset: dataset.into(),
            partition,
            version: version.map(str::to_owned),
        }
    }

    #[test]
    fn each_kind_of_window_is_classified_with_its_reason() {
        assert_eq!(
            classify(w(0), Latest::Never).unwrap().kind,
            GapKind::Missing
        );
        assert_eq!(classify(w(0), Latest::Active), None);
        let failed = classify(
            w(1),
            Latest::Failed {
                run_id: 7,
                by_repair: false,
                error: Some("boom".into()),
            },
        )
        .unwrap();
        assert_eq!(
            (failed.kind, failed.run_id, failed.reason.as_str()),
            (GapKind::Failed, Some(7), "failed: run 7 failed: boom")
        );
        let again = Latest::Failed {
            run_id: 8,
            by_repair: true,
            error: None,
        };
        assert_eq!(
            classify(w(1), again),
            None,
            "a failed repair is not retried"
        );
        let fresh = Latest::Succeeded {
            run_id: 9,
            changed: vec![],
        };
        assert_eq!(classify(w(2), fresh), None);
        let stale = Latest::Succeeded {
            run_id: 9,
            changed: vec!["a".into(), "b".into()],
        };
        assert_eq!(classify(w(2), stale).unwrap().reason, "stale: a; b");
    }

    #[test]
    fn content_decides_when_the_run_read_something() {
        let reads = [
            read("events", 0, Some("sha256:aaaaaaaaaaaaaaaa")),
            read("events", 0, Some("sha256:aaaaaaaaaaaaaaaa")),
            read("users", 0, None),
            read("same", 0, Some("v1")),
        ];
        let now = |d: &str, _| match d {
            "events" => Some("sha256:bbbbbbbbbbbbbbbb".to_owned()),
            "users" => Some("sha256:cccccccccccccccc".to_owned()),
            _ => Some("v1".to_owned()),
        };
        // An upstream that re-ran is not consulted: the reads are precise.
        let upstream = [UpstreamRun {
            workflow: "raw".into(),
            window_start: 0,
            window_end: H,
            run_id: 1,
        }];
        let changed = changed_inputs(5, &reads, now, &upstream, |_, _| {
            Some((2, RunState::Succeeded))
        });
        assert_eq!(
            changed,
            [
                "events@1970-01-01T00:00:00Z was committed again after run 5 read it (version aaaaaaaaaaaa is now bbbbbbbbbbbb)",
                "users@1970-01-01T00:00:00Z was committed (version cccccccccccc) after run 5 found it empty",
            ]
        );
    }

    #[test]
    fn without_reads_an_upstream_window_that_ran_again_makes_it_stale() {
        let upstream = [
            UpstreamRun {
                workflow: "raw".into(),
                window_start: 0,
                window_end: H,
                run_id: 1,
            },
            UpstreamRun {
                workflow: "other".into(),
                window_start: H,
                window_end: 2 * H,
                run_id: 3,
            },
        ];
        let latest = |wf: &str, _| match wf {
            "raw" => Some((2, RunState::Succeeded)),
            // Re-running now, or failed since: not committed again (yet).
            _ => Some((4, RunState::Running)),
        };
        let changed = changed_inputs(5, &[], |_, _| None, &upstream, latest);
        assert_eq!(
            changed,
            ["raw@1970-01-01T00:00:00Z ran again (run 2 succeeded after run 1 that run 5 waited for)"]
        );
    }

    #[test]
    fn the_plan_runs_exactly_the_gaps_and_keeps_their_reasons() {
        let mut report = Report {
            workflow: "wf".into(),
            since: 0,
            until: 10 * H,
            scanned: 10,
            truncated: false,
            gaps: vec![],
        };
        assert_eq!(report.request(1, true), None);
        report.gaps = vec![
            classify(w(2), Latest::Never).unwrap(),
            classify(
                w(5),
                Latest::Succeeded {
                    run_id: 3,
                    changed: vec!["x".into()],
                },
            )
            .unwrap(),
        ];
        let req = report.request(4, true).unwrap();
        assert_eq!(
            req.dates.as_deref().unwrap(),
            ["1970-01-01T02:00:00Z", "1970-01-01T05:00:00Z"]
        );
        assert_eq!(req.rerun, crate::backfill::Rerun::All);
        assert_eq!(req.version, Some(4));
        assert!(req.dry_run);
        assert_eq!(report.summary(), "1 missing, 1 stale");
        let origin = RepairOrigin {
            mode: RepairMode::Propose,
            reasons: report.reasons(),
        };
        assert_eq!(origin.reason(5 * H), Some("stale: x"));
        assert_eq!(origin.reason(3 * H), None);
    }
}
