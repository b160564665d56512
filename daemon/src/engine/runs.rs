//! Runs on demand: run a window now, retry from the failed task, cancel
//! (optionally interrupting attempts in flight), and reading runs and
//! their attempts.

use super::{Engine, EngineError};
use crate::executor::Trigger;
use crate::run::{
    Cause, Provenance, Requester, RetryRequest, Run, RunEvent, RunState, TaskEvent, TaskState,
};
use crate::store::AttemptRecord;

impl Engine {
    /// Creates a run of the window of `workflow` that contains `at`, now;
    /// who asked is not recorded (callers inside the daemon and tests).
    pub async fn run_window(
        &self,
        tenant: &str,
        workflow: &str,
        at: i64,
        trigger: Trigger,
    ) -> Result<Run, EngineError> {
        self.run_window_by(tenant, workflow, at, trigger, Requester::Unrecorded)
            .await
    }

    /// [`Engine::run_window`] on behalf of `requested_by`.
    pub async fn run_window_by(
        &self,
        tenant: &str,
        workflow: &str,
        at: i64,
        trigger: Trigger,
        requested_by: Requester,
    ) -> Result<Run, EngineError> {
        let head = self
            .workflow(tenant, workflow)
            .ok_or_else(|| EngineError::WorkflowNotFound(workflow.to_owned()))?;
        let window =
            head.def
                .schedule
                .window_containing(at)
                .ok_or_else(|| EngineError::NoWindow {
                    workflow: workflow.to_owned(),
                    at,
                })?;
        if let Some(w) = self
            .inner
            .store
            .window_get(tenant, workflow, window.start)?
        {
            if !w.state.is_terminal() {
                return Err(EngineError::WindowBusy {
                    workflow: workflow.to_owned(),
                    start: window.start,
                    run_id: w.run_id,
                });
            }
        }
        let id = self.inner.store.next_run_id()?;
        let run = Run::new(
            id,
            tenant,
            &head.def,
            head.version,
            window,
            trigger,
            self.inner.clock.now_ms(),
        )
        .with_provenance(Provenance::new(Cause::Manual { at }, requested_by));
        {
            let mut st = self.inner.lock();
            if let Some(busy) = st.runs.values().find(|r| {
                r.tenant == tenant
                    && r.workflow == workflow
                    && r.window_start == window.start
                    && r.trigger != Trigger::Event
            }) {
                // Active in memory, durable or not (a live run created this
                // pass is not in the index yet).
                return Err(EngineError::WindowBusy {
                    workflow: workflow.to_owned(),
                    start: window.start,
                    run_id: busy.id,
                });
            }
            st.runs.insert(id, run.clone());
            st.dirty.insert(id);
        }
        self.inner.persist().await?;
        self.inner.wake.notify_one();
        Ok(run)
    }

    /// Re-runs a failed or cancelled run from its failed tasks; tasks that
    /// succeeded are not run again. Who asked is not recorded (callers
    /// inside the daemon and tests).
    pub async fn retry_run(&self, tenant: &str, id: u64) -> Result<Run, EngineError> {
        self.retry_run_by(tenant, id, Requester::Unrecorded).await
    }

