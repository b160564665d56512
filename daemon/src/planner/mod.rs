//! What should run: pure functions of definitions, history and now.

use crate::run::{RunState, UpstreamWait};
use crate::schedule::{Schedule, Window};
use crate::workflow::WorkflowDef;

/// Most upstream windows one run may wait on (a monthly run over a
/// minutely upstream is 44,640).
pub const MAX_UPSTREAM_WINDOWS: usize = 50_000;

/// The live windows of `def` that closed by `now` and have no run yet, given
/// the start of the last window created live (`cursor`), at most `max`.
/// Returns the windows and the new cursor.
pub fn due_windows(
    def: &WorkflowDef,
    cursor: Option<i64>,
    now: i64,
    max: usize,
) -> (Vec<Window>, Option<i64>) {
    if def.paused {
        return (Vec::new(), cursor);
    }
    let from = match cursor {
        Some(c) => c + 1,
        None => def.start,
    };
    let limit = def.end.unwrap_or(i64::MAX);
    let closed = |w: &Window| w.end <= now && w.start < limit;
    if !def.catchup {
        // Only the newest closed window; the ones before it are skipped.
        let Some(latest) = def
            .schedule
            .tick_at_or_before(now)
            .and_then(|t| def.schedule.tick_at_or_before(t - 1))
        else {
            return (Vec::new(), cursor);
        };
        let Some(w) = def.schedule.window_at(latest) else {
            return (Vec::new(), cursor);
        };
        if w.start >= from && w.start >= def.start && closed(&w) {
            return (vec![w], Some(w.start));
        }
        return (Vec::new(), cursor);
    }
    let windows: Vec<Window> = def
        .schedule
        .windows(from.max(def.start), now)
        .take_while(closed)
        .take(max)
        .collect();
    let cursor = windows.last().map(|w| w.start).or(cursor);
    (windows, cursor)
}

/// The upstream windows that `window` of `def` still waits for. `state_of`
/// gives the state of the latest run of an upstream window, `schedule_of`
/// an upstream workflow's schedule and first window start.
pub fn upstream_waits(
    def: &WorkflowDef,
    window: Window,
    schedule_of: &dyn Fn(&str) -> Option<(Schedule, i64)>,
    state_of: &dyn Fn(&str, i64) -> Option<RunState>,
) -> Vec<UpstreamWait> {
    let mut waits = upstream_windows(def, window, schedule_of);
    waits.retain(|w| state_of(&w.workflow, w.window_start) != Some(RunState::Succeeded));
    waits
}

/// Every upstream window that `window` of `def` needs to have succeeded,
/// in dependency order and, per dependency, in time order (so a caller can
/// read their states with one range read per dependency).
pub fn upstream_windows(
    def: &WorkflowDef,
    window: Window,
    schedule_of: &dyn Fn(&str) -> Option<(Schedule, i64)>,
) -> Vec<UpstreamWait> {
    let mut needed = Vec::new();
    for dep in &def.upstream {
        let Some(span) = def.schedule.shift(window, dep.offset) else {
            continue;
        };
        let Some((up, up_start)) = schedule_of(&dep.workflow) else {
            continue;
        };
        let first = up
            .window_containing(span.start)
            .map_or(span.start, |w| w.start);
        for w in up.windows(first, span.end).take(MAX_UPSTREAM_WINDOWS) {
            // Windows before the upstream's first window never run.
            if w.start < up_start || !w.overlaps(&span) {
                continue;
            }
            needed.push(UpstreamWait {
                workflow: dep.workflow.clone(),
                window_start: w.start,
                window_end: w.end,
            });
        }
    }
    needed
}

#[cfg(test)]
mod tests;
