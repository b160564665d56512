//! Backfills in the scheduling pass: windows materialized from the durable
//! cursor as capacity frees (under the overlap policy and overload
//! protection), each window's end recorded, and the downstream cascade
//! advanced stage by stage.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::backfills::{stage_spec, ActiveBackfill, EVAL_PER_TICK};
use super::{EngineState, Inner, TickReport};
use crate::backfill::{
    self, cascade, decide, BackfillEvent, Cursor, Decision, Downstream, Overlap,
};
use crate::executor::Trigger;
use crate::run::{Cause, Provenance, Run, RunState, TaskEvent, UpstreamWindow};
use crate::store::{BackfillState, BackfillWindow, StoreError, WindowRecord, WindowState};
use crate::workflow::WorkflowDef;

/// Window states read from the store before a pass takes the engine lock:
/// per backfill, the latest run of each window it may evaluate next.
#[derive(Default)]
pub(super) struct Prefetch {
    windows: HashMap<u64, HashMap<i64, Option<WindowRecord>>>,
}

/// Windows a backfill evaluates per pass beyond its free parallelism (the
/// ones skipped as already done cost no slot).
const LOOKAHEAD: usize = 64;

/// Reads, without the engine lock, the window states the next
/// [`advance`] will need.
pub(super) fn prefetch(inner: &Inner) -> Result<Prefetch, StoreError> {
    struct Target {
        id: u64,
        tenant: String,
        def: Arc<WorkflowDef>,
        spec: Arc<backfill::BackfillSpec>,
        cursor: Cursor,
        n: usize,
    }
    let targets: Vec<Target> = {
        let st = inner.lock();
        st.backfills
            .iter()
            .filter(|(_, b)| {
                b.record.state == BackfillState::Running && b.record.cursor != Cursor::Done
            })
            .map(|(id, b)| Target {
                id: *id,
                tenant: b.record.tenant.clone(),
                def: b.def.clone(),
                spec: b.spec.clone(),
                cursor: b.record.cursor,
                n: match (b.spec.parallelism as usize).saturating_sub(b.in_flight) {
                    // `advance` starts nothing, and skips nothing, without a
                    // free slot: reading windows for it would be wasted, and
                    // a busy backfill passes here once per ended attempt.
                    0 => 0,
                    free => free.saturating_add(LOOKAHEAD).min(EVAL_PER_TICK),
                },
            })
            .filter(|t| t.n > 0)
            .collect()
    };
    let mut out = Prefetch::default();
    for t in targets {
        let (ws, _) = t
            .spec
            .selection
            .next_segment(&t.def.schedule, t.spec.order, t.cursor, t.n);
        let starts: Vec<i64> = ws.iter().map(|w| w.start).collect();
        let records = inner.store.windows_at(&t.tenant, &t.def.name, &starts)?;
        out.windows
            .insert(t.id, starts.into_iter().zip(records).collect());
    }
    Ok(out)
}