    /// [`Engine::retry_run`] on behalf of `requested_by`, recorded with the
    /// time in the run's provenance (its cause stays the original one).
    pub async fn retry_run_by(
        &self,
        tenant: &str,
        id: u64,
        requested_by: Requester,
    ) -> Result<Run, EngineError> {
        let mut run = self.run(tenant, id)?.ok_or(EngineError::RunNotFound(id))?;
        if !matches!(run.state, RunState::Failed | RunState::Cancelled) {
            return Err(EngineError::NotRetryable {
                run_id: id,
                state: run.state.as_str(),
            });
        }
        if let Some(w) = self
            .inner
            .store
            .window_get(tenant, &run.workflow, run.window_start)?
        {
            if w.run_id != id && !w.state.is_terminal() {
                return Err(EngineError::WindowBusy {
                    workflow: run.workflow.clone(),
                    start: run.window_start,
                    run_id: w.run_id,
                });
            }
        }
        let now = self.inner.clock.now_ms();
        run.reset_failed(now)?;
        run.provenance.retries.push(RetryRequest {
            requested_by,
            at: now,
        });
        {
            let mut st = self.inner.lock();
            // The index shows durable runs only; memory the newer ones.
            if let Some(busy) = st
                .window_run(tenant, &run.workflow, run.window_start)
                .filter(|r| r.id != id && !r.state.is_terminal())
            {
                return Err(EngineError::WindowBusy {
                    workflow: run.workflow.clone(),
                    start: run.window_start,
                    run_id: busy.id,
                });
            }
            let key = (run.tenant.clone(), run.workflow.clone(), run.version);
            if self.inner.def_for(&st, &run).is_none() {
                let def = self.inner.load_version(&key.0, &key.1, key.2)?;
                st.versions.insert(key, def);
            }
            st.runs.insert(id, run.clone());
            st.dirty.insert(id);
        }
        self.inner.persist().await?;
        self.inner.wake.notify_one();
        Ok(run)
    }

    /// Cancels a run that has not ended; attempts in flight finish, their
    /// results are recorded, and nothing else of the run starts.
    pub async fn cancel_run(&self, tenant: &str, id: u64) -> Result<Run, EngineError> {
        self.cancel_run_with(tenant, id, false).await
    }

    /// [`Engine::cancel_run`]; with `interrupt`, attempts in flight are
    /// stopped too (they end as `cancelled`, their writes dropped).
    pub async fn cancel_run_with(
        &self,
        tenant: &str,
        id: u64,
        interrupt: bool,
    ) -> Result<Run, EngineError> {
        let now = self.inner.clock.now_ms();
        let run = {
            let mut st = self.inner.lock();
            if interrupt && st.runs.get(&id).is_some_and(|r| r.tenant == tenant) {
                if let Some(flag) = st.cancel_flags.get(&id) {
                    flag.raise();
                }
            }
            let run = match st.runs.get_mut(&id) {
                Some(r) if r.tenant == tenant => r,
                _ => {
                    drop(st);
                    return Err(match self.inner.store.run_get(tenant, id)? {
                        Some(r) => EngineError::AlreadyEnded {
                            run_id: id,
                            state: r.state.as_str(),
                        },
                        None => EngineError::RunNotFound(id),
                    });
                }
            };
            for t in &mut run.tasks {
                if matches!(t.state, TaskState::Pending | TaskState::Retrying) {
                    let _ = t.apply(TaskEvent::Cancel);
                }
            }
            let _ = run.apply(RunEvent::Cancel, now);
            let run = run.clone();
            if !run.tasks.iter().any(|t| t.state == TaskState::Running) {
                st.end_run(id, now);
            } else {
                st.dirty.insert(id);
            }
            run
        };
        self.inner.persist().await?;
        Ok(run)
    }

    /// A run, active or not.
    pub fn run(&self, tenant: &str, id: u64) -> Result<Option<Run>, EngineError> {
        if let Some(r) = self
            .inner
            .lock()
            .runs
            .get(&id)
            .filter(|r| r.tenant == tenant)
        {
            return Ok(Some(r.clone()));
        }
        Ok(self.inner.store.run_get(tenant, id)?)
    }

    /// The latest run of each window of `workflow` starting in `[from, to)`.
    pub fn runs_of(
        &self,
        tenant: &str,
        workflow: &str,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<Run>, EngineError> {
        let mut out = Vec::new();
        for (_, w) in self
            .inner
            .store
            .windows(tenant, workflow, from, to, limit)?
        {
            if let Some(r) = self.run(tenant, w.run_id)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    pub fn attempts(&self, tenant: &str, run_id: u64) -> Result<Vec<AttemptRecord>, EngineError> {
        Ok(self.inner.store.attempts(tenant, run_id)?)
    }
}
