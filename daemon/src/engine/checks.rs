//! Consistency checks of object-storage outputs: on request (a
//! backfill's `verify`) and declared by a workflow (`[checks] outputs =
//! "after_window"`), which the publisher runs once a window's run has
//! ended and records with the output.

use std::collections::HashMap;
use std::sync::Arc;

use super::*;
use crate::blob::{self, Container, WindowCheck};
use crate::store::{CheckState, OutputCheckRecord, OutputRecord};

impl EngineState {
    /// Remembers outputs committed with a pending check until their run
    /// ends (the sweep finds those a restart forgot).
    pub(super) fn await_checks(&mut self, run_id: u64, committed: &[(String, OutputRecord)]) {
        let waiting: Vec<_> = committed
            .iter()
            .filter(|(_, r)| r.check_pending())
            .cloned()
            .collect();
        if !waiting.is_empty() {
            self.check_waiting
                .entry(run_id)
                .or_default()
                .extend(waiting);
        }
    }

    /// Ended runs, now durable: their outputs' checks may run.
    pub(super) fn checks_due(&mut self, ended: impl IntoIterator<Item = u64>) {
        for id in ended {
            if self.runs.contains_key(&id) {
                continue; // retried meanwhile: it ends again later
            }
            if let Some(outputs) = self.check_waiting.remove(&id) {
                self.checks_ready.extend(outputs);
            }
        }
    }
}

impl Inner {
    /// Turns a check's findings into its record, counted and logged.
    pub(super) fn check_record(&self, tenant: &str, found: &WindowCheck) -> OutputCheckRecord {
        let passed = found.consistent();
        let outcome = if passed { "passed" } else { "failed" };
        let labels = crate::metrics::labels(&[("tenant", tenant), ("result", outcome)]);
        self.metrics.output_checks.get_or_create(&labels).inc();
        if !passed {
            tracing::warn!(
                tenant,
                workflow = found.workflow,
                task = found.task,
                connection = found.connection,
                window = found.window_start,
                manifest = ?found.manifest,
                missing = ?found.missing,
                size_mismatch = ?found.size_mismatch,
                checksum_mismatch = ?found.checksum_mismatch,
                extra = ?found.extra,
                "output check failed: the object store does not hold what was committed"
            );
        }
        OutputCheckRecord {
            state: if passed {
                CheckState::Passed
            } else {
                CheckState::Failed
            },
            checked_ms: Some(self.clock.now_ms()),
            manifest: Some(found.manifest),
            missing: found.missing.clone(),
            size_mismatch: found.size_mismatch.clone(),
            checksum_mismatch: found.checksum_mismatch.clone(),
            extra: found.extra.clone(),
        }
    }

    pub(super) fn run_active(&self, run_id: u64) -> bool {
        self.lock().runs.contains_key(&run_id)
    }

    /// Starts the checks of runs that have ended (and are durable).
    pub(super) fn start_checks(self: &Arc<Self>) {
        let ready = std::mem::take(&mut self.lock().checks_ready);
        if ready.is_empty() {
            return;
        }
        let inner = self.clone();
        tokio::spawn(async move { inner.publish_outputs(ready).await });
    }

    /// Re-reads the published outputs of `workflow`'s windows in
    /// `[since, until)` and compares them with what was committed.
    pub(super) async fn verify_outputs(
        &self,
        tenant: &str,
        workflow: &str,
        since: i64,
        until: i64,
    ) -> Result<Vec<WindowCheck>, EngineError> {
        let records = self.store.outputs_of(tenant, workflow, since, until)?;
        let staging = self.store.staging_all()?;
        let mut out = Vec::with_capacity(records.len());
        let mut conns: HashMap<String, Container> = HashMap::new();
        for r in records {
            if !conns.contains_key(&r.connection) {
                let Some(conn) = self.store.connection_get(tenant, &r.connection)? else {
                    continue;
                };
                let c = self
                    .container(tenant, &conn)
                    .await
                    .map_err(EngineError::Blob)?;
                conns.insert(r.connection.clone(), c);
            }
            let c = &conns[&r.connection];
            let live: Vec<String> = staging
                .iter()
                .filter(|(t, s)| t == tenant && s.workflow == r.workflow && s.task == r.task)
                .map(|(_, s)| s.prefix.clone())
                .collect();
            out.push(
                blob::check_output(c, &r, &live)
                    .await
                    .map_err(EngineError::Blob)?,
            );
        }
        Ok(out)
    }
}

/// What `verify` found for one backfill.
#[derive(Debug, Clone)]
pub struct BackfillVerification {
    pub backfill: u64,
    /// Windows of the backfill (every stage) that were looked at.
    pub windows: u64,
    /// One check per published output of those windows.
    pub checks: Vec<WindowCheck>,
}

impl Engine {
    /// Re-reads every published output of a backfill's windows and
    /// compares it with what was committed (the article's cross-storage
    /// consistency check).
    pub async fn verify_backfill(
        &self,
        tenant: &str,
        id: u64,
    ) -> Result<BackfillVerification, EngineError> {
        if self.backfill(tenant, id)?.is_none() {
            return Err(EngineError::BackfillNotFound(id));
        }
        let mut spans: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
        let mut wanted: std::collections::HashSet<(String, i64)> = Default::default();
        let mut after: Option<(String, i64)> = None;
        loop {
            let page = self.inner.store.backfill_windows(
                tenant,
                id,
                after.as_ref().map(|(w, t)| (w.as_str(), *t)),
                1000,
            )?;
            let Some(last) = page.last() else { break };
            after = Some((last.workflow.clone(), last.window_start));
            for w in page {
                let span = spans
                    .entry(w.workflow.clone())
                    .or_insert((w.window_start, w.window_end));
                span.0 = span.0.min(w.window_start);
                span.1 = span.1.max(w.window_end);
                wanted.insert((w.workflow, w.window_start));
            }
        }
        let mut checks = Vec::new();
        for (workflow, (since, until)) in spans {
            for c in self
                .inner
                .verify_outputs(tenant, &workflow, since, until)
                .await?
            {
                if wanted.contains(&(c.workflow.clone(), c.window_start)) {
                    checks.push(c);
                }
            }
        }
        Ok(BackfillVerification {
            backfill: id,
            windows: wanted.len() as u64,
            checks,
        })
    }

    /// The outputs a run committed that are still its window's current
    /// ones, with their checks: one lookup per task and connection of the
    /// run's workflow version, so no scan of the workflow's windows.
    pub fn run_outputs(
        &self,
        tenant: &str,
        run: &crate::run::Run,
    ) -> Result<Vec<OutputRecord>, EngineError> {
        let store = &self.inner.store;
        let Some(stored) = store.workflow_get(tenant, &run.workflow, Some(run.version))? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for task in &stored.raw.tasks {
            for connection in &stored.raw.connections {
                if let Some(r) = store.output_get(
                    tenant,
                    connection,
                    &run.workflow,
                    &task.name,
                    run.window_start,
                )? {
                    if r.run_id == run.id {
                        out.push(r);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Committed outputs of a workflow's windows in `[since, until)`.
    pub fn outputs(
        &self,
        tenant: &str,
        workflow: &str,
        since: i64,
        until: i64,
    ) -> Result<Vec<OutputRecord>, EngineError> {
        Ok(self
            .inner
            .store
            .outputs_of(tenant, workflow, since, until)?)
    }
}
