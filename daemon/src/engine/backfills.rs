//! Backfills in the engine: creation (and dry-run plans), materialization
//! of windows from the durable cursor as capacity frees, per-window records,
//! and the lifecycle (pause, resume, cancel).

use std::collections::HashSet;
use std::sync::Arc;

use serde::Serialize;

use super::{Engine, EngineError, EngineState, Inner, TickReport};
use crate::backfill::Overlap;
use crate::backfill::{
    self, cascade, decide, BackfillSpec, Cursor, Decision, Downstream, Order, RawBackfillRequest,
};
use crate::executor::Trigger;
use crate::run::{Run, RunState, TaskEvent};
use crate::store::{BackfillRecord, BackfillState, BackfillWindow, WindowState};
use crate::workflow::WorkflowDef;

/// Most plan entries a dry run returns.
pub const PLAN_LIMIT: usize = 100_000;
/// Windows a backfill may evaluate per scheduling pass (bounded work per
/// tick, whatever its size).
const EVAL_PER_TICK: usize = 1_000;

/// A backfill in memory.
pub(super) struct ActiveBackfill {
    pub record: BackfillRecord,
    /// The request as validated for the selected workflow.
    pub root: BackfillSpec,
    /// The current stage: the selection's windows (stage 0) or one
    /// downstream workflow's.
    pub spec: BackfillSpec,
    pub def: Arc<WorkflowDef>,
    /// Runs of it that have not ended.
    pub in_flight: usize,
    /// Windows that succeeded since the stage began, by workflow: the next
    /// stages are the downstream of exactly these. Retry-failed can add
    /// windows of earlier stages' workflows; their downstream runs then too.
    pub succeeded: Vec<(String, crate::schedule::Window)>,
}

impl ActiveBackfill {
    /// Builds the in-memory state for `record`'s current stage. `def_of`
    /// loads a workflow version.
    pub fn new(
        record: BackfillRecord,
        root: BackfillSpec,
        root_def: Arc<WorkflowDef>,
        def_of: impl Fn(&str, u32) -> Result<Arc<WorkflowDef>, EngineError>,
        in_flight: usize,
        succeeded: Vec<(String, crate::schedule::Window)>,
    ) -> Result<Self, EngineError> {
        let (spec, def) = match record
            .stage
            .checked_sub(1)
            .and_then(|i| record.stages.get(i))
        {
            None => (root.clone(), root_def),
            Some(stage) => (
                stage_spec(&root, stage),
                def_of(&stage.workflow, stage.version)?,
            ),
        };
        Ok(ActiveBackfill {
            record,
            root,
            spec,
            def,
            in_flight,
            succeeded,
        })
    }
}

/// A downstream stage runs every one of its windows (the repair upstream
/// makes them stale), with the request's mode, parallelism and order.
fn stage_spec(root: &BackfillSpec, stage: &crate::store::Stage) -> BackfillSpec {
    BackfillSpec {
        workflow: stage.workflow.clone(),
        selection: backfill::Selection::Windows(stage.windows.clone()),
        rerun: backfill::Rerun::All,
        from_task: None,
        ..root.clone()
    }
}

/// One line of a dry-run plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanEntry {
    pub workflow: String,
    pub window_start: i64,
    pub window_end: i64,
    /// `run` or `skip`.
    pub action: &'static str,
    pub reason: String,
}

/// What a dry run would do, in execution order.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub entries: Vec<PlanEntry>,
    pub runs: usize,
    pub skips: usize,
    /// More windows exist than `PLAN_LIMIT`.
    pub truncated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackfillAction {
    Pause,
    Resume,
    /// With `interrupt`, attempts in flight are stopped; otherwise they finish
    /// and are recorded.
    Cancel {
        interrupt: bool,
    },
    /// Re-run the failed windows of an ended backfill from their failed tasks.
    RetryFailed,
}

impl Engine {
    fn backfill_def(
        &self,
        tenant: &str,
        raw: &RawBackfillRequest,
    ) -> Result<(u32, Arc<WorkflowDef>), EngineError> {
        let head = self
            .workflow(tenant, &raw.workflow)
            .ok_or_else(|| EngineError::WorkflowNotFound(raw.workflow.clone()))?;
        match raw.version {
            None => Ok((head.version, head.def)),
            Some(v) if v == head.version => Ok((v, head.def)),
            Some(v) => Ok((v, self.inner.load_version(tenant, &raw.workflow, v)?)),
        }
    }

