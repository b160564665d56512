//! What a backfill will cost, before it starts: wall time at the requested
//! parallelism, task-runs, fuel and bytes written, per workflow and in
//! total, each as a range.
//!
//! Pure: the engine reads a bounded slice of history (the newest windows of
//! each workflow) and hands the samples in. Each task's figures rest on the
//! first level that has samples — successful attempts of the same workflow
//! version and task, else successful attempts of the same plugin anywhere
//! in the tenant, else the stated defaults ([`Defaults`]) — and say which
//! level and how many samples, so a reader can weigh them.
//!
//! A range is `low` = the smallest sample, `expected` = the mean (rounded
//! to the nearest integer, halves up), `high` = the largest. Per workflow:
//! a run takes the duration of its recent successful runs of the same
//! version (min / mean / max), or when there are none (or the backfill
//! starts at a later task) the critical path of its tasks' durations;
//! windows run in waves of `parallelism`, so wall time is
//! `ceil(runs / parallelism) × run duration`; task-runs are `runs × tasks`
//! (`high` counts every retry as spent); fuel and bytes are `runs × the sum
//! over tasks`. Downstream stages run one after another, so the total is
//! the sum over workflows, wall time included.

use serde::{Deserialize, Serialize};

/// What one successful attempt (or run) cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sample {
    pub duration_ms: u64,
    pub fuel: u64,
    pub bytes: u64,
}

/// Where an estimate's samples come from, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Successful attempts (or runs) of the same workflow version.
    Version,
    /// Successful attempts of the same plugin, in any workflow.
    Plugin,
    /// No history: the stated defaults.
    Default,
}

impl Basis {
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Version => "version",
            Basis::Plugin => "plugin",
            Basis::Default => "default",
        }
    }
}

/// Low, expected and high values of one figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Range {
    pub low: u64,
    pub expected: u64,
    pub high: u64,
}

impl Range {
    pub fn exact(v: u64) -> Range {
        Range {
            low: v,
            expected: v,
            high: v,
        }
    }

    /// Min, rounded mean and max; `None` without values.
    pub fn of(values: impl Iterator<Item = u64>) -> Option<Range> {
        let (mut n, mut sum, mut low, mut high) = (0u128, 0u128, u64::MAX, 0u64);
        for v in values {
            n += 1;
            sum += v as u128;
            low = low.min(v);
            high = high.max(v);
        }
        (n > 0).then(|| Range {
            low,
            expected: ((sum + n / 2) / n) as u64,
            high,
        })
    }

    pub fn times(self, k: u64) -> Range {
        Range {
            low: self.low.saturating_mul(k),
            expected: self.expected.saturating_mul(k),
            high: self.high.saturating_mul(k),
        }
    }

    pub fn plus(self, o: Range) -> Range {
        Range {
            low: self.low.saturating_add(o.low),
            expected: self.expected.saturating_add(o.expected),
            high: self.high.saturating_add(o.high),
        }
    }

    fn max(self, o: Range) -> Range {
        Range {
            low: self.low.max(o.low),
            expected: self.expected.max(o.expected),
            high: self.high.max(o.high),
        }
    }
}

/// A task without history: `expected` from these, `low` 0 and `high` its
/// limits (an attempt cannot run longer, burn more fuel or stage more
/// dataset bytes than them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    pub duration_ms: u64,
    pub fuel: u64,
    pub bytes: u64,
    pub max_duration_ms: u64,
    pub max_fuel: u64,
    pub max_bytes: u64,
}

/// Expected cost of a task without history: one second and ten million
/// fuel (a small task), no bytes.
pub const DEFAULT_TASK_MS: u64 = 1_000;
pub const DEFAULT_TASK_FUEL: u64 = 10_000_000;

/// One task of a workflow and its history.
#[derive(Debug, Clone)]
pub struct TaskInput {
    pub name: String,
    pub depends_on: Vec<String>,
    pub retries: u32,
    /// Successful attempts of this task in the same workflow version.
    pub version: Vec<Sample>,
    /// Successful attempts of its plugin elsewhere.
    pub plugin: Vec<Sample>,
    pub defaults: Defaults,
}

/// One workflow of the plan and its history.
#[derive(Debug, Clone)]
pub struct WorkflowInput {
    pub workflow: String,
    pub version: u32,
    /// Windows of the plan that run.
    pub runs: u64,
    pub parallelism: u32,
    /// The tasks each run executes, in topological order.
    pub tasks: Vec<TaskInput>,
    /// Durations of recent successful runs of the same version; ignored
    /// when runs start at a later task (they would count skipped work).
    pub run_durations: Vec<u64>,
    pub from_task: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskEstimate {
    pub task: String,
    pub basis: Basis,
    pub samples: u32,
    /// Per attempt.
    pub duration_ms: Range,
    pub fuel: Range,
    pub bytes: Range,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowEstimate {
    pub workflow: String,
    pub version: u32,
    pub runs: u64,
    pub parallelism: u32,
    /// What the run duration rests on: its own runs (`version`), or the
    /// weakest basis of its tasks (critical path).
    pub run_basis: Basis,
    pub run_samples: u32,
    pub run_ms: Range,
    pub wall_ms: Range,
    pub task_runs: Range,
    pub fuel: Range,
    pub bytes: Range,
    pub tasks: Vec<TaskEstimate>,
}

/// Totals over a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Totals {
    pub wall_ms: Range,
    pub task_runs: Range,
    pub fuel: Range,
    pub bytes: Range,
}

/// The estimate of a whole plan.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Estimate {
    pub workflows: Vec<WorkflowEstimate>,
    pub total: Totals,
    /// The plan was cut at its limit: the figures cover its first windows.
    #[serde(default)]
    pub truncated: bool,
}

