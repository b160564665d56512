//! Notifications in the engine: targets created (URL within the tenant's
//! egress allowlist, connection and secret field present), listed and
//! deleted; the delivery log read back; and the events the engine reports.
//!
//! Events are staged in `EngineState::notices` where they happen (a run's
//! end, a backfill's end or budget pause, a backfill without progress) and
//! handed to the sender only after the persist that makes them durable
//! ([`Inner::persist`]), so a notification never tells of a state a crash
//! could take back. The gap detector's pass reports after its repair is
//! stored. Handing over never waits: see [`super::deliver`].

use std::collections::HashMap;

use super::{Engine, EngineError, EngineState, Inner};
use crate::notify::{self, BackfillSummary, Event, FailedWindow, RawTarget, TargetError};
use crate::run::{Run, RunState};
use crate::store::{DeliveryRecord, NotifyTargetRecord, StateStore, StoreError, WindowState};

/// Why a target operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum NotifyOpError {
    #[error("invalid notification target: {0}")]
    Invalid(#[from] TargetError),
    #[error("notification target {0:?} already exists; delete it first")]
    Exists(String),
    #[error("notification target {0:?} not found")]
    NotFound(String),
    #[error("delivery {0} not found")]
    DeliveryNotFound(u64),
}

/// Deliveries one page of the log holds at most.
pub const MAX_DELIVERY_PAGE: usize = 500;