/// Starts the next windows of every running backfill, up to its free
/// parallelism, and finishes backfills with nothing left.
pub(super) fn advance(
    inner: &Inner,
    st: &mut EngineState,
    now: i64,
    report: &mut TickReport,
    prefetched: &Prefetch,
) {
    // Most passes have no backfill to move: do no per-run work for them.
    if st.backfills.is_empty() {
        return;
    }
    let mut busy: HashSet<(String, String, i64)> = st
        .runs
        .values()
        .filter(|r| !r.state.is_terminal() && r.trigger != Trigger::Event)
        .map(|r| (r.tenant.clone(), r.workflow.clone(), r.window_start))
        .collect();
    let heads: Vec<(String, Arc<WorkflowDef>, u32)> = st
        .heads
        .iter()
        .map(|((t, _), l)| (t.clone(), l.def.clone(), l.version))
        .collect();
    let active_runs = st.runs.len();
    let ids: Vec<u64> = st.backfills.keys().copied().collect();
    for id in ids {
        let mut cancelled: Vec<u64> = Vec::new();
        let mut new_runs: Vec<Run> = Vec::new();
        let mut windows: Vec<BackfillWindow> = Vec::new();
        let mut notices: Vec<(String, crate::notify::Event)> = Vec::new();
        let Some(b) = st.backfills.get_mut(&id) else {
            continue;
        };
        let mut changed = false;
        if b.record.state == BackfillState::Running {
            let mut budget = EVAL_PER_TICK;
            let was_throttled = b.record.throttled.take();
            if active_runs >= inner.config.backfill_admission_limit {
                // Overload protection: hold new windows back until load falls.
                b.record.throttled = Some(format!(
                    "overload: {active_runs} active runs (limit {}); new windows wait",
                    inner.config.backfill_admission_limit
                ));
                budget = 0;
            } else if let Some((until, why)) = b.spec.waiting(now) {
                // Off-peak or not yet due: nothing new starts, and the
                // driver wakes at the edge.
                b.record.throttled = Some(why);
                report.next_wake = Some(report.next_wake.map_or(until, |w| w.min(until)));
                budget = 0;
            }
            while b.in_flight < b.spec.parallelism as usize
                && budget > 0
                && b.record.cursor != Cursor::Done
            {
                let (ws, next) = b.spec.selection.next_segment(
                    &b.def.schedule,
                    b.spec.order,
                    b.record.cursor,
                    1,
                );
                let Some(w) = ws.first().copied() else {
                    b.record.cursor = next;
                    changed = true;
                    continue;
                };
                budget -= 1;
                let tenant = b.record.tenant.clone();
                let key = (tenant.clone(), b.def.name.clone(), w.start);
                // Read before the lock; a window past what was read waits
                // for the next pass.
                let Some(latest) = prefetched
                    .windows
                    .get(&id)
                    .and_then(|m| m.get(&w.start))
                    .copied()
                else {
                    report.next_wake = Some(now);
                    break;
                };
                if busy.contains(&key) || latest.is_some_and(|r| !r.state.is_terminal()) {
                    // A window never has two active runs; the overlap
                    // policy says what gives way.
                    match b.spec.overlap {
                        Overlap::Wait => {
                            b.record.throttled =
                                Some(format!("waiting for the active run of window {}", w.start));
                            break;
                        }
                        Overlap::Skip => {
                            windows.push(BackfillWindow {
                                backfill: id,
                                workflow: b.def.name.clone(),
                                window_start: w.start,
                                window_end: w.end,
                                state: WindowState::Skipped,
                                run_id: latest.map(|r| r.run_id),
                                reason: backfill::SkipReason::Overlap.as_str().to_owned(),
                            });
                            b.record.skipped += 1;
                            b.record.cursor = next;
                            changed = true;
                            continue;
                        }
                        Overlap::CancelOther => {
                            let other = st.runs.values_mut().find(|r| {
                                r.tenant == tenant
                                    && r.workflow == b.def.name
                                    && r.window_start == w.start
                                    && r.trigger != Trigger::Event
                                    && !r.state.is_terminal()
                            });
                            if let Some(o) = other {
                                for t in &mut o.tasks {
                                    if matches!(
                                        t.state,
                                        crate::run::TaskState::Pending
                                            | crate::run::TaskState::Retrying
                                    ) {
                                        let _ = t.apply(TaskEvent::Cancel);
                                    }
                                }
                                if o.apply(crate::run::RunEvent::Cancel, now).is_ok() {
                                    tracing::info!(
                                        backfill = id,
                                        run = o.id,
                                        "cancelled the other run of the window"
                                    );
                                    cancelled.push(o.id);
                                }
                            }
                            b.record.throttled =
                                Some(format!("cancelling the other run of window {}", w.start));
                            break;
                        }
                    }
                }
                let mut window = BackfillWindow {
                    backfill: id,
                    workflow: b.def.name.clone(),
                    window_start: w.start,
                    window_end: w.end,
                    state: WindowState::Skipped,
                    run_id: None,
                    reason: String::new(),
                };
                match decide(b.spec.rerun, latest.map(|r| r.state)) {
                    Decision::Skip(r) => {
                        window.reason = r.as_str().to_owned();
                        b.record.skipped += 1;
                    }
                    Decision::Run(r) => {
                        if let Some(why) = over_budget(b, now) {
                            // The window stays next in the cursor: a
                            // resume starts it.
                            match b.record.state.apply(BackfillEvent::BudgetExceeded) {
                                Ok(s) => b.record.state = s,
                                Err(e) => tracing::error!(backfill = id, "{e}"),
                            }
                            tracing::warn!(backfill = id, %why, "backfill paused by its budget");
                            notices.push((
                                b.record.tenant.clone(),
                                crate::notify::Event::BackfillPaused {
                                    backfill: id,
                                    workflow: b.def.name.clone(),
                                    reason: why.clone(),
                                },
                            ));
                            b.record.pause_reason = Some(why);
                            changed = true;
                            break;
                        }
                        let run_id = match inner.store.next_run_id() {
                            Ok(i) => i,
                            Err(e) => {
                                tracing::error!(backfill = id, "allocating a run id: {e}");
                                break;
                            }
                        };
                        // A downstream stage runs its own workflow's
                        // version, not the selected workflow's.
                        let version = b
                            .record
                            .stage
                            .checked_sub(1)
                            .and_then(|i| b.record.stages.get(i))
                            .map_or(b.record.version, |s| s.version);
                        let mut run =
                            Run::new(run_id, &tenant, &b.def, version, w, Trigger::Backfill, now);
                        run.backfill = Some(id);
                        run.priority = Some(b.spec.priority);
                        let cause = if b.record.stage > 0 {
                            Cause::Cascade {
                                backfill: id,
                                upstream: cascade_sources(b, &heads, w),
                            }
                        } else if let Some(repair) = &b.record.repair {
                            Cause::GapRepair {
                                backfill: id,
                                reason: repair.reason(w.start).unwrap_or(r.as_str()).to_owned(),
                            }
                        } else {
                            Cause::Backfill {
                                backfill: id,
                                reason: r.as_str().to_owned(),
                            }
                        };
                        run.provenance = Provenance::new(cause, b.record.requested_by.clone());
                        if let Some(from) = &b.spec.from_task {
                            // Repair from `from` on: earlier tasks' outputs stand.
                            let keep = b.def.downstream_of(from);
                            for t in &mut run.tasks {
                                if !keep.contains(&t.name.as_str()) {
                                    let _ = t.apply(TaskEvent::Skip);
                                }
                            }
                        }
                        window.state = WindowState::Running;
                        window.run_id = Some(run_id);
                        window.reason = if b.record.stage > 0 {
                            backfill::RunReason::Downstream.as_str().to_owned()
                        } else {
                            r.as_str().to_owned()
                        };
                        b.record.running += 1;
                        b.record.actual.first_start_ms.get_or_insert(now);
                        b.in_flight += 1;
                        busy.insert(key);
                        new_runs.push(run);
                    }
                }
                windows.push(window);
                b.record.cursor = next;
                changed = true;
            }
            if b.record.throttled.is_some() != was_throttled.is_some() {
                match &b.record.throttled {
                    Some(why) => tracing::info!(backfill = id, %why, "backfill throttled"),
                    None => tracing::info!(backfill = id, "backfill no longer throttled"),
                }
            }
            changed |= b.record.throttled != was_throttled;
        }
        if !b.record.state.is_terminal()
            && b.record.state != BackfillState::Paused
            && b.record.cursor == Cursor::Done
            && b.in_flight == 0
        {
            if b.root.downstream != Downstream::None && !b.succeeded.is_empty() {
                add_downstream_stages(b, &heads, now);
            }
            if b.record.stages.len() > b.record.stage {
                // The stage's windows all ended: the next stage (a
                // downstream workflow) starts on the windows that succeeded.
                b.record.stage += 1;
                let stage = &b.record.stages[b.record.stage - 1];
                match heads
                    .iter()
                    .find(|(t, d, _)| *t == b.record.tenant && d.name == stage.workflow)
                {
                    Some((_, def, _)) => {
                        b.spec = Arc::new(stage_spec(&b.root, stage));
                        b.def = def.clone();
                        b.record.cursor = b.spec.selection.first_cursor(b.spec.order);
                        b.succeeded.clear();
                        tracing::info!(
                            backfill = id,
                            stage = b.record.stage,
                            workflow = stage.workflow,
                            windows = stage.windows.len(),
                            "backfill stage"
                        );
                    }
                    None => {
                        tracing::error!(
                            backfill = id,
                            workflow = stage.workflow,
                            "downstream workflow is gone; skipping its stage"
                        );
                        b.record.cursor = Cursor::Done;
                    }
                }
            } else {
                let failed = b.record.failed > 0;
                match b.record.state.apply(BackfillEvent::Finish { failed }) {
                    Ok(s) => b.record.state = s,
                    Err(e) => tracing::error!(backfill = id, "{e}"),
                }
                b.record.ended_ms = Some(now);
                tracing::info!(backfill = id, state = ?b.record.state, "backfill ended");
            }
            changed = true;
        }
        if changed {
            b.record.updated_ms = now;
            report.changed += 1;
            st.dirty_backfills.insert(id);
        }
        let tenant = b.record.tenant.clone();
        let finished = b.record.state.is_terminal() && b.in_flight == 0;
        for r in new_runs {
            st.dirty.insert(r.id);
            st.runs.insert(r.id, r);
            report.created += 1;
        }
        st.backfill_windows
            .extend(windows.into_iter().map(|w| (tenant.clone(), w)));
        if finished {
            if let Some(b) = st.backfills.remove(&id) {
                st.dirty_backfills.remove(&id);
                notices.push((
                    b.record.tenant.clone(),
                    crate::notify::Event::BackfillEnded { backfill: id },
                ));
                st.ended_backfills.push(b.record);
            }
        }
        // Runs cancelled by `cancel_other` with nothing in flight end now;
        // the others end when their last attempt does.
        for rid in cancelled {
            let idle = st.runs.get(&rid).is_some_and(|r| {
                !r.tasks
                    .iter()
                    .any(|t| t.state == crate::run::TaskState::Running)
            });
            if idle {
                st.end_run(rid, now);
            } else {
                st.dirty.insert(rid);
            }
        }
        st.notices.extend(notices);
    }
}