    /// Validates a backfill request; a dry run returns its plan and changes
    /// nothing, otherwise the backfill is stored and starts.
    pub async fn create_backfill(
        &self,
        tenant: &str,
        raw: RawBackfillRequest,
    ) -> Result<Result<BackfillRecord, Plan>, EngineError> {
        let (version, def) = self.backfill_def(tenant, &raw)?;
        let spec = raw.validate(&def)?;
        if spec.dry_run {
            return Ok(Err(self.plan(tenant, &spec, &def)?));
        }
        let estimated_total = match &spec.selection {
            backfill::Selection::Windows(w) => Some(w.len() as u64),
            backfill::Selection::Range { start, end } => def
                .schedule
                .windows(*start, *end)
                .next()
                .map(|w| ((end - w.start) as f64 / w.duration_ms().max(1) as f64).ceil() as u64),
        };
        let ceiling = self.inner.quotas(tenant).backfill_windows;
        if let Some(n) = estimated_total.filter(|n| *n > ceiling) {
            return Err(crate::quota::QuotaError::exceeded(
                "backfill_windows",
                ceiling,
                format!("the selection has about {n} windows; split it into several backfills"),
            )
            .into());
        }
        let now = self.inner.clock.now_ms();
        let record = BackfillRecord {
            id: self.inner.store.next_run_id()?,
            tenant: tenant.to_owned(),
            request: raw,
            version,
            state: BackfillState::Running,
            cursor: spec.selection.first_cursor(spec.order),
            running: 0,
            succeeded: 0,
            failed: 0,
            skipped: 0,
            cancelled: 0,
            created_ms: now,
            updated_ms: now,
            ended_ms: None,
            throttled: None,
            stage: 0,
            stages: Vec::new(),
            estimated_total,
        };
        {
            let mut st = self.inner.lock();
            st.dirty_backfills.insert(record.id);
            st.backfills.insert(
                record.id,
                ActiveBackfill {
                    record: record.clone(),
                    root: spec.clone(),
                    spec,
                    def,
                    in_flight: 0,
                    succeeded: Vec::new(),
                },
            );
        }
        self.inner.persist().await?;
        tracing::info!(
            backfill = record.id,
            workflow = record.request.workflow,
            "backfill created"
        );
        self.inner.wake.notify_one();
        Ok(Ok(record))
    }

    fn plan(
        &self,
        tenant: &str,
        spec: &BackfillSpec,
        def: &WorkflowDef,
    ) -> Result<Plan, EngineError> {
        let mut entries = Vec::new();
        let mut repaired = Vec::new();
        let mut cursor = spec.selection.first_cursor(spec.order);
        let mut truncated = false;
        while cursor != Cursor::Done {
            let (ws, next) = spec
                .selection
                .next_segment(&def.schedule, spec.order, cursor, 1024);
            for w in ws {
                if entries.len() >= PLAN_LIMIT {
                    truncated = true;
                    break;
                }
                let latest = self
                    .inner
                    .store
                    .window_get(tenant, &def.name, w.start)?
                    .map(|r| r.state);
                let (action, reason) = match decide(spec.rerun, latest) {
                    Decision::Run(r) => {
                        repaired.push(w);
                        ("run", r.as_str().to_owned())
                    }
                    Decision::Skip(r) => ("skip", r.as_str().to_owned()),
                };
                entries.push(PlanEntry {
                    workflow: def.name.clone(),
                    window_start: w.start,
                    window_end: w.end,
                    action,
                    reason,
                });
            }
            if truncated {
                break;
            }
            cursor = next;
        }
        if spec.downstream != Downstream::None {
            repaired.sort();
            let heads: Vec<Arc<WorkflowDef>> = self
                .inner
                .lock()
                .heads
                .iter()
                .filter(|((t, _), _)| t == tenant)
                .map(|(_, l)| l.def.clone())
                .collect();
            let refs: Vec<&WorkflowDef> = heads.iter().map(|d| d.as_ref()).collect();
            for step in cascade(&refs, &def.name, &repaired, spec.downstream) {
                let now = self.inner.clock.now_ms();
                let mut windows: Vec<_> =
                    step.windows.into_iter().filter(|w| w.end <= now).collect();
                if spec.order == Order::Desc {
                    windows.reverse();
                }
                for w in windows {
                    if entries.len() >= PLAN_LIMIT {
                        truncated = true;
                        break;
                    }
                    entries.push(PlanEntry {
                        workflow: step.workflow.clone(),
                        window_start: w.start,
                        window_end: w.end,
                        action: "run",
                        reason: format!(
                            "{} (depth {}), after its upstream windows",
                            backfill::RunReason::Downstream.as_str(),
                            step.depth
                        ),
                    });
                }
            }
        }
        let runs = entries.iter().filter(|e| e.action == "run").count();
        Ok(Plan {
            skips: entries.len() - runs,
            runs,
            entries,
            truncated,
        })
    }