pub fn task_estimate(t: &TaskInput) -> TaskEstimate {
    let (basis, samples) = if !t.version.is_empty() {
        (Basis::Version, &t.version)
    } else if !t.plugin.is_empty() {
        (Basis::Plugin, &t.plugin)
    } else {
        let d = t.defaults;
        let range = |expected: u64, high: u64| Range {
            low: 0,
            expected: expected.min(high),
            high,
        };
        return TaskEstimate {
            task: t.name.clone(),
            basis: Basis::Default,
            samples: 0,
            duration_ms: range(d.duration_ms, d.max_duration_ms),
            fuel: range(d.fuel, d.max_fuel),
            bytes: range(d.bytes, d.max_bytes),
        };
    };
    let of = |f: fn(&Sample) -> u64| Range::of(samples.iter().map(f)).unwrap_or_default();
    TaskEstimate {
        task: t.name.clone(),
        basis,
        samples: samples.len() as u32,
        duration_ms: of(|s| s.duration_ms),
        fuel: of(|s| s.fuel),
        bytes: of(|s| s.bytes),
    }
}

pub fn workflow_estimate(w: &WorkflowInput) -> WorkflowEstimate {
    let tasks: Vec<TaskEstimate> = w.tasks.iter().map(task_estimate).collect();
    let (run_basis, run_samples, run_ms) = match Range::of(w.run_durations.iter().copied()) {
        Some(r) if !w.from_task => (Basis::Version, w.run_durations.len() as u32, r),
        _ => {
            // Longest path through the DAG: a task starts when the last
            // of its dependencies (within the run) ends.
            let mut finish: Vec<Range> = Vec::with_capacity(tasks.len());
            for (i, t) in w.tasks.iter().enumerate() {
                let start = w.tasks[..i]
                    .iter()
                    .zip(&finish)
                    .filter(|(u, _)| t.depends_on.contains(&u.name))
                    .fold(Range::default(), |acc, (_, f)| acc.max(*f));
                finish.push(start.plus(tasks[i].duration_ms));
            }
            let path = finish
                .into_iter()
                .fold(Range::default(), |acc, f| acc.max(f));
            let basis = tasks
                .iter()
                .map(|t| t.basis)
                .max()
                .unwrap_or(Basis::Version);
            let samples = tasks.iter().map(|t| t.samples).min().unwrap_or(0);
            (basis, samples, path)
        }
    };
    let waves = w.runs.div_ceil(w.parallelism.max(1) as u64);
    let per_run = |f: fn(&TaskEstimate) -> Range| {
        tasks
            .iter()
            .fold(Range::default(), |acc, t| acc.plus(f(t)))
            .times(w.runs)
    };
    let n = w.tasks.len() as u64;
    let attempts: u64 = w.tasks.iter().map(|t| 1 + t.retries as u64).sum();
    WorkflowEstimate {
        workflow: w.workflow.clone(),
        version: w.version,
        runs: w.runs,
        parallelism: w.parallelism,
        run_basis,
        run_samples,
        run_ms,
        wall_ms: run_ms.times(waves),
        task_runs: Range {
            low: w.runs * n,
            expected: w.runs * n,
            high: w.runs.saturating_mul(attempts),
        },
        fuel: per_run(|t| t.fuel),
        bytes: per_run(|t| t.bytes),
        tasks,
    }
}

