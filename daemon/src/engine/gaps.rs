//! The gap and late-data detector in the engine: gathering what the store
//! knows of each window (see [`crate::gap`] for the decisions), repairing
//! on request, and the periodic pass that repairs or proposes for the
//! workflows that opted in (`repair = "auto" | "propose"`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;

use super::{Engine, EngineError};
use crate::gap::{self, Latest, RepairMode, RepairOrigin, Report};
use crate::run::{Cause, DatasetRead, Requester, RunState};
use crate::store::{BackfillRecord, BackfillState};

impl Engine {
    /// The gaps of `workflow` among its windows starting in `[since,
    /// until)` that are due: `until` defaults to now (and is never later),
    /// `since` to the workflow's repair lookback before `until` but not
    /// before the workflow was first applied (older windows that never ran
    /// are history it was not asked for; an explicit `since` reaches them).
    /// Neither reaches outside the schedule's start and end.
    pub fn gaps(
        &self,
        tenant: &str,
        workflow: &str,
        since: Option<i64>,
        until: Option<i64>,
    ) -> Result<Report, EngineError> {
        let head = self
            .workflow(tenant, workflow)
            .ok_or_else(|| EngineError::WorkflowNotFound(workflow.to_owned()))?;
        let def = head.def;
        let now = self.inner.clock.now_ms();
        if let (Some(s), Some(u)) = (since, until) {
            if s >= u {
                return Err(EngineError::GapRange(format!(
                    "since ({}) must be before until ({})",
                    crate::schedule::format_utc(s),
                    crate::schedule::format_utc(u)
                )));
            }
        }
        let until = until
            .unwrap_or(now)
            .min(now)
            .min(def.end.unwrap_or(i64::MAX));
        let since = match since {
            Some(s) => s,
            None => until
                .saturating_sub(def.repair.lookback_ms)
                .max(self.first_applied(tenant, workflow, now)?),
        }
        .max(def.start);
        let mut due: VecDeque<crate::schedule::Window> = VecDeque::new();
        let mut truncated = false;
        for w in def.schedule.windows(since, until) {
            if w.end > now {
                break;
            }
            if due.len() == gap::SCAN_LIMIT {
                due.pop_front();
                truncated = true;
            }
            due.push_back(w);
        }
        let mut report = Report {
            workflow: workflow.to_owned(),
            since,
            until,
            scanned: due.len(),
            truncated,
            gaps: Vec::new(),
        };
        let Some(first) = due.front().copied() else {
            return Ok(report);
        };
        let store = &self.inner.store;
        let records: HashMap<i64, _> = store
            .windows(tenant, workflow, first.start, until, gap::SCAN_LIMIT + 1)?
            .into_iter()
            .collect();
        let mut versions: HashMap<(String, i64), Option<String>> = HashMap::new();
        for w in due {
            let latest = match records.get(&w.start) {
                None => Latest::Never,
                Some(r) if !r.state.is_terminal() => Latest::Active,
                Some(r) => self.latest(tenant, r.run_id, r.state, &mut versions)?,
            };
            report.gaps.extend(gap::classify(w, latest));
        }
        Ok(report)
    }

    /// When the workflow's first version was applied (versions count from
    /// 1 and are only removed with the workflow).
    fn first_applied(&self, tenant: &str, workflow: &str, now: i64) -> Result<i64, EngineError> {
        Ok(self
            .inner
            .store
            .workflow_get(tenant, workflow, Some(1))?
            .map_or(now, |v| v.created_ms))
    }

    /// What the detector needs of an ended run.
    fn latest(
        &self,
        tenant: &str,
        run_id: u64,
        state: RunState,
        versions: &mut HashMap<(String, i64), Option<String>>,
    ) -> Result<Latest, EngineError> {
        let store = &self.inner.store;
        let Some(run) = store.run_get(tenant, run_id)? else {
            return Ok(Latest::Never);
        };
        let attempts = store.attempts(tenant, run_id)?;
        if state != RunState::Succeeded {
            let error = attempts
                .iter()
                .rfind(|a| a.error_kind.is_some())
                .map(|a| format!("task {}: {}", a.task, a.message));
            return Ok(Latest::Failed {
                run_id,
                by_repair: matches!(run.provenance.cause, Cause::GapRepair { .. }),
                error,
            });
        }
        // What each task's last attempt read: the one whose outputs count.
        let mut reads: Vec<DatasetRead> = Vec::new();
        for t in &run.tasks {
            if let Some(a) = attempts.iter().rfind(|a| a.task == t.name) {
                reads.extend(a.reads.iter().cloned());
            }
        }
        let failure = std::cell::RefCell::new(None);
        let changed = gap::changed_inputs(
            run_id,
            &reads,
            |dataset, partition| {
                let key = (dataset.to_owned(), partition);
                if let Some(v) = versions.get(&key) {
                    return v.clone();
                }
                let v = store
                    .partition_version(tenant, dataset, partition)
                    .unwrap_or_else(|e| {
                        failure.borrow_mut().get_or_insert(e);
                        None
                    });
                versions.insert(key, v.clone());
                v
            },
            &run.provenance.upstream,
            |wf, start| match store.window_get(tenant, wf, start) {
                Ok(r) => r.map(|r| (r.run_id, r.state)),
                Err(e) => {
                    failure.borrow_mut().get_or_insert(e);
                    None
                }
            },
        );
        if let Some(e) = failure.into_inner() {
            return Err(e.into());
        }
        Ok(Latest::Succeeded { run_id, changed })
    }