impl Engine {
    /// Validates a target and stores it: its URL must be within the
    /// tenant's egress allowlist, and its connection must exist with the
    /// secret field that signs. Nothing is stored otherwise.
    pub fn create_notify_target(
        &self,
        tenant: &str,
        raw: &RawTarget,
    ) -> Result<NotifyTargetRecord, EngineError> {
        let spec = raw.validate().map_err(NotifyOpError::from)?;
        let allowlist = self.inner.egress_allowlist(tenant);
        let target = crate::egress::Target::from_url(&spec.url)
            .map_err(|e| NotifyOpError::from(TargetError::field("url", e)))?;
        if !allowlist.allows(&target) {
            return Err(NotifyOpError::from(TargetError::field(
                "url",
                format!(
                    "{} is not within the tenant's egress allowlist ({}); an admin sets it with `tidemark tenant egress set`",
                    target.authority(),
                    if allowlist.is_empty() {
                        "empty: no outbound HTTP".to_owned()
                    } else {
                        allowlist.patterns().join(", ")
                    }
                ),
            ))
            .into());
        }
        let conn = self
            .inner
            .store
            .connection_get(tenant, &spec.connection)?
            .ok_or_else(|| {
                NotifyOpError::from(TargetError::field(
                    "connection",
                    format!("connection {:?} not found", spec.connection),
                ))
            })?;
        if !conn.secrets.contains_key(&spec.secret_field) {
            return Err(NotifyOpError::from(TargetError::field(
                "secret_field",
                format!(
                    "connection {:?} has no secret field {:?} (it has: {})",
                    spec.connection,
                    spec.secret_field,
                    conn.secrets.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ))
            .into());
        }
        let record = NotifyTargetRecord {
            name: spec.name,
            url: spec.url,
            connection: spec.connection,
            secret_field: spec.secret_field,
            events: spec.events,
            created_ms: self.inner.clock.now_ms(),
        };
        if !self.inner.store.notify_target_create(tenant, &record)? {
            return Err(NotifyOpError::Exists(record.name).into());
        }
        tracing::info!(
            tenant,
            target = record.name,
            events = record.events.len(),
            "notification target created"
        );
        Ok(record)
    }

    pub fn notify_targets(&self, tenant: &str) -> Result<Vec<NotifyTargetRecord>, EngineError> {
        Ok(self.inner.store.notify_target_list(tenant)?)
    }

    /// Deletes a target; its pending deliveries fail at their next attempt.
    pub fn delete_notify_target(&self, tenant: &str, name: &str) -> Result<(), EngineError> {
        if !self.inner.store.notify_target_delete(tenant, name)? {
            return Err(NotifyOpError::NotFound(name.to_owned()).into());
        }
        tracing::info!(tenant, target = name, "notification target deleted");
        Ok(())
    }

    /// The delivery log, newest first, ids below `before`.
    pub fn deliveries(
        &self,
        tenant: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>, EngineError> {
        let limit = limit.clamp(1, MAX_DELIVERY_PAGE);
        Ok(self.inner.store.delivery_list(tenant, before, limit)?)
    }

    pub fn delivery(&self, tenant: &str, id: u64) -> Result<DeliveryRecord, EngineError> {
        self.inner
            .store
            .delivery_get(tenant, id)?
            .ok_or_else(|| NotifyOpError::DeliveryNotFound(id).into())
    }

    /// Reports what the gap detector found and the repair it made.
    pub(super) fn notify_gaps(&self, tenant: &str, report: &crate::gap::Report, repair: u64) {
        use crate::gap::GapKind;
        let count = |k: GapKind| report.gaps.iter().filter(|g| g.kind == k).count();
        let event = Event::GapDetected {
            workflow: report.workflow.clone(),
            missing: count(GapKind::Missing),
            failed: count(GapKind::Failed),
            stale: count(GapKind::Stale),
            windows: report
                .gaps
                .iter()
                .take(crate::notify::MAX_FAILED_WINDOWS)
                .map(|g| g.window.start)
                .collect(),
            repair_backfill: Some(repair),
        };
        self.inner.notifier.send(vec![(tenant.to_owned(), event)]);
    }
}

impl Inner {
    /// Hands events made durable to the sender.
    pub(super) fn send_notices(&self, notices: Vec<(String, Event)>) {
        if !notices.is_empty() {
            self.notifier.send(notices);
        }
    }
}

/// The event of a run's end, if it has one: a live run that failed (its
/// tasks out of retries).
pub(super) fn run_ended(st: &mut EngineState, run: &Run) {
    if run.state != RunState::Failed || run.backfill.is_some() {
        return;
    }
    let failed = run.tasks.iter().find(|t| t.last_error.is_some());
    st.notices.push((
        run.tenant.clone(),
        Event::RunFailed {
            run_id: run.id,
            workflow: run.workflow.clone(),
            window_start_ms: run.window_start,
            window_end_ms: run.window_end,
            task: failed.map(|t| t.name.clone()),
            error: failed.and_then(|t| t.last_error.clone()),
        },
    ));
}

/// Progress seen per running backfill: windows done, since when, and
/// whether it was reported stuck.
#[derive(Debug, Default)]
pub(super) struct Progress(HashMap<u64, (u64, i64, bool)>);

/// Stages `backfill.stuck` for each running backfill whose count of ended
/// windows has not moved for `stuck_after` (once, until it moves again).
pub(super) fn check_stuck(st: &mut EngineState, now: i64, stuck_after_ms: i64) {
    let mut seen = HashMap::new();
    let mut notices = Vec::new();
    for (id, b) in &st.backfills {
        if b.record.state != crate::store::BackfillState::Running {
            continue;
        }
        let r = &b.record;
        let done = r.succeeded + r.failed + r.skipped + r.cancelled;
        // Waiting on purpose (a start-at time, off-peak hours) is not
        // being stuck: idle time counts from when windows may start. A
        // backfill already reported stays reported until it moves.
        if b.spec.waiting(now).is_some() {
            let told = matches!(st.progress.0.get(id), Some(&(d, _, true)) if d == done);
            seen.insert(*id, (done, now, told));
            continue;
        }
        let (last, since, told) = match st.progress.0.get(id) {
            Some(&(d, since, told)) if d == done => (d, since, told),
            _ => (done, now, false),
        };
        let mut told = told;
        if !told && now - since >= stuck_after_ms {
            told = true;
            notices.push((
                r.tenant.clone(),
                Event::BackfillStuck {
                    backfill: *id,
                    workflow: b.def.name.clone(),
                    idle_ms: now - since,
                },
            ));
        }
        seen.insert(*id, (last, since, told));
    }
    st.progress.0 = seen;
    st.notices.extend(notices);
}

/// A backfill's end as `backfill.ended` tells it: counts, the first failed
/// windows with their first errors, duration against the estimate.
pub(super) fn backfill_summary(
    store: &dyn StateStore,
    tenant: &str,
    id: u64,
) -> Result<BackfillSummary, StoreError> {
    let Some(b) = store.backfill_get(tenant, id)? else {
        return Ok(BackfillSummary {
            backfill: id,
            workflow: String::new(),
            state: "deleted".into(),
            succeeded: 0,
            failed: 0,
            skipped: 0,
            cancelled: 0,
            failed_windows: Vec::new(),
            failed_windows_truncated: false,
            duration_ms: None,
            estimated_ms: None,
            estimated_low_ms: None,
            estimated_high_ms: None,
        });
    };
    let mut failed_windows = Vec::new();
    let mut truncated = false;
    let mut after: Option<(String, i64)> = None;
    let mut more = b.failed > 0;
    'pages: while more {
        let page = store.backfill_windows(
            tenant,
            id,
            after.as_ref().map(|(w, t)| (w.as_str(), *t)),
            1000,
        )?;
        let last = page.len() < 1000;
        for w in page {
            after = Some((w.workflow.clone(), w.window_start));
            if w.state != WindowState::Failed {
                continue;
            }
            if failed_windows.len() == notify::MAX_FAILED_WINDOWS {
                truncated = true;
                break 'pages;
            }
            let error = match w.run_id {
                Some(r) => store.run_get(tenant, r)?.and_then(|run| {
                    run.tasks
                        .iter()
                        .find(|t| t.last_error.is_some())
                        .and_then(|t| t.last_error.clone())
                }),
                None => None,
            };
            failed_windows.push(FailedWindow {
                workflow: w.workflow,
                window_start_ms: w.window_start,
                window_end_ms: w.window_end,
                run_id: w.run_id,
                error,
            });
        }
        more = !last;
    }
    let wall = b.estimate.as_ref().map(|e| &e.total.wall_ms);
    Ok(BackfillSummary {
        backfill: id,
        workflow: b.request.workflow.clone(),
        state: b.state.as_str().to_owned(),
        succeeded: b.succeeded,
        failed: b.failed,
        skipped: b.skipped,
        cancelled: b.cancelled,
        failed_windows,
        failed_windows_truncated: truncated,
        duration_ms: b.ended_ms.map(|e| e - b.created_ms),
        estimated_ms: wall.map(|w| w.expected),
        estimated_low_ms: wall.map(|w| w.low),
        estimated_high_ms: wall.map(|w| w.high),
    })
}