/// The estimate of a plan whose workflows run one stage after another.
pub fn estimate(workflows: &[WorkflowInput], truncated: bool) -> Estimate {
    let workflows: Vec<WorkflowEstimate> = workflows.iter().map(workflow_estimate).collect();
    let total = workflows.iter().fold(Totals::default(), |t, w| Totals {
        wall_ms: t.wall_ms.plus(w.wall_ms),
        task_runs: t.task_runs.plus(w.task_runs),
        fuel: t.fuel.plus(w.fuel),
        bytes: t.bytes.plus(w.bytes),
    });
    Estimate {
        workflows,
        total,
        truncated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(duration_ms: u64, fuel: u64, bytes: u64) -> Sample {
        Sample {
            duration_ms,
            fuel,
            bytes,
        }
    }

    const DEFAULTS: Defaults = Defaults {
        duration_ms: 1_000,
        fuel: 10_000_000,
        bytes: 0,
        max_duration_ms: 30_000,
        max_fuel: 1_000_000_000,
        max_bytes: 4_096,
    };

    fn task(name: &str, deps: &[&str], version: Vec<Sample>, plugin: Vec<Sample>) -> TaskInput {
        TaskInput {
            name: name.into(),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            retries: 2,
            version,
            plugin,
            defaults: DEFAULTS,
        }
    }

    fn r(low: u64, expected: u64, high: u64) -> Range {
        Range {
            low,
            expected,
            high,
        }
    }

    #[test]
    fn a_range_is_min_rounded_mean_and_max() {
        assert_eq!(Range::of([10, 20, 31].into_iter()), Some(r(10, 20, 31)));
        // 61 / 2 = 30.5 rounds up.
        assert_eq!(Range::of([30, 31].into_iter()), Some(r(30, 31, 31)));
        assert_eq!(Range::of(std::iter::empty()), None);
    }

    #[test]
    fn each_task_rests_on_the_strongest_level_with_samples() {
        let version = task(
            "a",
            &[],
            vec![s(100, 1000, 10), s(300, 3000, 30)],
            vec![s(9, 9, 9)],
        );
        let e = task_estimate(&version);
        assert_eq!((e.basis, e.samples), (Basis::Version, 2));
        assert_eq!(e.duration_ms, r(100, 200, 300));
        assert_eq!(e.fuel, r(1000, 2000, 3000));
        assert_eq!(e.bytes, r(10, 20, 30));

        let plugin = task("a", &[], vec![], vec![s(50, 500, 5)]);
        let e = task_estimate(&plugin);
        assert_eq!((e.basis, e.samples), (Basis::Plugin, 1));
        assert_eq!(e.fuel, Range::exact(500));

        let none = task_estimate(&task("a", &[], vec![], vec![]));
        assert_eq!((none.basis, none.samples), (Basis::Default, 0));
        assert_eq!(none.duration_ms, r(0, 1_000, 30_000));
        assert_eq!(none.fuel, r(0, 10_000_000, 1_000_000_000));
        assert_eq!(none.bytes, r(0, 0, 4_096));
    }

    #[test]
    fn wall_time_is_waves_of_the_critical_path_and_totals_add_up() {
        // a -> (b, c) -> d: the path a, c, d is the longest.
        let w = WorkflowInput {
            workflow: "wf".into(),
            version: 3,
            runs: 10,
            parallelism: 4,
            tasks: vec![
                task("a", &[], vec![s(100, 10, 1), s(200, 20, 3)], vec![]),
                task("b", &["a"], vec![s(50, 5, 0)], vec![]),
                task("c", &["a"], vec![], vec![s(400, 40, 4)]),
                task("d", &["b", "c"], vec![s(10, 1, 0)], vec![]),
            ],
            run_durations: vec![],
            from_task: false,
        };
        let e = workflow_estimate(&w);
        // Per run: low 100+400+10, expected 150+400+10, high 200+400+10.
        assert_eq!(e.run_ms, r(510, 560, 610));
        // The weakest task basis (c: plugin), the fewest samples (1).
        assert_eq!((e.run_basis, e.run_samples), (Basis::Plugin, 1));
        // ceil(10 / 4) = 3 waves.
        assert_eq!(e.wall_ms, r(1530, 1680, 1830));
        assert_eq!(e.task_runs, r(40, 40, 120));
        // Per run fuel: a 10/15/20, b 5, c 40, d 1.
        assert_eq!(e.fuel, r(560, 610, 660));
        assert_eq!(e.bytes, r(50, 60, 70));

        // Own run history wins over the critical path...
        let with_runs = WorkflowInput {
            run_durations: vec![700, 900],
            ..w.clone()
        };
        let e2 = workflow_estimate(&with_runs);
        assert_eq!((e2.run_basis, e2.run_samples), (Basis::Version, 2));
        assert_eq!(e2.wall_ms, r(2100, 2400, 2700));
        // ...unless runs start at a later task.
        let later = WorkflowInput {
            from_task: true,
            ..with_runs
        };
        assert_eq!(workflow_estimate(&later).run_ms, r(510, 560, 610));

        let down = WorkflowInput {
            workflow: "down".into(),
            runs: 2,
            parallelism: 4,
            tasks: vec![task("x", &[], vec![s(1000, 100, 7)], vec![])],
            ..w.clone()
        };
        let total = estimate(&[w, down], false).total;
        assert_eq!(total.wall_ms, r(2530, 2680, 2830));
        assert_eq!(total.task_runs, r(42, 42, 126));
        assert_eq!(total.fuel, r(760, 810, 860));
        assert_eq!(total.bytes, r(64, 74, 84));
    }

    #[test]
    fn no_runs_cost_nothing() {
        let w = WorkflowInput {
            workflow: "wf".into(),
            version: 1,
            runs: 0,
            parallelism: 8,
            tasks: vec![task("a", &[], vec![], vec![])],
            run_durations: vec![],
            from_task: false,
        };
        let e = workflow_estimate(&w);
        assert_eq!(e.wall_ms, Range::default());
        assert_eq!(e.fuel, Range::default());
        assert_eq!(e.task_runs, Range::default());
    }
}