/// The windows of workflows this backfill repaired in earlier stages that
/// window `w` of the current stage's workflow depends on: where its cascade
/// came from.
fn cascade_sources(
    b: &ActiveBackfill,
    heads: &[(String, Arc<WorkflowDef>, u32)],
    w: crate::schedule::Window,
) -> Vec<UpstreamWindow> {
    let repaired: HashSet<&str> = std::iter::once(b.root.workflow.as_str())
        .chain(
            b.record.stages[..b.record.stage.saturating_sub(1)]
                .iter()
                .map(|s| s.workflow.as_str()),
        )
        .collect();
    let schedule_of = |name: &str| {
        heads
            .iter()
            .find(|(t, d, _)| *t == b.record.tenant && d.name == name)
            .map(|(_, d, _)| (d.schedule.clone(), d.start))
    };
    crate::planner::upstream_windows(&b.def, w, &schedule_of)
        .into_iter()
        .filter(|u| repaired.contains(u.workflow.as_str()))
        .map(|u| UpstreamWindow {
            workflow: u.workflow,
            window_start: u.window_start,
            window_end: u.window_end,
        })
        .collect()
}

/// Why the next window of `b` would pass its budget, unless a resume
/// lifted it.
fn over_budget(b: &ActiveBackfill, now: i64) -> Option<String> {
    if b.record.budget_lifted {
        return None;
    }
    let r = &b.record;
    let ended = r.succeeded + r.failed + r.cancelled;
    backfill::budget_exceeded(&b.spec.budget, &r.actual, ended, b.in_flight as u64, now)
}