    /// A backfill, active or ended.
    pub fn backfill(&self, tenant: &str, id: u64) -> Result<Option<BackfillRecord>, EngineError> {
        if let Some(b) = self
            .inner
            .lock()
            .backfills
            .get(&id)
            .filter(|b| b.record.tenant == tenant)
        {
            return Ok(Some(b.record.clone()));
        }
        Ok(self.inner.store.backfill_get(tenant, id)?)
    }

    pub async fn backfill_action(
        &self,
        tenant: &str,
        id: u64,
        action: BackfillAction,
    ) -> Result<BackfillRecord, EngineError> {
        if action == BackfillAction::RetryFailed {
            return self.retry_failed(tenant, id).await;
        }
        let now = self.inner.clock.now_ms();
        let (record, to_cancel) = {
            let mut st = self.inner.lock();
            let Some(b) = st
                .backfills
                .get_mut(&id)
                .filter(|b| b.record.tenant == tenant)
            else {
                drop(st);
                return Err(match self.inner.store.backfill_get(tenant, id)? {
                    Some(b) => EngineError::BackfillEnded {
                        id,
                        state: format!("{:?}", b.state).to_lowercase(),
                    },
                    None => EngineError::BackfillNotFound(id),
                });
            };
            let state = b.record.state;
            b.record.state = match (action, state) {
                (_, s) if s.is_terminal() => {
                    return Err(EngineError::BackfillEnded {
                        id,
                        state: format!("{s:?}").to_lowercase(),
                    })
                }
                (BackfillAction::Pause, _) => BackfillState::Paused,
                (BackfillAction::Resume, _) => BackfillState::Running,
                (BackfillAction::Cancel { .. }, _) => BackfillState::Cancelled,
                (BackfillAction::RetryFailed, _) => {
                    return Err(EngineError::BackfillActive { id });
                }
            };
            b.record.updated_ms = now;
            let mut to_cancel = Vec::new();
            if matches!(action, BackfillAction::Cancel { .. }) {
                b.record.ended_ms = Some(now);
                to_cancel = st
                    .runs
                    .values()
                    .filter(|r| r.backfill == Some(id) && !r.state.is_terminal())
                    .map(|r| r.id)
                    .collect();
            }
            let record = st.backfills[&id].record.clone();
            st.dirty_backfills.insert(id);
            (record, to_cancel)
        };
        let interrupt = matches!(action, BackfillAction::Cancel { interrupt: true });
        for run in to_cancel {
            // Nothing new starts; attempts in flight finish and are recorded,
            // or are interrupted.
            self.cancel_run_with(tenant, run, interrupt).await?;
        }
        self.inner.persist().await?;
        tracing::info!(backfill = id, ?action, "backfill lifecycle");
        self.inner.wake.notify_one();
        Ok(record)
    }
}