    /// Scans `workflow` and creates the backfill that repairs what it
    /// found, on behalf of `requested_by`: running, or paused for approval
    /// with `propose`. `None` when there is nothing to repair.
    pub async fn repair_gaps(
        &self,
        tenant: &str,
        workflow: &str,
        since: Option<i64>,
        until: Option<i64>,
        propose: bool,
        requested_by: Requester,
    ) -> Result<(Report, Option<BackfillRecord>), EngineError> {
        let report = self.gaps(tenant, workflow, since, until)?;
        let created = self
            .create_repair(tenant, &report, RepairMode::Off, propose, requested_by)
            .await?;
        Ok((report, created))
    }

    async fn create_repair(
        &self,
        tenant: &str,
        report: &Report,
        mode: RepairMode,
        propose: bool,
        requested_by: Requester,
    ) -> Result<Option<BackfillRecord>, EngineError> {
        let head = self
            .workflow(tenant, &report.workflow)
            .ok_or_else(|| EngineError::WorkflowNotFound(report.workflow.clone()))?;
        let Some(request) = report.request(head.version, false) else {
            return Ok(None);
        };
        let origin = RepairOrigin {
            mode,
            reasons: report.reasons(),
        };
        let paused = propose.then(|| {
            format!(
                "proposed by the gap detector ({}): resume to approve, cancel to dismiss",
                report.summary()
            )
        });
        match self
            .create_backfill_as(tenant, request, requested_by, Some(origin), paused)
            .await?
        {
            Ok(record) => Ok(Some(record)),
            Err(_) => unreachable!("a repair request is never a dry run"),
        }
    }

    /// One pass of the detector over every workflow that opted in and is
    /// not paused: each with gaps and no backfill of it active gets a
    /// repair backfill (running for `auto`, paused for `propose`). A
    /// proposal that was cancelled is not made again until a new gap
    /// appears.
    pub async fn scan_repairs(&self) -> Result<Vec<BackfillRecord>, EngineError> {
        // Passes never overlap: each sees the repairs the one before made.
        let _pass = self.inner.gap_scan.pass.lock().await;
        let candidates: Vec<(String, String, RepairMode)> = {
            let st = self.inner.lock();
            let busy = |t: &str, n: &str| {
                st.backfills.values().any(|b| {
                    b.record.tenant == t && (b.record.request.workflow == n || b.def.name == n)
                })
            };
            st.heads
                .iter()
                .filter(|(_, l)| l.def.repair.mode != RepairMode::Off && !l.def.paused)
                .filter(|((t, n), _)| !busy(t, n))
                .map(|((t, n), l)| (t.clone(), n.clone(), l.def.repair.mode))
                .collect()
        };
        let mut created = Vec::new();
        for (tenant, name, mode) in candidates {
            let report = self.gaps(&tenant, &name, None, None)?;
            if report.gaps.is_empty() || self.dismissed(&tenant, &report)? {
                continue;
            }
            let propose = mode == RepairMode::Propose;
            if let Some(b) = self
                .create_repair(&tenant, &report, mode, propose, Requester::Scheduler)
                .await?
            {
                tracing::info!(
                    tenant,
                    workflow = name,
                    backfill = b.id,
                    mode = mode.as_str(),
                    gaps = report.summary(),
                    "gap detector: repair created"
                );
                self.notify_gaps(&tenant, &report, b.id);
                created.push(b);
            }
        }
        Ok(created)
    }

    /// Whether the newest repair the detector made for the workflow was
    /// cancelled (dismissed) and covered every gap found now.
    fn dismissed(&self, tenant: &str, report: &Report) -> Result<bool, EngineError> {
        let newest = self
            .inner
            .store
            .backfills(tenant)?
            .into_iter()
            .filter(|b| b.request.workflow == report.workflow)
            .filter(|b| b.repair.as_ref().is_some_and(|r| r.mode != RepairMode::Off))
            .max_by_key(|b| b.id);
        Ok(newest.is_some_and(|b| {
            let origin = b.repair.as_ref().expect("filtered on repair");
            b.state == BackfillState::Cancelled
                && report
                    .gaps
                    .iter()
                    .all(|g| origin.reason(g.window.start).is_some())
        }))
    }

    /// Starts a detector pass in the background when one is due and none
    /// is running (the driver calls this every pass).
    pub(super) fn start_gap_scan(&self, now: i64) {
        let scan = &self.inner.gap_scan;
        let interval = self.inner.config.gap_scan_interval.as_millis() as i64;
        if now < scan.next_ms.load(Ordering::Relaxed) || scan.running.swap(true, Ordering::AcqRel) {
            return;
        }
        scan.next_ms.store(now + interval, Ordering::Relaxed);
        let engine = self.clone();
        tokio::spawn(async move {
            if let Err(e) = engine.scan_repairs().await {
                tracing::warn!("gap detector pass failed: {e}");
            }
            engine
                .inner
                .gap_scan
                .running
                .store(false, Ordering::Release);
        });
    }
}

/// When the next background detector pass is due, and whether one runs.
#[derive(Default)]
pub(super) struct GapScan {
    next_ms: std::sync::atomic::AtomicI64,
    running: std::sync::atomic::AtomicBool,
    pass: tokio::sync::Mutex<()>,
}