/// Records the end of a backfill's run in its window and statistics.
pub(super) fn run_ended(st: &mut EngineState, run: &Run, now: i64) {
    let Some(id) = run.backfill else { return };
    let Some(b) = st.backfills.get_mut(&id) else {
        return;
    };
    let (state, reason) = match run.state {
        RunState::Succeeded if run.workflow != b.record.request.workflow => (
            WindowState::Succeeded,
            format!("{}: succeeded", backfill::RunReason::Downstream.as_str()),
        ),
        RunState::Succeeded => (WindowState::Succeeded, "succeeded".to_owned()),
        RunState::Cancelled => (WindowState::Cancelled, "cancelled".to_owned()),
        _ => {
            let err = run
                .tasks
                .iter()
                .find_map(|t| t.last_error.clone())
                .unwrap_or_else(|| "failed".into());
            (WindowState::Failed, err)
        }
    };
    b.record.running = b.record.running.saturating_sub(1);
    match state {
        WindowState::Succeeded => b.record.succeeded += 1,
        WindowState::Cancelled => b.record.cancelled += 1,
        _ => b.record.failed += 1,
    }
    b.in_flight = b.in_flight.saturating_sub(1);
    b.record.updated_ms = now;
    if state == WindowState::Succeeded {
        b.succeeded.push((run.workflow.clone(), run.window()));
    }
    if let Some(max) = b.spec.max_failed_windows {
        let stopped = b.record.state.apply(BackfillEvent::FailureLimit);
        if let (true, Ok(s)) = (b.record.failed >= max as u64, stopped) {
            b.record.state = s;
            b.record.ended_ms = Some(now);
            tracing::warn!(
                backfill = id,
                failed = b.record.failed,
                "backfill stopped: max_failed_windows reached"
            );
        }
    }
    let window = BackfillWindow {
        backfill: id,
        workflow: run.workflow.clone(),
        window_start: run.window_start,
        window_end: run.window_end,
        state,
        run_id: Some(run.id),
        reason,
    };
    let tenant = b.record.tenant.clone();
    st.dirty_backfills.insert(id);
    st.backfill_windows.push((tenant, window));
}

