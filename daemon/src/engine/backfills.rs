//! Backfills in the engine: creation (and dry-run plans), materialization
//! of windows from the durable cursor as capacity frees, per-window records,
//! and the lifecycle (pause, resume, cancel).

use std::sync::Arc;

pub(super) use super::materialize::{advance, run_ended};
use super::plan::Plan;
use super::{Engine, EngineError};
use crate::backfill::{self, BackfillEvent, BackfillSpec, RawBackfillRequest};
use crate::run::Requester;
use crate::store::{BackfillRecord, BackfillState, WindowState};
use crate::workflow::WorkflowDef;

/// Most plan entries a dry run returns.
pub const PLAN_LIMIT: usize = 100_000;
/// Most plan entries evaluated for the estimate stored at creation (a
/// dry run evaluates up to `PLAN_LIMIT`): creating a huge backfill stays
/// cheap, and the estimate says it was cut.
const CREATE_ESTIMATE_LIMIT: usize = 10_000;
/// Windows a backfill may evaluate per scheduling pass (bounded work per
/// tick, whatever its size).
pub(super) const EVAL_PER_TICK: usize = 1_000;

/// A backfill in memory.
pub(super) struct ActiveBackfill {
    pub record: BackfillRecord,
    /// The request as validated for the selected workflow.
    pub root: BackfillSpec,
    /// The current stage: the selection's windows (stage 0) or one
    /// downstream workflow's. Shared so a scheduling pass can plan its
    /// reads outside the engine lock without copying a stage's windows.
    pub spec: Arc<BackfillSpec>,
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
            spec: Arc::new(spec),
            def,
            in_flight,
            succeeded,
        })
    }
}

/// A downstream stage runs every one of its windows (the repair upstream
/// makes them stale), with the request's mode, parallelism and order.
pub(super) fn stage_spec(root: &BackfillSpec, stage: &crate::store::Stage) -> BackfillSpec {
    BackfillSpec {
        workflow: stage.workflow.clone(),
        selection: backfill::Selection::Windows(stage.windows.clone()),
        rerun: backfill::Rerun::All,
        from_task: None,
        ..root.clone()
    }
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
        self.create_backfill_by(tenant, raw, Requester::Unrecorded)
            .await
    }

    /// [`Engine::create_backfill`] on behalf of `requested_by`, whom its
    /// runs name too.
    pub async fn create_backfill_by(
        &self,
        tenant: &str,
        raw: RawBackfillRequest,
        requested_by: Requester,
    ) -> Result<Result<BackfillRecord, Plan>, EngineError> {
        self.create_backfill_as(tenant, raw, requested_by, None, None)
            .await
    }

    /// [`Engine::create_backfill_by`] for a gap repair (`repair`), created
    /// paused with `paused_because` when given (a proposal to approve).
    pub(super) async fn create_backfill_as(
        &self,
        tenant: &str,
        raw: RawBackfillRequest,
        requested_by: Requester,
        repair: Option<crate::gap::RepairOrigin>,
        paused_because: Option<String>,
    ) -> Result<Result<BackfillRecord, Plan>, EngineError> {
        let (version, def) = self.backfill_def(tenant, &raw)?;
        let spec = raw.validate(&def)?;
        raw.check_start_at(self.inner.clock.now_ms())?;
        {
            let heads = self.tenant_heads(tenant);
            let refs: Vec<&WorkflowDef> = heads.iter().map(|d| d.as_ref()).collect();
            spec.scope.check(&refs, &def.name, spec.downstream)?;
        }
        if spec.dry_run {
            let mut plan = self.plan(tenant, &spec, &def, PLAN_LIMIT)?;
            plan.estimate = self.estimate_plan(tenant, &spec, &def, version, &plan)?;
            plan.waiting = spec.waiting(self.inner.clock.now_ms()).map(|(_, why)| why);
            return Ok(Err(plan));
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
        let plan = self.plan(tenant, &spec, &def, CREATE_ESTIMATE_LIMIT)?;
        let estimate = self.estimate_plan(tenant, &spec, &def, version, &plan)?;
        let now = self.inner.clock.now_ms();
        let record = BackfillRecord {
            id: self.inner.store.next_run_id()?,
            tenant: tenant.to_owned(),
            request: raw,
            version,
            // The one state not reached through the transition function:
            // a backfill is born running, or paused as a proposal.
            state: if paused_because.is_some() {
                BackfillState::Paused
            } else {
                BackfillState::Running
            },
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
            estimate: Some(estimate),
            actual: Default::default(),
            pause_reason: paused_because,
            budget_lifted: false,
            requested_by,
            repair,
        };
        {
            let mut st = self.inner.lock();
            st.dirty_backfills.insert(record.id);
            st.backfills.insert(
                record.id,
                ActiveBackfill {
                    record: record.clone(),
                    root: spec.clone(),
                    spec: Arc::new(spec),
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
                        state: b.state.as_str().to_owned(),
                    },
                    None => EngineError::BackfillNotFound(id),
                });
            };
            let event = match action {
                BackfillAction::Pause => BackfillEvent::Pause,
                BackfillAction::Resume => BackfillEvent::Resume,
                BackfillAction::Cancel { .. } => BackfillEvent::Cancel,
                BackfillAction::RetryFailed => BackfillEvent::RetryFailed,
            };
            let from = b.record.state;
            b.record.state = transition(id, from, event)?;
            b.record.updated_ms = now;
            match action {
                BackfillAction::Pause if from == BackfillState::Running => {
                    b.record.pause_reason = Some("paused on request".into());
                }
                BackfillAction::Resume if from == BackfillState::Paused => {
                    // Resuming a backfill its budget paused goes on past
                    // the budget: the operator has seen the cost.
                    let by_budget = b
                        .record
                        .pause_reason
                        .take()
                        .is_some_and(|r| r.starts_with("budget:"));
                    b.record.budget_lifted |= by_budget;
                }
                _ => {}
            }
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
            // or are interrupted. A run may end between collecting it above
            // and cancelling it here: it then needs nothing.
            match self.cancel_run_with(tenant, run, interrupt).await {
                Ok(_) | Err(EngineError::AlreadyEnded { .. }) => {}
                Err(e) => return Err(e),
            }
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
        let retried = transition(id, record.state, BackfillEvent::RetryFailed)?;
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
                state: format!("{} with no failed windows", record.state.as_str()),
            });
        }
        let n = runs.len() as u64;
        record.failed = record.failed.saturating_sub(n);
        record.running += n;
        record.state = retried;
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

/// A backfill's next state under `event`, or the error a caller gets.
pub(super) fn transition(
    id: u64,
    state: BackfillState,
    event: BackfillEvent,
) -> Result<BackfillState, EngineError> {
    state.apply(event).map_err(|e| {
        if e.from.is_terminal() {
            let state = match e.event {
                BackfillEvent::RetryFailed => format!("{}; {}", e.from.as_str(), e.why),
                _ => e.from.as_str().to_owned(),
            };
            EngineError::BackfillEnded { id, state }
        } else {
            EngineError::BackfillActive { id }
        }
    })
}
