//! What the daemons of the fault test logged they executed, checked
//! against the faults the test caused.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde_json::Value;

/// One process of a node: a restarted node is a new incarnation.
pub struct Incarnation {
    pub node: String,
    pub log: PathBuf,
    pub killed: Option<SystemTime>,
    /// When it was stopped (SIGSTOP) and continued again.
    pub stops: Vec<(SystemTime, SystemTime)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    Kill,
    Pause,
    /// Its database sessions ended, or the database restarted.
    CutOff,
}

#[derive(Debug)]
pub struct Fault {
    pub kind: FaultKind,
    pub at: SystemTime,
    pub until: SystemTime,
    /// Incarnations it hit.
    pub victims: Vec<usize>,
}

impl Fault {
    pub fn kill(at: SystemTime, victim: usize) -> Fault {
        let (kind, until, victims) = (FaultKind::Kill, at, vec![victim]);
        Fault {
            kind,
            at,
            until,
            victims,
        }
    }

    pub fn pause(at: SystemTime, until: SystemTime, victim: usize) -> Fault {
        let (kind, victims) = (FaultKind::Pause, vec![victim]);
        Fault {
            kind,
            at,
            until,
            victims,
        }
    }

    pub fn cut_off(at: SystemTime, until: SystemTime, victims: Vec<usize>) -> Fault {
        let kind = FaultKind::CutOff;
        Fault {
            kind,
            at,
            until,
            victims,
        }
    }
}

/// One attempt a process started, as its log says.
#[derive(Debug, Clone)]
pub struct Execution {
    pub incarnation: usize,
    pub run: u64,
    pub task: String,
    pub attempt: u64,
    pub started: SystemTime,
    /// When it logged its end; else when its process was killed or the
    /// test ended.
    pub ended: SystemTime,
    pub outcome: String,
}

fn instant(line: &Value) -> SystemTime {
    let ts = line["timestamp"].as_str().expect("timestamp");
    let t = chrono::DateTime::parse_from_rfc3339(ts).expect("an RFC 3339 timestamp");
    SystemTime::UNIX_EPOCH + Duration::from_micros(t.timestamp_micros() as u64)
}

/// Every attempt each incarnation logged it started, with its end.
pub fn executions(incarnations: &[Incarnation], test_end: SystemTime) -> Vec<Execution> {
    let mut all = Vec::new();
    for (i, inc) in incarnations.iter().enumerate() {
        let text = std::fs::read_to_string(&inc.log).expect("a daemon's log");
        let mut open: HashMap<(u64, String, u64), Execution> = HashMap::new();
        for line in text.lines() {
            // A killed process may leave its last line half written.
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let message = v["fields"]["message"].as_str().unwrap_or("");
            let span = &v["span"];
            if span["name"] != "attempt" {
                continue;
            }
            let key = (
                span["run"].as_u64().expect("run"),
                span["task"].as_str().expect("task").to_owned(),
                span["attempt"].as_u64().expect("attempt"),
            );
            if message == "attempt started" {
                let e = Execution {
                    incarnation: i,
                    run: key.0,
                    task: key.1.clone(),
                    attempt: key.2,
                    started: instant(&v),
                    ended: inc.killed.unwrap_or(test_end),
                    outcome: "never ended".into(),
                };
                if let Some(twice) = open.insert(key, e) {
                    panic!("{} started {twice:?} twice", inc.node);
                }
            } else if message == "attempt succeeded" || message.starts_with("attempt failed") {
                if let Some(mut e) = open.remove(&key) {
                    e.ended = instant(&v);
                    e.outcome = message.to_owned();
                    all.push(e);
                }
            }
        }
        all.extend(open.into_values());
    }
    all.sort_by_key(|e| e.started);
    all
}

/// The most attempts executing at one moment across all processes. A
/// stopped process executes nothing while it is stopped.
pub fn most_at_once(executions: &[Execution], incarnations: &[Incarnation]) -> (usize, SystemTime) {
    // +1 at each start, -1 at each end, of every stretch an attempt ran.
    let mut edges: Vec<(SystemTime, i32)> = Vec::new();
    for e in executions {
        let mut from = e.started;
        let mut stops = incarnations[e.incarnation].stops.clone();
        stops.sort();
        for (stop, cont) in stops {
            if cont <= from || stop >= e.ended {
                continue;
            }
            if stop > from {
                edges.push((from, 1));
                edges.push((stop, -1));
            }
            from = cont;
        }
        if from < e.ended {
            edges.push((from, 1));
            edges.push((e.ended, -1));
        }
    }
    // Ends before starts at the same instant: a slot handed over is not two.
    edges.sort();
    let (mut now, mut most, mut when) = (0i32, 0i32, SystemTime::UNIX_EPOCH);
    for (t, d) in edges {
        now += d;
        if now > most {
            (most, when) = (now, t);
        }
    }
    (most as usize, when)
}

/// Executions started again later (the same task of the same run) whose
/// process no fault hit between their start and the later start: a
/// duplicate execution nothing explains. A retry (a later attempt number
/// after a failure the process logged) is the task's retry policy, not a
/// duplicate.
pub fn unexplained_duplicates<'a>(
    executions: &'a [Execution],
    faults: &[Fault],
) -> Vec<(&'a Execution, &'a Execution)> {
    let mut by_task: HashMap<(u64, &str), Vec<&Execution>> = HashMap::new();
    for e in executions {
        by_task.entry((e.run, &e.task)).or_default().push(e);
    }
    let mut unexplained = Vec::new();
    for runs in by_task.values() {
        for pair in runs.windows(2) {
            let (first, again) = (pair[0], pair[1]);
            let retry =
                first.outcome.starts_with("attempt failed") && again.attempt > first.attempt;
            let explained = retry
                || faults.iter().any(|f| {
                    f.victims.contains(&first.incarnation)
                        && f.until >= first.started
                        && f.at <= again.started
                });
            if !explained {
                unexplained.push((first, again));
            }
        }
    }
    unexplained
}

/// Counts of executions, duplicates by the fault behind them, and the
/// failover times' distribution.
pub fn report(executions: &[Execution], faults: &[Fault], failovers: &mut [Duration]) -> String {
    let mut by_task: HashMap<(u64, &str), usize> = HashMap::new();
    for e in executions {
        *by_task.entry((e.run, &e.task)).or_default() += 1;
    }
    let duplicated = by_task.values().filter(|n| **n > 1).count();
    let failed = executions
        .iter()
        .filter(|e| e.outcome.starts_with("attempt failed"))
        .count();
    let kinds = |k: FaultKind| faults.iter().filter(|f| f.kind == k).count();
    failovers.sort();
    let at = |q: f64| {
        let i = ((failovers.len() as f64 - 1.0) * q).round() as usize;
        failovers.get(i).copied().unwrap_or_default()
    };
    format!(
        "{} executions of {} task-runs, {duplicated} executed more than once, {failed} executions failed; faults: {} kills, {} pauses, {} cut-offs; \
         failover (kill to a new leader) over {} kills: min {:?}, p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        executions.len(),
        by_task.len(),
        kinds(FaultKind::Kill),
        kinds(FaultKind::Pause),
        kinds(FaultKind::CutOff),
        failovers.len(),
        at(0.0),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0),
    )
}