/// Appends (or merges into a pending stage) the direct downstream windows of
/// the current stage's succeeded windows.
fn add_downstream_stages(
    b: &mut ActiveBackfill,
    heads: &[(String, Arc<WorkflowDef>, u32)],
    now: i64,
) {
    let defs: Vec<&WorkflowDef> = heads
        .iter()
        .filter(|(t, _, _)| *t == b.record.tenant)
        .map(|(_, d, _)| d.as_ref())
        .collect();
    let mut succeeded = std::mem::take(&mut b.succeeded);
    succeeded.sort();
    succeeded.dedup();
    let mut by_workflow: Vec<(String, Vec<crate::schedule::Window>)> = Vec::new();
    for (wf, w) in succeeded {
        // `direct` cascades from the selected workflow only.
        if b.root.downstream == Downstream::Direct && wf != b.root.workflow {
            continue;
        }
        match by_workflow.last_mut() {
            Some((last, ws)) if *last == wf => ws.push(w),
            _ => by_workflow.push((wf, vec![w])),
        }
    }
    let scope = b.root.scope.clone();
    let steps = by_workflow
        .iter()
        .flat_map(|(wf, ws)| cascade(&defs, wf, ws, Downstream::Direct, &scope));
    for step in steps {
        let Some(version) = heads
            .iter()
            .find(|(t, d, _)| *t == b.record.tenant && d.name == step.workflow)
            .map(|h| h.2)
        else {
            continue;
        };
        // Only windows that have closed: an open window is not stale yet.
        let starts: Vec<i64> = step
            .windows
            .iter()
            .filter(|w| w.end <= now)
            .map(|w| w.start)
            .collect();
        if starts.is_empty() {
            continue;
        }
        let pending = b.record.stage;
        match b.record.stages[pending..]
            .iter_mut()
            .find(|s| s.workflow == step.workflow)
        {
            Some(stage) => {
                stage.windows.extend(starts);
                stage.windows.sort_unstable();
                stage.windows.dedup();
            }
            None => b.record.stages.push(crate::store::Stage {
                workflow: step.workflow.clone(),
                version,
                windows: starts,
            }),
        }
    }
}