impl Engine {
    /// Same backfill id, same statistics (failed windows move back to
    /// running); every failed window's run resumes from its failed task, and
    /// tasks that succeeded in it are not run again.
    async fn retry_failed(&self, tenant: &str, id: u64) -> Result<BackfillRecord, EngineError> {
        if self
            .inner
            .lock()
            .backfills
            .get(&id)
            .is_some_and(|b| b.record.tenant == tenant)
        {
            return Err(EngineError::BackfillActive { id });
        }
        let mut record = self
            .inner
            .store
            .backfill_get(tenant, id)?
            .ok_or(EngineError::BackfillNotFound(id))?;
        if record.state == BackfillState::Cancelled {
            return Err(EngineError::BackfillEnded {
                id,
                state: "cancelled; create a new backfill".into(),
            });
        }
        let def = self
            .inner
            .load_version(tenant, &record.request.workflow, record.version)?;
        let spec = record.request.validate(&def)?;
        let now = self.inner.clock.now_ms();
        // Collect the failed windows and reset their runs.
        let mut runs = Vec::new();
        let mut windows = Vec::new();
        let mut after: Option<(String, i64)> = None;
        loop {
            let page = self.inner.store.backfill_windows(
                tenant,
                id,
                after.as_ref().map(|(w, t)| (w.as_str(), *t)),
                1000,
            )?;
            let last_page = page.len() < 1000;
            for mut w in page {
                after = Some((w.workflow.clone(), w.window_start));
                if w.state != WindowState::Failed {
                    continue;
                }
                let Some(run_id) = w.run_id else { continue };
                let Some(mut run) = self.inner.store.run_get(tenant, run_id)? else {
                    continue;
                };
                if let Some(latest) =
                    self.inner
                        .store
                        .window_get(tenant, &run.workflow, run.window_start)?
                {
                    if latest.run_id != run_id && !latest.state.is_terminal() {
                        return Err(EngineError::WindowBusy {
                            workflow: run.workflow.clone(),
                            start: run.window_start,
                            run_id: latest.run_id,
                        });
                    }
                }
                run.reset_failed(now)?;
                w.state = WindowState::Running;
                w.reason = "retry-failed: resuming from the failed task".into();
                runs.push(run);
                windows.push(w);
            }
            if last_page {
                break;
            }
        }
        if runs.is_empty() {
            return Err(EngineError::BackfillEnded {
                id,
                state: format!("{:?} with no failed windows", record.state).to_lowercase(),
            });
        }
        let n = runs.len() as u64;
        record.failed = record.failed.saturating_sub(n);
        record.running += n;
        record.state = BackfillState::Running;
        record.ended_ms = None;
        record.updated_ms = now;
        {
            let mut st = self.inner.lock();
            for r in runs {
                st.dirty.insert(r.id);
                st.runs.insert(r.id, r);
            }
            st.backfill_windows
                .extend(windows.into_iter().map(|w| (tenant.to_owned(), w)));
            st.dirty_backfills.insert(id);
            let active = ActiveBackfill::new(
                record.clone(),
                spec,
                def,
                |wf, v| self.inner.load_version(tenant, wf, v),
                n as usize,
                Vec::new(),
            )?;
            st.backfills.insert(id, active);
        }
        self.inner.persist().await?;
        tracing::info!(backfill = id, windows = n, "retrying failed windows");
        self.inner.wake.notify_one();
        Ok(record)
    }
}

/// Starts the next windows of every running backfill, up to its free
/// parallelism, and finishes backfills with nothing left.
pub(super) fn advance(inner: &Inner, st: &mut EngineState, now: i64, report: &mut TickReport) {
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
                let latest = match inner.store.window_get(&tenant, &b.def.name, w.start) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(backfill = id, "reading window state: {e}");
                        break;
                    }
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
                        let run_id = match inner.store.next_run_id() {
                            Ok(i) => i,
                            Err(e) => {
                                tracing::error!(backfill = id, "allocating a run id: {e}");
                                break;
                            }
                        };
                        let mut run = Run::new(
                            run_id,
                            &tenant,
                            &b.def,
                            b.record.version,
                            w,
                            Trigger::Backfill,
                            now,
                        );
                        run.backfill = Some(id);
                        run.priority = Some(b.spec.priority);
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
                        b.spec = stage_spec(&b.root, stage);
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
                b.record.state = if b.record.failed > 0 {
                    BackfillState::Failed
                } else {
                    BackfillState::Succeeded
                };
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
                if let Some(run) = st.runs.remove(&rid) {
                    st.dirty.remove(&rid);
                    run_ended(st, &run, now);
                    st.ended.push(run);
                }
            } else {
                st.dirty.insert(rid);
            }
        }
    }
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
        if b.record.failed >= max as u64 && b.record.state == BackfillState::Running {
            b.record.state = BackfillState::Failed;
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
    let steps = by_workflow
        .iter()
        .flat_map(|(wf, ws)| cascade(&defs, wf, ws, Downstream::Direct));
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
