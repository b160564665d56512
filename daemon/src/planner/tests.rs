use std::collections::{HashMap, HashSet};

use super::*;
use crate::workflow::{Catalog, PluginRef, RawWorkflow};

const H: i64 = 3_600_000;
const D: i64 = 24 * H;
/// 2024-03-01T00:00:00Z, a Friday.
const T0: i64 = 1_709_251_200_000;

struct Cat;
impl Catalog for Cat {
    fn has_plugin(&self, _: &PluginRef) -> bool {
        true
    }
    fn upstreams(&self, _: &str) -> Option<Vec<String>> {
        Some(vec![])
    }
}

fn wf(name: &str, cron: &str, extra: &str) -> WorkflowDef {
    let toml = format!(
        "name = \"{name}\"\n{extra}\n[schedule]\ncron = \"{cron}\"\nstart = \"2024-03-01T00:00:00Z\"\n[[tasks]]\nname = \"t\"\nplugin = \"p\"\n"
    );
    let toml = if let Some(up) = extra.strip_prefix("#up ") {
        let (w, off) = up.split_once(' ').unwrap();
        format!("{toml}[[upstream]]\nworkflow = \"{w}\"\noffset = {off}\n").replace(extra, "")
    } else {
        toml
    };
    RawWorkflow::from_toml(&toml)
        .unwrap()
        .validate(&Cat)
        .unwrap()
}

#[test]
fn catchup_creates_every_closed_window_once() {
    let d = wf("h", "0 * * * *", "");
    let (ws, cursor) = due_windows(&d, None, T0 + 3 * H + 5, 100);
    assert_eq!(
        ws.iter().map(|w| w.start).collect::<Vec<_>>(),
        [T0, T0 + H, T0 + 2 * H]
    );
    assert_eq!(cursor, Some(T0 + 2 * H));
    // Same time again: nothing new.
    assert!(due_windows(&d, cursor, T0 + 3 * H + 5, 100).0.is_empty());
    // The window closing exactly now is due.
    let (ws, _) = due_windows(&d, cursor, T0 + 4 * H, 100);
    assert_eq!(ws.iter().map(|w| w.start).collect::<Vec<_>>(), [T0 + 3 * H]);
    // Bounded per call.
    let (ws, cursor) = due_windows(&d, None, T0 + 100 * H, 10);
    assert_eq!((ws.len(), cursor), (10, Some(T0 + 9 * H)));
}

#[test]
fn without_catchup_only_the_newest_window_runs() {
    let d = wf("h", "0 * * * *", "catchup = false");
    let (ws, cursor) = due_windows(&d, None, T0 + 10 * H + 1, 100);
    assert_eq!(ws.iter().map(|w| w.start).collect::<Vec<_>>(), [T0 + 9 * H]);
    assert_eq!(cursor, Some(T0 + 9 * H));
    assert!(due_windows(&d, cursor, T0 + 10 * H + 2, 100).0.is_empty());
}

#[test]
fn paused_and_ended_workflows_create_nothing() {
    let d = wf("h", "0 * * * *", "paused = true");
    assert!(due_windows(&d, None, T0 + 10 * H, 100).0.is_empty());
    let mut d = wf("h", "0 * * * *", "");
    d.end = Some(T0 + 2 * H);
    assert_eq!(due_windows(&d, None, T0 + 10 * H, 100).0.len(), 2);
    assert!(due_windows(&d, None, T0 - 1, 100).0.is_empty());
}

fn schedules(defs: &[&WorkflowDef]) -> HashMap<String, (Schedule, i64)> {
    defs.iter()
        .map(|d| (d.name.clone(), (d.schedule.clone(), d.start)))
        .collect()
}

fn waits(
    d: &WorkflowDef,
    window: Window,
    ups: &[&WorkflowDef],
    done: &HashSet<(String, i64)>,
) -> Vec<(String, i64)> {
    let s = schedules(ups);
    upstream_waits(d, window, &|name| s.get(name).cloned(), &|name, start| {
        done.contains(&(name.to_string(), start))
            .then_some(RunState::Succeeded)
    })
    .into_iter()
    .map(|w| (w.workflow, w.window_start))
    .collect()
}

#[test]
fn hourly_to_daily_waits_for_24_windows() {
    let events = wf("events", "0 * * * *", "");
    let report = wf("report", "0 0 * * *", "#up events 0");
    let day = report.schedule.window_containing(T0).unwrap();
    let mut done = HashSet::new();
    assert_eq!(waits(&report, day, &[&events], &done).len(), 24);
    for h in 0..23 {
        done.insert(("events".to_string(), T0 + h * H));
    }
    assert_eq!(
        waits(&report, day, &[&events], &done),
        [("events".to_string(), T0 + 23 * H)]
    );
    done.insert(("events".to_string(), T0 + 23 * H));
    assert!(waits(&report, day, &[&events], &done).is_empty());
}

#[test]
fn yesterday_weekly_and_monthly_dependencies() {
    let daily = wf("daily", "0 0 * * *", "");
    // "yesterday's window": offset -1 of a daily workflow on a daily upstream.
    let next_day = wf("next", "0 0 * * *", "#up daily -1");
    let mar2 = next_day.schedule.window_containing(T0 + D).unwrap();
    assert_eq!(
        waits(&next_day, mar2, &[&daily], &HashSet::new()),
        [("daily".to_string(), T0)]
    );
    // Weekly (Monday) over daily: the seven days of the week, but only those
    // on or after the upstream's first window (2024-03-01).
    let weekly = wf("weekly", "0 0 * * 1", "#up daily 0");
    let week = weekly.schedule.window_containing(T0 + 5 * D).unwrap(); // Mon Mar 4 .. Mon Mar 11
    assert_eq!(waits(&weekly, week, &[&daily], &HashSet::new()).len(), 7);
    let first_week = weekly.schedule.window_containing(T0).unwrap(); // Mon Feb 26 .. Mon Mar 4
    assert_eq!(
        waits(&weekly, first_week, &[&daily], &HashSet::new()).len(),
        3,
        "Mar 1-3 only"
    );
    // Monthly over daily: 31 days of March.
    let monthly = wf("monthly", "0 0 1 * *", "#up daily 0");
    let march = monthly.schedule.window_containing(T0).unwrap();
    assert_eq!(waits(&monthly, march, &[&daily], &HashSet::new()).len(), 31);
}
